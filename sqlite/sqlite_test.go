package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/sqlite"
	"github.com/weftlabs/weft/storetest"
)

func open(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) weft.Store {
		return open(t, filepath.Join(t.TempDir(), "weft.db"))
	})
}

// TestReopen opens a file, writes, closes and opens it again, under names
// that a URI would mangle if they were not escaped.
func TestReopen(t *testing.T) {
	for _, name := range []string{"weft.db", "with space.db", "odd#?%&=name.db", "é.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			db, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			k := weft.Key{Name: "k", APIKey: "ak", SecretHash: []byte("h")}
			if err := db.CreateKey(t.Context(), &k); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("no file under the name given: %v", err)
			}
			// Migrations already applied must not run again (they would
			// fail on the existing tables), and the data must be there.
			db = open(t, path)
			got, err := db.KeyByAPIKey(t.Context(), "ak")
			if err != nil || got.ID != k.ID {
				t.Errorf("after reopening: key %+v, %v; want id %d", got, err, k.ID)
			}
		})
	}
}

func TestOpenBadPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "weft.db")
	if db, err := sqlite.Open(path); err == nil {
		db.Close()
		t.Fatalf("Open(%s) succeeded", path)
	}
}

// TestConcurrentOpens opens one new file from many goroutines at once:
// exactly one may apply the migrations, none may fail.
func TestConcurrentOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	var wg sync.WaitGroup
	dbs := make([]*sqlite.DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = sqlite.Open(path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		dbs[i].Close()
	}
}

// TestPurge deletes catalogs larger than one purge transaction, one of
// them left half-deleted as a crash would leave it, and looks into the file
// for any image left behind.
func TestPurge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	db := open(t, path)
	ctx := t.Context()
	k := weft.Key{Name: "k", APIKey: "k", SecretHash: []byte("h")}
	if err := db.CreateKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	var cs []weft.Catalog
	for i := range 3 {
		c := weft.Catalog{KeyID: k.ID, Name: strconv.Itoa(i)}
		if err := db.CreateCatalog(ctx, &c); err != nil {
			t.Fatal(err)
		}
		rows := make([]weft.Image, 12_000)
		for j := range rows {
			rows[j] = weft.Image{IID: strconv.Itoa(j), URL: "http://127.0.0.1/" + strconv.Itoa(j), Line: j + 1}
		}
		if _, err := db.UpsertImages(ctx, k.ID, c.ID, rows); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	count := func(catalogID string) int {
		t.Helper()
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM images WHERE catalog_id = ?`, catalogID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A crash right after the catalog row went.
	if _, err := raw.Exec(`DELETE FROM catalogs WHERE id = ?; INSERT INTO purge (catalog_id) VALUES (?)`,
		cs[0].ID, cs[0].ID); err != nil {
		t.Fatal(err)
	}
	if p, err := db.PendingImages(ctx, cs[0].ID, "", 10); err != nil || len(p) != 0 {
		t.Errorf("PendingImages of a catalog being purged = %d images, %v; want none", len(p), err)
	}

	if err := db.DeleteCatalog(ctx, k.ID, cs[1].ID); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{0, 0, 12_000} {
		if n := count(cs[i].ID); n != want {
			t.Errorf("catalog %d: %d images in the file, want %d", i, n, want)
		}
	}
	var left int
	if err := raw.QueryRow(`SELECT count(*) FROM purge`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d catalogs left to purge, %v", left, err)
	}
}

// FuzzImageRoundTrip stores uploaded fields as a catalog file may carry
// them, any bytes at all, and wants them back exactly.
func FuzzImageRoundTrip(f *testing.F) {
	f.Add("sku-1", "http://127.0.0.1/a.jpg", []byte(`{"price": "9.99" }`))
	f.Add("é\x00\xff", "", []byte("not json \x00\xff"))
	f.Add("", "x", []byte{})
	db := open(f, filepath.Join(f.TempDir(), "weft.db"))
	ctx := context.Background()
	k := weft.Key{Name: "k", APIKey: "k", SecretHash: []byte("h")}
	if err := db.CreateKey(ctx, &k); err != nil {
		f.Fatal(err)
	}
	c := weft.Catalog{KeyID: k.ID, Name: "fuzz"}
	if err := db.CreateCatalog(ctx, &c); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, iid, url string, meta []byte) {
		in := weft.Image{IID: iid, URL: url, Metadata: meta, Line: 7}
		if _, err := db.UpsertImages(ctx, k.ID, c.ID, []weft.Image{in}); err != nil {
			t.Fatal(err)
		}
		ims, err := db.Images(ctx, k.ID, c.ID, []string{iid})
		if err != nil || len(ims) != 1 {
			t.Fatalf("Images(%q) = %d images, %v", iid, len(ims), err)
		}
		got := ims[0]
		if got.IID != iid || got.URL != url || !bytes.Equal(got.Metadata, meta) || got.Line != 7 {
			t.Errorf("stored %q %q %q, read back %q %q %q", iid, url, meta, got.IID, got.URL, got.Metadata)
		}
		if len(meta) == 0 && got.Metadata != nil {
			t.Errorf("empty metadata read back as %q, want nil", got.Metadata)
		}
	})
}

// helperEnv makes the test binary, run again, act as a second process
// (weft keys create beside a running server): it opens the file named by
// the variable and creates keys.
const helperEnv = "WEFT_SQLITE_TEST_HELPER_DB"

const helperKeys = 200

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(helper(path))
	}
	os.Exit(m.Run())
}

func helper(path string) int {
	db, err := sqlite.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	for i := range helperKeys {
		k := weft.Key{Name: "helper", APIKey: "helper-" + strconv.Itoa(i), SecretHash: []byte("h")}
		if err := db.CreateKey(context.Background(), &k); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestTwoProcesses writes from this process while another process writes
// to the same file: neither may fail with SQLITE_BUSY, and each sees what
// the other wrote.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	db := open(t, path)
	ctx := t.Context()
	k := weft.Key{Name: "server", APIKey: "server", SecretHash: []byte("h")}
	if err := db.CreateKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	c := weft.Catalog{KeyID: k.ID, Name: "c"}
	if err := db.CreateCatalog(ctx, &c); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	out := make(chan error, 1)
	var outBuf []byte
	go func() {
		var err error
		outBuf, err = cmd.CombinedOutput()
		out <- err
	}()

	// Upload while the other process creates keys.
	const batches, perBatch = 40, 250
	for i := range batches {
		rows := make([]weft.Image, perBatch)
		for j := range rows {
			n := i*perBatch + j
			rows[j] = weft.Image{IID: fmt.Sprintf("%06d", n), URL: fmt.Sprintf("http://127.0.0.1/%d.jpg", n), Line: n + 1}
		}
		if _, err := db.UpsertImages(ctx, k.ID, c.ID, rows); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	if err := <-out; err != nil {
		t.Fatalf("second process: %v\n%s", err, outBuf)
	}

	for i := range helperKeys {
		if _, err := db.KeyByAPIKey(ctx, "helper-"+strconv.Itoa(i)); err != nil {
			t.Errorf("key of the other process: %v", err)
			break
		}
	}
	other := open(t, path)
	got, err := other.Catalog(ctx, k.ID, c.ID)
	if err != nil || got.NumTotal != batches*perBatch {
		t.Errorf("other handle sees %d images, %v; want %d", got.NumTotal, err, batches*perBatch)
	}
}

// TestTwoHandlesClaim races claimers on two handles of one file, as two
// nodes sharing it would: every job goes to exactly one of them.
func TestTwoHandlesClaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	dbs := []*sqlite.DB{open(t, path), open(t, path)}
	ctx := t.Context()
	k := weft.Key{Name: "k", APIKey: "k", SecretHash: []byte("h")}
	if err := dbs[0].CreateKey(ctx, &k); err != nil {
		t.Fatal(err)
	}
	const numJobs = 30
	for i := range numJobs {
		c := weft.Catalog{KeyID: k.ID, Name: strconv.Itoa(i)}
		if err := dbs[i%2].CreateCatalog(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if _, err := dbs[(i+1)%2].StartIndex(ctx, k.ID, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	claims := map[int64]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		db := dbs[w%2]
		wg.Go(func() {
			for range numJobs + 1 {
				j, found, err := db.ClaimJob(ctx, strconv.Itoa(w), now, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if !found {
					return
				}
				mu.Lock()
				claims[j.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claims) != numJobs {
		t.Errorf("%d jobs claimed, want %d", len(claims), numJobs)
	}
	for id, n := range claims {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
}

// BenchmarkUpsertImages upserts batches of 1,000 rows of a typical catalog
// file (short iid, URL, ~150 bytes of metadata), as the upload handler does.
func BenchmarkUpsertImages(b *testing.B) {
	const batch = 1000
	for _, mode := range []string{"new", "unchanged"} {
		b.Run(mode, func(b *testing.B) {
			db := open(b, filepath.Join(b.TempDir(), "weft.db"))
			ctx := b.Context()
			k := weft.Key{Name: "k", APIKey: "k", SecretHash: []byte("h")}
			if err := db.CreateKey(ctx, &k); err != nil {
				b.Fatal(err)
			}
			c := weft.Catalog{KeyID: k.ID, Name: "bench"}
			if err := db.CreateCatalog(ctx, &c); err != nil {
				b.Fatal(err)
			}
			rows := make([]weft.Image, batch)
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				base := i * batch
				if mode == "unchanged" {
					base = 0
				}
				for j := range rows {
					n := base + j
					rows[j] = weft.Image{
						IID:      fmt.Sprintf("sku-%08d", n),
						URL:      fmt.Sprintf("https://cdn.example.com/products/%08d/main.jpg", n),
						Metadata: fmt.Appendf(nil, `{"name":"Organic cotton t-shirt %d","price":"19.99","currency":"EUR","brand":"Weft","gender":"unisex","link":"https://example.com/p/%d"}`, n, n),
						Line:     n + 1,
					}
				}
				b.StartTimer()
				if _, err := db.UpsertImages(ctx, k.ID, c.ID, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			// On a shared machine wall time says more about the neighbours;
			// rows per CPU second is what an idle machine would see.
			b.ReportMetric(float64(b.N*batch)/(cpuTime(b)-cpu0).Seconds(), "rows/cpu-s")
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
