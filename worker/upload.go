package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/tsv"
)

// uploadBatch is how many catalog rows go to the store per transaction: big
// enough to amortise the commit, small enough to keep memory flat.
const uploadBatch = 1000

// Accept spools a catalog file to disk and parses it in the background. It
// returns once the whole stream is safely on disk, so the caller can answer
// at once with status "uploading" while a 1,000,000-row file is parsed as a
// stream, never held in memory. A catalog that is uploading or indexing
// refuses a second file (Conflict) so that rows of two files never interleave.
func (w *Worker) Accept(ctx context.Context, keyID int64, catalogID string, r io.Reader) error {
	const op = "worker.Accept"
	c, err := w.cfg.Store.Catalog(ctx, keyID, catalogID)
	if err != nil {
		return err
	}
	if c.Status == weft.StatusUploading || c.Status == weft.StatusIndexing {
		return weft.E(op, weft.Conflict, weft.Msgf("Catalog %s is %s: wait until it is done before uploading another file.", catalogID, c.Status))
	}
	if err := os.MkdirAll(w.cfg.SpoolDir, 0o700); err != nil {
		return weft.E(op, weft.Internal, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	part := filepath.Join(w.cfg.SpoolDir, catalogID+"."+hex.EncodeToString(rnd[:])+".part")
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return weft.E(op, weft.Internal, err)
	}
	src := &readErr{r: r}
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(part)
		return spoolError(op, src.err, err)
	}
	err = w.cfg.Store.SetCatalogStatus(ctx, keyID, catalogID, weft.StatusUploading,
		weft.StatusNew, weft.StatusUploadDone, weft.StatusUploadError, weft.StatusReady, weft.StatusIndexError)
	if err != nil {
		os.Remove(part)
		return err
	}
	spool := w.spoolPath(catalogID)
	if err := os.Rename(part, spool); err != nil {
		os.Remove(part)
		_ = w.cfg.Store.SetCatalogStatus(context.WithoutCancel(ctx), keyID, catalogID, weft.StatusUploadError)
		return weft.E(op, weft.Internal, err)
	}
	w.goParse(keyID, catalogID, spool)
	return nil
}

// readErr remembers the reader's own error, to tell a client's bad or
// oversized stream (4xx) from a failing disk (5xx).
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func spoolError(op string, readErr, err error) error {
	var mbe *http.MaxBytesError
	switch {
	case readErr == nil:
		return weft.E(op, weft.Internal, err)
	case errors.As(readErr, &mbe):
		return weft.E(op, weft.TooLarge, weft.Msgf("Catalog file over the limit of %d bytes: split it into several uploads.", mbe.Limit), readErr)
	case weft.KindOf(readErr) != weft.Internal:
		return weft.E(op, readErr)
	}
	return weft.E(op, weft.Invalid, weft.Msgf("Could not read the catalog file: %v.", readErr), readErr)
}

func (w *Worker) spoolPath(catalogID string) string {
	return filepath.Join(w.cfg.SpoolDir, catalogID+".tsv")
}

// goParse parses a spooled file in the background; Close waits for it.
func (w *Worker) goParse(keyID int64, catalogID, spool string) {
	w.uploads.Add(1)
	go func() {
		defer w.uploads.Done()
		// Parsing is not cut short by shutdown: a half-parsed file would only
		// be parsed again from the start after restart.
		ctx := context.WithoutCancel(w.ctx)
		if err := w.parse(ctx, keyID, catalogID, spool); err != nil {
			w.cfg.Logger.Error("catalog upload failed", "catalog", catalogID, "err", err)
			_ = w.cfg.Store.AppendErrorLog(ctx, keyID, catalogID, "upload: "+weft.MessageOf(err))
			_ = w.cfg.Store.SetCatalogStatus(ctx, keyID, catalogID, weft.StatusUploadError, weft.StatusUploading)
		}
		os.Remove(spool)
	}()
}

// parse streams a spooled catalog file into the store in batches. Bad rows
// go to the error log with their line numbers; good rows are kept.
func (w *Worker) parse(ctx context.Context, keyID int64, catalogID, spool string) error {
	f, err := os.Open(spool)
	if err != nil {
		return weft.E("worker.parse", weft.Internal, err)
	}
	defer f.Close()
	rd := tsv.NewReader(f)
	var (
		rows   = make([]weft.Image, 0, uploadBatch)
		errs   []string
		good   int
		failed int
	)
	flush := func() error {
		if len(rows) > 0 {
			invalid, err := w.cfg.Store.UpsertImages(ctx, keyID, catalogID, rows)
			if err != nil {
				return err
			}
			if len(invalid) > 0 {
				if err := w.cfg.Index.Delete(ctx, catalogID, invalid); err != nil {
					return err
				}
			}
			good += len(rows)
			rows = rows[:0]
		}
		if len(errs) > 0 {
			if err := w.cfg.Store.AppendErrorLog(ctx, keyID, catalogID, errs...); err != nil {
				return err
			}
			errs = errs[:0]
		}
		return nil
	}
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return weft.E("worker.parse", weft.Invalid, weft.Msgf("catalog file unreadable after %d rows: %v", good, err), err)
		}
		if row.Err != nil {
			failed++
			errs = append(errs, fmt.Sprintf("line %d: %s", row.Line, weft.MessageOf(row.Err)))
			if len(errs) >= uploadBatch {
				if err := flush(); err != nil {
					return err
				}
			}
			continue
		}
		rows = append(rows, weft.Image{IID: row.IID, URL: row.URL, Metadata: row.Metadata, Line: row.Line})
		if len(rows) >= uploadBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	status := weft.StatusUploadDone
	if good == 0 && failed > 0 {
		status = weft.StatusUploadError
	}
	if err := w.cfg.Store.RecordUsage(ctx, keyID, weft.OpCatalogUpload, good, w.cfg.Now()); err != nil {
		return err
	}
	w.cfg.Logger.Info("catalog uploaded", "catalog", catalogID, "rows", good, "bad_rows", failed)
	return w.cfg.Store.SetCatalogStatus(ctx, keyID, catalogID, status, weft.StatusUploading)
}

// recoverUploads restarts the parsing of files spooled before a crash. A
// catalog left "uploading" with no spooled file on this node is marked
// failed when this node is the only one (SQLite); on a shared database the
// file may be another node's, so it is left alone.
func (w *Worker) recoverUploads(ctx context.Context) error {
	cs, err := w.cfg.Store.CatalogsWithStatus(ctx, weft.StatusUploading)
	if err != nil {
		return err
	}
	for _, c := range cs {
		spool := w.spoolPath(c.ID)
		if _, err := os.Stat(spool); err == nil {
			w.cfg.Logger.Info("resuming catalog upload", "catalog", c.ID)
			w.goParse(c.KeyID, c.ID, spool)
			continue
		}
		if w.cfg.SingleNode {
			_ = w.cfg.Store.AppendErrorLog(ctx, c.KeyID, c.ID, "upload: interrupted by a restart before the file was saved; upload it again")
			_ = w.cfg.Store.SetCatalogStatus(ctx, c.KeyID, c.ID, weft.StatusUploadError, weft.StatusUploading)
		}
	}
	// Parts never renamed belong to requests that were cut short.
	parts, _ := filepath.Glob(filepath.Join(w.cfg.SpoolDir, "*.part"))
	for _, p := range parts {
		os.Remove(p)
	}
	return nil
}
