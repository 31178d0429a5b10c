// Package http serves the Thread Genius v0 API word for word, so that a
// client written for Thread Genius works unchanged against Weft: the same
// routes (with or without a trailing slash), parameters taken from the query
// string, a form-urlencoded, multipart or JSON body alike, and every answer,
// errors too, wrapped in {"status": {"message", "code"}}.
//
// Choices the v0 page leaves open, made here:
//   - Search serves what is indexed so far: a catalog still indexing answers
//     from the images indexed until now. A catalog with no indexed image yet
//     answers 409, telling the caller to index it and wait for status
//     "ready for query".
//   - n_results is 50 by default and at most 1,000.
//   - A catalog carries both num_images_total and num_total_images (the page
//     uses both names), and error_log is its lines joined by "\n".
//   - Search results carry each image's metadata as uploaded: its JSON text
//     with key order and numbers untouched, white space compacted.
//   - Where a parameter comes twice, the body's value wins over the query's.
//
// Weft's error kinds map to HTTP status codes in one place, statusOf.
// Internal causes are logged, never sent.
package http

import (
	"context"
	"fmt"
	"image"
	_ "image/gif" // the default Decode's formats
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/auth"
	"github.com/weftlabs/weft/metrics"
)

// Config is what a Server needs. Store, Index, Vision, Fetcher, Auth and
// Uploads are required; the rest have defaults.
type Config struct {
	Store   weft.Store
	Index   weft.Index
	Vision  weft.Vision
	Fetcher weft.Fetcher
	Auth    *auth.Service
	Uploads Uploader
	// Wake is called after an index job was queued, to wake the workers.
	Wake func()
	// Decode turns image bytes into an image within pixel limits
	// (vision.Decode); default: the standard library's JPEG, PNG and GIF.
	Decode  func(io.Reader) (image.Image, error)
	Logger  *slog.Logger     // default slog.Default()
	Metrics *metrics.Metrics // default: a set on a registry of its own
	// Registry is what GET /metrics serves; default: the registry Metrics
	// was made on.
	Registry prometheus.Gatherer

	MaxImageBytes   int64 // an image body or fetched image over it is refused (413); default 32 MiB
	MaxCatalogBytes int64 // a catalog file over it is refused (413); default 8 GiB
	Now             func() time.Time
}

// Uploader takes a catalog file as a stream. Accept returns once the stream
// is safely spooled (or fails); parsing into the store goes on in the
// background (status uploading, then upload done or upload error).
type Uploader interface {
	Accept(ctx context.Context, keyID int64, catalogID string, r io.Reader) error
}

// Server is the v0 API as an http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// NewServer fills in cfg's defaults and routes the v0 API.
func NewServer(cfg Config) *Server {
	if cfg.Decode == nil {
		cfg.Decode = func(r io.Reader) (image.Image, error) {
			img, _, err := image.Decode(r)
			return img, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(nil)
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = 32 << 20
	}
	if cfg.MaxCatalogBytes <= 0 {
		cfg.MaxCatalogBytes = 8 << 30
	}
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}

	s.route("/v0/token", methods{"GET": s.open(s.token), "POST": s.open(s.token)})
	s.route("/v0/catalog", methods{"GET": s.authed(s.listCatalogs), "POST": s.authed(s.createCatalog)})
	s.route("/v0/catalog/{id}", methods{"GET": s.authed(s.getCatalog), "DELETE": s.authed(s.deleteCatalog)})
	s.route("/v0/catalog/{id}/upload", methods{"POST": s.authed(s.upload)})
	s.route("/v0/catalog/{id}/index", methods{"POST": s.authed(s.startIndex)})
	s.route("/v0/tag", methods{"POST": s.authed(s.tag)})
	s.route("/v0/search", methods{"POST": s.authed(s.search)})
	s.route("/v0/detect", methods{"POST": s.authed(s.detect)})
	s.route("/v0/usage", methods{"GET": s.authed(s.usage), "POST": s.authed(s.usage)})
	s.route("/v0/labels", methods{"GET": s.open(s.labels)})
	s.route("/healthz", methods{"GET": s.open(s.healthz)})
	prom := cfg.Metrics.Handler()
	if cfg.Registry != nil {
		prom = promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
	}
	s.route("/metrics", methods{"GET": prom})
	s.mux.Handle("/", s.open(func(w http.ResponseWriter, r *http.Request) error {
		return weft.E("http.route", weft.NotFound, weft.Msgf("No route %s %s: the v0 API is under /v0/ (token, catalog, tag, search, detect, usage, labels).", r.Method, r.URL.Path))
	}))
	return s
}

// route registers pattern and pattern/ (exactly, not the subtree below it).
func (s *Server) route(pattern string, m methods) {
	s.mux.Handle(pattern, m)
	s.mux.Handle(pattern+"/{$}", m)
}

// routeLabel is a request's route for logs and metrics: its pattern, the
// same with or without the trailing slash, never the raw path (whose ids
// would make every catalog a label of its own).
func routeLabel(pattern string) string {
	if pattern == "" {
		return "none" // ServeMux redirected an unclean path
	}
	return strings.TrimSuffix(pattern, "/{$}")
}

// methods dispatches one route by method, answering 405 in the v0 envelope
// where ServeMux would answer in plain text.
type methods map[string]http.Handler

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(m))
		for k := range m {
			allow = append(allow, k)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, envelope{status{
			Message: "Method " + r.Method + " is not allowed on " + r.URL.Path + ": use " + strings.Join(allow, " or ") + ".",
			Code:    http.StatusMethodNotAllowed,
		}})
		return
	}
	h.ServeHTTP(w, r)
}

// request is what the middleware learns from the handler, for the log line.
type request struct {
	keyID int64
	err   error
}

type requestKey struct{}

func requestOf(r *http.Request) *request {
	if rq, ok := r.Context().Value(requestKey{}).(*request); ok {
		return rq
	}
	return &request{}
}

// ServeHTTP logs and measures every request, by route pattern.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rq := &request{}
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, rq))
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err := weft.E("http.ServeHTTP", weft.Internal, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			if sw.code == 0 {
				s.fail(sw, r, err)
			} else {
				rq.err = err
			}
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		route := routeLabel(r.Pattern)
		d := time.Since(start)
		s.cfg.Metrics.ObserveRequest(route, code, d)
		attrs := []any{"method", r.Method, "route", route, "status", code, "duration", d, "key_id", rq.keyID}
		switch {
		case code >= 500:
			s.log.Error("request", append(attrs, "err", rq.err)...)
		case rq.err != nil:
			s.log.Info("request", append(attrs, "err", rq.err)...)
		default:
			s.log.Info("request", attrs...)
		}
	}()
	s.mux.ServeHTTP(sw, r)
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// open wraps a handler that needs no access token.
func (s *Server) open(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// authed wraps a handler that needs an access token, as
// "Authorization: Bearer <token>" or the bare "Authorization: <token>".
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, weft.Key) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := s.cfg.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		requestOf(r).keyID = key.ID
		if err := h(w, r, key); err != nil {
			s.fail(w, r, err)
		}
	})
}
