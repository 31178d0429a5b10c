package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/auth"
	"github.com/weftlabs/weft/fetch"
	"github.com/weftlabs/weft/http"
	"github.com/weftlabs/weft/index"
	"github.com/weftlabs/weft/metrics"
	"github.com/weftlabs/weft/onnx"
	"github.com/weftlabs/weft/postgres"
	"github.com/weftlabs/weft/sqlite"
	"github.com/weftlabs/weft/vision"
	"github.com/weftlabs/weft/worker"
)

// Config is everything `weft serve` can be told.
type Config struct {
	Addr             string
	DataDir          string
	DB               string // postgres://… or empty for SQLite in DataDir
	AllowPrivateURLs bool
	ModelsDir        string
	ORTLib           string
	MaxImageBytes    int64
	MaxCatalogBytes  int64
	MaxPixels        int
	FetchTimeout     time.Duration
	FetchRedirects   int
	TokenTTL         time.Duration
	Jobs             int
	Fetchers         int
	Threads          int
	LogLevel         string
	LogFormat        string
}

const serveSynopsis = `Serves the Thread Genius v0 API. Without --db the store is SQLite in
--data (weft.db, the vector index under index/, upload spool under spool/);
with --db postgres://… keys, catalogs, images, vectors (pgvector), usage and
jobs live in PostgreSQL and several servers on one database form a cluster.
Image URLs that resolve to loopback, private or link-local addresses are
refused unless --allow-private-urls.`

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flagSet("serve [flags]", serveSynopsis, stderr)
	var c Config
	addr := strFlag(fs, "addr", "localhost:8080", "address to listen on")
	data := strFlag(fs, "data", "./data", "data directory for the embedded store, index and spool")
	db := strFlag(fs, "db", "", "PostgreSQL URL (postgres://…); empty: SQLite in --data")
	allow := boolFlag(fs, "allow-private-urls", false, "allow fetching images from loopback and private addresses")
	models := strFlag(fs, "models", defaultModelsDir(), "directory with tagger.onnx, embedder.onnx, detector.onnx and their .json")
	ort := strFlag(fs, "ort-lib", "", "path of libonnxruntime.so (default: .deps/onnxruntime beside the binary)")
	maxImage := intFlag(fs, "max-image-bytes", 32<<20, "largest image body or fetched image, bytes")
	maxCatalog := intFlag(fs, "max-catalog-bytes", 8<<30, "largest catalog file, bytes")
	maxPixels := intFlag(fs, "max-pixels", 40_000_000, "largest decoded image, pixels (checked before decoding)")
	fetchTimeout := durFlag(fs, "fetch-timeout", 15*time.Second, "time limit of one image fetch")
	redirects := intFlag(fs, "fetch-redirects", 5, "redirects followed per image fetch")
	ttl := durFlag(fs, "token-ttl", 24*time.Hour, "access token lifetime")
	jobs := intFlag(fs, "index-jobs", 1, "index jobs run at once by this node")
	fetchers := intFlag(fs, "fetch-concurrency", 16, "concurrent image fetches per index job")
	threads := intFlag(fs, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	level := strFlag(fs, "log-level", "info", "debug, info, warn or error")
	format := strFlag(fs, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c = Config{Addr: *addr, DataDir: *data, DB: *db, AllowPrivateURLs: *allow, ModelsDir: *models,
		ORTLib: *ort, MaxImageBytes: int64(*maxImage), MaxCatalogBytes: int64(*maxCatalog),
		MaxPixels: *maxPixels, FetchTimeout: *fetchTimeout, FetchRedirects: *redirects, TokenTTL: *ttl,
		Jobs: *jobs, Fetchers: *fetchers, Threads: *threads, LogLevel: *level, LogFormat: *format}
	m := NewMain(c, newLogger(stderr, c.LogLevel, c.LogFormat))
	if err := m.Open(ctx); err != nil {
		m.Close()
		return err
	}
	err := m.Serve(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// defaultModelsDir finds models/ beside the binary's parent (bin/weft →
// models/), falling back to ./models.
func defaultModelsDir() string {
	if exe, err := os.Executable(); err == nil {
		d := filepath.Join(filepath.Dir(filepath.Dir(exe)), "models")
		if _, err := os.Stat(filepath.Join(d, "tagger.onnx")); err == nil {
			return d
		}
	}
	return "models"
}

// Main is one running server: Open builds every part, Serve answers
// requests until ctx ends, Close tears down in reverse order.
type Main struct {
	cfg     Config
	log     *slog.Logger
	store   weft.Store
	index   weft.Index
	vision  *vision.Models
	worker  *worker.Worker
	server  *nethttp.Server
	ln      net.Listener
	closers []func() error
}

func NewMain(c Config, log *slog.Logger) *Main { return &Main{cfg: c, log: log} }

// openStore opens the store named by db (PostgreSQL) or the SQLite file in
// dataDir; with PostgreSQL the store is also the vector index.
func openStore(ctx context.Context, dataDir, db string) (weft.Store, weft.Index, error) {
	if db != "" {
		if !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
			return nil, nil, fmt.Errorf("--db %q: want a postgres:// URL", db)
		}
		pg, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, nil, err
		}
		return pg, pg, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, err
	}
	s, err := sqlite.Open(filepath.Join(dataDir, "weft.db"))
	if err != nil {
		return nil, nil, err
	}
	return s, nil, nil
}

func (m *Main) Open(ctx context.Context) error {
	c := m.cfg
	store, idx, err := openStore(ctx, c.DataDir, c.DB)
	if err != nil {
		return err
	}
	m.store = store
	m.closers = append(m.closers, store.Close)

	lib := c.ORTLib
	if lib == "" {
		lib = onnx.FindLibrary()
	}
	if err := onnx.Init(lib); err != nil {
		return fmt.Errorf("loading ONNX Runtime from %s: %w (run `make build`, or set --ort-lib)", lib, err)
	}
	v, err := vision.Open(c.ModelsDir, vision.Options{Threads: c.Threads})
	if err != nil {
		return fmt.Errorf("loading models from %s: %w", c.ModelsDir, err)
	}
	m.vision = v
	m.closers = append(m.closers, v.Close)

	// Before the index is brought in line with the store: a new model drops
	// the stored vectors, and the sync then drops them from the index.
	dropped, err := store.SetEmbeddingModel(ctx, v.EmbeddingModel())
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		m.log.Warn("embedding model changed: catalogs are indexed again", "model", v.EmbeddingModel(),
			"catalogs", len(dropped))
	}
	if idx == nil {
		ilog := m.log.With("component", "index")
		hnsw, err := index.Open(filepath.Join(c.DataDir, "index"), index.Options{
			Logf: func(format string, args ...any) { ilog.Warn(fmt.Sprintf(format, args...)) },
		})
		if err != nil {
			return err
		}
		idx = hnsw
		m.closers = append(m.closers, hnsw.Close)
		if err := syncIndex(ctx, store, hnsw, m.log); err != nil {
			return err
		}
	}
	m.index = idx

	decode := func(r io.Reader) (image.Image, error) {
		return vision.Decode(r, vision.Limits{MaxPixels: c.MaxPixels})
	}
	fetcher := fetch.New(fetch.Options{AllowPrivate: c.AllowPrivateURLs, MaxBytes: c.MaxImageBytes,
		Timeout: c.FetchTimeout, MaxRedirects: c.FetchRedirects})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met := metrics.New(reg)
	met.SetQueueDepth(func() float64 {
		n, err := store.QueueDepth(context.Background())
		if err != nil {
			return -1
		}
		return float64(n)
	})

	spool := filepath.Join(c.DataDir, "spool")
	side := v.InputSize()
	indexDecode := func(r io.Reader) (image.Image, error) {
		img, err := decode(r)
		if err != nil {
			return nil, err
		}
		return vision.Prepare(img, side), nil
	}
	m.worker = worker.New(worker.Config{
		Store: store, Index: idx, Vision: v, Fetcher: fetcher, Decode: indexDecode,
		SpoolDir: spool, SingleNode: c.DB == "", Jobs: c.Jobs, Fetchers: c.Fetchers,
		Logger:    m.log.With("component", "worker"),
		OnIndexed: func(n int) { met.ImagesIndexed.Add(float64(n)) },
		OnFailed:  func(n int) { met.ImagesFailed.Add(float64(n)) },
	})
	if err := m.worker.Start(ctx); err != nil {
		return err
	}
	m.closers = append(m.closers, m.worker.Close)

	api := http.NewServer(http.Config{
		Store: store, Index: idx, Vision: v, Fetcher: fetcher,
		Auth:    &auth.Service{Store: store, TokenTTL: c.TokenTTL},
		Uploads: m.worker, Wake: m.worker.Wake, Decode: decode,
		Logger: m.log.With("component", "http"), Metrics: met, Registry: reg,
		MaxImageBytes: c.MaxImageBytes, MaxCatalogBytes: c.MaxCatalogBytes,
	})
	m.server = &nethttp.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	m.ln = ln
	return nil
}

// syncIndex makes the in-process index agree with the store after a crash
// (see the index package's recovery protocol): every catalog the store has
// vectors for is compared with its snapshot, and snapshots of catalogs the
// store no longer has are dropped.
func syncIndex(ctx context.Context, store weft.Store, idx *index.Index, log *slog.Logger) error {
	known := map[string]bool{}
	for _, st := range []weft.CatalogStatus{weft.StatusNew, weft.StatusUploading, weft.StatusUploadDone,
		weft.StatusUploadError, weft.StatusIndexing, weft.StatusReady, weft.StatusIndexError} {
		cs, err := store.CatalogsWithStatus(ctx, st)
		if err != nil {
			return err
		}
		for _, c := range cs {
			known[c.ID] = true
			if c.NumIndexed == 0 && !slices.Contains(idx.Catalogs(), c.ID) {
				continue
			}
			changed, err := idx.Sync(ctx, c.ID, func(fn func(weft.VectorItem) error) error {
				return store.Vectors(ctx, c.ID, fn)
			})
			if err != nil {
				return err
			}
			if changed > 0 {
				log.Info("index brought in line with the store", "catalog", c.ID, "changed", changed)
			}
		}
	}
	for _, id := range idx.Catalogs() {
		if !known[id] {
			if err := idx.Drop(ctx, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// Serve answers requests until ctx ends, then shuts down gracefully: the
// listener closes, requests in flight get up to 20 seconds, and index jobs
// park what they have not finished (see worker.Close).
func (m *Main) Serve(ctx context.Context) error {
	m.log.Info("weft serving", "addr", m.ln.Addr().String(), "data", m.cfg.DataDir,
		"postgres", m.cfg.DB != "", "allow_private_urls", m.cfg.AllowPrivateURLs)
	errc := make(chan error, 1)
	go func() { errc <- m.server.Serve(m.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.server.Shutdown(sctx); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
		return err
	}
	return nil
}

// Close releases everything Open made, last first.
func (m *Main) Close() error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}
