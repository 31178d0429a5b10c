package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/weftlabs/weft"
)

func (db *DB) RecordUsage(ctx context.Context, keyID int64, op weft.UsageOp, images int, at time.Time) error {
	return db.write(ctx, "sqlite.RecordUsage", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO usage (key_id, month, op, calls, images) VALUES (?, ?, ?, 1, ?)
			ON CONFLICT (key_id, month, op) DO UPDATE SET
				calls = calls + 1,
				images = images + excluded.images`,
			keyID, weft.UsageMonth(at), op, images)
		return err
	})
}

func (db *DB) Usage(ctx context.Context, keyID int64) (weft.Usage, error) {
	const op = "sqlite.Usage"
	rows, err := db.r.QueryContext(ctx, `SELECT month, op, calls, images FROM usage WHERE key_id = ?`, keyID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	u := weft.Usage{}
	for rows.Next() {
		var month string
		var uop weft.UsageOp
		var c weft.UsageCount
		if err := rows.Scan(&month, &uop, &c.Calls, &c.Images); err != nil {
			return nil, wrap(op, err)
		}
		u.Add(month, uop, c)
	}
	return u, wrap(op, rows.Err())
}
