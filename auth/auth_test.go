package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/sqlite"
)

func TestNewKeyPair(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		apiKey, secret, err := NewKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{apiKey, secret} {
			if len(s) < 16 {
				t.Fatalf("%q is shorter than 16 characters", s)
			}
			if _, err := base64.RawURLEncoding.DecodeString(s); err != nil {
				t.Fatalf("%q is not URL-safe base64: %v", s, err)
			}
			if seen[s] {
				t.Fatalf("%q came twice", s)
			}
			seen[s] = true
		}
	}
}

func TestHashes(t *testing.T) {
	want := sha256.Sum256([]byte("s3cret"))
	if !bytes.Equal(HashSecret("s3cret"), want[:]) || !bytes.Equal(HashToken("s3cret"), want[:]) {
		t.Fatal("hashes are not SHA-256")
	}
	if bytes.Equal(HashToken("a"), HashToken("b")) {
		t.Fatal("two tokens hash alike")
	}
}

// clock is a settable Service.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(t *testing.T) (*Service, *clock, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "weft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	return &Service{Store: db, Now: c.now}, c, dir
}

func wantUnauthorized(t *testing.T, err error, msg string) {
	t.Helper()
	if weft.KindOf(err) != weft.Unauthorized {
		t.Fatalf("err %v of kind %v, want unauthorized", err, weft.KindOf(err))
	}
	if got := weft.MessageOf(err); got != msg {
		t.Fatalf("message %q, want %q", got, msg)
	}
}

func TestIssueToken(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newService(t)
	apiKey, secret, err := s.CreateKey(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	token, ttl, err := s.IssueToken(ctx, apiKey, secret)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 16 || ttl != 24*time.Hour {
		t.Fatalf("token %q (%d chars) for %v, want at least 16 chars for 24h", token, len(token), ttl)
	}
	again, _, err := s.IssueToken(ctx, apiKey, secret)
	if err != nil || again == token {
		t.Fatalf("second token %q, %v: want a new one", again, err)
	}

	_, _, err = s.IssueToken(ctx, apiKey, secret+"x")
	wantUnauthorized(t, err, badCredentials)
	_, _, err = s.IssueToken(ctx, "no-such-key", secret)
	wantUnauthorized(t, err, badCredentials)
	_, _, err = s.IssueToken(ctx, secret, apiKey)
	wantUnauthorized(t, err, badCredentials)
	for _, pair := range [][2]string{{"", secret}, {apiKey, ""}, {"", ""}} {
		_, _, err = s.IssueToken(ctx, pair[0], pair[1])
		if weft.KindOf(err) != weft.Unauthorized || !strings.Contains(weft.MessageOf(err), "Missing api_key or api_secret") {
			t.Fatalf("IssueToken(%q, %q) = %v", pair[0], pair[1], err)
		}
	}

	if _, _, err := s.CreateKey(ctx, "  "); weft.KindOf(err) != weft.Invalid {
		t.Fatalf("CreateKey with a blank name: %v, want invalid", err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, clk, _ := newService(t)
	s.TokenTTL = time.Hour
	token := map[string]string{}
	for _, name := range []string{"shop", "other shop"} {
		apiKey, secret, err := s.CreateKey(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tok, ttl, err := s.IssueToken(ctx, apiKey, secret)
		if err != nil || ttl != time.Hour {
			t.Fatalf("IssueToken: %v, %v", ttl, err)
		}
		token[name] = tok
	}
	tok := token["shop"]

	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER   " + tok + " ", tok, " " + tok + "\t"} {
		k, err := s.Authenticate(ctx, h)
		if err != nil {
			t.Fatalf("Authenticate(%q): %v", h, err)
		}
		if k.Name != "shop" {
			t.Fatalf("Authenticate(%q) = key %q, want shop", h, k.Name)
		}
	}
	if k, err := s.Authenticate(ctx, "Bearer "+token["other shop"]); err != nil || k.Name != "other shop" {
		t.Fatalf("the other key's token gave %+v, %v", k, err)
	}

	tests := []struct{ header, msg string }{
		{"", missingToken},
		{"  ", missingToken},
		{"Bearer", missingToken},
		{"Bearer  ", missingToken},
		{"Bearer bearer", missingToken},
		{"Basic " + tok, badScheme},
		{"Token " + tok, badScheme},
		{"Bearer " + tok + "x", badToken},
		{tok[1:], badToken},
		{"Bearer a b", badToken},
		{"Bearer " + strings.Repeat("A", 10000), badToken},
	}
	for _, tt := range tests {
		_, err := s.Authenticate(ctx, tt.header)
		wantUnauthorized(t, err, tt.msg)
	}

	clk.t = clk.t.Add(time.Hour - time.Second)
	if _, err := s.Authenticate(ctx, tok); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clk.t = clk.t.Add(time.Second)
	_, err := s.Authenticate(ctx, tok)
	wantUnauthorized(t, err, badToken)
}

// Neither secrets nor tokens are written down anywhere, only their hashes.
func TestStoredHashed(t *testing.T) {
	ctx := context.Background()
	s, _, dir := newService(t)
	apiKey, secret, err := s.CreateKey(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := s.IssueToken(ctx, apiKey, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found = found || bytes.Contains(b, []byte(apiKey))
		for _, s := range []string{secret, token} {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("%s holds %q in the clear", f, s)
			}
		}
	}
	if !found {
		t.Fatalf("the API key is in none of %v: the search looks in the wrong place", files)
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer  abc ", "abc", "Basic abc", "Bearer", "Bearer a b", "\u00a0Bearer\u00a0x", "Bearer bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, msg := bearerToken(header)
		if (token == "") == (msg == "") {
			t.Fatalf("bearerToken(%q) = %q, %q: want exactly one", header, token, msg)
		}
		if token == "" {
			return
		}
		if len(token) > maxTokenLen || strings.ContainsFunc(token, unicode.IsSpace) {
			t.Fatalf("bearerToken(%q) passed %q", header, token)
		}
		for _, h := range []string{token, "Bearer " + token, "bearer\u0020\u0020" + token + " "} {
			if again, msg := bearerToken(h); again != token {
				t.Fatalf("bearerToken(%q) = %q, %q; want %q", h, again, msg, token)
			}
		}
	})
}
