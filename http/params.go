package http

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/weftlabs/weft"
)

// maxFieldBytes bounds a request's parameters other than an image file,
// all together.
const maxFieldBytes = 1 << 20

const paramsFix = "send shorter values (an image goes as the multipart file \"image\")"

// params are a request's parameters wherever the client put them: the
// query string (curl's GET), a form-urlencoded body (curl -d), a multipart
// body (curl -F) or a JSON object.
type params struct {
	values url.Values
	image  []byte // the multipart file "image"; nil when none was sent
}

// get returns a parameter trimmed of surrounding white space.
func (p params) get(name string) string { return strings.TrimSpace(p.values.Get(name)) }

// readParams reads r's parameters. The body's come first, so that they win
// over the query string's in get. An image file over maxImage is refused.
func readParams(r *http.Request, maxImage int64) (params, error) {
	const op = "http.readParams"
	p := params{values: url.Values{}}
	ct := r.Header.Get("Content-Type")
	mediaType := ""
	if ct != "" {
		var err error
		mediaType, _, err = mime.ParseMediaType(ct)
		if err != nil {
			return p, weft.E(op, weft.Invalid, weft.Msgf("Malformed Content-Type %q: send application/x-www-form-urlencoded, multipart/form-data or application/json.", ct), err)
		}
	}
	var err error
	switch {
	case mediaType == "multipart/form-data":
		err = p.readMultipart(r, maxImage)
	case mediaType == "application/json" || strings.HasSuffix(mediaType, "+json"):
		err = p.readJSON(r.Body)
	case mediaType == "application/x-www-form-urlencoded" || mediaType == "":
		// No Content-Type at all: a body can only be a form, as curl
		// --data-binary without -H sends it.
		err = p.readForm(r.Body)
	default:
		var one [1]byte
		if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
			err = weft.E(op, weft.Invalid, weft.Msgf("Unsupported Content-Type %q: send application/x-www-form-urlencoded, multipart/form-data or application/json.", mediaType))
		}
	}
	if err != nil {
		return p, err
	}
	for k, vs := range r.URL.Query() {
		p.values[k] = append(p.values[k], vs...)
	}
	return p, nil
}

func (p *params) readForm(body io.Reader) error {
	const op = "http.readForm"
	b, err := readLimited(op, body, maxFieldBytes, "Parameters", paramsFix)
	if err != nil {
		return err
	}
	vs, err := url.ParseQuery(string(b))
	if err != nil {
		return weft.E(op, weft.Invalid, weft.Msgf("Malformed form body (%v): send name=value pairs joined by '&', URL-encoded.", err), err)
	}
	for k, v := range vs {
		p.values[k] = append(p.values[k], v...)
	}
	return nil
}

func (p *params) readJSON(body io.Reader) error {
	const op = "http.readJSON"
	b, err := readLimited(op, body, maxFieldBytes, "Parameters", paramsFix)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return weft.E(op, weft.Invalid, weft.Msgf("Malformed JSON body (%v): send one object of string or number values.", err), err)
	}
	for k, raw := range obj {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return weft.E(op, weft.Invalid, weft.Msgf("Malformed JSON value of %q.", k), err)
		}
		switch v := v.(type) {
		case string:
			p.values.Add(k, v)
		case json.Number:
			p.values.Add(k, v.String())
		case bool:
			p.values.Add(k, strconv.FormatBool(v))
		case nil:
		default:
			return weft.E(op, weft.Invalid, weft.Msgf("JSON parameter %q must be a string or a number.", k))
		}
	}
	return nil
}

// readMultipart reads a multipart body part by part: fields together up to
// maxFieldBytes, the file "image" up to maxImage; other files are skipped
// unread.
func (p *params) readMultipart(r *http.Request, maxImage int64) error {
	const op = "http.readMultipart"
	mr, err := r.MultipartReader()
	if err != nil {
		return weft.E(op, weft.Invalid, weft.Msgf("Malformed multipart body (%v): send it as curl -F does.", err), err)
	}
	left := int64(maxFieldBytes)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return bodyError(op, err)
		}
		name := part.FormName()
		switch {
		case name == "image":
			b, err := readLimited(op, part, maxImage, "Image", "send a smaller image")
			if err != nil {
				return err
			}
			p.image = b
		case name == "" || part.FileName() != "":
		default:
			b, err := readLimited(op, part, left, "Parameters", paramsFix)
			if err != nil {
				return err
			}
			left -= int64(len(b))
			p.values.Add(name, string(b))
		}
	}
}

// readLimited reads all of r, refusing more than limit bytes (413): what
// is over the limit, fix what to do about it.
func readLimited(op string, r io.Reader, limit int64, what, fix string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, bodyError(op, err)
	}
	if int64(len(b)) > limit {
		return nil, weft.E(op, weft.TooLarge, weft.Msgf("%s over the limit of %s: %s.", what, size(limit), fix))
	}
	return b, nil
}
