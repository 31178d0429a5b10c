package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/fetch"
	"github.com/weftlabs/weft/index"
	"github.com/weftlabs/weft/onnx"
	"github.com/weftlabs/weft/sqlite"
	"github.com/weftlabs/weft/vision"
	"github.com/weftlabs/weft/worker"
)

// rig is a worker on real parts: a SQLite file, the HNSW index, the
// committed models, the fetcher, and a loopback image host.
type rig struct {
	store   *sqlite.DB
	w       *worker.Worker
	host    *httptest.Server
	key     weft.Key
	indexed atomic.Int64
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if err := onnx.Init(onnx.FindLibrary()); err != nil {
		t.Fatalf("ONNX Runtime: %v (run make deps)", err)
	}
	v, err := vision.Open(filepath.Join("..", "models"), vision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	dir := t.TempDir()
	store, err := sqlite.Open(filepath.Join(dir, "weft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	idx, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })

	pics, _ := filepath.Glob(filepath.Join("..", "examples", "images", "*.jpg"))
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k int
		switch {
		case r.URL.Path == "/not-an-image.jpg":
			io.WriteString(w, "<html>hello</html>")
		case strings.HasPrefix(r.URL.Path, "/img/"):
			fmt.Sscanf(r.URL.Path, "/img/%d.jpg", &k)
			http.ServeFile(w, r, pics[k%len(pics)])
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(host.Close)

	rg := &rig{store: store, host: host}
	rg.key = weft.Key{Name: "t", APIKey: "k-" + t.Name(), SecretHash: []byte("h")}
	if err := store.CreateKey(context.Background(), &rg.key); err != nil {
		t.Fatal(err)
	}
	rg.w = worker.New(worker.Config{
		Store: store, Index: idx, Vision: v,
		Fetcher:  fetch.New(fetch.Options{AllowPrivate: true}),
		Decode:   func(r io.Reader) (image.Image, error) { return vision.Decode(r, vision.Limits{}) },
		SpoolDir: filepath.Join(dir, "spool"), SingleNode: true, Poll: 50 * time.Millisecond,
		OnIndexed: func(n int) { rg.indexed.Add(int64(n)) },
	})
	if err := rg.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rg.w.Close() })
	return rg
}

func (rg *rig) catalog(t *testing.T) weft.Catalog {
	c := weft.Catalog{KeyID: rg.key.ID, Name: "c"}
	if err := rg.store.CreateCatalog(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (rg *rig) wait(t *testing.T, id string, want weft.CatalogStatus) weft.Catalog {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := rg.store.Catalog(context.Background(), rg.key.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalog status %q, want %q; log %q", c.Status, want, c.ErrorLog)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rg *rig) index(t *testing.T, id string) weft.Catalog {
	t.Helper()
	if _, err := rg.store.StartIndex(context.Background(), rg.key.ID, id); err != nil {
		t.Fatal(err)
	}
	rg.w.Wake()
	return rg.wait(t, id, weft.StatusReady)
}

func TestUploadKeepsGoodRowsAndLogsBadOnes(t *testing.T) {
	rg := newRig(t)
	c := rg.catalog(t)
	file := strings.Join([]string{
		"1\t" + rg.host.URL + "/img/1.jpg\t{\"price\": 19.99}",
		"2\tnot a url",
		"3\t" + rg.host.URL + "/img/3.jpg\t{bad json",
		"4\t" + rg.host.URL + "/img/4.jpg",
		"",
	}, "\n")
	if err := rg.w.Accept(context.Background(), rg.key.ID, c.ID, strings.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	got := rg.wait(t, c.ID, weft.StatusUploadDone)
	if got.NumTotal != 2 {
		t.Errorf("NumTotal = %d, want 2 good rows", got.NumTotal)
	}
	log := strings.Join(got.ErrorLog, "\n")
	for _, want := range []string{"line 2:", "line 3:"} {
		if !strings.Contains(log, want) {
			t.Errorf("error log %q lacks %q", log, want)
		}
	}
	u, err := rg.store.Usage(context.Background(), rg.key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := u[weft.UsageMonth(time.Now())][weft.OpCatalogUpload]; n.Calls != 1 || n.Images != 2 {
		t.Errorf("upload usage %+v, want 1 call, 2 images", n)
	}
	// Another file while one is being parsed or indexed is refused; after
	// it, accepted.
	if err := rg.w.Accept(context.Background(), rg.key.ID, c.ID, strings.NewReader(file)); err != nil {
		t.Errorf("second upload after the first finished: %v", err)
	}
}

func TestIndexNamesBrokenImagesAndReindexesOnlyChanges(t *testing.T) {
	rg := newRig(t)
	c := rg.catalog(t)
	var b bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&b, "%d\t%s/img/%d.jpg\t{\"i\": %d}\n", i, rg.host.URL, i, i)
	}
	fmt.Fprintf(&b, "missing\t%s/nothing-here.jpg\n", rg.host.URL)
	fmt.Fprintf(&b, "garbage\t%s/not-an-image.jpg\n", rg.host.URL)
	if err := rg.w.Accept(context.Background(), rg.key.ID, c.ID, &b); err != nil {
		t.Fatal(err)
	}
	rg.wait(t, c.ID, weft.StatusUploadDone)
	got := rg.index(t, c.ID)
	if got.NumIndexed != 20 || got.NumTotal != 22 {
		t.Fatalf("indexed %d of %d, want 20 of 22", got.NumIndexed, got.NumTotal)
	}
	log := strings.Join(got.ErrorLog, "\n")
	if !strings.Contains(log, "missing") || !strings.Contains(log, "garbage") {
		t.Errorf("error log %q should name both broken images", log)
	}
	if n := rg.indexed.Load(); n != 20 {
		t.Fatalf("first index embedded %d images, want 20", n)
	}

	// Change one URL, add one image, keep the rest: the second index
	// embeds only those two.
	rg.indexed.Store(0)
	update := fmt.Sprintf("3\t%s/img/100.jpg\t{\"i\": 3}\n5\t%s/img/5.jpg\t{\"i\": 5, \"new\": true}\nextra\t%s/img/7.jpg\n",
		rg.host.URL, rg.host.URL, rg.host.URL)
	if err := rg.w.Accept(context.Background(), rg.key.ID, c.ID, strings.NewReader(update)); err != nil {
		t.Fatal(err)
	}
	rg.wait(t, c.ID, weft.StatusUploadDone)
	got = rg.index(t, c.ID)
	if n := rg.indexed.Load(); n != 2 {
		t.Errorf("second index embedded %d images, want 2 (one changed URL, one new)", n)
	}
	if got.NumIndexed != 21 {
		t.Errorf("NumIndexed = %d, want 21", got.NumIndexed)
	}
	imgs, err := rg.store.Images(context.Background(), rg.key.ID, c.ID, []string{"5"})
	if err != nil || len(imgs) != 1 || string(imgs[0].Metadata) != `{"i": 5, "new": true}` {
		t.Errorf("metadata of 5 = %v %v, want the re-uploaded bytes", imgs, err)
	}
}

func TestAcceptRefusesUnknownCatalog(t *testing.T) {
	rg := newRig(t)
	err := rg.w.Accept(context.Background(), rg.key.ID, "0123456789abcdef", strings.NewReader("1\thttp://x/y.jpg\n"))
	if weft.KindOf(err) != weft.NotFound {
		t.Fatalf("Accept on an unknown catalog: %v, want NotFound", err)
	}
}
