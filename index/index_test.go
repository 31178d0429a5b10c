package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weftlabs/weft"
)

var ctx = context.Background()

func items(prefix string, vecs [][]float32) []weft.VectorItem {
	out := make([]weft.VectorItem, len(vecs))
	for i, v := range vecs {
		out[i] = weft.VectorItem{IID: fmt.Sprintf("%s%d", prefix, i), Vector: v}
	}
	return out
}

func open(t *testing.T, dir string, o Options) *Index {
	t.Helper()
	o.SnapshotInterval = -1
	ix, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

func search(t *testing.T, ix *Index, cat string, q []float32, k int) []weft.Hit {
	t.Helper()
	hits, err := ix.Search(ctx, cat, q, k)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(hits, func(a, b weft.Hit) int { return cmpDist(distID{d: a.Distance}, distID{d: b.Distance}) }) {
		t.Fatalf("hits not sorted: %v", hits)
	}
	return hits
}

// modes runs a test with exact scans and with the graph.
var modes = []struct {
	name string
	opts Options
}{
	{"exact", Options{}},
	{"graph", Options{ExactBelow: -1}},
}

func TestUpsertDelete(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ix := open(t, t.TempDir(), m.opts)
			vecs := dataset(3, 500, 32, 5)
			if err := ix.Add(ctx, "c", items("i", vecs[:400])); err != nil {
				t.Fatal(err)
			}
			// Replace i0 with vector 450; its old vector must not find it.
			moved := vecs[450]
			if err := ix.Add(ctx, "c", []weft.VectorItem{{IID: "i0", Vector: moved}}); err != nil {
				t.Fatal(err)
			}
			if n, ok := ix.Has("c"); !ok || n != 400 {
				t.Fatalf("Has = %d, %v after an upsert; want 400", n, ok)
			}
			if h := search(t, ix, "c", moved, 1); len(h) != 1 || h[0].IID != "i0" || h[0].Distance > 1e-5 {
				t.Errorf("search of the new vector = %v, want i0 at 0", h)
			}
			for _, h := range search(t, ix, "c", vecs[0], 400) {
				if h.IID == "i0" && h.Distance < 1e-5 {
					t.Errorf("i0 found at its old vector")
				}
			}
			del := []string{"i1", "i2", "i3", "i0", "unknown"}
			if err := ix.Delete(ctx, "c", del); err != nil {
				t.Fatal(err)
			}
			if n, _ := ix.Has("c"); n != 396 {
				t.Errorf("Has = %d after 4 deletes, want 396", n)
			}
			for _, q := range vecs[:10] {
				for _, h := range search(t, ix, "c", q, 50) {
					if slices.Contains(del, h.IID) {
						t.Errorf("deleted %s returned", h.IID)
					}
				}
			}
			long := slices.Clone(vecs[5])
			for i := range long {
				long[i] *= 3
			}
			if h := search(t, ix, "c", long, 3); len(h) != 3 || h[0].IID != "i5" || h[0].Distance > 1e-5 {
				t.Errorf("search of i5's vector, times 3, = %v; want i5 at 0", h)
			}
			if h := search(t, ix, "c", vecs[5], 1000); len(h) != 396 {
				t.Errorf("k over the count gave %d hits, want 396", len(h))
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	ix := open(t, t.TempDir(), Options{})
	if err := ix.Add(ctx, "c", items("i", dataset(1, 3, 8, 0))); err != nil {
		t.Fatal(err)
	}
	nan := make([]float32, 8)
	nan[3] = float32(zero() / zero())
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"add of another length", ix.Add(ctx, "c", []weft.VectorItem{{IID: "x", Vector: make([]float32, 9)}})},
		{"add of an empty vector", ix.Add(ctx, "d", []weft.VectorItem{{IID: "x"}})},
		{"add of NaN", ix.Add(ctx, "c", []weft.VectorItem{{IID: "x", Vector: nan}})},
		{"search of another length", searchErr(ix, "c", make([]float32, 7), 1)},
		{"search with k 0", searchErr(ix, "c", make([]float32, 8), 0)},
		{"search of a zero vector", searchErr(ix, "c", make([]float32, 8), 1)},
	} {
		if weft.KindOf(tc.err) != weft.Invalid {
			t.Errorf("%s: %v, want Invalid", tc.name, tc.err)
		}
	}
	if h, err := ix.Search(ctx, "nope", make([]float32, 8), 3); err != nil || len(h) != 0 {
		t.Errorf("search of an unknown catalog = %v, %v; want nothing", h, err)
	}
	ix.Close()
	if err := ix.Add(ctx, "c", items("j", dataset(1, 1, 8, 0))); weft.KindOf(err) != weft.Unavailable {
		t.Errorf("add after Close: %v, want Unavailable", err)
	}
}

func zero() float64 { return 0 }

func searchErr(ix *Index, cat string, q []float32, k int) error {
	_, err := ix.Search(ctx, cat, q, k)
	return err
}

// TestCompaction deletes past the compaction threshold and checks that the
// rebuilt graph drops tombstones, keeps the rest and still finds it.
func TestCompaction(t *testing.T) {
	ix := open(t, t.TempDir(), Options{ExactBelow: -1})
	vecs := dataset(5, 2000, 32, 10)
	if err := ix.Add(ctx, "c", items("i", vecs)); err != nil {
		t.Fatal(err)
	}
	var gone []string
	for i := 0; i < 2000; i += 3 {
		gone = append(gone, fmt.Sprintf("i%d", i))
	}
	if err := ix.Delete(ctx, "c", gone); err != nil {
		t.Fatal(err)
	}
	c := ix.cats["c"]
	if c.g.ndeleted != 0 || c.g.nodes() != 2000-len(gone) {
		t.Fatalf("after deleting a third: %d nodes, %d tombstones; want %d, 0", c.g.nodes(), c.g.ndeleted, 2000-len(gone))
	}
	for i := 1; i < 2000; i += 97 {
		if i%3 == 0 {
			continue
		}
		if h := search(t, ix, "c", vecs[i], 1); len(h) != 1 || h[0].IID != fmt.Sprintf("i%d", i) {
			t.Errorf("search of i%d's vector = %v", i, h)
		}
	}
}

func TestDrop(t *testing.T) {
	dir := t.TempDir()
	ix := open(t, dir, Options{})
	if err := ix.Add(ctx, "c", items("i", dataset(1, 10, 8, 0))); err != nil {
		t.Fatal(err)
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ix.Drop(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Has("c"); ok {
		t.Error("Has reports a dropped catalog")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left after Drop: %v", entries)
	}
	if err := ix.Add(ctx, "c", items("j", dataset(2, 2, 16, 0))); err != nil {
		t.Errorf("add after Drop, of another length: %v", err)
	}
}

// TestConcurrent runs writers and searchers together; run it with -race.
func TestConcurrent(t *testing.T) {
	ix := open(t, t.TempDir(), Options{ExactBelow: -1, M: 8, EfConstruction: 32, SnapshotEvery: 300})
	const writers, per, dim = 3, 300, 16
	vecs := dataset(9, writers*per, dim, 4)
	var wg sync.WaitGroup
	final := make([]map[string]bool, writers)
	for w := range writers {
		final[w] = map[string]bool{}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range per {
				iid := fmt.Sprintf("w%d-%d", w, r.IntN(per/2))
				if r.IntN(4) == 0 {
					if err := ix.Delete(ctx, "c", []string{iid}); err != nil {
						t.Error(err)
					}
					delete(final[w], iid)
					continue
				}
				if err := ix.Add(ctx, "c", []weft.VectorItem{{IID: iid, Vector: vecs[w*per+i]}}); err != nil {
					t.Error(err)
				}
				final[w][iid] = true
			}
		})
	}
	for s := range 3 {
		wg.Go(func() {
			for i := range 200 {
				hits, err := ix.Search(ctx, "c", vecs[(s*200+i)%len(vecs)], 10)
				if err != nil {
					t.Error(err)
					return
				}
				seen := map[string]bool{}
				for _, h := range hits {
					if seen[h.IID] || !strings.HasPrefix(h.IID, "w") {
						t.Errorf("bad hits %v", hits)
					}
					seen[h.IID] = true
				}
			}
		})
	}
	wg.Wait()
	want := 0
	for _, f := range final {
		want += len(f)
	}
	if n, _ := ix.Has("c"); n != want {
		t.Errorf("Has = %d, want %d", n, want)
	}
	for _, q := range vecs[:50] {
		for _, h := range search(t, ix, "c", q, 20) {
			var w, i int
			fmt.Sscanf(h.IID, "w%d-%d", &w, &i)
			if !final[w][h.IID] {
				t.Errorf("deleted %s returned", h.IID)
			}
		}
	}
}
