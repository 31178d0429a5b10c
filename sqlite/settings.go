package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"

	"github.com/weftlabs/weft"
)

func (db *DB) SetEmbeddingModel(ctx context.Context, model string) ([]string, error) {
	const op = "sqlite.SetEmbeddingModel"
	var dropped []string
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = 'embedding_model'`).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur == model {
			return nil
		}
		type catalog struct {
			id     string
			keyID  int64
			status weft.CatalogStatus
		}
		var cats []catalog
		rows, err := tx.QueryContext(ctx, `SELECT id, key_id, status FROM catalogs WHERE num_indexed > 0`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c catalog
			if err := rows.Scan(&c.id, &c.keyID, &c.status); err != nil {
				rows.Close()
				return err
			}
			cats = append(cats, c)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, c := range cats {
			if _, err := tx.ExecContext(ctx, `UPDATE images SET state = 'pending', vector = NULL
				WHERE catalog_id = ? AND state = 'indexed'`, c.id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE catalogs SET num_indexed = 0 WHERE id = ?`, c.id); err != nil {
				return err
			}
			dropped = append(dropped, c.id)
			if !slices.Contains(weft.ReindexStatuses, c.status) {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE catalogs SET status = ? WHERE id = ?`,
				weft.StatusIndexing, c.id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (catalog_id, key_id, state, created)
				SELECT ?, ?, 'queued', ? WHERE NOT EXISTS (SELECT 1 FROM jobs
					WHERE catalog_id = ? AND state IN ('queued', 'running'))`,
				c.id, c.keyID, micros(now()), c.id); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES ('embedding_model', ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, model)
		return err
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}
