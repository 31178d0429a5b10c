// Package tsv parses v0 catalog files: one image a line, tab-delimited as
// image id (required), image URL (required), JSON metadata (optional).
//
// The parser streams: memory stays bounded whatever the file's size, and a
// malformed line comes back as a Row with Err set so that the caller can log
// it ("line 12: ...") and go on with the rest.
//
// Choices the v0 page leaves open, made here:
//   - Metadata may be any JSON value ("JSON-readable"), not only an object;
//     it is kept byte for byte, trimmed of surrounding JSON whitespace.
//   - Ids and URLs are trimmed of surrounding white space.
//   - A line of white space only is skipped, with no Row.
//   - A UTF-8 byte order mark at the start of the file is dropped, and a CR
//     before each LF.
//   - The first non-blank line is a header, skipped with no Row, when it has
//     two or three fields and its first two are plain words (letters, digits,
//     spaces, '_' or '-'), such as "id<TAB>url<TAB>metadata" or the v0 page's
//     "Image ID<TAB>Image URL<TAB>JSON-readable metadata". A row's second
//     field must be a URL, which always holds ':' or '/', so no row that
//     could be right is ever taken for a header.
//   - More than three fields is an error rather than a guess: JSON needs no
//     tab, so a tab inside the metadata is almost surely a broken export.
package tsv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/weftlabs/weft"
)

// MaxLineBytes bounds a line, its CR LF excluded. A longer line is reported
// as an error and skipped up to the next newline without being held.
const MaxLineBytes = 1 << 20

// MaxIDBytes bounds an image id.
const MaxIDBytes = 512

// Row is one line of a catalog file: either a good row (Err nil) or the
// reason the line was rejected.
type Row struct {
	Line     int // 1-based line number in the file
	IID      string
	URL      string
	Metadata json.RawMessage // nil when the line had none
	// Err, when set, is a *weft.Error of kind Invalid whose text is fit for
	// the catalog's error log; it does not repeat the line number.
	Err error
}

// Reader reads Rows from a catalog file.
type Reader struct {
	br      *bufio.Reader
	buf     []byte // the current line; reused, so Rows never alias it
	line    int
	started bool // a non-blank line was seen: the header chance is gone
	err     error
}

// NewReader returns a Reader of r. It buffers r itself.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next good or malformed row, io.EOF after the last one,
// or the underlying reader's error, which is then returned for good.
func (r *Reader) Next() (Row, error) {
	for r.err == nil {
		line, tooLong, err := r.readLine()
		if err != nil {
			r.err = err
			break
		}
		row := Row{Line: r.line}
		if tooLong {
			r.started = true
			row.Err = invalid("line is longer than %d bytes", MaxLineBytes)
			return row, nil
		}
		if r.line == 1 {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		first := !r.started
		r.started = true
		if bytes.IndexByte(line, 0) >= 0 {
			row.Err = invalid("line holds a NUL byte; a catalog file is text")
			return row, nil
		}
		if !utf8.Valid(line) {
			row.Err = invalid("line is not valid UTF-8; save the catalog file as UTF-8")
			return row, nil
		}
		fields := strings.Split(string(line), "\t")
		if first && isHeader(fields) {
			continue
		}
		row.IID, row.URL, row.Metadata, row.Err = parseFields(fields)
		if row.Err != nil {
			row.IID, row.URL, row.Metadata = "", "", nil
		}
		return row, nil
	}
	return Row{}, r.err
}

// readLine returns the next line without its LF or CR LF, counting it. A line
// over MaxLineBytes is read to its end but not kept: tooLong says so.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	r.buf = r.buf[:0]
	read := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !tooLong {
			if len(r.buf)+len(chunk) > MaxLineBytes+len("\r\n") {
				tooLong = true
				r.buf = r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		// A last line without a newline is a line; EOF comes on the next call.
		if err != nil && !(errors.Is(err, io.EOF) && read) {
			return nil, false, err
		}
		break
	}
	r.line++
	line = bytes.TrimSuffix(r.buf, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, tooLong || len(line) > MaxLineBytes, nil
}

func isHeader(fields []string) bool {
	if len(fields) < 2 || len(fields) > 3 {
		return false
	}
	for _, f := range fields[:2] {
		f = strings.TrimSpace(f)
		if f == "" {
			return false
		}
		for _, c := range f {
			if !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != ' ' && c != '_' && c != '-' {
				return false
			}
		}
	}
	return true
}

func parseFields(fields []string) (iid, rawURL string, meta json.RawMessage, err error) {
	const format = "expected image id<TAB>image URL<TAB>optional JSON metadata"
	switch {
	case len(fields) < 2:
		return "", "", nil, invalid("missing the image URL; %s", format)
	case len(fields) > 3:
		return "", "", nil, invalid("%d tab-separated fields, at most 3 allowed; %s", len(fields), format)
	}
	iid = strings.TrimFunc(fields[0], isSpace)
	switch {
	case iid == "":
		return "", "", nil, invalid("empty image id; %s", format)
	case len(iid) > MaxIDBytes:
		return "", "", nil, invalid("image id is longer than %d bytes", MaxIDBytes)
	case strings.IndexFunc(iid, unicode.IsControl) >= 0:
		return "", "", nil, invalid("image id %q holds a control character", iid)
	}
	rawURL = strings.TrimFunc(fields[1], isSpace)
	if err := checkURL(rawURL); err != nil {
		return "", "", nil, err
	}
	if len(fields) == 3 {
		m := strings.Trim(fields[2], " \t\r\n")
		if m != "" {
			if !json.Valid([]byte(m)) {
				return "", "", nil, invalid("metadata of image %q is not valid JSON", iid)
			}
			meta = json.RawMessage(m)
		}
	}
	return iid, rawURL, meta, nil
}

func checkURL(s string) error {
	if s == "" {
		return invalid("empty image URL; give an absolute http or https URL")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("image URL %q is not an absolute http or https URL", clip(s))
	}
	return nil
}

// isSpace also takes a byte order mark for space, so that an id reads the
// same wherever its line stands in the file.
func isSpace(c rune) bool { return unicode.IsSpace(c) || c == '\uFEFF' }

// clip shortens what is quoted back in an error-log line.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

func invalid(format string, args ...any) error {
	return weft.E(weft.Invalid, weft.Msgf(format, args...))
}
