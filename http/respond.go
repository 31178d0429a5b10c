package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/weftlabs/weft"
)

// status is the envelope every v0 answer carries; Code repeats the HTTP
// status code.
type status struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

var statusOK = status{Message: "OK", Code: http.StatusOK}

// envelope is an answer with nothing but its status: errors, /healthz.
type envelope struct {
	Status status `json:"status"`
}

// statusOf maps an error's kind to its HTTP status code. It is the only
// place that does.
func statusOf(err error) int {
	switch weft.KindOf(err) {
	case weft.Invalid:
		return http.StatusBadRequest
	case weft.Unauthorized:
		return http.StatusUnauthorized
	case weft.NotFound:
		return http.StatusNotFound
	case weft.Conflict:
		return http.StatusConflict
	case weft.TooLarge:
		return http.StatusRequestEntityTooLarge
	case weft.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers err in the envelope with its caller-facing message; the
// cause goes to the request's log line.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	requestOf(r).err = err
	code := statusOf(err)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
	}
	s.writeStatus(w, code, weft.MessageOf(err))
}

func (s *Server) writeStatus(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, envelope{status{Message: message, Code: code}})
}

// writeJSON writes v as the whole answer. URLs in answers keep their '&'
// rather than the encoder's default \u0026.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a value of ours that cannot be encoded gets here: a bug.
		code = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, `{"status":{"message":%q,"code":%d}}`+"\n", weft.MessageOf(weft.E(weft.Internal)), code)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// catalogJSON is a catalog as the v0 API shows it. Fields are in the page's
// (alphabetical) order.
type catalogJSON struct {
	ID             string             `json:"catalog_id"`
	Created        string             `json:"date_created"`
	ErrorLog       string             `json:"error_log"`
	Name           string             `json:"name"`
	NumIndexed     int                `json:"num_images_indexed"`
	NumImagesTotal int                `json:"num_images_total"`
	NumTotalImages int                `json:"num_total_images"`
	Status         weft.CatalogStatus `json:"status"`
}

// dateLayout is the v0 page's date_created: "2016-12-12 09:24:54.301953+00:00".
const dateLayout = "2006-01-02 15:04:05.000000-07:00"

func catalogOf(c weft.Catalog) catalogJSON {
	return catalogJSON{
		ID:             c.ID,
		Created:        c.Created.UTC().Format(dateLayout),
		ErrorLog:       strings.Join(c.ErrorLog, "\n"),
		Name:           c.Name,
		NumIndexed:     c.NumIndexed,
		NumImagesTotal: c.NumTotal,
		NumTotalImages: c.NumTotal,
		Status:         c.Status,
	}
}

// usageJSON writes months newest first and each month's operations in
// weft.UsageOps order, every one of them, zero when unused, as the page
// shows them.
type usageJSON weft.Usage

func (u usageJSON) MarshalJSON() ([]byte, error) {
	months := make([]string, 0, len(u))
	for m := range u {
		months = append(months, m)
	}
	slices.SortFunc(months, func(a, b string) int { return compareMonths(b, a) })
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range months {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(m)
		b.Write(name)
		b.WriteString(":{")
		for j, op := range weft.UsageOps {
			if j > 0 {
				b.WriteByte(',')
			}
			c := u[m][op]
			fmt.Fprintf(&b, `"%s":{"num_calls":%d,"num_images":%d}`, op, c.Calls, c.Images)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// compareMonths orders "2016-12" before "2017-1"; a key of another shape
// sorts by its text.
func compareMonths(a, b string) int {
	ay, am, aok := splitMonth(a)
	by, bm, bok := splitMonth(b)
	if !aok || !bok {
		return strings.Compare(a, b)
	}
	if ay != by {
		return ay - by
	}
	return am - bm
}

func splitMonth(s string) (year, month int, ok bool) {
	y, m, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	year, err1 := strconv.Atoi(y)
	month, err2 := strconv.Atoi(m)
	return year, month, err1 == nil && err2 == nil
}

// bodyError classifies a failed read of a request body: over the limit set
// by http.MaxBytesReader (413, naming the limit), or a malformed or broken
// body (400).
func bodyError(op string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return weft.E(op, weft.TooLarge, weft.Msgf("Request body over the limit of %s: send a smaller one.", size(mbe.Limit)), err)
	}
	if weft.KindOf(err) != weft.Internal {
		return err
	}
	return weft.E(op, weft.Invalid, weft.Msgf("Could not read the request body: %v.", err), err)
}

// size writes a byte count the way limits are set: "32 MiB", "8 GiB".
func size(n int64) string {
	for _, u := range []struct {
		unit int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.unit && n%u.unit == 0 {
			return strconv.FormatInt(n/u.unit, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
