package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHandlerServesObservations(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ObserveRequest("/v0/tag", 200, 30*time.Millisecond)
	m.ObserveRequest("/v0/tag", 200, 2*time.Second)
	m.ObserveRequest("/v0/catalog/{id}", 404, time.Millisecond)
	depth := 2.0
	m.SetQueueDepth(func() float64 { depth++; return depth })
	m.ImagesIndexed.Add(5)
	m.ImagesFailed.Inc()

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`weft_http_requests_total{code="200",route="/v0/tag"} 2`,
		`weft_http_requests_total{code="404",route="/v0/catalog/{id}"} 1`,
		`weft_http_request_duration_seconds_count{route="/v0/tag"} 2`,
		`weft_http_request_duration_seconds_bucket{route="/v0/tag",le="2.5"} 2`,
		`weft_http_request_duration_seconds_bucket{route="/v0/tag",le="1"} 1`,
		`weft_index_queue_depth 3`,
		`weft_images_indexed_total 5`,
		`weft_images_failed_total 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q:\n%s", want, body)
		}
	}
}

func TestTwoSetsOnSeparateRegistries(t *testing.T) {
	// Each server in a test gets its own registry; registering twice on one
	// would panic, registering on fresh ones must not.
	a, b := New(nil), New(nil)
	a.ImagesIndexed.Inc()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), "weft_images_indexed_total 1") {
		t.Error("a's count leaked into b's registry")
	}
}
