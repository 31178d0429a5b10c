package index

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels; pure Go is about four times slower
// on 256-long vectors, which is most of a query's time.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dotBatchAVX2(q, vecs *float32, dim int, ids *uint32, n int, out *float32)

func dot(a, b []float32) float32 {
	if useAVX2 && len(a) > 0 {
		_ = b[len(a)-1]
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGeneric(a, b)
}

// dotBatch is dotBatchGeneric in one call: it saves a call per row and
// prefetches the next row while the current one is summed, since rows of
// graph neighbours are scattered over the arena.
func dotBatch(q, vecs []float32, ids []uint32, out []float32) {
	if !useAVX2 || len(q) == 0 {
		dotBatchGeneric(q, vecs, ids, out)
		return
	}
	if len(ids) == 0 {
		return
	}
	_ = out[len(ids)-1]
	dotBatchAVX2(&q[0], &vecs[0], len(q), &ids[0], len(ids), &out[0])
}
