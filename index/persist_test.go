package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weftlabs/weft"
)

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	ix := open(t, dir, Options{ExactBelow: -1})
	vecs := dataset(4, 1500, 32, 8)
	if err := ix.Add(ctx, "big", items("i", vecs)); err != nil {
		t.Fatal(err)
	}
	if err := ix.Delete(ctx, "big", []string{"i7", "i8"}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(ctx, "small", items("s", vecs[:3])); err != nil {
		t.Fatal(err)
	}
	var before [][]weft.Hit
	for _, q := range vecs[:20] {
		before = append(before, search(t, ix, "big", q, 10))
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}

	ix = open(t, dir, Options{ExactBelow: -1})
	for cat, want := range map[string]int{"big": 1498, "small": 3} {
		if n, ok := ix.Has(cat); !ok || n != want {
			t.Errorf("Has(%s) = %d, %v after reopening; want %d", cat, n, ok, want)
		}
	}
	for i, q := range vecs[:20] {
		if got := search(t, ix, "big", q, 10); !slices.Equal(got, before[i]) {
			t.Errorf("query %d: %v after reopening, %v before", i, got, before[i])
		}
	}
	if cats := ix.Catalogs(); len(cats) != 2 {
		t.Errorf("Catalogs = %v", cats)
	}
}

func TestSnapshotEvery(t *testing.T) {
	dir := t.TempDir()
	ix := open(t, dir, Options{SnapshotEvery: 10})
	if err := ix.Add(ctx, "c", items("i", dataset(1, 12, 8, 0))); err != nil {
		t.Fatal(err)
	}
	// No Close: a crash now must still find the 12 vectors.
	again := open(t, dir, Options{})
	if n, ok := again.Has("c"); !ok || n != 12 {
		t.Errorf("Has = %d, %v from the snapshot taken after 10 changes; want 12", n, ok)
	}
}

// TestDamagedSnapshot damages a snapshot in the ways a crash or a bad disk
// could; each must be refused, logged and removed, and Sync must rebuild.
func TestDamagedSnapshot(t *testing.T) {
	vecs := dataset(6, 300, 16, 3)
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"empty", func([]byte) []byte { return nil }},
		{"one bit flipped", func(b []byte) []byte { b[len(b)/3] ^= 4; return b }},
		{"checksum lost", func(b []byte) []byte { return b[:len(b)-4] }},
		{"grown", func(b []byte) []byte { return append(b, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ix := open(t, dir, Options{})
			if err := ix.Add(ctx, "c", items("i", vecs)); err != nil {
				t.Fatal(err)
			}
			ix.Close()
			path := ix.path("c")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "x.hnsw.123.tmp"), []byte("half"), 0o644)

			var logs []string
			var mu sync.Mutex
			ix = open(t, dir, Options{Logf: func(f string, a ...any) {
				mu.Lock()
				logs = append(logs, fmt.Sprintf(f, a...))
				mu.Unlock()
			}})
			if _, ok := ix.Has("c"); ok {
				t.Fatal("damaged snapshot loaded")
			}
			if len(logs) != 1 || !strings.Contains(logs[0], "ignoring snapshot") {
				t.Errorf("logs = %q", logs)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("left in the directory: %v", entries)
			}
			changed, err := ix.Sync(ctx, "c", each(items("i", vecs)))
			if err != nil || changed != len(vecs) {
				t.Fatalf("Sync = %d, %v; want %d", changed, err, len(vecs))
			}
			if h := search(t, ix, "c", vecs[42], 1); len(h) != 1 || h[0].IID != "i42" {
				t.Errorf("search after the rebuild = %v", h)
			}
		})
	}
}

// each yields items as a store's Vectors would.
func each(items []weft.VectorItem) func(func(weft.VectorItem) error) error {
	return func(fn func(weft.VectorItem) error) error {
		for _, it := range items {
			if err := fn(it); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestSync(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ix := open(t, t.TempDir(), m.opts)
			vecs := dataset(8, 600, 16, 4)
			if err := ix.Add(ctx, "c", items("i", vecs[:500])); err != nil {
				t.Fatal(err)
			}
			// The store lost i0..i9, changed i10's vector and has i500..i549
			// the index never saw.
			store := items("i", vecs[:550])[10:]
			store[0].Vector = vecs[590]
			changed, err := ix.Sync(ctx, "c", each(store))
			if err != nil {
				t.Fatal(err)
			}
			if want := 10 + 1 + 50; changed != want {
				t.Errorf("Sync changed %d, want %d", changed, want)
			}
			if n, _ := ix.Has("c"); n != len(store) {
				t.Errorf("Has = %d, want %d", n, len(store))
			}
			if h := search(t, ix, "c", vecs[590], 1); h[0].IID != "i10" {
				t.Errorf("i10's new vector finds %v", h)
			}
			if h := search(t, ix, "c", vecs[520], 1); h[0].IID != "i520" {
				t.Errorf("i520's vector finds %v", h)
			}
			for _, q := range vecs[:10] {
				for _, h := range search(t, ix, "c", q, 30) {
					var i int
					fmt.Sscanf(h.IID, "i%d", &i)
					if i < 10 {
						t.Errorf("%s, gone from the store, returned", h.IID)
					}
				}
			}
			if changed, err := ix.Sync(ctx, "c", each(store)); err != nil || changed != 0 {
				t.Errorf("second Sync = %d, %v; want 0 changes", changed, err)
			}
			// A new model: the store's vectors now have another length.
			longer := items("i", dataset(9, 20, 24, 2))
			if changed, err := ix.Sync(ctx, "c", each(longer)); err != nil || changed != len(store)+len(longer) {
				t.Errorf("Sync to longer vectors = %d, %v; want %d changes", changed, err, len(store)+len(longer))
			}
			if h := search(t, ix, "c", longer[3].Vector, 1); h[0].IID != "i3" {
				t.Errorf("i3's new vector finds %v", h)
			}
		})
	}
}

// FuzzDecodeGraph feeds damaged snapshots to the decoder: it must refuse
// them or return a graph that can be searched without a panic. Half the
// inputs get a correct checksum, so that the structural checks behind it
// are reached too.
func FuzzDecodeGraph(f *testing.F) {
	g := newGraph(4, 2, 8, 1)
	s := newSearcher()
	for i, v := range dataset(2, 20, 4, 0) {
		g.insert(s, itoa(i), v)
	}
	g.remove("3")
	var b bytes.Buffer
	if err := g.encode(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:100])
	f.Add(append(b.Bytes()[:len(b.Bytes())-4:len(b.Bytes())-4], 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4 && in[len(in)-1]%2 == 0 {
			in = binary.LittleEndian.AppendUint32(in[:len(in)-4:len(in)-4], crc32.Checksum(in[:len(in)-4], castagnoli))
		}
		g, err := decodeGraph(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			return
		}
		s := newSearcher()
		q := make([]float32, g.dim)
		q[0] = 1
		g.search(s, q, 5, 10)
		g.exact(s, q, 5)
	})
}

// TestCheckRefuses encodes graphs broken in ways a checksum cannot see (a
// bug, not a bad disk) and expects the decoder's structural checks to
// refuse each one.
func TestCheckRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(g *graph)
	}{
		{"link out of range", func(g *graph) { g.links0[1] = uint32(g.nodes()) }},
		{"too many links", func(g *graph) { g.links0[0] = uint32(g.m0 + 1) }},
		{"entry out of range", func(g *graph) { g.entry = uint32(g.nodes()) }},
		{"entry below the top level", func(g *graph) { g.maxLevel++ }},
		{"tombstones miscounted", func(g *graph) { g.ndeleted++ }},
		{"iid twice", func(g *graph) { g.iidBuf[1] = g.iidBuf[0] }},
		{"iid offsets backwards", func(g *graph) { g.iidOff[1], g.iidOff[2] = g.iidOff[2], g.iidOff[1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraph(4, 2, 8, 1)
			s := newSearcher()
			for i, v := range dataset(2, 30, 4, 0) {
				g.insert(s, string(rune('a'+i)), v)
			}
			tc.spoil(g)
			var b bytes.Buffer
			if err := g.encode(&b); err != nil {
				t.Fatal(err)
			}
			if _, err := decodeGraph(&b, int64(b.Len())); !errors.Is(err, errCorrupt) {
				t.Errorf("decode = %v, want a corrupt-snapshot error", err)
			}
		})
	}
}
