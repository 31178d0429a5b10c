package index

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftlabs/weft"
)

// Options tunes an Index; the zero value gives the defaults.
type Options struct {
	M              int // neighbours per node above level 0 (twice that at level 0); default 16
	EfConstruction int // beam width while inserting; default 200
	EfSearch       int // beam width while searching, raised to k; default DefaultEfSearch
	// ExactBelow is the live-vector count under which Search scans every
	// vector instead of walking the graph: exact, and faster there. Default
	// DefaultExactBelow; negative disables the scan.
	ExactBelow int
	// A catalog is snapshotted once SnapshotEvery changes (default 10,000)
	// are pending, and any pending change is snapshotted every
	// SnapshotInterval (default one minute; negative disables the timer).
	SnapshotEvery    int
	SnapshotInterval time.Duration
	Logf             func(format string, args ...any) // snapshot trouble; default discards
}

const (
	DefaultEfSearch = 64
	// DefaultExactBelow is where BenchmarkCrossover found the scan and the
	// graph even, on 256-d clustered vectors (about 130 µs a query, 2-core
	// EPYC, 2026-11-30).
	DefaultExactBelow = 2000
	maxM              = 64
)

func (o Options) withDefaults() Options {
	if o.M <= 0 {
		o.M = 16
	}
	o.M = min(max(o.M, 2), maxM)
	if o.EfConstruction <= 0 {
		o.EfConstruction = 200
	}
	if o.EfSearch <= 0 {
		o.EfSearch = DefaultEfSearch
	}
	if o.ExactBelow == 0 {
		o.ExactBelow = DefaultExactBelow
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = 10000
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Index implements weft.Index with one in-memory HNSW graph per catalog,
// snapshotted under a directory. It is safe for concurrent use.
type Index struct {
	dir  string
	opts Options
	pool sync.Pool

	mu     sync.RWMutex
	cats   map[string]*catalog
	closed bool

	stop chan struct{}
	done chan struct{}
}

var _ weft.Index = (*Index)(nil)

// catalog pairs a graph with its locks. Writers (Add, Delete, Sync,
// snapshots, compaction) take writeMu, so a writer may read g without mu
// while searches go on; it takes mu only for the moments it changes g.
type catalog struct {
	id      string
	writeMu sync.Mutex
	changes int  // changes since the last snapshot; under writeMu
	dropped bool // under writeMu

	mu sync.RWMutex
	g  *graph
}

// Open loads the snapshots under dir, creating dir if need be. A snapshot
// that fails its checks is logged, removed and left out: the catalog then
// looks absent (Has reports false) and is rebuilt from the store by Sync.
func Open(dir string, opts Options) (*Index, error) {
	const op = "index.Open"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, weft.E(op, weft.Internal, err)
	}
	ix := &Index{dir: dir, opts: opts.withDefaults(), cats: map[string]*catalog{}}
	ix.pool.New = func() any { return newSearcher() }
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, weft.E(op, weft.Internal, err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			// A snapshot cut short by a crash.
			os.Remove(path)
		case strings.HasSuffix(name, snapSuffix):
			id, ok := catalogOf(name)
			if !ok {
				continue
			}
			g, err := readSnapshot(path)
			if err != nil {
				ix.opts.Logf("index: ignoring snapshot %s: %v", path, err)
				os.Remove(path)
				continue
			}
			ix.cats[id] = &catalog{id: id, g: g}
		}
	}
	if ix.opts.SnapshotInterval > 0 {
		ix.stop, ix.done = make(chan struct{}), make(chan struct{})
		go ix.snapshotLoop()
	}
	return ix, nil
}

func (ix *Index) snapshotLoop() {
	defer close(ix.done)
	t := time.NewTicker(ix.opts.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ix.stop:
			return
		case <-t.C:
			if err := ix.Flush(); err != nil {
				ix.opts.Logf("index: %v", err)
			}
		}
	}
}

// catalog returns catalog id, creating it when create is set; nil when it
// does not exist.
func (ix *Index) catalog(op, id string, create bool) (*catalog, error) {
	ix.mu.RLock()
	c, closed := ix.cats[id], ix.closed
	ix.mu.RUnlock()
	if closed {
		return nil, weft.E(op, weft.Unavailable, weft.Msgf("The index is closed."))
	}
	if c != nil || !create {
		return c, nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if c = ix.cats[id]; c == nil {
		c = &catalog{id: id}
		ix.cats[id] = c
	}
	return c, nil
}

// writer returns catalog id with its writeMu held, creating it when create
// is set; nil when it does not exist.
func (ix *Index) writer(op, id string, create bool) (*catalog, error) {
	for {
		c, err := ix.catalog(op, id, create)
		if c == nil || err != nil {
			return nil, err
		}
		c.writeMu.Lock()
		if !c.dropped {
			return c, nil
		}
		// Dropped while we waited: look again.
		c.writeMu.Unlock()
	}
}

func (ix *Index) newGraph(dim int) *graph {
	return newGraph(dim, ix.opts.M, ix.opts.EfConstruction, uint64(time.Now().UnixNano()))
}

func checkVector(op string, v []float32, dim int) error {
	if len(v) == 0 || (dim > 0 && len(v) != dim) {
		return weft.E(op, weft.Invalid, weft.Msgf("Vector of length %d, want %d.", len(v), dim))
	}
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return weft.E(op, weft.Invalid, weft.Msgf("Vector with a non-finite value."))
		}
	}
	return nil
}

// Add upserts items: an iid already present is replaced, unless its vector
// is unchanged, when nothing happens. Vectors should be unit length, since
// distances are 1 − dot; all of a catalog's vectors have one length.
func (ix *Index) Add(ctx context.Context, catalogID string, items []weft.VectorItem) error {
	const op = "index.Add"
	if len(items) == 0 {
		return nil
	}
	c, err := ix.writer(op, catalogID, true)
	if err != nil {
		return err
	}
	defer c.writeMu.Unlock()
	s := ix.pool.Get().(*searcher)
	defer ix.pool.Put(s)
	if err := ix.add(ctx, c, s, items, nil); err != nil {
		return err
	}
	return ix.afterWrite(c, s)
}

// add upserts items into c, whose writeMu is held; seen, when set, gets the
// nodes that now hold the items.
func (ix *Index) add(ctx context.Context, c *catalog, s *searcher, items []weft.VectorItem, seen *[]uint64) error {
	const op = "index.Add"
	dim := 0
	if c.g != nil && c.g.nodes() > 0 {
		dim = c.g.dim
	}
	for _, it := range items {
		if err := checkVector(op, it.Vector, dim); err != nil {
			return err
		}
		dim = len(it.Vector)
	}
	for i, it := range items {
		if i%256 == 0 && ctx.Err() != nil {
			return weft.E(op, weft.Unavailable, ctx.Err())
		}
		c.mu.Lock()
		if c.g == nil || c.g.nodes() == 0 && c.g.dim != dim {
			c.g = ix.newGraph(dim)
		}
		if c.g.upsert(s, it.IID, it.Vector) {
			c.changes++
		}
		if seen != nil {
			id, _ := c.g.lookup(it.IID)
			for int(id/64) >= len(*seen) {
				*seen = append(*seen, 0)
			}
			(*seen)[id/64] |= 1 << (id % 64)
		}
		c.mu.Unlock()
	}
	return nil
}

// afterWrite compacts c once a quarter of it is tombstones, and snapshots
// it once enough changes are pending. c.writeMu is held.
func (ix *Index) afterWrite(c *catalog, s *searcher) error {
	if g := c.g; g != nil && g.ndeleted > 0 && g.ndeleted*4 >= g.nodes() {
		// Built from g while searches still read g: writers wait on
		// writeMu, so g cannot change meanwhile.
		n := g.compacted(s)
		c.mu.Lock()
		c.g = n
		c.mu.Unlock()
	}
	if c.changes >= ix.opts.SnapshotEvery {
		return ix.snapshot(c)
	}
	return nil
}

// Delete removes iids from a catalog; unknown iids and catalogs are no-ops.
func (ix *Index) Delete(ctx context.Context, catalogID string, iids []string) error {
	const op = "index.Delete"
	c, err := ix.writer(op, catalogID, false)
	if c == nil || err != nil {
		return err
	}
	defer c.writeMu.Unlock()
	if c.g == nil {
		return nil
	}
	c.mu.Lock()
	for _, iid := range iids {
		if c.g.remove(iid) {
			c.changes++
		}
	}
	c.mu.Unlock()
	s := ix.pool.Get().(*searcher)
	defer ix.pool.Put(s)
	return ix.afterWrite(c, s)
}

// Drop forgets a catalog and removes its snapshot.
func (ix *Index) Drop(ctx context.Context, catalogID string) error {
	const op = "index.Drop"
	c, err := ix.writer(op, catalogID, false)
	if err != nil {
		return err
	}
	// Holding ix.mu keeps a new catalog of the same id, and its snapshot,
	// from appearing before the old snapshot is gone.
	ix.mu.Lock()
	delete(ix.cats, catalogID)
	err = os.Remove(ix.path(catalogID))
	ix.mu.Unlock()
	if c != nil {
		c.dropped = true
		c.writeMu.Unlock()
	}
	if err != nil && !os.IsNotExist(err) {
		return weft.E(op, weft.Internal, err)
	}
	return nil
}

// Search returns the k vectors of a catalog nearest to q, nearest first;
// none for a catalog it does not know.
func (ix *Index) Search(ctx context.Context, catalogID string, q []float32, k int) ([]weft.Hit, error) {
	const op = "index.Search"
	if k <= 0 {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("k must be positive."))
	}
	c, err := ix.catalog(op, catalogID, false)
	if c == nil || err != nil {
		return nil, err
	}
	s := ix.pool.Get().(*searcher)
	defer ix.pool.Put(s)
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := c.g
	if g == nil || g.live() == 0 {
		return nil, nil
	}
	if err := checkVector(op, q, g.dim); err != nil {
		return nil, err
	}
	// Stored vectors are unit length; a query of another length would give
	// 1 − dot that is not the cosine distance.
	s.q = append(s.q[:0], q...)
	if q = s.q; !normalizeInPlace(q) {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("Zero query vector."))
	}
	var res []distID
	if g.live() < ix.opts.ExactBelow {
		res = g.exact(s, q, k)
	} else {
		res = g.search(s, q, k, ix.opts.EfSearch)
	}
	hits := make([]weft.Hit, len(res))
	for i, r := range res {
		hits[i] = weft.Hit{IID: g.iid(r.id), Distance: r.d}
	}
	return hits, nil
}

// Has reports whether the index holds catalogID (from a snapshot or from
// writes since Open) and how many vectors it has.
func (ix *Index) Has(catalogID string) (n int, ok bool) {
	ix.mu.RLock()
	c := ix.cats[catalogID]
	ix.mu.RUnlock()
	if c == nil {
		return 0, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.g != nil {
		n = c.g.live()
	}
	return n, true
}

// Catalogs lists the catalogs the index holds, so that a caller can Drop
// those its store no longer has.
func (ix *Index) Catalogs() []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ids := make([]string, 0, len(ix.cats))
	for id := range ix.cats {
		ids = append(ids, id)
	}
	return ids
}

// Sync makes a catalog hold exactly the vectors that vectors yields (the
// store's, e.g. func(fn) error { return st.Vectors(ctx, id, fn) }): it adds
// what is missing, replaces what differs and deletes what vectors did not
// yield. Vectors the index already holds cost a comparison, not an insert,
// so Sync after loading a snapshot is cheap. Writes to the catalog wait
// until Sync ends.
func (ix *Index) Sync(ctx context.Context, catalogID string, vectors func(fn func(weft.VectorItem) error) error) (changed int, err error) {
	const op = "index.Sync"
	c, err := ix.writer(op, catalogID, true)
	if err != nil {
		return 0, err
	}
	defer c.writeMu.Unlock()
	s := ix.pool.Get().(*searcher)
	defer ix.pool.Put(s)
	before := c.changes
	var seen []uint64
	batch := make([]weft.VectorItem, 0, 256)
	flush := func() error {
		err := ix.add(ctx, c, s, batch, &seen)
		batch = batch[:0]
		return err
	}
	err = vectors(func(it weft.VectorItem) error {
		if g := c.g; g != nil && g.nodes() > 0 && len(it.Vector) != g.dim {
			// The store's vectors changed length (a new model): start over.
			c.mu.Lock()
			c.changes += g.live()
			c.g, seen = nil, nil
			c.mu.Unlock()
		}
		batch = append(batch, weft.VectorItem{IID: it.IID, Vector: append([]float32(nil), it.Vector...)})
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return c.changes - before, weft.E(op, err)
	}
	if g := c.g; g != nil {
		c.mu.Lock()
		for id := range uint32(g.nodes()) {
			if !g.isDeleted(id) && (int(id/64) >= len(seen) || seen[id/64]&(1<<(id%64)) == 0) {
				g.remove(g.iid(id))
				c.changes++
			}
		}
		c.mu.Unlock()
	}
	return c.changes - before, ix.afterWrite(c, s)
}

// Flush snapshots every catalog with pending changes.
func (ix *Index) Flush() error {
	ix.mu.RLock()
	cats := make([]*catalog, 0, len(ix.cats))
	for _, c := range ix.cats {
		cats = append(cats, c)
	}
	ix.mu.RUnlock()
	var first error
	for _, c := range cats {
		c.writeMu.Lock()
		err := ix.snapshot(c)
		c.writeMu.Unlock()
		if first == nil {
			first = err
		}
	}
	return first
}

// Close snapshots pending changes and stops the index.
func (ix *Index) Close() error {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return nil
	}
	ix.closed = true
	ix.mu.Unlock()
	if ix.stop != nil {
		close(ix.stop)
		<-ix.done
	}
	return ix.Flush()
}
