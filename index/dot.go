package index

// dotGeneric is the portable dot product; the assembly kernels must agree
// with it. Four accumulators let the compiler overlap the additions.
func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotBatchGeneric writes into out[i] the dot product of q with row ids[i]
// of vecs, a flat arena of len(q)-long rows.
func dotBatchGeneric(q, vecs []float32, ids []uint32, out []float32) {
	dim := len(q)
	for i, id := range ids {
		o := int(id) * dim
		out[i] = dotGeneric(q, vecs[o:o+dim])
	}
}
