package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/weftlabs/weft"
)

// chunk bounds the rows of one multi-row statement and the iids of one IN
// list: large enough to save round trips, far below SQLite's 32,766 bound
// variables.
const chunk = 200

// UpsertImages writes rows in one transaction. It reads the stored url and
// state of the batch's iids first, so that the catalog's counters move by
// exactly what the batch changes, then writes with multi-row upserts.
func (db *DB) UpsertImages(ctx context.Context, keyID int64, catalogID string, rows []weft.Image) ([]string, error) {
	const op = "sqlite.UpsertImages"
	var invalidated []string
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := catalogStatus(ctx, tx, op, keyID, catalogID); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		stored, err := storedImages(ctx, tx, catalogID, rows)
		if err != nil {
			return err
		}
		// Replay the batch in order over what is stored: a later row of the
		// same iid sees what an earlier one did. A row the same as stored
		// is not written at all: shops upload their whole catalog again and
		// again, changing a few rows.
		type pending struct {
			row   weft.Image
			state weft.ImageState
		}
		latest := make(map[string]int, len(rows))
		var out []pending
		added := 0
		for _, r := range rows {
			s, ok := stored[r.IID]
			same := ok && s.url == r.URL && s.line == r.Line && bytes.Equal(s.metadata, r.Metadata)
			switch {
			case !ok:
				s.state = weft.ImagePending
				added++
			case s.url != r.URL:
				if s.state == weft.ImageIndexed {
					invalidated = append(invalidated, r.IID)
				}
				s.state = weft.ImagePending
			}
			s.url, s.line, s.metadata = r.URL, r.Line, r.Metadata
			stored[r.IID] = s
			i, queued := latest[r.IID]
			switch {
			case queued:
				out[i] = pending{r, s.state}
			case same:
			default:
				latest[r.IID] = len(out)
				out = append(out, pending{r, s.state})
			}
		}
		var full *sql.Stmt
		for len(out) > 0 {
			n := min(len(out), chunk)
			args := make([]any, 0, 6*n)
			for _, p := range out[:n] {
				args = append(args, catalogID, p.row.IID, p.row.URL, metadataArg(p.row.Metadata), p.state, p.row.Line)
			}
			var err error
			if n == chunk {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, upsertSQL(chunk)); err != nil {
						return err
					}
					defer full.Close()
				}
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, upsertSQL(n), args...)
			}
			if err != nil {
				return err
			}
			out = out[n:]
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE catalogs SET num_total = num_total + ?, num_indexed = num_indexed - ? WHERE id = ?`,
			added, len(invalidated), catalogID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return invalidated, nil
}

// storedImage is what UpsertImages compares a row with.
type storedImage struct {
	url      string
	line     int
	metadata []byte
	state    weft.ImageState
}

// storedImages reads the stored images among rows.
func storedImages(ctx context.Context, tx *sql.Tx, catalogID string, rows []weft.Image) (map[string]storedImage, error) {
	m := make(map[string]storedImage, len(rows))
	query := func(n int) string {
		return `SELECT iid, url, line, metadata, state FROM images WHERE catalog_id = ? AND iid IN (` + placeholders(n) + `)`
	}
	var full *sql.Stmt
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		args := make([]any, 0, 1+len(part))
		args = append(args, catalogID)
		for _, r := range part {
			args = append(args, r.IID)
		}
		var q *sql.Rows
		var err error
		if len(part) == chunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, query(chunk)); err != nil {
					return nil, err
				}
				defer full.Close()
			}
			q, err = full.QueryContext(ctx, args...)
		} else {
			q, err = tx.QueryContext(ctx, query(len(part)), args...)
		}
		if err != nil {
			return nil, err
		}
		for q.Next() {
			var iid string
			var s storedImage
			if err := q.Scan(&iid, &s.url, &s.line, &s.metadata, &s.state); err != nil {
				q.Close()
				return nil, err
			}
			m[iid] = s
		}
		if err := errors.Join(q.Err(), q.Close()); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// upsertSQL writes n rows. The state written is the one UpsertImages worked
// out: the stored one when the URL is unchanged, pending otherwise; the
// vector survives exactly when the state does.
func upsertSQL(n int) string {
	values := make([]byte, 0, n*len("(?, ?, ?, ?, ?, ?), "))
	for i := range n {
		if i > 0 {
			values = append(values, ", "...)
		}
		values = append(values, "(?, ?, ?, ?, ?, ?)"...)
	}
	return `INSERT INTO images (catalog_id, iid, url, metadata, state, line) VALUES ` + string(values) + `
		ON CONFLICT (catalog_id, iid) DO UPDATE SET
			url = excluded.url,
			metadata = excluded.metadata,
			line = excluded.line,
			vector = CASE WHEN images.state = excluded.state THEN images.vector END,
			state = excluded.state`
}

// metadataArg stores absent metadata as NULL rather than an empty blob.
func metadataArg(m []byte) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// catalogLives hides the images of a deleted catalog that purge has not
// reached yet; its one argument is the catalog id.
const catalogLives = `EXISTS (SELECT 1 FROM catalogs WHERE id = ?)`

const imageColumns = `catalog_id, iid, url, metadata, state, vector, line`

func scanImage(s interface{ Scan(...any) error }) (weft.Image, error) {
	var im weft.Image
	var meta, vec []byte
	if err := s.Scan(&im.CatalogID, &im.IID, &im.URL, &meta, &im.State, &vec, &im.Line); err != nil {
		return weft.Image{}, err
	}
	if len(meta) > 0 {
		im.Metadata = meta
	}
	if vec != nil {
		v, err := decodeVector(vec)
		if err != nil {
			return weft.Image{}, fmt.Errorf("image %s: %w", im.IID, err)
		}
		im.Vector = v
	}
	return im, nil
}

func (db *DB) PendingImages(ctx context.Context, catalogID string, after string, limit int) ([]weft.Image, error) {
	const op = "sqlite.PendingImages"
	rows, err := db.r.QueryContext(ctx, `SELECT `+imageColumns+` FROM images
		WHERE catalog_id = ? AND state = 'pending' AND iid > ? AND `+catalogLives+`
		ORDER BY iid LIMIT ?`,
		catalogID, after, catalogID, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ims []weft.Image
	for rows.Next() {
		im, err := scanImage(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ims = append(ims, im)
	}
	return ims, wrap(op, rows.Err())
}

func (db *DB) SaveVectors(ctx context.Context, catalogID string, items []weft.VectorItem) error {
	const op = "sqlite.SaveVectors"
	for _, it := range items {
		if len(it.Vector) != weft.EmbeddingDim {
			return weft.E(op, weft.Invalid,
				weft.Msgf("Vector of image %s has %d dimensions, not %d.", it.IID, len(it.Vector), weft.EmbeddingDim))
		}
	}
	return db.write(ctx, op, func(tx *sql.Tx) error {
		if err := catalogExists(ctx, tx, op, catalogID); err != nil {
			return err
		}
		flip, err := tx.PrepareContext(ctx, `UPDATE images SET vector = ?, state = 'indexed'
			WHERE catalog_id = ? AND iid = ? AND state <> 'indexed'`)
		if err != nil {
			return err
		}
		defer flip.Close()
		replace, err := tx.PrepareContext(ctx, `UPDATE images SET vector = ?
			WHERE catalog_id = ? AND iid = ? AND state = 'indexed'`)
		if err != nil {
			return err
		}
		defer replace.Close()
		flipped := int64(0)
		for _, it := range items {
			v := encodeVector(it.Vector)
			res, err := flip.ExecContext(ctx, v, catalogID, it.IID)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 {
				// Already indexed, or gone: only the vector may change.
				if _, err := replace.ExecContext(ctx, v, catalogID, it.IID); err != nil {
					return err
				}
			}
			flipped += n
		}
		_, err = tx.ExecContext(ctx, `UPDATE catalogs SET num_indexed = num_indexed + ? WHERE id = ?`, flipped, catalogID)
		return err
	})
}

// FailImages writes one error line per image: "<iid> (line <n>): <reason>",
// or "<iid>: <reason>" for an iid no longer in the catalog.
func (db *DB) FailImages(ctx context.Context, catalogID string, iids []string, reasons []string) error {
	const op = "sqlite.FailImages"
	if len(iids) != len(reasons) {
		return weft.E(op, weft.Invalid, weft.Msgf("%d images but %d reasons.", len(iids), len(reasons)))
	}
	return db.write(ctx, op, func(tx *sql.Tx) error {
		if err := catalogExists(ctx, tx, op, catalogID); err != nil {
			return err
		}
		get, err := tx.PrepareContext(ctx, `SELECT state, line FROM images WHERE catalog_id = ? AND iid = ?`)
		if err != nil {
			return err
		}
		defer get.Close()
		lines := make([]string, len(iids))
		unindexed := 0
		for i, iid := range iids {
			var state weft.ImageState
			var line int
			err := get.QueryRowContext(ctx, catalogID, iid).Scan(&state, &line)
			if errors.Is(err, sql.ErrNoRows) {
				lines[i] = fmt.Sprintf("%s: %s", iid, reasons[i])
				continue
			}
			if err != nil {
				return err
			}
			lines[i] = fmt.Sprintf("%s (line %d): %s", iid, line, reasons[i])
			if state == weft.ImageFailed {
				continue
			}
			if state == weft.ImageIndexed {
				unindexed++
			}
			if _, err := tx.ExecContext(ctx, `UPDATE images SET state = 'failed', vector = NULL
				WHERE catalog_id = ? AND iid = ?`, catalogID, iid); err != nil {
				return err
			}
		}
		if unindexed > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE catalogs SET num_indexed = num_indexed - ? WHERE id = ?`,
				unindexed, catalogID); err != nil {
				return err
			}
		}
		return appendErrorLog(ctx, tx, catalogID, lines)
	})
}

func catalogExists(ctx context.Context, tx *sql.Tx, op, id string) error {
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM catalogs WHERE id = ?)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return catalogNotFound(op, id)
	}
	return nil
}

// Images returns the images in the order of iids.
func (db *DB) Images(ctx context.Context, keyID int64, catalogID string, iids []string) ([]weft.Image, error) {
	const op = "sqlite.Images"
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap(op, err)
	}
	defer tx.Rollback()
	if _, err := catalogStatus(ctx, tx, op, keyID, catalogID); err != nil {
		return nil, wrap(op, err)
	}
	found := make(map[string]weft.Image, len(iids))
	for start := 0; start < len(iids); start += chunk {
		part := iids[start:min(start+chunk, len(iids))]
		args := make([]any, 0, 1+len(part))
		args = append(args, catalogID)
		for _, iid := range part {
			args = append(args, iid)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+imageColumns+` FROM images
			WHERE catalog_id = ? AND iid IN (`+placeholders(len(part))+`)`, args...)
		if err != nil {
			return nil, wrap(op, err)
		}
		for rows.Next() {
			im, err := scanImage(rows)
			if err != nil {
				rows.Close()
				return nil, wrap(op, err)
			}
			found[im.IID] = im
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, wrap(op, err)
		}
	}
	ims := make([]weft.Image, 0, len(found))
	for _, iid := range iids {
		if im, ok := found[iid]; ok {
			ims = append(ims, im)
		}
	}
	return ims, nil
}

// Vectors streams from one read transaction, so fn sees one snapshot
// however long it takes; an error of fn is returned as it is.
func (db *DB) Vectors(ctx context.Context, catalogID string, fn func(weft.VectorItem) error) error {
	const op = "sqlite.Vectors"
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(op, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT iid, vector FROM images
		WHERE catalog_id = ? AND state = 'indexed' AND `+catalogLives+`
		ORDER BY iid`, catalogID, catalogID)
	if err != nil {
		return wrap(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var it weft.VectorItem
		var b []byte
		if err := rows.Scan(&it.IID, &b); err != nil {
			return wrap(op, err)
		}
		if it.Vector, err = decodeVector(b); err != nil {
			return wrap(op, fmt.Errorf("image %s: %w", it.IID, err))
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return wrap(op, rows.Err())
}
