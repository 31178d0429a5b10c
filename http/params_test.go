package http

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/weftlabs/weft"
)

// encodings builds a POST request carrying vals the four ways a client
// may send parameters.
var encodings = map[string]func(t testing.TB, vals map[string]string, image []byte) *http.Request{
	"query": func(t testing.TB, vals map[string]string, _ []byte) *http.Request {
		q := url.Values{}
		for k, v := range vals {
			q.Set(k, v)
		}
		return httptest.NewRequest("POST", "/v0/search?"+q.Encode(), nil)
	},
	"form": func(t testing.TB, vals map[string]string, _ []byte) *http.Request {
		q := url.Values{}
		for k, v := range vals {
			q.Set(k, v)
		}
		r := httptest.NewRequest("POST", "/v0/search", strings.NewReader(q.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	},
	"json": func(t testing.TB, vals map[string]string, _ []byte) *http.Request {
		b, err := json.Marshal(vals)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/v0/search", bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		return r
	},
	"multipart": func(t testing.TB, vals map[string]string, image []byte) *http.Request {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range vals {
			if err := mw.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if image != nil {
			fw, err := mw.CreateFormFile("image", "photo.jpg")
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(image)
		}
		mw.Close()
		r := httptest.NewRequest("POST", "/v0/search", &b)
		r.Header.Set("Content-Type", mw.FormDataContentType())
		return r
	},
}

func TestReadParamsEveryEncoding(t *testing.T) {
	vals := map[string]string{"catalog_id": "cdae7e788f1e4982", "n_results": "10", "url": "http://127.0.0.1/a b&c.jpg"}
	for name, enc := range encodings {
		t.Run(name, func(t *testing.T) {
			p, err := readParams(enc(t, vals, nil), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range vals {
				if got := p.get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestReadParamsJSONNumbers(t *testing.T) {
	r := httptest.NewRequest("POST", "/v0/search", strings.NewReader(`{"n_results": 20, "catalog_id": "x", "flag": true, "none": null}`))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	p, err := readParams(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if p.get("n_results") != "20" || p.get("flag") != "true" || p.values.Has("none") {
		t.Errorf("got %v", p.values)
	}
}

func TestReadParamsBodyWinsOverQuery(t *testing.T) {
	r := httptest.NewRequest("POST", "/v0/catalog?name=query", strings.NewReader("name=body"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p, err := readParams(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.get("name"); got != "body" {
		t.Errorf("name = %q, want the body's", got)
	}
}

func TestReadParamsImage(t *testing.T) {
	img := bytes.Repeat([]byte{0xff}, 1000)
	r := encodings["multipart"](t, map[string]string{"catalog_id": "c"}, img)
	p, err := readParams(r, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.image, img) || p.get("catalog_id") != "c" {
		t.Errorf("image %d bytes, catalog_id %q", len(p.image), p.get("catalog_id"))
	}
	_, err = readParams(encodings["multipart"](t, nil, img), 999)
	if weft.KindOf(err) != weft.TooLarge || !strings.Contains(weft.MessageOf(err), "999 bytes") {
		t.Errorf("image over the limit: %v (%v), want TooLarge naming the limit", err, weft.KindOf(err))
	}
}

func TestReadParamsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		kind           weft.Kind
		says           string
	}{
		{"bad json", "application/json", `{"a":`, weft.Invalid, "JSON"},
		{"json array", "application/json", `[1,2]`, weft.Invalid, "object"},
		{"json object value", "application/json", `{"url":{"a":1}}`, weft.Invalid, `"url" must be a string or a number`},
		{"trailing json", "application/json", `{"a":"b"} {}`, weft.Invalid, "JSON"},
		{"bad form escape", "application/x-www-form-urlencoded", "url=%zz", weft.Invalid, "form body"},
		{"bad content type", "multipart/form-data; boundary=\"", "x", weft.Invalid, "Content-Type"},
		{"unsupported type", "text/plain", "url=x", weft.Invalid, "Unsupported Content-Type"},
		{"multipart without boundary", "multipart/form-data", "x", weft.Invalid, "multipart"},
		{"truncated multipart", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue", weft.Invalid, "request body"},
		{"form over the limit", "application/x-www-form-urlencoded", "a=" + strings.Repeat("x", maxFieldBytes), weft.TooLarge, "1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v0/tag", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.ct)
			_, err := readParams(r, 1<<20)
			if weft.KindOf(err) != tc.kind || !strings.Contains(weft.MessageOf(err), tc.says) {
				t.Errorf("got %v (kind %v, message %q), want kind %v saying %q", err, weft.KindOf(err), weft.MessageOf(err), tc.kind, tc.says)
			}
		})
	}
}

func TestReadParamsBodyLimit(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/v0/tag", strings.NewReader("url="+strings.Repeat("x", 5000)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	_, err := readParams(r, 1<<20)
	if weft.KindOf(err) != weft.TooLarge || !strings.Contains(weft.MessageOf(err), "4 KiB") {
		t.Errorf("got %v, want TooLarge naming 4 KiB", err)
	}
}

func TestNResults(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 50, true}, {"1", 1, true}, {"1000", 1000, true}, {"0", 0, false},
		{"1001", 0, false}, {"-5", 0, false}, {"ten", 0, false}, {"10.5", 0, false},
	} {
		n, err := nResults(tc.in)
		if (err == nil) != tc.ok || n != tc.want {
			t.Errorf("nResults(%q) = %d, %v", tc.in, n, err)
		}
		if err != nil && (weft.KindOf(err) != weft.Invalid || !strings.Contains(weft.MessageOf(err), "from 1 to 1000")) {
			t.Errorf("nResults(%q): %v does not say the range", tc.in, err)
		}
	}
}

// FuzzParams feeds readParams arbitrary bodies under each content type it
// knows: it must never panic, and must refuse only as Invalid or TooLarge
// with a message for the caller.
func FuzzParams(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("api_key=a&api_secret=b"))
	f.Add("application/json", []byte(`{"url":"http://x/y.jpg","n_results":5}`))
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"catalog_id\"\r\n\r\nabc\r\n--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n\r\n\xff\xd8\r\n--b--\r\n"))
	f.Add("", []byte("name=x%20y"))
	f.Add("text/plain", []byte("hello"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r := httptest.NewRequest("POST", "/v0/search?n_results=3", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		p, err := readParams(r, 1<<10)
		if err != nil {
			if k := weft.KindOf(err); k != weft.Invalid && k != weft.TooLarge {
				t.Fatalf("kind %v for %v", k, err)
			}
			if weft.MessageOf(err) == "" {
				t.Fatal("no message")
			}
			return
		}
		if len(p.image) > 1<<10 {
			t.Fatalf("image of %d bytes passed a 1 KiB limit", len(p.image))
		}
		if !slices.Contains(p.values["n_results"], "3") {
			t.Fatalf("query parameter lost: %v", p.values)
		}
	})
}

// FuzzParamsRoundTrip sends one parameter each of the four ways: each must
// read back exactly as sent.
func FuzzParamsRoundTrip(f *testing.F) {
	f.Add("name", "My Awesome Catalog")
	f.Add("url", "https://cdnc.lystit.com/photos/notre-shop/7807782918-Washed%20Black-b87a8c25-.jpeg")
	f.Add("n_results", "007")
	f.Add("a&b=c", "x=y&z;")
	f.Fuzz(func(t *testing.T, key, val string) {
		// JSON cannot carry invalid UTF-8, nor MIME headers a control
		// character, quote or backslash in a field name; the image field is
		// a file, not a parameter.
		if key == "" || key == "image" || !utf8.ValidString(key) || !utf8.ValidString(val) ||
			strings.ContainsFunc(key, func(r rune) bool { return unicode.IsControl(r) || r == '"' || r == '\\' }) {
			t.Skip()
		}
		for name, enc := range encodings {
			p, err := readParams(enc(t, map[string]string{key: val}, nil), 1<<10)
			if err != nil {
				if weft.KindOf(err) == weft.TooLarge {
					continue
				}
				t.Fatalf("%s: %v", name, err)
			}
			if got := p.values[key]; len(got) != 1 || got[0] != val {
				t.Fatalf("%s: %q = %q, want [%q]", name, key, got, val)
			}
		}
	})
}
