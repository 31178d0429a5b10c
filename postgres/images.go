package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/weftlabs/weft"
)

// UpsertImages writes rows in one transaction. Under the catalog's lock it
// reads the stored url and state of the batch's iids, replays the batch
// over them in Go, then writes every row with one statement, so that the
// catalog's counters move by exactly what the batch changes.
func (db *DB) UpsertImages(ctx context.Context, keyID int64, catalogID string, rows []weft.Image) ([]string, error) {
	const op = "postgres.UpsertImages"
	var invalidated []string
	err := db.write(ctx, op, func(tx pgx.Tx) error {
		invalidated = nil
		if _, err := lockCatalog(ctx, tx, op, keyID, catalogID); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		iids := make([]string, len(rows))
		for i, r := range rows {
			iids[i] = r.IID
		}
		stored, err := storedStates(ctx, tx, catalogID, iids)
		if err != nil {
			return err
		}
		// A later row of the same iid sees what an earlier one did; one
		// statement may write each iid once, so the last row of each wins.
		latest := make(map[string]int, len(rows))
		var out []weft.Image
		var states []string
		added := 0
		for _, r := range rows {
			s, ok := stored[r.IID]
			switch {
			case !ok:
				s = urlState{url: r.URL, state: weft.ImagePending}
				added++
			case s.url != r.URL:
				if s.state == weft.ImageIndexed {
					invalidated = append(invalidated, r.IID)
				}
				s = urlState{url: r.URL, state: weft.ImagePending}
			}
			stored[r.IID] = s
			if i, ok := latest[r.IID]; ok {
				out[i], states[i] = r, string(s.state)
			} else {
				latest[r.IID] = len(out)
				out = append(out, r)
				states = append(states, string(s.state))
			}
		}
		n := len(out)
		ids, urls, metas, lines := make([]string, n), make([]string, n), make([][]byte, n), make([]int32, n)
		for i, r := range out {
			ids[i], urls[i], lines[i] = r.IID, r.URL, int32(r.Line)
			if len(r.Metadata) > 0 {
				metas[i] = r.Metadata
			}
		}
		// The state written is the one worked out above: the stored one
		// when the URL is unchanged, pending otherwise; the vector
		// survives exactly when the state does.
		if _, err := tx.Exec(ctx, `INSERT INTO images (catalog_id, iid, url, metadata, state, line)
			SELECT $1, u.iid, u.url, u.metadata, u.state, u.line
			FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::integer[]) AS u(iid, url, metadata, state, line)
			ON CONFLICT (catalog_id, iid) DO UPDATE SET
				url = excluded.url,
				metadata = excluded.metadata,
				line = excluded.line,
				embedding = CASE WHEN images.state = excluded.state THEN images.embedding END,
				state = excluded.state`,
			catalogID, ids, urls, metas, states, lines); err != nil {
			return err
		}
		_, err = tx.Exec(ctx,
			`UPDATE catalogs SET num_total = num_total + $1, num_indexed = num_indexed - $2 WHERE id = $3`,
			added, len(invalidated), catalogID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return invalidated, nil
}

type urlState struct {
	url   string
	state weft.ImageState
}

// storedStates reads the url and state of the stored images among iids.
func storedStates(ctx context.Context, tx pgx.Tx, catalogID string, iids []string) (map[string]urlState, error) {
	rows, err := tx.Query(ctx, `SELECT iid, url, state FROM images WHERE catalog_id = $1 AND iid = ANY($2)`,
		catalogID, iids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]urlState, len(iids))
	for rows.Next() {
		var iid string
		var s urlState
		if err := rows.Scan(&iid, &s.url, &s.state); err != nil {
			return nil, err
		}
		m[iid] = s
	}
	return m, rows.Err()
}

// imageColumns reads the vector as a real[], which pgx decodes in binary:
// exact, and no text parsing of pgvector's format.
const imageColumns = `catalog_id, iid, url, metadata, state, embedding::real[], line`

func scanImage(row pgx.CollectableRow) (weft.Image, error) {
	var im weft.Image
	var meta []byte
	if err := row.Scan(&im.CatalogID, &im.IID, &im.URL, &meta, &im.State, &im.Vector, &im.Line); err != nil {
		return weft.Image{}, err
	}
	if len(meta) > 0 {
		im.Metadata = meta
	}
	return im, nil
}

func (db *DB) PendingImages(ctx context.Context, catalogID string, after string, limit int) ([]weft.Image, error) {
	const op = "postgres.PendingImages"
	rows, err := db.pool.Query(ctx, `SELECT `+imageColumns+` FROM images
		WHERE catalog_id = $1 AND state = 'pending' AND iid > $2 ORDER BY iid LIMIT $3`,
		catalogID, after, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	ims, err := pgx.CollectRows(rows, scanImage)
	return ims, wrap(op, err)
}

// SaveVectors writes all vectors with one statement: they travel as one
// flat real[] that is sliced per image, so the values arrive in binary,
// bit for bit. The vector column is the Index too (see Add).
func (db *DB) SaveVectors(ctx context.Context, catalogID string, items []weft.VectorItem) error {
	const op = "postgres.SaveVectors"
	// One statement may update each row once: the last item of an iid wins.
	latest := make(map[string]int, len(items))
	var iids []string
	var flat []float32
	for _, it := range items {
		if len(it.Vector) != weft.EmbeddingDim {
			return weft.E(op, weft.Invalid,
				weft.Msgf("Vector of image %s has %d dimensions, not %d.", it.IID, len(it.Vector), weft.EmbeddingDim))
		}
		if i, ok := latest[it.IID]; ok {
			copy(flat[i*weft.EmbeddingDim:], it.Vector)
			continue
		}
		latest[it.IID] = len(iids)
		iids = append(iids, it.IID)
		flat = append(flat, it.Vector...)
	}
	return db.write(ctx, op, func(tx pgx.Tx) error {
		if err := lockCatalogOfAnyKey(ctx, tx, op, catalogID); err != nil {
			return err
		}
		var flipped int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM images
			WHERE catalog_id = $1 AND iid = ANY($2) AND state <> 'indexed'`, catalogID, iids).Scan(&flipped)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE images i
			SET embedding = ($3::real[])[(u.n - 1) * $4 + 1 : u.n * $4]::vector, state = 'indexed'
			FROM unnest($2::text[]) WITH ORDINALITY AS u(iid, n)
			WHERE i.catalog_id = $1 AND i.iid = u.iid`,
			catalogID, iids, flat, weft.EmbeddingDim); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE catalogs SET num_indexed = num_indexed + $1 WHERE id = $2`, flipped, catalogID)
		return err
	})
}

// FailImages writes one error line per image: "<iid> (line <n>): <reason>",
// or "<iid>: <reason>" for an iid no longer in the catalog.
func (db *DB) FailImages(ctx context.Context, catalogID string, iids []string, reasons []string) error {
	const op = "postgres.FailImages"
	if len(iids) != len(reasons) {
		return weft.E(op, weft.Invalid, weft.Msgf("%d images but %d reasons.", len(iids), len(reasons)))
	}
	return db.write(ctx, op, func(tx pgx.Tx) error {
		if err := lockCatalogOfAnyKey(ctx, tx, op, catalogID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT iid, state, line FROM images WHERE catalog_id = $1 AND iid = ANY($2)`,
			catalogID, iids)
		if err != nil {
			return err
		}
		type found struct {
			state weft.ImageState
			line  int
		}
		stored := make(map[string]found, len(iids))
		for rows.Next() {
			var iid string
			var f found
			if err := rows.Scan(&iid, &f.state, &f.line); err != nil {
				rows.Close()
				return err
			}
			stored[iid] = f
		}
		if err := rows.Err(); err != nil {
			return err
		}
		lines := make([]string, len(iids))
		var flip []string
		unindexed := 0
		for i, iid := range iids {
			f, ok := stored[iid]
			if !ok {
				lines[i] = fmt.Sprintf("%s: %s", iid, reasons[i])
				continue
			}
			lines[i] = fmt.Sprintf("%s (line %d): %s", iid, f.line, reasons[i])
			if f.state == weft.ImageFailed {
				continue
			}
			if f.state == weft.ImageIndexed {
				unindexed++
			}
			flip = append(flip, iid)
			stored[iid] = found{weft.ImageFailed, f.line}
		}
		if len(flip) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE images SET state = 'failed', embedding = NULL
				WHERE catalog_id = $1 AND iid = ANY($2)`, catalogID, flip); err != nil {
				return err
			}
		}
		if unindexed > 0 {
			if _, err := tx.Exec(ctx, `UPDATE catalogs SET num_indexed = num_indexed - $1 WHERE id = $2`,
				unindexed, catalogID); err != nil {
				return err
			}
		}
		return appendErrorLog(ctx, tx, catalogID, lines)
	})
}

// Images returns the images in the order of iids.
func (db *DB) Images(ctx context.Context, keyID int64, catalogID string, iids []string) ([]weft.Image, error) {
	const op = "postgres.Images"
	var ims []weft.Image
	err := db.read(ctx, op, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM catalogs WHERE id = $1 AND key_id = $2`, catalogID, keyID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return catalogNotFound(op, catalogID)
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+imageColumns+` FROM images WHERE catalog_id = $1 AND iid = ANY($2)`,
			catalogID, iids)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, scanImage)
		if err != nil {
			return err
		}
		found := make(map[string]weft.Image, len(all))
		for _, im := range all {
			found[im.IID] = im
		}
		ims = make([]weft.Image, 0, len(found))
		for _, iid := range iids {
			if im, ok := found[iid]; ok {
				ims = append(ims, im)
			}
		}
		return nil
	})
	return ims, err
}

// Vectors streams from one read transaction, so fn sees one snapshot
// however long it takes; an error of fn is returned as it is.
func (db *DB) Vectors(ctx context.Context, catalogID string, fn func(weft.VectorItem) error) error {
	const op = "postgres.Vectors"
	var fnErr error
	err := db.read(ctx, op, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT iid, embedding::real[] FROM images
			WHERE catalog_id = $1 AND state = 'indexed' ORDER BY iid`, catalogID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it weft.VectorItem
			if err := rows.Scan(&it.IID, &it.Vector); err != nil {
				return err
			}
			if fnErr = fn(it); fnErr != nil {
				return fnErr
			}
		}
		return rows.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}
