package index

import (
	"fmt"
	"testing"
)

// BenchmarkCrossover compares the exact scan with the graph (at the default
// ef) on clustered 256-d vectors, to place DefaultExactBelow:
//
//	go test -run '^$' -bench Crossover ./index/
func BenchmarkCrossover(b *testing.B) {
	const dim = 256
	for _, n := range []int{1000, 2000, 5000, 10000} {
		data := dataset(21, n+100, dim, 50)
		g := newGraph(dim, 16, 200, 1)
		s := newSearcher()
		for i, v := range data[:n] {
			g.insert(s, itoa(i), v)
		}
		queries := data[n:]
		b.Run(fmt.Sprintf("n=%d/exact", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				g.exact(s, queries[i%len(queries)], 10)
			}
		})
		b.Run(fmt.Sprintf("n=%d/graph", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				g.search(s, queries[i%len(queries)], 10, DefaultEfSearch)
			}
		})
	}
}
