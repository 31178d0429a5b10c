// Package e2e drives the real bin/weft binary as a subprocess, the way an
// operator and a v0 client do: keys from the CLI while the server runs,
// curl-shaped requests, a loopback image host, SIGKILL and SIGTERM in the
// middle of indexing.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	binary   string
	repoRoot string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "weft-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "weft")
	build := exec.Command("go", "build", "-o", binary, "./cmd/weft")
	build.Dir = repoRoot
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building weft:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env points the binary, built outside the repo, at the repo's models and
// ONNX Runtime, and at PostgreSQL when asked.
func env() []string {
	return append(os.Environ(),
		"WEFT_MODELS="+filepath.Join(repoRoot, "models"),
		"WEFT_ORT_LIB="+filepath.Join(repoRoot, ".deps", "onnxruntime", "libonnxruntime.so.1"))
}

// clothingImages returns up to n photos of the shared data set, read in place.
func clothingImages(t *testing.T, n int) []string {
	t.Helper()
	dir := filepath.Join(repoRoot, "..", "shared", "data", "clothing", "images")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("shared data not beside the repo: %v", err)
	}
	var out []string
	for _, e := range ents {
		if len(out) == n {
			break
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// imageHost serves files[k] at /img/<k>.jpg, each after delay.
func imageHost(t *testing.T, files []string, delay time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k int
		if _, err := fmt.Sscanf(r.URL.Path, "/img/%d.jpg", &k); err != nil || k >= len(files) {
			http.NotFound(w, r)
			return
		}
		time.Sleep(delay)
		http.ServeFile(w, r, files[k])
	}))
	t.Cleanup(srv.Close)
	return srv
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	cmd  *exec.Cmd
	addr string
	log  *bytes.Buffer
}

func startServer(t *testing.T, data, addr string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--addr", addr, "--data", data, "--allow-private-urls"}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = env()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, addr: addr, log: &log}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("server did not become healthy:\n%s", log.String())
	return nil
}

func createKey(t *testing.T, data string) (string, string) {
	t.Helper()
	cmd := exec.Command(binary, "keys", "create", "--data", data, "--name", "e2e")
	cmd.Env = env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	return parseKey(t, out)
}

// parseKey reads the JSON object on the last line keys create printed.
func parseKey(t *testing.T, out []byte) (string, string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var raw map[string]string
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &raw); err != nil {
		t.Fatalf("keys create printed %q: %v", out, err)
	}
	if raw["api_key"] == "" || raw["api_secret"] == "" {
		t.Fatalf("keys create printed %q", out)
	}
	return raw["api_key"], raw["api_secret"]
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c *client) do(req *http.Request) map[string]any {
	c.t.Helper()
	if c.token != "" {
		req.Header.Set("Authorization", c.token) // bare token, as in the v0 page's first examples
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		c.t.Fatalf("%s %s: not JSON: %q", req.Method, req.URL, body)
	}
	status, _ := out["status"].(map[string]any)
	if status == nil || int(status["code"].(float64)) != resp.StatusCode {
		c.t.Fatalf("%s %s: envelope %v does not match HTTP %d", req.Method, req.URL, out["status"], resp.StatusCode)
	}
	if resp.StatusCode != 200 {
		c.t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
	return out
}

func (c *client) form(method, path string, v url.Values) map[string]any {
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *client) file(path, field, name string, body []byte, fields map[string]string) map[string]any {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile(field, name)
	fw.Write(body)
	mw.Close()
	req, _ := http.NewRequest("POST", c.base+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

func (c *client) catalog(id string) map[string]any {
	req, _ := http.NewRequest("GET", c.base+"/v0/catalog/"+id, nil)
	return c.do(req)["catalog"].(map[string]any)
}

func (c *client) waitFor(id string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		cat := c.catalog(id)
		if ok(cat) {
			return cat
		}
		if s := cat["status"]; s == "upload error" || s == "index error" {
			c.t.Fatalf("catalog %s: %v", id, cat)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("catalog %s: gave up waiting, last %v", id, cat)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func login(t *testing.T, addr, data string) *client {
	key, secret := createKey(t, data)
	c := &client{t: t, base: "http://" + addr}
	tok := c.form("POST", "/v0/token", url.Values{"api_key": {key}, "api_secret": {secret}})
	c.token = tok["access_token"].(string)
	return c
}

func catalogFile(host string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%d\t%s/img/%d.jpg\t{\"sku\": %d, \"tags\": [\"a\", \"b\"]}\n", i, host, i, i)
	}
	return b.Bytes()
}

// indexUntil creates a catalog of n images on host, uploads it, starts
// indexing and returns once at least indexed images are done, with the
// catalog as it was then.
func (c *client) indexUntil(name, host string, n, indexed int) (string, map[string]any) {
	c.t.Helper()
	id := c.form("POST", "/v0/catalog", url.Values{"name": {name}})["catalog"].(map[string]any)["catalog_id"].(string)
	c.file("/v0/catalog/"+id+"/upload", "catalog_file", "catalog.tsv", catalogFile(host, n), nil)
	c.waitFor(id, time.Minute, func(c map[string]any) bool { return c["status"] == "upload done" })
	c.form("POST", "/v0/catalog/"+id+"/index", nil)
	return id, c.waitFor(id, 2*time.Minute, func(c map[string]any) bool { return num(c, "num_images_indexed") >= indexed })
}

func num(cat map[string]any, field string) int {
	f, _ := cat[field].(float64)
	return int(f)
}

// TestKillMidIndex kills the server with SIGKILL in the middle of indexing;
// after a restart the catalog ends with every image indexed exactly once.
func TestKillMidIndex(t *testing.T) {
	const n = 240
	files := clothingImages(t, n)
	host := imageHost(t, files, 15*time.Millisecond)
	data, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, data, addr, "--fetch-concurrency", "4")
	c := login(t, addr, data)
	id, before := c.indexUntil("kill", host.URL, n, n/4)
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	if got := num(before, "num_images_indexed"); got >= n {
		t.Fatalf("indexing finished before the kill (%d of %d): the test proves nothing", got, n)
	}

	startServer(t, data, addr)
	cat := c.waitFor(id, 3*time.Minute, func(c map[string]any) bool { return c["status"] == "ready for query" })
	if num(cat, "num_images_indexed") != n || num(cat, "num_images_total") != n || num(cat, "num_total_images") != n {
		t.Fatalf("after restart: %v, want %d indexed of %d", cat, n, n)
	}
	body, _ := os.ReadFile(files[7])
	res := c.file("/v0/search", "image", "q.jpg", body, map[string]string{"catalog_id": id, "n_results": "1000"})
	sims := res["similars"].([]any)
	seen := map[string]bool{}
	for _, s := range sims {
		iid := s.(map[string]any)["iid"].(string)
		if seen[iid] {
			t.Fatalf("iid %s returned twice", iid)
		}
		seen[iid] = true
	}
	if len(seen) != n {
		t.Fatalf("search over the whole catalog returned %d distinct images, want %d", len(seen), n)
	}
	top := sims[0].(map[string]any)
	if top["iid"] != "7" || top["distance"].(float64) > 1e-4 {
		t.Fatalf("the query image itself should come first at distance 0, got %v", top)
	}
	if md := top["metadata"].(map[string]any); md["sku"].(float64) != 7 {
		t.Fatalf("metadata %v, want sku 7", md)
	}
}

// TestTermMidIndex stops the server with SIGTERM while indexing: it exits
// cleanly, and the next start finishes the catalog.
func TestTermMidIndex(t *testing.T) {
	const n = 160
	files := clothingImages(t, n)
	host := imageHost(t, files, 15*time.Millisecond)
	data, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, data, addr, "--fetch-concurrency", "4")
	c := login(t, addr, data)
	id, _ := c.indexUntil("term", host.URL, n, n/4)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("weft serve exited with %v after SIGTERM", err)
		}
	case <-ctx.Done():
		t.Fatal("weft serve did not stop within 40 s of SIGTERM")
	}
	startServer(t, data, addr)
	cat := c.waitFor(id, 3*time.Minute, func(c map[string]any) bool { return c["status"] == "ready for query" })
	if num(cat, "num_images_indexed") != n {
		t.Fatalf("after restart: %v, want %d indexed", cat, n)
	}
}

// TestModelChangeIndexesAgain restarts the server on a store indexed by
// another embedding model: the catalog is indexed again from its URLs, and
// search then finds an indexed image by itself.
func TestModelChangeIndexesAgain(t *testing.T) {
	const n = 12
	files := clothingImages(t, n)
	host := imageHost(t, files, 0)
	data, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, data, addr)
	c := login(t, addr, data)
	id, _ := c.indexUntil("model", host.URL, n, n)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.cmd.Wait(); err != nil {
		t.Fatalf("weft serve exited with %v after SIGTERM", err)
	}

	// The same network with a different tagger.json is, by digest, another model.
	models := t.TempDir()
	for _, f := range []string{"tagger.onnx", "embedder.onnx", "detector.onnx", "detector.json"} {
		if err := os.Symlink(filepath.Join(repoRoot, "models", f), filepath.Join(models, f)); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := os.ReadFile(filepath.Join(repoRoot, "models", "tagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "tagger.json"), append(meta, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, data, addr, "--models", models)
	if log := srv.log.String(); !strings.Contains(log, "embedding model changed") || !strings.Contains(log, "catalogs=1") {
		t.Errorf("no model change of one catalog logged:\n%s", log)
	}
	cat := c.waitFor(id, 2*time.Minute, func(c map[string]any) bool {
		return c["status"] == "ready for query" && num(c, "num_images_indexed") == n
	})
	if num(cat, "num_images_total") != n {
		t.Fatalf("after the model change: %v, want %d of %d indexed", cat, n, n)
	}
	body, _ := os.ReadFile(files[3])
	res := c.file("/v0/search", "image", "q.jpg", body, map[string]string{"catalog_id": id, "n_results": "3"})
	top := res["similars"].([]any)[0].(map[string]any)
	if top["iid"] != "3" || top["distance"].(float64) > 1e-4 {
		t.Fatalf("the query image itself should come first at distance 0, got %v", res["similars"])
	}
}
