package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/weftlabs/weft"
)

// SetEmbeddingModel locks the settings table first, so that of several
// nodes starting at once with a new model exactly one drops the vectors.
func (db *DB) SetEmbeddingModel(ctx context.Context, model string) ([]string, error) {
	const op = "postgres.SetEmbeddingModel"
	var dropped []string
	err := db.write(ctx, op, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE settings IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var cur string
		err := tx.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'embedding_model'`).Scan(&cur)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if cur == model {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT id FROM catalogs WHERE num_indexed > 0 ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		if dropped, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE images SET state = 'pending', embedding = NULL
			WHERE catalog_id = ANY($1) AND state = 'indexed'`, dropped); err != nil {
			return err
		}
		statuses := make([]string, len(weft.ReindexStatuses))
		for i, s := range weft.ReindexStatuses {
			statuses[i] = string(s)
		}
		if _, err := tx.Exec(ctx, `UPDATE catalogs
			SET num_indexed = 0, status = CASE WHEN status = ANY($2) THEN $3 ELSE status END
			WHERE id = ANY($1)`, dropped, statuses, weft.StatusIndexing); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO jobs (catalog_id, key_id, state, created)
			SELECT id, key_id, 'queued', $2 FROM catalogs WHERE id = ANY($1) AND status = $3
			ON CONFLICT (catalog_id) WHERE state IN ('queued', 'running') DO NOTHING`,
			dropped, now(), weft.StatusIndexing); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('embedding_model', $1)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, model)
		return err
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}
