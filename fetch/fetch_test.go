package fetch

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftlabs/weft"
)

func TestPublic(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.216.34", true},
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"172.15.255.255", true},
		{"172.32.0.0", true},
		{"192.169.0.1", true},
		{"223.255.255.255", true},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"100.64.0.1", false},
		{"100.127.255.255", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"192.168.1.1", false},
		{"198.18.0.1", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},

		{"2606:4700:4700::1111", true},
		{"2001:4860:4860::8888", true},
		{"2a00:1450:4001:81b::200e", true},
		{"64:ff9b::808:808", true},        // NAT64 of 8.8.8.8
		{"::", false},                     // unspecified
		{"::1", false},                    // loopback
		{"::ffff:127.0.0.1", false},       // IPv4-mapped loopback
		{"::ffff:10.1.2.3", false},        // IPv4-mapped private
		{"::ffff:169.254.169.254", false}, // IPv4-mapped metadata service
		{"::ffff:8.8.8.8", true},          // IPv4-mapped public
		{"::127.0.0.1", false},            // IPv4-compatible, deprecated
		{"::8.8.8.8", false},              // IPv4-compatible, deprecated
		{"::ffff:0:127.0.0.1", false},     // IPv4-translated
		{"64:ff9b::7f00:1", false},        // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false},     // NAT64 of 169.254.169.254
		{"64:ff9b:1::808:808", false},     // local-use NAT64
		{"100::1", false},                 // discard-only
		{"fc00::1", false},                // unique local
		{"fd12:3456:789a::1", false},      // unique local
		{"fe80::1", false},                // link-local
		{"fe80::1%eth0", false},           // link-local with zone
		{"febf::1", false},                // link-local
		{"fec0::1", false},                // site-local, deprecated
		{"ff02::1", false},                // multicast
		{"ff05::1:3", false},              // multicast
		{"2001::1", false},                // Teredo
		{"2001:db8::1", false},            // documentation
		{"3fff::1", false},                // documentation
		{"2002:7f00:1::1", false},         // 6to4 of 127.0.0.1
		{"2002:808:808::1", false},        // 6to4, refused whole
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if got := public(a); got != tt.want {
			t.Errorf("public(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if public(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

// server is a loopback HTTP server that counts its requests.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func serve(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func image(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/jpeg")
	fmt.Fprint(w, "\xff\xd8 a jpeg, "+r.UserAgent())
}

// wantErr checks err's kind and that its caller-facing message holds each of
// parts.
func wantErr(t *testing.T, err error, kind weft.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if weft.KindOf(err) != kind {
		t.Errorf("kind %v, want %v (%v)", weft.KindOf(err), kind, err)
	}
	msg := weft.MessageOf(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q lacks %q", msg, p)
		}
	}
}

func TestFetch(t *testing.T) {
	s := serve(t, image)
	body, err := New(Options{AllowPrivate: true, UserAgent: "weft-test"}).Fetch(context.Background(), s.URL+"/a.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if want := "\xff\xd8 a jpeg, weft-test"; string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
}

func TestPrivateRefusedByDefault(t *testing.T) {
	s := serve(t, image)
	u, _ := url.Parse(s.URL)
	targets := []string{
		s.URL + "/a.jpg",
		"http://localhost:" + u.Port() + "/a.jpg", // the name is not trusted, its address is checked
	}
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		s6 := &server{Server: httptest.NewUnstartedServer(http.HandlerFunc(image))}
		s6.Listener.Close()
		s6.Listener = l
		s6.Start()
		t.Cleanup(s6.Close)
		targets = append(targets, s6.URL+"/a.jpg")
	}
	c := New(Options{})
	for _, target := range targets {
		_, err := c.Fetch(context.Background(), target)
		wantErr(t, err, weft.Invalid, target, "not a public internet address")
		var b *blockedError
		if !errors.As(err, &b) {
			t.Errorf("%s: cause %v is no blockedError", target, err)
		}
	}
	if n := s.hits.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests", n)
	}
	if _, err := New(Options{AllowPrivate: true}).Fetch(context.Background(), targets[1]); err != nil {
		t.Fatalf("with AllowPrivate: %v", err)
	}
}

// A redirect from an allowed host to loopback is refused at the redirect's
// dial. The test allows only the first server's address, standing for a
// public host.
func TestRedirectToPrivateRefused(t *testing.T) {
	inner := serve(t, image)
	innerURL, _ := url.Parse(inner.URL)
	outer := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.jpg":
			image(w, r)
		case "/by-address":
			http.Redirect(w, r, inner.URL+"/secret", http.StatusFound)
		case "/by-name":
			http.Redirect(w, r, "http://localhost:"+innerURL.Port()+"/secret", http.StatusMovedPermanently)
		}
	})
	allowed := netip.MustParseAddrPort(outer.Listener.Addr().String())
	c := New(Options{})
	c.check = func(ap netip.AddrPort) error {
		if ap == allowed {
			return nil
		}
		return checkPublic(ap)
	}
	if _, err := c.Fetch(context.Background(), outer.URL+"/ok.jpg"); err != nil {
		t.Fatalf("the allowed server: %v", err)
	}
	for _, path := range []string{"/by-address", "/by-name"} {
		_, err := c.Fetch(context.Background(), outer.URL+path)
		wantErr(t, err, weft.Invalid, "not a public internet address")
	}
	if n := inner.hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

func TestRedirects(t *testing.T) {
	var s *server
	s = serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/loop":
			http.Redirect(w, r, s.URL+"/loop", http.StatusFound)
		case r.URL.Path == "/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			var n int
			fmt.Sscanf(r.URL.Path, "/hop/%d", &n)
			if n == 0 {
				image(w, r)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("%s/hop/%d", s.URL, n-1), http.StatusTemporaryRedirect)
		}
	})
	c := New(Options{AllowPrivate: true, MaxRedirects: 3})
	ctx := context.Background()

	if _, err := c.Fetch(ctx, s.URL+"/hop/3"); err != nil {
		t.Fatalf("3 redirects with a limit of 3: %v", err)
	}
	s.hits.Store(0)
	_, err := c.Fetch(ctx, s.URL+"/hop/4")
	wantErr(t, err, weft.Invalid, "redirects more than 3 times")

	s.hits.Store(0)
	_, err = c.Fetch(ctx, s.URL+"/loop")
	wantErr(t, err, weft.Invalid, s.URL+"/loop", "redirects more than 3 times")
	if n := s.hits.Load(); n != 4 {
		t.Fatalf("a redirect loop made %d requests, want 4", n)
	}

	_, err = c.Fetch(ctx, s.URL+"/file")
	wantErr(t, err, weft.Invalid, "redirected to a URL that is not http or https")

	_, err = New(Options{AllowPrivate: true, MaxRedirects: -1}).Fetch(ctx, s.URL+"/hop/1")
	wantErr(t, err, weft.Invalid, "redirects more than 0 times")
}

func TestSizeLimit(t *testing.T) {
	const limit = 1000
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Query().Get("n"), "%d", &n)
		body := bytes.Repeat([]byte("x"), n)
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", fmt.Sprint(n))
			w.Write(body)
		case "/chunked":
			w.Write(body[:n/2])
			w.(http.Flusher).Flush()
			w.Write(body[n/2:])
		case "/gzip": // small on the wire, large once inflated
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(body)
			zw.Close()
		}
	})
	c := New(Options{AllowPrivate: true, MaxBytes: limit})
	for _, path := range []string{"/length", "/chunked", "/gzip"} {
		body, err := c.Fetch(context.Background(), fmt.Sprintf("%s%s?n=%d", s.URL, path, limit))
		if err != nil || len(body) != limit {
			t.Errorf("%s at the limit: %d bytes, %v", path, len(body), err)
		}
		_, err = c.Fetch(context.Background(), fmt.Sprintf("%s%s?n=%d", s.URL, path, limit+1))
		wantErr(t, err, weft.TooLarge, "larger than the limit of 1000 bytes")
	}
	_, err := New(Options{AllowPrivate: true}).Fetch(context.Background(), fmt.Sprintf("%s/length?n=%d", s.URL, 33<<20))
	wantErr(t, err, weft.TooLarge, "larger than the limit of 32 MiB")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.Write([]byte("start of a body"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := New(Options{AllowPrivate: true, Timeout: 100 * time.Millisecond})
	for _, path := range []string{"/slow-headers", "/slow-body"} {
		_, err := c.Fetch(context.Background(), s.URL+path)
		wantErr(t, err, weft.Invalid, s.URL+path, "no complete answer within 100ms")
	}
	// The caller's own deadline is a timeout too, not a cancellation.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := New(Options{AllowPrivate: true}).Fetch(ctx, s.URL+"/slow-headers")
	wantErr(t, err, weft.Invalid, "no complete answer before the request's deadline")
}

func TestFailures(t *testing.T) {
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscanf(r.URL.Path, "/%d", &code)
		w.WriteHeader(code)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/a.jpg"
	l.Close()

	c := New(Options{AllowPrivate: true})
	for _, code := range []int{204, 299} {
		if _, err := c.Fetch(context.Background(), fmt.Sprintf("%s/%d", s.URL, code)); err != nil {
			t.Errorf("HTTP %d: %v", code, err)
		}
	}
	for _, code := range []int{304, 403, 404, 500, 503} {
		u := fmt.Sprintf("%s/%d", s.URL, code)
		_, err := c.Fetch(context.Background(), u)
		wantErr(t, err, weft.Invalid, fmt.Sprintf("could not fetch image at %q: HTTP %d", u, code))
	}
	_, err = c.Fetch(context.Background(), closed)
	wantErr(t, err, weft.Invalid, closed, "the connection failed")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Fetch(ctx, s.URL+"/200")
	wantErr(t, err, weft.Unavailable, "cancelled")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not wrap context.Canceled", err)
	}
}

func TestBadURLs(t *testing.T) {
	c := New(Options{})
	for _, u := range []string{
		"",
		"not a url",
		"example.com/a.jpg",
		"//example.com/a.jpg",
		"/a.jpg",
		"http://",
		"http:///a.jpg",
		"https:a.jpg",
		"ftp://example.com/a.jpg",
		"file:///etc/passwd",
		"gopher://example.com/",
		"javascript:alert(1)",
		"data:image/png;base64,iVBORw0KGgo=",
		"http://[::1/a.jpg",
		"http://exa mple.com/a.jpg",
		"http://example.com/\x00",
	} {
		_, err := c.Fetch(context.Background(), u)
		wantErr(t, err, weft.Invalid, "give an absolute http or https URL")
	}
}
