// Package fetch is Weft's one way out to the internet: it gets images by URL
// for the indexer and the query endpoints, within limits of size, time and
// redirects, and only from public addresses.
//
// The address check is made on the address actually dialled, after name
// resolution, for the first request and every redirect alike, so neither a
// host name that resolves to 127.0.0.1 nor a redirect to 169.254.169.254
// gets through. Proxies named in the environment are ignored: a proxy would
// dial for us, out of reach of the check.
//
// Every failure to get the image (a refused address, a bad scheme, a
// connection refused, a timeout, an HTTP error status) is of kind
// weft.Invalid: from the API's view it is the URL the caller gave that does
// not lead to an image, and the message says which URL and why. A body over
// the limit is weft.TooLarge. Only the caller cancelling its context is not
// the URL's fault: that error is weft.Unavailable and wraps
// context.Canceled. (A caller's deadline running out counts as a timeout.)
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/weftlabs/weft"
)

// Options are the limits of a Client. Zero values take the defaults.
type Options struct {
	// AllowPrivate lets the client reach loopback, private and other
	// non-public addresses: for tests and closed networks only.
	AllowPrivate bool
	MaxBytes     int64         // largest body read; default 32 MiB
	Timeout      time.Duration // whole fetch, redirects and body included; default 15 s
	MaxRedirects int           // default 5; negative for none
	UserAgent    string
}

// Client fetches images; it implements weft.Fetcher and is safe for
// concurrent use.
type Client struct {
	opts Options
	hc   *http.Client
	// check vets each address about to be dialled.
	check func(netip.AddrPort) error
}

var _ weft.Fetcher = (*Client)(nil)

// New returns a Client with the given limits.
func New(o Options) *Client {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 32 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = 5
	}
	if o.UserAgent == "" {
		o.UserAgent = "Weft image fetcher (+https://github.com/weftlabs/weft)"
	}
	c := &Client{opts: o, check: checkPublic}
	if o.AllowPrivate {
		c.check = func(netip.AddrPort) error { return nil }
	}
	dialer := &net.Dialer{
		Timeout:   o.Timeout,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			return c.check(ap)
		},
	}
	c.hc = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    o.Timeout,
			ResponseHeaderTimeout:  o.Timeout,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    16,
			IdleConnTimeout:        90 * time.Second,
		},
		Timeout: o.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > o.MaxRedirects {
				return errTooManyRedirects
			}
			return checkScheme(req.URL)
		},
	}
	return c
}

var (
	errTooManyRedirects = errors.New("too many redirects")
	errScheme           = errors.New("not an http or https URL")
)

// blockedError is a dial refused by the address check.
type blockedError struct{ addr netip.Addr }

func (e *blockedError) Error() string {
	return fmt.Sprintf("address %v is not public", e.addr)
}

func checkPublic(ap netip.AddrPort) error {
	if !public(ap.Addr()) {
		return &blockedError{ap.Addr()}
	}
	return nil
}

func checkScheme(u *url.URL) error {
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errScheme
	}
	return nil
}

// Fetch returns the body of a 2xx answer to GET rawURL.
func (c *Client) Fetch(ctx context.Context, rawURL string) ([]byte, error) {
	const op = "fetch.Fetch"
	shown := clip(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err == nil {
		err = checkScheme(req.URL)
	}
	if err != nil {
		return nil, weft.E(op, weft.Invalid, err,
			weft.Msgf("could not fetch image at %q: give an absolute http or https URL", shown))
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	req.Header.Set("Accept", "image/*")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.failure(ctx, op, shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("could not fetch image at %q: HTTP %d", shown, resp.StatusCode))
	}
	if resp.ContentLength > c.opts.MaxBytes {
		return nil, c.tooLarge(op, shown)
	}
	// Read one byte past the limit to tell "at the limit" from "over it";
	// the length a server announces is not trusted.
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBytes+1))
	if err != nil {
		return nil, c.failure(ctx, op, shown, err)
	}
	if int64(len(body)) > c.opts.MaxBytes {
		return nil, c.tooLarge(op, shown)
	}
	return body, nil
}

func (c *Client) tooLarge(op, shown string) error {
	return weft.E(op, weft.TooLarge,
		weft.Msgf("image at %q is larger than the limit of %s", shown, size(c.opts.MaxBytes)))
}

// failure classifies an error of the HTTP exchange. Causes stay out of the
// message: they may name internal addresses.
func (c *Client) failure(ctx context.Context, op, shown string, err error) error {
	var blocked *blockedError
	var ne net.Error
	why := "the connection failed"
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return weft.E(op, weft.Unavailable, weft.Msgf("fetching image at %q was cancelled", shown), ctx.Err())
	case errors.As(err, &blocked):
		why = "its host is not a public internet address; give a URL on the public internet"
	case errors.Is(err, errTooManyRedirects):
		why = fmt.Sprintf("it redirects more than %d times", max(c.opts.MaxRedirects, 0))
	case errors.Is(err, errScheme):
		why = "redirected to a URL that is not http or https"
	case ctx.Err() != nil:
		why = "no complete answer before the request's deadline"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		why = fmt.Sprintf("no complete answer within %v", c.opts.Timeout)
	case isDNS(err):
		why = "its host name does not resolve"
	}
	return weft.E(op, weft.Invalid, err, weft.Msgf("could not fetch image at %q: %s", shown, why))
}

func isDNS(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}

func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// clip shortens a URL quoted back to the caller.
func clip(s string) string {
	if len(s) <= 300 {
		return s
	}
	return s[:300] + "..."
}
