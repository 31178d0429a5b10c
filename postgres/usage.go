package postgres

import (
	"context"
	"time"

	"github.com/weftlabs/weft"
)

func (db *DB) RecordUsage(ctx context.Context, keyID int64, op weft.UsageOp, images int, at time.Time) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO usage (key_id, month, op, calls, images) VALUES ($1, $2, $3, 1, $4)
		ON CONFLICT (key_id, month, op) DO UPDATE SET
			calls = usage.calls + 1,
			images = usage.images + excluded.images`,
		keyID, weft.UsageMonth(at), op, images)
	return wrap("postgres.RecordUsage", err)
}

func (db *DB) Usage(ctx context.Context, keyID int64) (weft.Usage, error) {
	const op = "postgres.Usage"
	rows, err := db.pool.Query(ctx, `SELECT month, op, calls, images FROM usage WHERE key_id = $1`, keyID)
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
