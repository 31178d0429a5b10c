package index

// searcher is the scratch space of one search or insert, pooled so that a
// query allocates nothing once warm.
type searcher struct {
	visited []uint16 // visited[id] == gen marks id as seen in this search
	gen     uint16
	cand    []distID // min-heap of nodes to expand
	top     []distID // max-heap of the best nodes found
	res     []distID
	q       []float32 // the query, normalised
	ids     []uint32
	dots    []float32
	sel     []distID
	sel2    []distID
	prune   []distID
}

func newSearcher() *searcher {
	return &searcher{ids: make([]uint32, 0, 2*maxM+1), dots: make([]float32, 2*maxM+1)}
}

// reset starts a new search over n nodes; generations spare clearing the
// visited array but once in 65535 searches.
func (s *searcher) reset(n int) {
	if len(s.visited) < n {
		s.visited = make([]uint16, n+n/4)
		s.gen = 0
	}
	if s.gen++; s.gen == 0 {
		clear(s.visited)
		s.gen = 1
	}
}

func (s *searcher) visit(id uint32) { s.visited[id] = s.gen }

func pushMin(h []distID, x distID) []distID {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].d <= h[i].d {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func popMin(h []distID) []distID {
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && h[r].d < h[l].d {
			l = r
		}
		if h[i].d <= h[l].d {
			break
		}
		h[i], h[l] = h[l], h[i]
		i = l
	}
	return h
}

func pushMax(h []distID, x distID) []distID {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].d >= h[i].d {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func popMax(h []distID) []distID {
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	siftDownMax(h, 0)
	return h
}

func siftDownMax(h []distID, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		if r := l + 1; r < n && h[r].d > h[l].d {
			l = r
		}
		if h[i].d >= h[l].d {
			return
		}
		h[i], h[l] = h[l], h[i]
		i = l
	}
}
