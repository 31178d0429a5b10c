package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/weftlabs/weft"
)

const (
	defaultResults = 50
	maxResults     = 1000
	maxNameRunes   = 256
)

// token exchanges api_key and api_secret for an access token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	const op = "http.token"
	p, err := s.smallParams(w, r)
	if err != nil {
		return err
	}
	apiKey, secret := p.get("api_key"), p.get("api_secret")
	if apiKey == "" || secret == "" {
		return weft.E(op, weft.Invalid, weft.Msgf("api_key and api_secret are required: send both, as form fields, JSON or query parameters."))
	}
	// The token lives ttl from a moment after issued: counting from issued
	// to the answer under-states its life, never over-states it (86399 on
	// the page for a day).
	issued := time.Now()
	tok, ttl, err := s.cfg.Auth.IssueToken(r.Context(), apiKey, secret)
	if err != nil {
		return err
	}
	left := ttl - time.Since(issued)
	writeJSON(w, http.StatusOK, struct {
		Status      status `json:"status"`
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in_seconds"`
	}{statusOK, tok, "bearer", int64(left / time.Second)})
	return nil
}

type catalogResponse struct {
	Status  status      `json:"status"`
	Catalog catalogJSON `json:"catalog"`
}

func (s *Server) createCatalog(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	const op = "http.createCatalog"
	p, err := s.smallParams(w, r)
	if err != nil {
		return err
	}
	name := p.get("name")
	if name == "" {
		return weft.E(op, weft.Invalid, weft.Msgf("name is required: send a name for the catalog (name=My Catalog)."))
	}
	if utf8.RuneCountInString(name) > maxNameRunes {
		return weft.E(op, weft.Invalid, weft.Msgf("name is too long: at most %d characters.", maxNameRunes))
	}
	c := weft.Catalog{KeyID: key.ID, Name: name}
	if err := s.cfg.Store.CreateCatalog(r.Context(), &c); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, catalogResponse{statusOK, catalogOf(c)})
	return nil
}

func (s *Server) listCatalogs(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	cs, err := s.cfg.Store.Catalogs(r.Context(), key.ID)
	if err != nil {
		return err
	}
	out := make([]catalogJSON, len(cs))
	for i, c := range cs {
		out[i] = catalogOf(c)
	}
	writeJSON(w, http.StatusOK, struct {
		Status  status        `json:"status"`
		Catalog []catalogJSON `json:"catalog"`
	}{statusOK, out})
	return nil
}

func (s *Server) getCatalog(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	return s.writeCatalog(w, r.Context(), key.ID, r.PathValue("id"))
}

func (s *Server) writeCatalog(w http.ResponseWriter, ctx context.Context, keyID int64, id string) error {
	c, err := s.cfg.Store.Catalog(ctx, keyID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, catalogResponse{statusOK, catalogOf(c)})
	return nil
}

func (s *Server) deleteCatalog(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	id := r.PathValue("id")
	if err := s.cfg.Store.DeleteCatalog(r.Context(), key.ID, id); err != nil {
		return err
	}
	// The store is the source of truth and the catalog is gone from it, so
	// the answer is a success either way; vectors left in the index belong
	// to an id no one can query and go at the next rebuild.
	if err := s.cfg.Index.Drop(r.Context(), id); err != nil {
		s.log.Error("dropping a deleted catalog from the index", "catalog", id, "err", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Status  status `json:"status"`
		Catalog struct {
			ID string `json:"catalog_id"`
		} `json:"catalog"`
	}{Status: status{Message: "Catalog deleted.", Code: http.StatusOK}, Catalog: struct {
		ID string `json:"catalog_id"`
	}{id}})
	return nil
}

// upload streams the multipart field catalog_file, part by part, straight
// into the Uploader: a catalog file of gigabytes is never held here.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	const op = "http.upload"
	id := r.PathValue("id")
	// The catalog must be the caller's before its body is read.
	if _, err := s.cfg.Store.Catalog(r.Context(), key.ID, id); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxCatalogBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return weft.E(op, weft.Invalid, weft.Msgf("Send the catalog file as multipart/form-data in the field \"catalog_file\" (curl -F catalog_file=@catalog.tsv)."), err)
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			if err == io.EOF {
				return weft.E(op, weft.Invalid, weft.Msgf("The multipart body has no field \"catalog_file\": send the file as curl -F catalog_file=@catalog.tsv does."))
			}
			return bodyError(op, err)
		}
		if part.FormName() != "catalog_file" {
			continue
		}
		if err := s.cfg.Uploads.Accept(r.Context(), key.ID, id, part); err != nil {
			return err
		}
		return s.writeCatalog(w, r.Context(), key.ID, id)
	}
}

// startIndex queues an index job. The catalog is read before the workers
// are woken, so the answer shows "indexing" rather than a race's outcome.
func (s *Server) startIndex(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	id := r.PathValue("id")
	if _, err := s.cfg.Store.StartIndex(r.Context(), key.ID, id); err != nil {
		return err
	}
	defer s.cfg.Wake()
	return s.writeCatalog(w, r.Context(), key.ID, id)
}

func (s *Server) tag(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	return answerImage(s, w, r, key, weft.OpTag, s.cfg.Vision.Tag, func(labels []weft.Label) any {
		return struct {
			Status status       `json:"status"`
			Labels []weft.Label `json:"labels"`
		}{statusOK, labels}
	})
}

func (s *Server) detect(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	return answerImage(s, w, r, key, weft.OpDetect, s.cfg.Vision.Detect, func(boxes []weft.Box) any {
		return struct {
			Status status     `json:"status"`
			Boxes  []weft.Box `json:"boxes"`
		}{statusOK, boxes}
	})
}

// answerImage serves the routes that run a model on the one image a
// request names: read it, run the model, count the call, answer.
func answerImage[T any](s *Server, w http.ResponseWriter, r *http.Request, key weft.Key, op weft.UsageOp,
	run func(context.Context, image.Image) ([]T, error), answer func([]T) any) error {
	p, err := s.imageParams(w, r)
	if err != nil {
		return err
	}
	img, err := s.queryImage(r.Context(), p)
	if err != nil {
		return err
	}
	out, err := run(r.Context(), img)
	if err != nil {
		return err
	}
	s.recordUsage(r.Context(), key, op)
	if out == nil {
		out = []T{} // the page shows an empty list, never null
	}
	writeJSON(w, http.StatusOK, answer(out))
	return nil
}

// similar is one search result as the v0 page shows it. Distance is the
// float32 the index ranks by, widened as the page's numbers are.
type similar struct {
	URL      string          `json:"url"`
	Distance float64         `json:"distance"`
	IID      string          `json:"iid"`
	Metadata json.RawMessage `json:"metadata"`
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	const op = "http.search"
	p, err := s.imageParams(w, r)
	if err != nil {
		return err
	}
	catalogID := p.get("catalog_id")
	if catalogID == "" {
		return weft.E(op, weft.Invalid, weft.Msgf("catalog_id is required: the id of the catalog to search, from POST /v0/catalog."))
	}
	n, err := nResults(p.get("n_results"))
	if err != nil {
		return err
	}
	c, err := s.cfg.Store.Catalog(r.Context(), key.ID, catalogID)
	if err != nil {
		return err
	}
	if c.NumIndexed == 0 {
		return weft.E(op, weft.Conflict, weft.Msgf("Catalog %s has no indexed images yet: index it (POST /v0/catalog/%s/index) and wait for status \"ready for query\".", c.ID, c.ID))
	}
	img, err := s.queryImage(r.Context(), p)
	if err != nil {
		return err
	}
	vecs, err := s.cfg.Vision.Embed(r.Context(), []image.Image{img})
	if err != nil {
		return err
	}
	if len(vecs) != 1 {
		return weft.E(op, weft.Internal, errors.New("vision gave "+strconv.Itoa(len(vecs))+" embeddings for one image"))
	}
	hits, err := s.cfg.Index.Search(r.Context(), c.ID, vecs[0], n)
	if err != nil {
		return err
	}
	slices.SortStableFunc(hits, func(a, b weft.Hit) int {
		switch {
		case a.Distance < b.Distance:
			return -1
		case a.Distance > b.Distance:
			return 1
		}
		return 0
	})
	iids := make([]string, len(hits))
	for i, h := range hits {
		iids[i] = h.IID
	}
	rows, err := s.cfg.Store.Images(r.Context(), key.ID, c.ID, iids)
	if err != nil {
		return err
	}
	byIID := make(map[string]weft.Image, len(rows))
	for _, im := range rows {
		byIID[im.IID] = im
	}
	out := make([]similar, 0, len(hits))
	for _, h := range hits {
		im, ok := byIID[h.IID]
		if !ok {
			continue // replaced or deleted since the index was searched
		}
		meta := im.Metadata
		if len(meta) == 0 {
			meta = json.RawMessage("{}")
		}
		out = append(out, similar{URL: im.URL, Distance: float64(h.Distance), IID: im.IID, Metadata: meta})
	}
	s.recordUsage(r.Context(), key, weft.OpSearch)
	writeJSON(w, http.StatusOK, struct {
		Status   status    `json:"status"`
		Similars []similar `json:"similars"`
	}{statusOK, out})
	return nil
}

func nResults(v string) (int, error) {
	if v == "" {
		return defaultResults, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxResults {
		return 0, weft.E("http.nResults", weft.Invalid, weft.Msgf("n_results must be a whole number from 1 to %d, not %q.", maxResults, v))
	}
	return n, nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, key weft.Key) error {
	u, err := s.cfg.Store.Usage(r.Context(), key.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Status status    `json:"status"`
		Usage  usageJSON `json:"usage"`
	}{statusOK, usageJSON(u)})
	return nil
}

func (s *Server) labels(w http.ResponseWriter, r *http.Request) error {
	labels := s.cfg.Vision.Labels()
	if labels == nil {
		labels = []weft.LabelInfo{}
	}
	writeJSON(w, http.StatusOK, struct {
		Status status           `json:"status"`
		Labels []weft.LabelInfo `json:"labels"`
	}{statusOK, labels})
	return nil
}

// healthz answers 200 when the store answers a query.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Store.QueueDepth(ctx); err != nil {
		return weft.E("http.healthz", weft.Unavailable, weft.Msgf("The store does not answer."), err)
	}
	writeJSON(w, http.StatusOK, envelope{statusOK})
	return nil
}

// smallParams reads the parameters of a route that takes no image.
func (s *Server) smallParams(w http.ResponseWriter, r *http.Request) (params, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFieldBytes)
	return readParams(r, 0)
}

// imageParams reads the parameters of a route that takes an image.
func (s *Server) imageParams(w http.ResponseWriter, r *http.Request) (params, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxImageBytes+maxFieldBytes)
	return readParams(r, s.cfg.MaxImageBytes)
}

// queryImage decodes the image sent as the file "image", or fetched from
// the parameter "url".
func (s *Server) queryImage(ctx context.Context, p params) (image.Image, error) {
	const op = "http.queryImage"
	data := p.image
	if data == nil {
		u := p.get("url")
		if u == "" {
			return nil, weft.E(op, weft.Invalid, weft.Msgf("Send an image: a multipart file field \"image\" (curl -F image=@photo.jpg) or a \"url\" parameter."))
		}
		var err error
		if data, err = s.cfg.Fetcher.Fetch(ctx, u); err != nil {
			return nil, err
		}
		if int64(len(data)) > s.cfg.MaxImageBytes {
			return nil, weft.E(op, weft.TooLarge, weft.Msgf("Image at the URL over the limit of %s: send a smaller one.", size(s.cfg.MaxImageBytes)))
		}
	}
	if len(data) == 0 {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("The image is empty: send a JPEG, PNG or GIF file."))
	}
	img, err := s.cfg.Decode(bytes.NewReader(data))
	if err != nil {
		var we *weft.Error
		if !errors.As(err, &we) {
			// A decoder's own error means the bytes are no image it knows.
			err = weft.E(op, weft.Invalid, weft.Msgf("Could not decode the image: send a JPEG, PNG or GIF file."), err)
		}
		return nil, err
	}
	return img, nil
}

// recordUsage counts one call on one image. A failure to count does not
// fail the call already made; it is logged.
func (s *Server) recordUsage(ctx context.Context, key weft.Key, op weft.UsageOp) {
	if err := s.cfg.Store.RecordUsage(context.WithoutCancel(ctx), key.ID, op, 1, s.cfg.Now()); err != nil {
		s.log.Error("recording usage", "key_id", key.ID, "op", op, "err", err)
	}
}
