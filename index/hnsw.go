package index

import (
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
)

// graph is one catalog's HNSW graph (Malkov & Yashunin, 2016) laid out for
// speed and size: vectors in one flat arena, level-0 neighbour lists as
// fixed blocks of uint32 (count, then ids), upper levels in a second arena,
// and iids in a byte arena found through an open-addressing table. Nodes are
// never moved or reused: a deleted or replaced node becomes a tombstone that
// still routes searches but is never returned, and compact rebuilds the
// graph once tombstones are a quarter of it.
type graph struct {
	dim, m, m0, efC int
	levelMult       float64
	rng             uint64

	vecs     []float32 // node i's vector at [i*dim, (i+1)*dim)
	links0   []uint32  // node i's level-0 block at [i*(m0+1), (i+1)*(m0+1))
	levels   []uint8   // node i's top level
	upperOff []uint32  // node i's level l ≥ 1 block at upper[upperOff[i]+(l-1)*(m+1)]
	upper    []uint32
	iidOff   []uint32 // node i's iid is iidBuf[iidOff[i]:iidOff[i+1]]
	iidBuf   []byte
	deleted  []uint64 // bitset of tombstones
	ndeleted int

	seed  maphash.Seed
	slots []uint32 // live node+1 by hash of iid; 0 is empty

	entry    uint32
	maxLevel int // -1 when the graph has no node
}

// distID is a candidate: a node and its distance to the query.
type distID struct {
	d  float32
	id uint32
}

const levelCap = 16 // caps a node's level; the odds of a higher one are M^-16

func newGraph(dim, m, efC int, seed uint64) *graph {
	return &graph{
		dim: dim, m: m, m0: 2 * m, efC: efC,
		levelMult: 1 / math.Log(float64(m)),
		rng:       seed,
		iidOff:    []uint32{0},
		seed:      maphash.MakeSeed(),
		maxLevel:  -1,
	}
}

func (g *graph) nodes() int { return len(g.levels) }
func (g *graph) live() int  { return len(g.levels) - g.ndeleted }

// reserve sizes the arenas for n more nodes whose iids take iidBytes, so
// that a bulk load does not leave growth slack behind.
func (g *graph) reserve(n, iidBytes int) {
	g.vecs = slices.Grow(g.vecs, n*g.dim)
	g.links0 = slices.Grow(g.links0, n*(g.m0+1))
	g.levels = slices.Grow(g.levels, n)
	g.upperOff = slices.Grow(g.upperOff, n)
	// One node in m has upper levels, with m/(m-1) levels on average.
	g.upper = slices.Grow(g.upper, (n/(g.m-1)+16)*(g.m+1))
	g.iidOff = slices.Grow(g.iidOff, n)
	g.iidBuf = slices.Grow(g.iidBuf, iidBytes)
	g.deleted = slices.Grow(g.deleted, (len(g.levels)+n+63)/64-len(g.deleted))
	if want := tableSize(g.live() + n); want > len(g.slots) {
		g.rehash(want)
	}
}

func (g *graph) vec(id uint32) []float32 {
	o := int(id) * g.dim
	return g.vecs[o : o+g.dim : o+g.dim]
}

func (g *graph) iid(id uint32) string {
	return string(g.iidBuf[g.iidOff[id]:g.iidOff[id+1]])
}

func (g *graph) isDeleted(id uint32) bool { return g.deleted[id/64]&(1<<(id%64)) != 0 }

// block returns node id's neighbour block at level l: count, then ids.
func (g *graph) block(id uint32, l int) []uint32 {
	if l == 0 {
		o := int(id) * (g.m0 + 1)
		return g.links0[o : o+g.m0+1 : o+g.m0+1]
	}
	o := int(g.upperOff[id]) + (l-1)*(g.m+1)
	return g.upper[o : o+g.m+1 : o+g.m+1]
}

// lookup finds the live node of iid.
func (g *graph) lookup(iid string) (id uint32, ok bool) {
	if len(g.slots) == 0 {
		return 0, false
	}
	for i := g.home(iid); ; i = g.next(i) {
		s := g.slots[i]
		if s == 0 {
			return 0, false
		}
		if g.iid(s-1) == iid {
			return s - 1, true
		}
	}
}

func (g *graph) home(iid string) int {
	hi, _ := bits.Mul64(maphash.String(g.seed, iid), uint64(len(g.slots)))
	return int(hi)
}

func (g *graph) next(i int) int {
	if i++; i == len(g.slots) {
		return 0
	}
	return i
}

// tableSize keeps the table at most three quarters full.
func tableSize(n int) int { return max(16, n+n/3+1) }

func (g *graph) rehash(size int) {
	old := g.slots
	g.slots = make([]uint32, size)
	for _, s := range old {
		if s != 0 {
			g.place(s - 1)
		}
	}
}

func (g *graph) place(id uint32) {
	i := g.home(g.iid(id))
	for g.slots[i] != 0 {
		i = g.next(i)
	}
	g.slots[i] = id + 1
}

// unplace removes id from the table by backward-shift deletion, which keeps
// every remaining entry reachable from its home slot without tombstones.
func (g *graph) unplace(id uint32) {
	i := g.home(g.iid(id))
	for g.slots[i] != id+1 {
		i = g.next(i)
	}
	for j := g.next(i); g.slots[j] != 0; j = g.next(j) {
		h := g.home(g.iid(g.slots[j] - 1))
		// The entry at j may move back to i unless its home lies
		// cyclically in (i, j].
		if (i <= j && (h <= i || h > j)) || (i > j && h <= i && h > j) {
			g.slots[i] = g.slots[j]
			i = j
		}
	}
	g.slots[i] = 0
}

// remove tombstones iid's node; it reports whether there was one.
func (g *graph) remove(iid string) bool {
	id, ok := g.lookup(iid)
	if !ok {
		return false
	}
	g.unplace(id)
	g.deleted[id/64] |= 1 << (id % 64)
	g.ndeleted++
	return true
}

// upsert adds v under iid, replacing iid's node unless it holds exactly v.
// It reports whether the graph changed.
func (g *graph) upsert(s *searcher, iid string, v []float32) bool {
	if id, ok := g.lookup(iid); ok {
		if slices.Equal(g.vec(id), v) {
			return false
		}
		g.remove(iid)
	}
	g.insert(s, iid, v)
	return true
}

func (g *graph) randomLevel() int {
	// splitmix64: a fixed seed gives a reproducible graph.
	g.rng += 0x9e3779b97f4a7c15
	z := g.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := (float64(z>>11) + 1) / (1 << 53) // in (0, 1]
	return min(int(-math.Log(u)*g.levelMult), levelCap)
}

// insert adds a node for iid, which must not be live, following hnswlib's
// addPoint: greedy descent to the node's top level, then at each level an
// efConstruction search whose result the heuristic thins to m neighbours.
func (g *graph) insert(s *searcher, iid string, v []float32) {
	id := uint32(len(g.levels))
	level := g.randomLevel()
	g.vecs = append(g.vecs, v...)
	g.links0 = slices.Grow(g.links0, g.m0+1)
	g.links0 = g.links0[:len(g.links0)+g.m0+1]
	clear(g.links0[len(g.links0)-g.m0-1:])
	g.levels = append(g.levels, uint8(level))
	g.upperOff = append(g.upperOff, uint32(len(g.upper)))
	if n := level * (g.m + 1); n > 0 {
		g.upper = slices.Grow(g.upper, n)
		g.upper = g.upper[:len(g.upper)+n]
		clear(g.upper[len(g.upper)-n:])
	}
	g.iidBuf = append(g.iidBuf, iid...)
	g.iidOff = append(g.iidOff, uint32(len(g.iidBuf)))
	if int(id)/64 >= len(g.deleted) {
		g.deleted = append(g.deleted, 0)
	}
	if (g.live()+1)*4 > len(g.slots)*3 {
		g.rehash(tableSize(2 * g.live()))
	}
	g.place(id)

	if g.maxLevel < 0 {
		g.entry, g.maxLevel = id, level
		return
	}
	q := g.vec(id)
	cur := distID{1 - dot(q, g.vec(g.entry)), g.entry}
	for l := g.maxLevel; l > level; l-- {
		cur = g.greedy(s, q, cur, l)
	}
	for l := min(level, g.maxLevel); l >= 0; l-- {
		found := g.searchLayer(s, q, cur, g.efC, l, false)
		cur = found[0]
		sel := g.heuristic(found, g.m, &s.sel)
		blk := g.block(id, l)
		blk[0] = uint32(len(sel))
		for i, c := range sel {
			blk[1+i] = c.id
		}
		for _, c := range sel {
			g.link(s, c.id, id, c.d, l)
		}
	}
	if level > g.maxLevel {
		g.entry, g.maxLevel = id, level
	}
}

// link adds to from's list at level l an edge to to, at distance d, pruning
// the list with the heuristic when it is full.
func (g *graph) link(s *searcher, from, to uint32, d float32, l int) {
	blk := g.block(from, l)
	limit := g.m
	if l == 0 {
		limit = g.m0
	}
	n := int(blk[0])
	if n < limit {
		blk[1+n] = to
		blk[0]++
		return
	}
	fv := g.vec(from)
	cands := append(s.prune[:0], distID{d, to})
	for _, x := range blk[1 : 1+n] {
		cands = append(cands, distID{1 - dot(fv, g.vec(x)), x})
	}
	slices.SortFunc(cands, cmpDist)
	s.prune = cands
	sel := g.heuristic(cands, limit, &s.sel2)
	blk[0] = uint32(len(sel))
	for i, c := range sel {
		blk[1+i] = c.id
	}
}

func cmpDist(a, b distID) int {
	switch {
	case a.d < b.d:
		return -1
	case a.d > b.d:
		return 1
	}
	return 0
}

// heuristic picks up to m of cands (sorted nearest first), skipping any
// candidate nearer to an already picked one than to the base: this keeps
// edges pointing in different directions, which is what lets clustered
// data be crossed (hnswlib's getNeighborsByHeuristic2).
func (g *graph) heuristic(cands []distID, m int, buf *[]distID) []distID {
	if len(cands) <= m {
		return cands
	}
	out := (*buf)[:0]
	for _, c := range cands {
		if len(out) >= m {
			break
		}
		cv := g.vec(c.id)
		good := true
		for _, r := range out {
			if 1-dot(cv, g.vec(r.id)) < c.d {
				good = false
				break
			}
		}
		if good {
			out = append(out, c)
		}
	}
	*buf = out
	return out
}

// greedy walks level l from cur to a local minimum of the distance to q.
func (g *graph) greedy(s *searcher, q []float32, cur distID, l int) distID {
	for changed := true; changed; {
		changed = false
		blk := g.block(cur.id, l)
		ids := blk[1 : 1+blk[0]]
		dots := s.dots[:len(ids)]
		dotBatch(q, g.vecs, ids, dots)
		for i, x := range ids {
			if d := 1 - dots[i]; d < cur.d {
				cur = distID{d, x}
				changed = true
			}
		}
	}
	return cur
}

// searchLayer is the beam search of level l from ep with a beam of ef. With
// live set, tombstones route the search but are kept out of the result.
// The result, nearest first, lives in s until its next use.
func (g *graph) searchLayer(s *searcher, q []float32, ep distID, ef, l int, live bool) []distID {
	s.reset(len(g.levels))
	s.visit(ep.id)
	filter := live && g.ndeleted > 0
	s.cand = s.cand[:0]
	s.top = s.top[:0]
	s.cand = pushMin(s.cand, ep)
	lower := float32(math.Inf(1))
	if !filter || !g.isDeleted(ep.id) {
		s.top = pushMax(s.top, ep)
		lower = ep.d
	}
	for len(s.cand) > 0 {
		c := s.cand[0]
		if c.d > lower && (len(s.top) >= ef || !filter) {
			break
		}
		s.cand = popMin(s.cand)
		blk := g.block(c.id, l)
		ids := s.ids[:0]
		for _, x := range blk[1 : 1+blk[0]] {
			if s.visited[x] != s.gen {
				s.visited[x] = s.gen
				ids = append(ids, x)
			}
		}
		dots := s.dots[:len(ids)]
		dotBatch(q, g.vecs, ids, dots)
		for i, x := range ids {
			d := 1 - dots[i]
			if len(s.top) < ef || d < lower {
				s.cand = pushMin(s.cand, distID{d, x})
				if !filter || !g.isDeleted(x) {
					s.top = pushMax(s.top, distID{d, x})
					if len(s.top) > ef {
						s.top = popMax(s.top)
					}
				}
				if len(s.top) > 0 {
					lower = s.top[0].d
				}
			}
		}
	}
	res := slices.Grow(s.res[:0], len(s.top))[:len(s.top)]
	for i := len(res) - 1; i >= 0; i-- {
		res[i] = s.top[0]
		s.top = popMax(s.top)
	}
	s.res = res
	return res
}

// search returns the k live nodes nearest to q found with a beam of ef,
// nearest first; the slice lives in s until its next use.
func (g *graph) search(s *searcher, q []float32, k, ef int) []distID {
	if g.live() == 0 {
		return nil
	}
	cur := distID{1 - dot(q, g.vec(g.entry)), g.entry}
	for l := g.maxLevel; l > 0; l-- {
		cur = g.greedy(s, q, cur, l)
	}
	res := g.searchLayer(s, q, cur, max(ef, k), 0, true)
	return res[:min(k, len(res))]
}

// exact returns the k live nodes nearest to q by scanning every vector.
func (g *graph) exact(s *searcher, q []float32, k int) []distID {
	top := s.top[:0]
	for id := range uint32(len(g.levels)) {
		if g.isDeleted(id) {
			continue
		}
		d := 1 - dot(q, g.vec(id))
		if len(top) < k {
			top = pushMax(top, distID{d, id})
		} else if d < top[0].d {
			top[0] = distID{d, id}
			siftDownMax(top, 0)
		}
	}
	res := slices.Grow(s.res[:0], len(top))[:len(top)]
	for i := len(res) - 1; i >= 0; i-- {
		res[i] = top[0]
		top = popMax(top)
	}
	s.top, s.res = top, res
	return res
}

// compacted returns a new graph holding only g's live nodes.
func (g *graph) compacted(s *searcher) *graph {
	n := newGraph(g.dim, g.m, g.efC, g.rng)
	n.reserve(g.live(), len(g.iidBuf))
	for id := range uint32(len(g.levels)) {
		if !g.isDeleted(id) {
			n.insert(s, g.iid(id), g.vec(id))
		}
	}
	return n
}
