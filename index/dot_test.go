package index

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDotKernelsAgree checks the kernel in use (assembly on amd64 with
// AVX2) against the portable one over lengths that hit every loop and tail.
func TestDotKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 7, 8, 9, 31, 32, 33, 64, 100, 255, 256, 257, 1000} {
		a, b := randVec(r, n), randVec(r, n)
		got, want := dot(a, b), dotGeneric(a, b)
		if math.Abs(float64(got-want)) > 1e-4*(1+math.Abs(float64(want))) {
			t.Errorf("n=%d: dot = %v, generic %v", n, got, want)
		}

		const rows = 13
		vecs := make([]float32, 0, rows*n)
		for range rows {
			vecs = append(vecs, randVec(r, n)...)
		}
		ids := []uint32{12, 0, 5, 5, 7, 1, 11}
		out := make([]float32, len(ids))
		ref := make([]float32, len(ids))
		dotBatch(a, vecs, ids, out)
		dotBatchGeneric(a, vecs, ids, ref)
		for i := range ids {
			if math.Abs(float64(out[i]-ref[i])) > 1e-4*(1+math.Abs(float64(ref[i]))) {
				t.Errorf("n=%d row %d: batch = %v, generic %v", n, ids[i], out[i], ref[i])
			}
		}
	}
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func BenchmarkDot256(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x, y := randVec(r, 256), randVec(r, 256)
	var s float32
	for b.Loop() {
		s += dot(x, y)
	}
	_ = s
}
