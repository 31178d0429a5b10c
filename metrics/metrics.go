// Package metrics holds Weft's Prometheus metrics: HTTP requests and their
// latency by route, the index job queue, and images indexed or failed. The
// http package observes requests; the worker counts images; the lead sets
// the function that reads the queue depth.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is Weft's set of collectors, registered on one registry.
type Metrics struct {
	// Requests counts HTTP requests by route pattern and status code.
	Requests *prometheus.CounterVec
	// Latency observes HTTP request durations by route pattern.
	Latency *prometheus.HistogramVec
	// ImagesIndexed and ImagesFailed count catalog images the worker
	// embedded, or gave up on (fetch or decode failed).
	ImagesIndexed prometheus.Counter
	ImagesFailed  prometheus.Counter

	reg      prometheus.Registerer
	gatherer prometheus.Gatherer
}

// New makes Weft's metrics and registers them on reg. A nil reg gets a
// fresh registry of its own. Handler serves reg when it can also gather
// (a *prometheus.Registry does), the default gatherer otherwise.
func New(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern.",
			// Model inference and catalog uploads take seconds, so the
			// default buckets (up to 10 s) are extended.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route"}),
		ImagesIndexed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_images_indexed_total",
			Help: "Catalog images embedded and stored.",
		}),
		ImagesFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_images_failed_total",
			Help: "Catalog images that could not be fetched or decoded.",
		}),
		reg:      reg,
		gatherer: prometheus.DefaultGatherer,
	}
	reg.MustRegister(m.Requests, m.Latency, m.ImagesIndexed, m.ImagesFailed)
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	return m
}

// SetQueueDepth makes the index queue depth gauge ask depth at every
// scrape, so that it is never stale; the store's count is the truth. Call
// it once.
func (m *Metrics) SetQueueDepth(depth func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_index_queue_depth",
		Help: "Index jobs queued or running.",
	}, depth))
}

// ObserveRequest records one finished HTTP request.
func (m *Metrics) ObserveRequest(route string, code int, d time.Duration) {
	m.Requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.Latency.WithLabelValues(route).Observe(d.Seconds())
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}
