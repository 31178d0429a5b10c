//go:build !amd64

package index

func dot(a, b []float32) float32 { return dotGeneric(a, b) }

func dotBatch(q, vecs []float32, ids []uint32, out []float32) { dotBatchGeneric(q, vecs, ids, out) }
