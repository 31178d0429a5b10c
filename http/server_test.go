package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/auth"
	"github.com/weftlabs/weft/fetch"
	weftttp "github.com/weftlabs/weft/http"
	"github.com/weftlabs/weft/index"
	"github.com/weftlabs/weft/metrics"
	"github.com/weftlabs/weft/onnx"
	"github.com/weftlabs/weft/postgres"
	"github.com/weftlabs/weft/sqlite"
	"github.com/weftlabs/weft/storetest"
	"github.com/weftlabs/weft/vision"
	"github.com/weftlabs/weft/worker"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the answers")

// env is a whole Weft behind a real loopback HTTP server: SQLite store,
// auth, fetch, the in-process index, the worker, and the models when they
// are there; plus a loopback host serving the example images.
type env struct {
	t      testing.TB
	srv    *httptest.Server
	store  weft.Store
	index  weft.Index
	auth   *auth.Service
	vision weft.Vision // nil until the models are there
	images *httptest.Server
	logs   *syncBuffer
}

type envOptions struct {
	maxImageBytes, maxCatalogBytes int64
	noVision                       bool // leave the models out even when they are there
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	store, idx := openStore(t, dir)
	e := &env{t: t, store: store, index: idx, auth: &auth.Service{Store: store}, logs: &syncBuffer{}}
	if !o.noVision {
		e.vision = openVision(t)
	}
	e.images = httptest.NewServer(http.FileServer(http.Dir(filepath.Join("..", "examples", "images"))))
	fetcher := fetch.New(fetch.Options{AllowPrivate: true})
	decode := func(r io.Reader) (image.Image, error) { return vision.Decode(r, vision.Limits{}) }
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	w := worker.New(worker.Config{
		Store: store, Index: idx, Vision: e.vision, Fetcher: fetcher, Decode: decode,
		SpoolDir: filepath.Join(dir, "spool"), SingleNode: true, Logger: log,
		// Jobs start on Wake alone, so that what POST .../index answers is
		// not a race with a polling worker.
		Poll: time.Hour,
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(weftttp.NewServer(weftttp.Config{
		Store: store, Index: idx, Vision: e.vision, Fetcher: fetcher, Auth: e.auth,
		Uploads: w, Wake: w.Wake, Decode: decode, Logger: log,
		Metrics:       metrics.New(prometheus.NewRegistry()),
		MaxImageBytes: o.maxImageBytes, MaxCatalogBytes: o.maxCatalogBytes,
	}))
	t.Cleanup(func() {
		e.srv.Close()
		w.Close()
		e.images.Close()
		idx.Close()
		store.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// storeEnv picks the store the suite runs on: "postgres" runs it on a
// fresh PostgreSQL database per test (WEFT_TEST_POSTGRES_URL); anything else
// on SQLite and the in-process index. make test runs the suite on both.
const storeEnv = "WEFT_TEST_STORE"

func openStore(t testing.TB, dir string) (weft.Store, weft.Index) {
	t.Helper()
	if os.Getenv(storeEnv) == "postgres" {
		db, err := postgres.Open(context.Background(), storetest.FreshPostgres(t))
		if err != nil {
			t.Fatal(err)
		}
		return db, db
	}
	store, err := sqlite.Open(filepath.Join(dir, "weft.db"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return store, idx
}

// modelsDir holds the committed models; tests that need them skip while
// they are absent.
const modelsDir = "../models"

var (
	visionOnce   sync.Once
	sharedVision *vision.Models
	visionErr    error
)

// openVision returns the real models, loaded once for all tests, or nil
// when they are not built yet.
func openVision(t testing.TB) weft.Vision {
	t.Helper()
	for _, f := range []string{"tagger.onnx", "embedder.onnx", "tagger.json", "detector.onnx", "detector.json"} {
		if _, err := os.Stat(filepath.Join(modelsDir, f)); err != nil {
			return nil
		}
	}
	visionOnce.Do(func() {
		if visionErr = onnx.Init(""); visionErr == nil {
			sharedVision, visionErr = vision.Open(modelsDir, vision.Options{})
		}
	})
	if visionErr != nil {
		t.Fatalf("loading the models: %v", visionErr)
	}
	return sharedVision
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if sharedVision != nil {
		sharedVision.Close()
	}
	os.Exit(code)
}

func (e *env) needVision(t *testing.T) {
	t.Helper()
	if e.vision == nil {
		t.Skip("models not available")
	}
}

// newToken makes a key and returns an access token of it.
func (e *env) newToken(name string) (token string, keyID int64) {
	e.t.Helper()
	apiKey, secret, err := e.auth.CreateKey(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.call("POST", "/v0/token", "", form("api_key", apiKey, "api_secret", secret))
	r.want(200)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	r.decode(&out)
	k, err := e.store.KeyByAPIKey(context.Background(), apiKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return out.AccessToken, k.ID
}

// body is a request body with its Content-Type.
type body struct {
	r  io.Reader
	ct string
}

func form(kv ...string) body {
	q := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return body{strings.NewReader(q.Encode()), "application/x-www-form-urlencoded"}
}

func jsonBody(v any) body {
	b, _ := json.Marshal(v)
	return body{bytes.NewReader(b), "application/json"}
}

// multipartBody holds fields, then files (field name → content).
func multipartBody(fields map[string]string, files map[string][]byte) body {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for k, v := range files {
		fw, _ := mw.CreateFormFile(k, k+".bin")
		fw.Write(v)
	}
	mw.Close()
	return body{&b, mw.FormDataContentType()}
}

type response struct {
	t      testing.TB
	code   int
	header http.Header
	body   []byte
}

// call makes one request. Authorization is sent when auth is not empty.
// Every answer must carry the envelope, its code the HTTP status's.
func (e *env) call(method, path, authorization string, b body) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, b.r)
	if err != nil {
		e.t.Fatal(err)
	}
	if b.ct != "" {
		req.Header.Set("Content-Type", b.ct)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{t: e.t, code: res.StatusCode, header: res.Header, body: data}
	var env struct {
		Status *struct {
			Message string `json:"message"`
			Code    int    `json:"code"`
		} `json:"status"`
	}
	if method != "HEAD" && !strings.HasPrefix(path, "/metrics") {
		if err := json.Unmarshal(data, &env); err != nil || env.Status == nil {
			e.t.Fatalf("%s %s: %d answer without the envelope: %q", method, path, res.StatusCode, data)
		}
		if env.Status.Code != res.StatusCode || env.Status.Message == "" {
			e.t.Fatalf("%s %s: HTTP %d but envelope %+v", method, path, res.StatusCode, *env.Status)
		}
	}
	return r
}

func (r response) want(code int) response {
	r.t.Helper()
	if r.code != code {
		r.t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
	return r
}

func (r response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		r.t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r response) message() string {
	var env struct {
		Status struct{ Message string } `json:"status"`
	}
	json.Unmarshal(r.body, &env)
	return env.Status.Message
}

// catalogJSON is the catalog as a client reads it.
type catalogJSON struct {
	ID         string `json:"catalog_id"`
	Status     string `json:"status"`
	NumTotal   int    `json:"num_images_total"`
	NumTotal2  int    `json:"num_total_images"`
	NumIndexed int    `json:"num_images_indexed"`
	ErrorLog   string `json:"error_log"`
}

func (e *env) createCatalog(token, name string) string {
	e.t.Helper()
	var out struct{ Catalog catalogJSON }
	e.call("POST", "/v0/catalog", "Bearer "+token, form("name", name)).want(200).decode(&out)
	return out.Catalog.ID
}

// exampleCatalog is a catalog file of the example images on the loopback
// image host: iid i is the i-th of exampleImages.
func (e *env) exampleCatalog() []byte {
	var b bytes.Buffer
	for i, name := range exampleImages {
		fmt.Fprintf(&b, "%d\t%s/%s\t{\"name\": %q, \"price\": %d.99}\n", i+1, e.images.URL, name, strings.TrimSuffix(name, ".jpg"), 10+i)
	}
	return b.Bytes()
}

var exampleImages = []string{
	"red-tshirt.jpg", "navy-tshirt.jpg", "white-tshirt.jpg", "black-longsleeve.jpg", "blue-jeans.jpg",
	"khaki-pants.jpg", "grey-shorts.jpg", "black-dress.jpg", "green-dress.jpg", "purple-skirt.jpg",
	"yellow-skirt.jpg", "brown-boot.jpg", "white-sneaker.jpg", "pink-hat.jpg",
}

func (e *env) upload(token, id string, file []byte) response {
	e.t.Helper()
	return e.call("POST", "/v0/catalog/"+id+"/upload", "Bearer "+token, multipartBody(nil, map[string][]byte{"catalog_file": file}))
}

// waitStatus polls the catalog until it has one of the statuses.
func (e *env) waitStatus(token, id string, statuses ...string) catalogJSON {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var out struct{ Catalog catalogJSON }
		e.call("GET", "/v0/catalog/"+id, token, body{}).want(200).decode(&out)
		for _, s := range statuses {
			if out.Catalog.Status == s {
				return out.Catalog
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("catalog %s still %q (error log %q), want one of %q", id, out.Catalog.Status, out.Catalog.ErrorLog, statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uploaded creates a catalog of the example images and waits for the
// upload to be parsed.
func (e *env) uploaded(token string) string {
	e.t.Helper()
	id := e.createCatalog(token, "Examples")
	e.upload(token, id, e.exampleCatalog()).want(200)
	e.waitStatus(token, id, "upload done")
	return id
}

func exampleImage(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "images", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Golden files hold each answer's shape; values that change from run to
// run (ids, dates, tokens, scores, model outputs) are normalised first,
// but only when they have the expected form, so a malformed one shows up
// in the diff.
var (
	hexID    = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	loopback = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	dateRE   = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$`)
	monthRE  = regexp.MustCompile(`^\d{4}-(1[0-2]|[1-9])$`)
	tokenRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{16,}$`)
)

func golden(t *testing.T, name string, data []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(normalise("", false, v)); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s:\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

// normalise replaces volatile values; inModel is set below "labels" and
// "boxes", whose names and boxes only the models decide.
func normalise(key string, inModel bool, v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if monthRE.MatchString(k) {
				k = "<month>"
			}
			out[k] = normalise(k, inModel, x)
		}
		return out
	case []any:
		if key == "labels" || key == "boxes" {
			inModel = true
			// How many labels or boxes a model gives is the model's
			// business; the first shows the shape.
			v = v[:min(len(v), 1)]
		}
		if inModel && key == "bbox" && len(v) == 4 {
			return "<bbox>"
		}
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalise(key, inModel, x)
		}
		return out
	case string:
		switch {
		case key == "date_created" && dateRE.MatchString(v):
			return "<date>"
		case key == "access_token" && tokenRE.MatchString(v):
			return "<token>"
		case inModel && (key == "name" || key == "category" || key == "parent"),
			inModel && key == "type" && (v == "shape" || v == "color"):
			return "<" + key + ">"
		}
		return loopback.ReplaceAllString(hexID.ReplaceAllString(v, "<catalog_id>"), "127.0.0.1:<port>")
	case json.Number:
		f, _ := v.Float64()
		switch {
		case key == "expires_in_seconds" && f > 0 && f <= 86400:
			return "<seconds>"
		case (key == "confidence" || key == "score" || key == "distance") && f >= 0 && f <= 2:
			return "<score>"
		}
		return v
	}
	return v
}
