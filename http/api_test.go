package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftlabs/weft"
)

// TestGoldenShapes walks a catalog's life and every error envelope through
// HTTP, comparing each answer's shape with its golden file.
func TestGoldenShapes(t *testing.T) {
	e := newEnv(t, envOptions{maxImageBytes: 64 << 10})
	apiKey, secret, err := e.auth.CreateKey(context.Background(), "golden")
	if err != nil {
		t.Fatal(err)
	}
	// The page's curl -d, and JSON, multipart and the GET of its
	// reference table: the same answer each way.
	var token string
	for _, tc := range []struct {
		method, path string
		b            body
	}{
		{"POST", "/v0/token", form("api_key", apiKey, "api_secret", secret)},
		{"POST", "/v0/token/", jsonBody(map[string]string{"api_key": apiKey, "api_secret": secret})},
		{"POST", "/v0/token", multipartBody(map[string]string{"api_key": apiKey, "api_secret": secret}, nil)},
		{"GET", "/v0/token/?api_key=" + apiKey + "&api_secret=" + secret, body{}},
	} {
		r := e.call(tc.method, tc.path, "", tc.b).want(200)
		golden(t, "token", r.body)
		var out struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in_seconds"`
		}
		r.decode(&out)
		// Seconds left, counted down from a day: never the full day.
		if out.ExpiresIn <= 0 || out.ExpiresIn >= 86400 {
			t.Errorf("expires_in_seconds = %d, want under a day", out.ExpiresIn)
		}
		token = out.AccessToken
	}
	auth := "Bearer " + token

	r := e.call("POST", "/v0/catalog", auth, form("name", "My Awesome Catalog")).want(200)
	golden(t, "catalog_create", r.body)
	var created struct{ Catalog catalogJSON }
	r.decode(&created)
	id := created.Catalog.ID
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("catalog_id %q is not 16 hex characters", id)
	}
	golden(t, "catalog_get", e.call("GET", "/v0/catalog/"+id, auth, body{}).want(200).body)

	// Parsing runs in the background: the answer may already say done.
	r = e.upload(token, id, e.exampleCatalog()).want(200)
	var up map[string]map[string]any
	r.decode(&up)
	switch st := up["catalog"]["status"]; st {
	case "uploading":
	case "upload done":
		up["catalog"]["status"] = "uploading"
		up["catalog"]["num_images_total"], up["catalog"]["num_total_images"] = 0, 0
	default:
		t.Fatalf("upload answered status %v", st)
	}
	b, _ := json.Marshal(up)
	golden(t, "catalog_upload", b)
	c := e.waitStatus(token, id, "upload done")
	if c.NumTotal != len(exampleImages) || c.NumTotal2 != c.NumTotal || c.ErrorLog != "" {
		t.Errorf("after upload: %+v, want %d images and no error", c, len(exampleImages))
	}
	golden(t, "catalog_list", e.call("GET", "/v0/catalog/", auth, body{}).want(200).body)
	golden(t, "usage", e.call("GET", "/v0/usage", auth, body{}).want(200).body)

	// Errors, each with what to fix.
	golden(t, "error_400", e.call("POST", "/v0/catalog", auth, form()).want(400).body)
	golden(t, "error_401", e.call("GET", "/v0/catalog", "", body{}).want(401).body)
	golden(t, "error_404", e.call("GET", "/v0/catalog/0123456789abcdef", auth, body{}).want(404).body)
	golden(t, "error_405", e.call("DELETE", "/v0/tag", auth, body{}).want(405).body)
	golden(t, "error_409", e.call("POST", "/v0/search", auth, form("catalog_id", id, "url", e.images.URL+"/red-tshirt.jpg")).want(409).body)
	big := bytes.Repeat([]byte{0xff}, 100<<10)
	golden(t, "error_413", e.call("POST", "/v0/tag", auth, multipartBody(nil, map[string][]byte{"image": big})).want(413).body)

	golden(t, "catalog_delete", e.call("DELETE", "/v0/catalog/"+id, auth, body{}).want(200).body)
	e.call("GET", "/v0/catalog/"+id, auth, body{}).want(404)
}

// TestGoldenModels covers the answers that need the models: index, a ready
// catalog, search, tag, detect, labels.
func TestGoldenModels(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.needVision(t)
	token, _ := e.newToken("models")
	auth := "Bearer " + token
	id := e.uploaded(token)

	r := e.call("POST", "/v0/catalog/"+id+"/index", auth, body{}).want(200)
	golden(t, "catalog_index", r.body)
	var idx struct{ Catalog catalogJSON }
	r.decode(&idx)
	if idx.Catalog.Status != "indexing" || idx.Catalog.NumTotal != len(exampleImages) {
		t.Errorf("index answered %+v, want indexing with num_images_total %d", idx.Catalog, len(exampleImages))
	}
	c := e.waitStatus(token, id, "ready for query", "index error")
	if c.Status != "ready for query" || c.NumIndexed != len(exampleImages) {
		t.Fatalf("after indexing: %+v", c)
	}
	golden(t, "catalog_ready", e.call("GET", "/v0/catalog/"+id, auth, body{}).want(200).body)

	shirt := exampleImage(t, "red-tshirt.jpg")
	r = e.call("POST", "/v0/search", auth, multipartBody(map[string]string{"catalog_id": id, "n_results": "1"}, map[string][]byte{"image": shirt})).want(200)
	golden(t, "search", r.body)
	golden(t, "tag", e.call("POST", "/v0/tag", auth, multipartBody(nil, map[string][]byte{"image": shirt})).want(200).body)
	// A street photo of a coat, pants, shoes and a bag: boxes for sure.
	street, err := os.ReadFile(filepath.Join("..", "..", "shared", "data", "street", "images", "0004.jpg"))
	if err != nil {
		t.Skipf("shared data not beside the repo: %v", err)
	}
	golden(t, "detect", e.call("POST", "/v0/detect", "Bearer "+token, multipartBody(nil, map[string][]byte{"image": street})).want(200).body)
	golden(t, "labels", e.call("GET", "/v0/labels", "", body{}).want(200).body)
}

type similarJSON struct {
	URL      string          `json:"url"`
	Distance float64         `json:"distance"`
	IID      string          `json:"iid"`
	Metadata json.RawMessage `json:"metadata"`
}

func TestSearch(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.needVision(t)
	token, _ := e.newToken("search")
	id := e.uploaded(token)
	e.call("POST", "/v0/catalog/"+id+"/index/", token, body{}).want(200)
	e.waitStatus(token, id, "ready for query")

	search := func(b body) []similarJSON {
		t.Helper()
		var out struct{ Similars []similarJSON }
		e.call("POST", "/v0/search/", token, b).want(200).decode(&out)
		return out.Similars
	}
	// An image of the catalog finds itself first, by file or by URL, with
	// its metadata exactly as uploaded.
	for _, b := range []body{
		multipartBody(map[string]string{"catalog_id": id, "n_results": "3"}, map[string][]byte{"image": exampleImage(t, "blue-jeans.jpg")}),
		form("catalog_id", id, "n_results", "3", "url", e.images.URL+"/blue-jeans.jpg"),
		jsonBody(map[string]any{"catalog_id": id, "n_results": 3, "url": e.images.URL + "/blue-jeans.jpg"}),
	} {
		sims := search(b)
		if len(sims) != 3 {
			t.Fatalf("%d results, want 3", len(sims))
		}
		if sims[0].IID != "5" || sims[0].Distance > 0.01 || sims[0].URL != e.images.URL+"/blue-jeans.jpg" {
			t.Errorf("top result %+v, want iid 5 at distance ~0", sims[0])
		}
		if string(sims[0].Metadata) != `{"name":"blue-jeans","price":14.99}` {
			t.Errorf("metadata %s", sims[0].Metadata)
		}
		for i := 1; i < len(sims); i++ {
			if sims[i].Distance < sims[i-1].Distance {
				t.Errorf("results not sorted by distance: %+v", sims)
			}
		}
	}
	if sims := search(form("catalog_id", id, "url", e.images.URL+"/pink-hat.jpg")); len(sims) != len(exampleImages) {
		t.Errorf("default n_results gave %d, want all %d images", len(sims), len(exampleImages))
	}

	var u struct {
		Usage map[string]map[string]struct {
			Calls  int `json:"num_calls"`
			Images int `json:"num_images"`
		}
	}
	e.call("GET", "/v0/usage", token, body{}).want(200).decode(&u)
	for _, m := range u.Usage {
		if m["search"].Calls != 4 || m["search"].Images != 4 || m["catalog_index"].Images != len(exampleImages) {
			t.Errorf("usage %+v, want 4 searches and %d images indexed", m, len(exampleImages))
		}
	}

	// Delete drops the catalog from the index too.
	probe := make([]float32, weft.EmbeddingDim)
	probe[0] = 1
	if hits, err := e.index.Search(context.Background(), id, probe, 1000); err != nil || len(hits) != len(exampleImages) {
		t.Fatalf("index holds %d vectors of the catalog (%v), want %d", len(hits), err, len(exampleImages))
	}
	e.call("DELETE", "/v0/catalog/"+id, token, body{}).want(200)
	if hits, _ := e.index.Search(context.Background(), id, probe, 1000); len(hits) != 0 {
		t.Errorf("the deleted catalog still has %d vectors in the index", len(hits))
	}
}

func TestTagAndDetect(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.needVision(t)
	token, _ := e.newToken("tag")
	for _, route := range []string{"/v0/tag", "/v0/detect"} {
		for _, b := range []body{
			multipartBody(nil, map[string][]byte{"image": exampleImage(t, "green-dress.jpg")}),
			form("url", e.images.URL+"/green-dress.jpg"),
			jsonBody(map[string]string{"url": e.images.URL + "/green-dress.jpg"}),
		} {
			var out struct {
				Labels []struct {
					Confidence float64
					Type, Name string
				}
				Boxes []struct {
					Category string
					Score    float64
					BBox     []int
				}
			}
			e.call("POST", route, token, b).want(200).decode(&out)
			if route == "/v0/tag" && len(out.Labels) == 0 {
				t.Errorf("%s: no labels for a dress", route)
			}
			for _, l := range out.Labels {
				if l.Confidence < 0 || l.Confidence > 1 || (l.Type != "shape" && l.Type != "color") || l.Name == "" {
					t.Errorf("label %+v", l)
				}
			}
			for _, b := range out.Boxes {
				if len(b.BBox) != 4 || b.BBox[0] > b.BBox[2] || b.BBox[1] > b.BBox[3] || b.Category == "" {
					t.Errorf("box %+v", b)
				}
			}
		}
	}
	r := e.call("POST", "/v0/tag", token, multipartBody(nil, map[string][]byte{"image": []byte("not an image")})).want(400)
	if !strings.Contains(r.message(), "JPEG") {
		t.Errorf("undecodable image: %q does not say what to send", r.message())
	}
}

// TestTenancy: key B sees none of key A's catalog, whatever it tries.
func TestTenancy(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, _ := e.newToken("a")
	b, _ := e.newToken("b")
	id := e.uploaded(a)
	for _, tc := range []struct {
		method, path string
		b            body
	}{
		{"GET", "/v0/catalog/" + id, body{}},
		{"DELETE", "/v0/catalog/" + id, body{}},
		{"POST", "/v0/catalog/" + id + "/upload", multipartBody(nil, map[string][]byte{"catalog_file": e.exampleCatalog()})},
		{"POST", "/v0/catalog/" + id + "/index", body{}},
		{"POST", "/v0/search", form("catalog_id", id, "url", e.images.URL+"/red-tshirt.jpg")},
	} {
		r := e.call(tc.method, tc.path, "Bearer "+b, tc.b)
		if r.code != 404 {
			t.Errorf("key B: %s %s = %d %s, want 404", tc.method, tc.path, r.code, r.body)
		}
	}
	var list struct{ Catalog []catalogJSON }
	e.call("GET", "/v0/catalog", b, body{}).want(200).decode(&list)
	if len(list.Catalog) != 0 {
		t.Errorf("key B lists %+v", list.Catalog)
	}
	if c := e.waitStatus(a, id, "upload done"); c.NumTotal != len(exampleImages) {
		t.Errorf("key A's catalog after key B's tries: %+v", c)
	}
}

func TestAuthorizationForms(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newToken("forms")
	for _, tc := range []struct {
		header string
		code   int
	}{
		{"Bearer " + token, 200}, // the page's detect and usage examples
		{token, 200},             // the page's catalog examples
		{"bearer " + token, 200},
		{"Basic " + token, 401},
		{"Bearer nope", 401},
		{"", 401},
	} {
		r := e.call("GET", "/v0/usage", tc.header, body{})
		if r.code != tc.code {
			t.Errorf("Authorization %q: %d, want %d", tc.header, r.code, tc.code)
		}
		if r.code == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without WWW-Authenticate", tc.header)
		}
	}
	r := e.call("POST", "/v0/token", "", form("api_key", "nope", "api_secret", "nope")).want(401)
	if !strings.Contains(r.message(), "api_key") {
		t.Errorf("bad credentials: %q", r.message())
	}
	r = e.call("POST", "/v0/token", "", form("api_key", "only")).want(400)
	if !strings.Contains(r.message(), "api_secret") {
		t.Errorf("missing secret: %q", r.message())
	}
}

// TestRoutes calls every route with and without its trailing slash, with
// its methods and a wrong one.
func TestRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newToken("routes")
	ids := []string{e.createCatalog(token, "one"), e.createCatalog(token, "two")}
	for i, slash := range []string{"", "/"} {
		id := ids[i]
		for _, tc := range []struct {
			method, path string
			b            body
			code         int
		}{
			{"POST", "/v0/token", form(), 400},
			{"GET", "/v0/token", body{}, 400},
			{"GET", "/v0/catalog", body{}, 200},
			{"POST", "/v0/catalog", form("name", "x"), 200},
			{"GET", "/v0/catalog/" + id, body{}, 200},
			{"POST", "/v0/catalog/" + id + "/upload", form(), 400},
			{"POST", "/v0/catalog/0123456789abcdef/index", body{}, 404},
			{"POST", "/v0/tag", form(), 400},
			{"POST", "/v0/search", form(), 400},
			{"POST", "/v0/detect", form(), 400},
			{"GET", "/v0/usage", body{}, 200},
			{"POST", "/v0/usage", body{}, 200},
			{"GET", "/healthz", body{}, 200},
			{"DELETE", "/v0/catalog/" + id, body{}, 200},
		} {
			r := e.call(tc.method, tc.path+slash, token, tc.b)
			if r.code != tc.code || strings.HasPrefix(r.message(), "No route") {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path+slash, r.code, r.body, tc.code)
			}
		}
		if e.vision != nil {
			e.call("GET", "/v0/labels"+slash, "", body{}).want(200)
		}
		if r := e.call("GET", "/metrics"+slash, "", body{}); r.code != 200 || !bytes.Contains(r.body, []byte("weft_http_requests_total")) {
			t.Errorf("GET /metrics%s: %d", slash, r.code)
		}
		for _, tc := range []struct{ method, path, allow string }{
			{"PUT", "/v0/token", "GET, POST"},
			{"DELETE", "/v0/catalog", "GET, POST"},
			{"POST", "/v0/catalog/" + id, "DELETE, GET"},
			{"GET", "/v0/catalog/" + id + "/upload", "POST"},
			{"GET", "/v0/catalog/" + id + "/index", "POST"},
			{"GET", "/v0/tag", "POST"},
			{"GET", "/v0/search", "POST"},
			{"GET", "/v0/detect", "POST"},
			{"DELETE", "/v0/usage", "GET, POST"},
			{"POST", "/v0/labels", "GET"},
			{"POST", "/healthz", "GET"},
		} {
			r := e.call(tc.method, tc.path+slash, token, body{})
			if r.code != 405 || r.header.Get("Allow") != tc.allow || !strings.Contains(r.message(), tc.allow[:3]) {
				t.Errorf("%s %s: %d Allow %q %s, want 405 allowing %s", tc.method, tc.path+slash, r.code, r.header.Get("Allow"), r.body, tc.allow)
			}
		}
	}
	for _, path := range []string{"/", "/v0", "/v0/nope", "/v0/catalog/x/y/z", "/v0/catalog//upload", "/v1/tag"} {
		r := e.call("GET", path, token, body{})
		if r.code != 404 {
			t.Errorf("GET %s: %d %s, want 404", path, r.code, r.body)
		}
	}
}

func TestParamsEveryWayOverHTTP(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newToken("params")
	for name, tc := range map[string]struct {
		path string
		b    body
	}{
		"query":     {"/v0/catalog?name=Via+query", body{}},
		"form":      {"/v0/catalog", form("name", "Via form")},
		"multipart": {"/v0/catalog", multipartBody(map[string]string{"name": "Via multipart"}, nil)},
		"json":      {"/v0/catalog", jsonBody(map[string]string{"name": "Via json"})},
	} {
		var out struct {
			Catalog struct{ Name string }
		}
		e.call("POST", tc.path, token, tc.b).want(200).decode(&out)
		if !strings.EqualFold(out.Catalog.Name, "Via "+name) {
			t.Errorf("%s: name %q", name, out.Catalog.Name)
		}
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, envOptions{maxImageBytes: 64 << 10, maxCatalogBytes: 4 << 10})
	token, _ := e.newToken("limits")
	for _, tc := range []struct {
		name, path string
		b          body
		says       string
	}{
		{"image file", "/v0/detect", multipartBody(nil, map[string][]byte{"image": make([]byte, 65<<10)}), "64 KiB"},
		{"form body", "/v0/catalog", form("name", strings.Repeat("x", 2<<20)), "1 MiB"},
		{"json body", "/v0/token", jsonBody(map[string]string{"api_key": strings.Repeat("x", 2<<20)}), "1 MiB"},
	} {
		r := e.call("POST", tc.path, token, tc.b).want(413)
		if !strings.Contains(r.message(), tc.says) {
			t.Errorf("%s: %q does not name the limit %s", tc.name, r.message(), tc.says)
		}
	}
	id := e.createCatalog(token, "big")
	r := e.upload(token, id, bytes.Repeat(e.exampleCatalog(), 20)).want(413)
	if !strings.Contains(r.message(), "4096") {
		t.Errorf("catalog file over the limit: %q", r.message())
	}
	r = e.call("POST", "/v0/catalog", token, form("name", strings.Repeat("x", 300))).want(400)
	if !strings.Contains(r.message(), "256") {
		t.Errorf("long name: %q", r.message())
	}
}

func TestSearchParameters(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newToken("n")
	id := e.uploaded(token)
	img := e.images.URL + "/red-tshirt.jpg"
	for _, n := range []string{"0", "-1", "1001", "ten", "2.5"} {
		r := e.call("POST", "/v0/search", token, form("catalog_id", id, "url", img, "n_results", n)).want(400)
		if !strings.Contains(r.message(), "from 1 to 1000") {
			t.Errorf("n_results=%s: %q does not say the range", n, r.message())
		}
	}
	// In range, they pass on to the catalog, which is not indexed yet.
	for _, n := range []string{"1", "1000", ""} {
		r := e.call("POST", "/v0/search", token, form("catalog_id", id, "url", img, "n_results", n)).want(409)
		if !strings.Contains(r.message(), "ready for query") || !strings.Contains(r.message(), "/index") {
			t.Errorf("not indexed: %q does not say to index and wait", r.message())
		}
	}
	r := e.call("POST", "/v0/search", token, form("url", img)).want(400)
	if !strings.Contains(r.message(), "catalog_id") {
		t.Errorf("no catalog_id: %q", r.message())
	}
	r = e.call("POST", "/v0/tag", token, form()).want(400)
	if !strings.Contains(r.message(), "image") || !strings.Contains(r.message(), "url") {
		t.Errorf("no image: %q", r.message())
	}
	r = e.call("POST", "/v0/tag", token, form("url", "ftp://127.0.0.1/x.jpg")).want(400)
	if r.message() == "" {
		t.Error("bad URL without a message")
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.call("GET", "/healthz", "", body{}).want(200)
	e.store.Close()
	e.call("GET", "/healthz", "", body{}).want(503)
}

// TestObservability: metrics and logs name the route pattern, never the
// raw path with its ids.
func TestObservability(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, keyID := e.newToken("obs")
	id := e.createCatalog(token, "seen")
	e.call("GET", "/v0/catalog/"+id, token, body{}).want(200)
	e.call("GET", "/v0/catalog/"+id+"/", token, body{}).want(200)
	e.call("GET", "/v0/catalog/ffffffffffffffff", token, body{}).want(404)

	res, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`weft_http_requests_total{code="200",route="/v0/catalog/{id}"} 2`,
		`weft_http_requests_total{code="404",route="/v0/catalog/{id}"} 1`,
		`weft_http_request_duration_seconds_count{route="/v0/catalog/{id}"} 3`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m), id) {
		t.Error("a catalog id is a metrics label")
	}
	logs := e.logs.String()
	if !regexp.MustCompile(`method=GET route=/v0/catalog/\{id\} status=404 duration=\S+ key_id=` + strconv.FormatInt(keyID, 10) + ` err=`).MatchString(logs) {
		t.Errorf("no request log line with route, status, duration, key id and cause:\n%s", logs)
	}
}

// TestPanicAnswers500: a server missing its models panics on /v0/labels;
// the client still gets the envelope, the log the cause.
func TestPanicAnswers500(t *testing.T) {
	e := newEnv(t, envOptions{noVision: true})
	r := e.call("GET", "/v0/labels", "", body{}).want(500)
	if r.message() != "Internal server error." {
		t.Errorf("message %q", r.message())
	}
	if logs := e.logs.String(); !strings.Contains(logs, "panic: runtime error") || !strings.Contains(logs, "status=500") {
		t.Errorf("the panic is not in the log:\n%s", logs)
	}
	e.call("GET", "/healthz", "", body{}).want(200)
}

// TestUploadStreams sends a catalog file far bigger than the heap may grow
// by: the server must pass it on part by part, never hold it whole.
func TestUploadStreams(t *testing.T) {
	e := newEnv(t, envOptions{})
	token, _ := e.newToken("stream")
	id := e.createCatalog(token, "big")
	const fileBytes = 96 << 20
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("catalog_file", "catalog.tsv")
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		// Lines over the parser's 1 MiB bound: they are skipped, so the
		// background parse is quick; the spooling is what is measured.
		line := append(bytes.Repeat([]byte("x"), (1<<20)+1), '\n')
		for n := 0; n < fileBytes; n += len(line) {
			if _, err := fw.Write(line); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapAlloc
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}()
	r := e.call("POST", "/v0/catalog/"+id+"/upload", "Bearer "+token, body{pr, mw.FormDataContentType()})
	close(done)
	<-sampled
	r.want(200)
	if grew := int64(peak) - int64(before.HeapAlloc); grew > fileBytes/3 {
		t.Errorf("heap grew by %d MiB while uploading a %d MiB file", grew>>20, fileBytes>>20)
	} else {
		t.Logf("heap grew by %.1f MiB while uploading a %d MiB file", float64(grew)/(1<<20), fileBytes>>20)
	}
	c := e.waitStatus(token, id, "upload error", "upload done")
	if !strings.Contains(c.ErrorLog, "line 1") {
		t.Errorf("error log %q", c.ErrorLog)
	}
}

// BenchmarkGetCatalog measures one authenticated store read through the
// whole stack: loopback HTTP, auth, SQLite, JSON.
func BenchmarkGetCatalog(b *testing.B) {
	e := newEnv(b, envOptions{noVision: true})
	token, _ := e.newToken("bench")
	id := e.createCatalog(token, "bench")
	b.ResetTimer()
	for b.Loop() {
		e.call("GET", "/v0/catalog/"+id, "Bearer "+token, body{}).want(200)
	}
}
