package tsv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/weftlabs/weft"
)

// want is a Row as the tests spell it: err is a substring of the message.
type want struct {
	line         int
	iid, url, md string
	err          string
}

func readAll(t testing.TB, r io.Reader) []Row {
	t.Helper()
	var rows []Row
	tr := NewReader(r)
	for {
		row, err := tr.Next()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		rows = append(rows, row)
	}
}

func TestReader(t *testing.T) {
	const u1, u2 = "http://cdn.cool.images/url1.jpeg", "https://cdn.cool.images/url2.jpeg"
	long := strings.Repeat("x", MaxLineBytes)
	tests := []struct {
		name string
		in   string
		want []want
	}{
		{"empty", "", nil},
		{"v0 page example",
			"1\t" + u1 + "\t{\"price\": 19.99, \"SKU\": 120984, \"categories\": [\"sweatshirt\", \"red\"]}\n" +
				"2\t" + u2 + "\t{\"price\": 49.99, \"SKU\": 231235}\n",
			[]want{
				{line: 1, iid: "1", url: u1, md: `{"price": 19.99, "SKU": 120984, "categories": ["sweatshirt", "red"]}`},
				{line: 2, iid: "2", url: u2, md: `{"price": 49.99, "SKU": 231235}`},
			}},
		{"no metadata, no final newline", "a\t" + u1, []want{{line: 1, iid: "a", url: u1}}},
		{"empty metadata field", "a\t" + u1 + "\t  \n", []want{{line: 1, iid: "a", url: u1}}},
		{"CRLF and BOM", "\uFEFFa\t" + u1 + "\t{\"k\":1}\r\nb\t" + u2 + "\r\n",
			[]want{{line: 1, iid: "a", url: u1, md: `{"k":1}`}, {line: 2, iid: "b", url: u2}}},
		{"blank lines keep numbering", "\n  \r\na\t" + u1 + "\n\n\nb\t" + u2 + "\n\n",
			[]want{{line: 3, iid: "a", url: u1}, {line: 6, iid: "b", url: u2}}},
		{"header skipped", "id\turl\tmetadata\na\t" + u1 + "\n", []want{{line: 2, iid: "a", url: u1}}},
		{"v0 page header skipped", "\uFEFFImage ID\tImage URL\tJSON-readable metadata\r\na\t" + u1 + "\r\n",
			[]want{{line: 2, iid: "a", url: u1}}},
		{"header after blank line skipped", "\nimage_id\timage_url\na\t" + u1 + "\n", []want{{line: 3, iid: "a", url: u1}}},
		{"header-like line later is an error", "a\t" + u1 + "\nid\turl\n",
			[]want{{line: 1, iid: "a", url: u1}, {line: 2, err: "not an absolute http or https URL"}}},
		{"relative URL on line 1 is no header", "a\timages/1.jpg\n", []want{{line: 1, err: "not an absolute"}}},
		{"metadata kept byte-exact", "a\t" + u1 + "\t {\"b\":2,  \"a\":[1, 2.50]} \n",
			[]want{{line: 1, iid: "a", url: u1, md: `{"b":2,  "a":[1, 2.50]}`}}},
		{"any JSON value is metadata", "a\t" + u1 + "\t\"red\"\nb\t" + u2 + "\t[1,2]\nc\t" + u1 + "\t3\n",
			[]want{{line: 1, iid: "a", url: u1, md: `"red"`}, {line: 2, iid: "b", url: u2, md: `[1,2]`}, {line: 3, iid: "c", url: u1, md: `3`}}},
		{"ids and URLs trimmed", "  a b \t " + u1 + " \n", []want{{line: 1, iid: "a b", url: u1}}},
		{"upper-case scheme", "a\tHTTPS://Example.COM/x.jpg\n", []want{{line: 1, iid: "a", url: "HTTPS://Example.COM/x.jpg"}}},
		{"bad rows do not stop good ones",
			"a\t" + u1 + "\n" +
				"b\n" +
				"\t" + u1 + "\n" +
				"c\t\n" +
				"d\tftp://example.com/x.jpg\n" +
				"e\t//example.com/x.jpg\n" +
				"f\thttp:///x.jpg\n" +
				"g\t" + u1 + "\t{price: 3}\n" +
				"h\t" + u1 + "\t{}\textra\n" +
				"i\x00\t" + u1 + "\n" +
				"j\xff\t" + u1 + "\n" +
				"k\x01\t" + u1 + "\n" +
				"l\thttp://exa mple.com/\n" +
				"m\t" + u2 + "\n",
			[]want{
				{line: 1, iid: "a", url: u1},
				{line: 2, err: "missing the image URL"},
				{line: 3, err: "empty image id"},
				{line: 4, err: "empty image URL"},
				{line: 5, err: "not an absolute http or https URL"},
				{line: 6, err: "not an absolute http or https URL"},
				{line: 7, err: "not an absolute http or https URL"},
				{line: 8, err: "not valid JSON"},
				{line: 9, err: "4 tab-separated fields"},
				{line: 10, err: "NUL byte"},
				{line: 11, err: "not valid UTF-8"},
				{line: 12, err: "control character"},
				{line: 13, err: "not an absolute"},
				{line: 14, iid: "m", url: u2},
			}},
		{"id too long", strings.Repeat("i", MaxIDBytes+1) + "\t" + u1 + "\n", []want{{line: 1, err: "image id is longer"}}},
		{"line at the bound is read", "a\t" + u1 + "\t\"" + long[:MaxLineBytes-len("a\t"+u1+"\t\"\"")] + "\"\r\n",
			[]want{{line: 1, iid: "a", url: u1, md: `"` + long[:MaxLineBytes-len("a\t"+u1+"\t\"\"")] + `"`}}},
		{"over-long line skipped to the next newline",
			"a\t" + u1 + "\t\"" + long + "\"\nb\t" + u2 + "\n",
			[]want{{line: 1, err: "longer than"}, {line: 2, iid: "b", url: u2}}},
		{"over-long last line without newline", "b\t" + u2 + "\n" + long + "x",
			[]want{{line: 1, iid: "b", url: u2}, {line: 2, err: "longer than"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := readAll(t, strings.NewReader(tt.in))
			if len(rows) != len(tt.want) {
				t.Fatalf("got %d rows, want %d: %+v", len(rows), len(tt.want), rows)
			}
			for i, w := range tt.want {
				got := rows[i]
				if got.Line != w.line {
					t.Errorf("row %d: line %d, want %d", i, got.Line, w.line)
				}
				if w.err != "" {
					if got.Err == nil || !strings.Contains(got.Err.Error(), w.err) {
						t.Errorf("line %d: err %v, want one containing %q", got.Line, got.Err, w.err)
					} else if weft.KindOf(got.Err) != weft.Invalid {
						t.Errorf("line %d: err kind %v, want invalid", got.Line, weft.KindOf(got.Err))
					}
					continue
				}
				if got.Err != nil {
					t.Errorf("line %d: unexpected err %v", got.Line, got.Err)
				}
				if got.IID != w.iid || got.URL != w.url || string(got.Metadata) != w.md {
					t.Errorf("line %d: got %q %q %q, want %q %q %q", got.Line, got.IID, got.URL, got.Metadata, w.iid, w.url, w.md)
				}
				if w.md == "" && got.Metadata != nil {
					t.Errorf("line %d: metadata %q, want nil", got.Line, got.Metadata)
				}
			}
		})
	}
}

// Rows must stay valid after later reads reuse the line buffer.
func TestRowsDoNotAliasBuffer(t *testing.T) {
	rows := readAll(t, strings.NewReader("a\thttp://x.io/1\t{\"n\":1}\nb\thttp://x.io/2\t{\"n\":2}\n"))
	if len(rows) != 2 || string(rows[0].Metadata) != `{"n":1}` || string(rows[1].Metadata) != `{"n":2}` {
		t.Fatalf("rows = %+v", rows)
	}
}

// A reader's error other than EOF ends the stream and stays.
func TestReadError(t *testing.T) {
	boom := errors.New("connection reset")
	tr := NewReader(io.MultiReader(strings.NewReader("a\thttp://x.io/1\nb\thttp"), &errReader{boom}))
	row, err := tr.Next()
	if err != nil || row.IID != "a" {
		t.Fatalf("first row = %+v, %v", row, err)
	}
	for range 2 {
		if _, err := tr.Next(); !errors.Is(err, boom) {
			t.Fatalf("Next = %v, want %v", err, boom)
		}
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// genReader makes a catalog file of n rows on the fly, every 1000th row
// malformed, plus one line of 8 MiB, so that nothing holds the whole file.
type genReader struct {
	n, i int
	pend []byte
}

const hugeLine = 500_001

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.pend) == 0 {
		if g.i == g.n {
			return 0, io.EOF
		}
		g.i++
		switch {
		case g.i == hugeLine:
			g.pend = append(bytes.Repeat([]byte("y"), 8<<20), '\n')
		case g.i%1000 == 0:
			g.pend = fmt.Appendf(nil, "bad-%d\tnot a url\n", g.i)
		default:
			g.pend = fmt.Appendf(nil, "sku-%d\thttps://cdn.example.com/img/%d.jpg\t{\"price\": %d.99, \"tags\": [\"a\", \"b\"]}\r\n", g.i, g.i, g.i%100)
		}
	}
	n := copy(p, g.pend)
	g.pend = g.pend[n:]
	return n, nil
}

func TestMillionRowsBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows")
	}
	const n = 1_000_000
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	tr := NewReader(&genReader{n: n})
	good, bad, last := 0, 0, 0
	for {
		row, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if row.Line <= last {
			t.Fatalf("line %d after %d", row.Line, last)
		}
		last = row.Line
		if row.Err != nil {
			bad++
		} else {
			good++
		}
		if row.Line%50_000 == 0 || row.Line == hugeLine {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	if wantBad := n/1000 + 1; good != n-wantBad || bad != wantBad || last != n {
		t.Fatalf("good %d, bad %d, last line %d; want %d, %d, %d", good, bad, last, n-wantBad, wantBad, n)
	}
	// The generator's 8 MiB line and the reader's 1 MiB line buffer are the
	// only large allocations alive at once; the file is some 80 MiB.
	const bound = 32 << 20
	if peak > base+bound {
		t.Fatalf("heap peaked at %d MiB above the start, bound %d MiB", (peak-base)>>20, bound>>20)
	}
	t.Logf("heap peak %.1f MiB above the start over %d rows", float64(peak-base)/(1<<20), n)
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"",
		"1\thttp://cdn.cool.images/url1.jpeg\t{\"price\": 19.99}\n2\thttps://x.io/2.jpg\n",
		"\uFEFFid\turl\tmetadata\r\na\thttp://x.io/a\t[1, 2]\r\n",
		"a\t\n\tb\nc\thttp://x\t{\nd\x00\thttp://x\n\xff\n",
		"a\thttp://x.io/\t1\t2\n \n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := readAll(t, bytes.NewReader(data))
		if len(rows) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d rows from %d newlines", len(rows), bytes.Count(data, []byte("\n")))
		}
		var again bytes.Buffer
		var good []Row
		last := 0
		for _, r := range rows {
			if r.Line <= last {
				t.Fatalf("line %d after line %d", r.Line, last)
			}
			last = r.Line
			if r.Err != nil {
				if r.IID != "" || r.URL != "" || r.Metadata != nil {
					t.Fatalf("line %d: error row carries data: %+v", r.Line, r)
				}
				continue
			}
			if r.IID == "" || r.URL == "" || (r.Metadata != nil && len(r.Metadata) == 0) {
				t.Fatalf("line %d: incomplete good row %+v", r.Line, r)
			}
			good = append(good, r)
			again.WriteString(r.IID + "\t" + r.URL)
			if r.Metadata != nil {
				again.WriteString("\t" + string(r.Metadata))
			}
			again.WriteString("\n")
		}
		back := readAll(t, &again)
		if len(back) != len(good) {
			t.Fatalf("%d good rows came back as %d", len(good), len(back))
		}
		for i, r := range back {
			g := good[i]
			if r.Err != nil || r.Line != i+1 || r.IID != g.IID || r.URL != g.URL || !bytes.Equal(r.Metadata, g.Metadata) {
				t.Fatalf("row %+v came back as %+v", g, r)
			}
		}
	})
}
