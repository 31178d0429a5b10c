package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"mime/multipart"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/weftlabs/weft/auth"
	"github.com/weftlabs/weft/index"
	"github.com/weftlabs/weft/onnx"
	"github.com/weftlabs/weft/vision"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: weft bench (embed | ann | api) [flags]; weft bench embed --help")
	}
	switch args[0] {
	case "embed":
		return benchEmbed(ctx, args[1:], stdout, stderr)
	case "ann":
		return benchANN(ctx, args[1:], stdout, stderr)
	case "api":
		return benchAPI(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown bench %q: want embed, ann or api", args[0])
}

// imageFiles lists the image files directly in dir, sorted.
func imageFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png", ".gif", ".webp":
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no images in %s", dir)
	}
	return out, nil
}

func openVision(models, lib string, threads int) (*vision.Models, error) {
	if lib == "" {
		lib = onnx.FindLibrary()
	}
	if err := onnx.Init(lib); err != nil {
		return nil, fmt.Errorf("loading ONNX Runtime from %s: %w", lib, err)
	}
	return vision.Open(models, vision.Options{Threads: threads})
}

func benchEmbed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench embed --images DIR [--n N]",
		"Measures the embedding model alone, batched as indexing batches it, on\ndecoded images (decoding is not timed).", stderr)
	dir := fs.String("images", "", "directory of images")
	n := fs.Int("n", 512, "images to embed")
	models := strFlag(fs, "models", defaultModelsDir(), "models directory")
	threads := intFlag(fs, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := imageFiles(*dir)
	if err != nil {
		return err
	}
	v, err := openVision(*models, "", *threads)
	if err != nil {
		return err
	}
	defer v.Close()
	var imgs []image.Image
	for _, f := range files[:min(len(files), 256)] {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		img, err := vision.Decode(fh, vision.Limits{})
		fh.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		imgs = append(imgs, img)
	}
	ips, err := vision.BenchEmbed(ctx, v, imgs, *n)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{"images_per_second": round(ips, 1), "n": *n,
		"batch": vision.EmbedBatch, "cpus": runtime.NumCPU()})
}

func benchANN(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench ann --base B.fvecs --queries Q.fvecs [flags]",
		"Builds the index on base vectors, tunes ef to the lowest setting that reaches\n--recall@k against exact search, and measures queries per second.", stderr)
	var o index.BenchOptions
	fs.StringVar(&o.Base, "base", "", "base vectors (.fvecs)")
	fs.StringVar(&o.Queries, "queries", "", "query vectors (.fvecs)")
	fs.IntVar(&o.K, "k", 10, "neighbours per query")
	fs.Float64Var(&o.Recall, "recall", 0.95, "recall@k to reach")
	fs.IntVar(&o.Threads, "threads", 1, "query threads")
	fs.StringVar(&o.Out, "out", "", "write the neighbours of every query here (.ivecs)")
	fs.IntVar(&o.M, "m", 16, "graph degree M")
	fs.IntVar(&o.EfConstruction, "ef-construction", 200, "ef at build time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Base == "" || o.Queries == "" {
		fs.Usage()
		return errors.New("--base and --queries are required")
	}
	res, err := index.BenchANN(o)
	if err != nil {
		return err
	}
	return printJSON(stdout, res)
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// benchAPI drives a real server over HTTP on loopback, with its own image
// host, through the v0 API: index a catalog of --n images, then time
// search-by-file, tag and detect.
func benchAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench api [--images DIR] [--n N]",
		"Starts a server and an image host on loopback with a throw-away store and\nmeasures, through the v0 API: indexing rate of a catalog of --n images, and\nthe latency of search-by-file, tag and detect (p50, p95).", stderr)
	dir := fs.String("images", "", "directory of images (served by a loopback image host)")
	n := fs.Int("n", 2000, "catalog size")
	q := fs.Int("queries", 100, "timed calls of each of search, tag and detect")
	models := strFlag(fs, "models", defaultModelsDir(), "models directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := imageFiles(*dir)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The image host: /img/<k>/<file> serves files[k % len]; distinct URLs,
	// so every row is fetched.
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	host := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		var k int
		if _, err := fmt.Sscanf(r.URL.Path, "/img/%d", &k); err != nil {
			nethttp.NotFound(w, r)
			return
		}
		nethttp.ServeFile(w, r, files[k%len(files)])
	})}
	go host.Serve(hostLn)
	defer host.Close()

	cfg := Config{Addr: "127.0.0.1:0", DataDir: tmp, AllowPrivateURLs: true, ModelsDir: *models,
		MaxImageBytes: 32 << 20, MaxCatalogBytes: 1 << 30, MaxPixels: 40_000_000,
		FetchTimeout: 15 * time.Second, FetchRedirects: 5, TokenTTL: time.Hour, Jobs: 1, Fetchers: 16}
	m := NewMain(cfg, newLogger(io.Discard, "error", "text"))
	if err := m.Open(ctx); err != nil {
		m.Close()
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- m.Serve(sctx) }()
	defer func() { stop(); <-served; m.Close() }()
	base := "http://" + m.ln.Addr().String()

	key, secret, err := (&auth.Service{Store: m.store}).CreateKey(ctx, "bench")
	if err != nil {
		return err
	}
	c := &apiClient{base: base}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := c.form("POST", "/v0/token", map[string]string{"api_key": key, "api_secret": secret}, &tok); err != nil {
		return err
	}
	c.token = tok.AccessToken
	var cat struct {
		Catalog struct {
			ID         string `json:"catalog_id"`
			Status     string `json:"status"`
			NumIndexed int    `json:"num_images_indexed"`
			ErrorLog   string `json:"error_log"`
		} `json:"catalog"`
	}
	if err := c.form("POST", "/v0/catalog", map[string]string{"name": "bench"}, &cat); err != nil {
		return err
	}
	id := cat.Catalog.ID
	var tsv bytes.Buffer
	hostURL := "http://" + hostLn.Addr().String()
	for i := range *n {
		fmt.Fprintf(&tsv, "%d\t%s/img/%d/%s\t{\"i\":%d}\n", i, hostURL, i, filepath.Base(files[i%len(files)]), i)
	}
	if err := c.multipart("/v0/catalog/"+id+"/upload", "catalog_file", "catalog.tsv", tsv.Bytes(), nil, &cat); err != nil {
		return err
	}
	if err := c.waitStatus(ctx, id, "upload done", &cat); err != nil {
		return err
	}
	start := time.Now()
	if err := c.form("POST", "/v0/catalog/"+id+"/index", nil, &cat); err != nil {
		return err
	}
	if err := c.waitStatus(ctx, id, "ready for query", &cat); err != nil {
		return err
	}
	indexSecs := time.Since(start).Seconds()
	if cat.Catalog.NumIndexed != *n {
		return fmt.Errorf("indexed %d of %d images: %s", cat.Catalog.NumIndexed, *n, cat.Catalog.ErrorLog)
	}

	lat := map[string][]float64{}
	for i := range *q {
		body, err := os.ReadFile(files[i%len(files)])
		if err != nil {
			return err
		}
		for _, ep := range []string{"search", "tag", "detect"} {
			fields := map[string]string{}
			if ep == "search" {
				fields = map[string]string{"catalog_id": id, "n_results": "10"}
			}
			t0 := time.Now()
			if err := c.multipart("/v0/"+ep, "image", filepath.Base(files[i%len(files)]), body, fields, nil); err != nil {
				return err
			}
			lat[ep] = append(lat[ep], float64(time.Since(t0).Microseconds())/1000)
		}
	}
	out := map[string]any{"catalog_images": *n, "index_seconds": round(indexSecs, 2),
		"index_images_per_second": round(float64(*n)/indexSecs, 1), "queries": *q, "cpus": runtime.NumCPU()}
	for ep, xs := range lat {
		slices.Sort(xs)
		out[ep+"_ms_p50"] = round(xs[len(xs)/2], 1)
		out[ep+"_ms_p95"] = round(xs[len(xs)*95/100], 1)
	}
	return printJSON(stdout, out)
}

// apiClient is the small v0 client the benchmark drives the server with.
type apiClient struct {
	base, token string
}

func (c *apiClient) do(req *nethttp.Request, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

func (c *apiClient) form(method, path string, fields map[string]string, out any) error {
	vals := url.Values{}
	for k, v := range fields {
		vals.Set(k, v)
	}
	req, err := nethttp.NewRequest(method, c.base+path, strings.NewReader(vals.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req, out)
}

func (c *apiClient) multipart(path, field, filename string, file []byte, fields map[string]string, out any) error {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		return err
	}
	fw.Write(file)
	mw.Close()
	req, err := nethttp.NewRequest("POST", c.base+path, &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req, out)
}

// waitStatus polls the catalog until it reaches want (or an error status).
func (c *apiClient) waitStatus(ctx context.Context, id, want string, out any) error {
	for {
		req, _ := nethttp.NewRequest("GET", c.base+"/v0/catalog/"+id, nil)
		var cat struct {
			Catalog struct {
				Status   string `json:"status"`
				ErrorLog string `json:"error_log"`
			} `json:"catalog"`
		}
		raw := json.RawMessage{}
		if err := c.do(req, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &cat); err != nil {
			return err
		}
		switch cat.Catalog.Status {
		case want:
			return json.Unmarshal(raw, out)
		case "upload error", "index error":
			return fmt.Errorf("catalog %s: %s: %s", id, cat.Catalog.Status, cat.Catalog.ErrorLog)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
