package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/weftlabs/weft"
)

const jobColumns = `id, catalog_id, key_id, state, attempts, worker, locked_until, created`

func scanJob(row *sql.Row) (weft.Job, error) {
	var j weft.Job
	var locked, created int64
	if err := row.Scan(&j.ID, &j.CatalogID, &j.KeyID, &j.State, &j.Attempts, &j.Worker, &locked, &created); err != nil {
		return weft.Job{}, err
	}
	if locked != 0 {
		j.LockedUntil = fromMicros(locked)
	}
	j.Created = fromMicros(created)
	return j, nil
}

func (db *DB) StartIndex(ctx context.Context, keyID int64, catalogID string) (weft.Job, error) {
	const op = "sqlite.StartIndex"
	var job weft.Job
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		status, err := catalogStatus(ctx, tx, op, keyID, catalogID)
		if err != nil {
			return err
		}
		if status == weft.StatusUploading {
			return weft.E(op, weft.Conflict, weft.Msgf("Catalog %s is still uploading.", catalogID))
		}
		job, err = scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE catalog_id = ? AND state IN ('queued', 'running')`, catalogID))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE catalogs SET status = ? WHERE id = ?`,
			weft.StatusIndexing, catalogID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE images SET state = 'pending'
			WHERE catalog_id = ? AND state = 'failed'`, catalogID); err != nil {
			return err
		}
		job, err = scanJob(tx.QueryRowContext(ctx, `INSERT INTO jobs (catalog_id, key_id, state, created)
			VALUES (?, ?, 'queued', ?) RETURNING `+jobColumns, catalogID, keyID, micros(now())))
		return err
	})
	return job, err
}

func (db *DB) ClaimJob(ctx context.Context, worker string, at time.Time, lease time.Duration) (weft.Job, bool, error) {
	const op = "sqlite.ClaimJob"
	var job weft.Job
	found := false
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		var err error
		job, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs
			SET state = 'running', worker = ?, locked_until = ?, attempts = attempts + 1
			WHERE id = (SELECT id FROM jobs
				WHERE state = 'queued' OR (state = 'running' AND locked_until <= ?)
				ORDER BY id LIMIT 1)
			RETURNING `+jobColumns, worker, micros(at.Add(lease)), micros(at)))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	return job, found, err
}

func (db *DB) RenewJob(ctx context.Context, jobID int64, worker string, until time.Time) error {
	const op = "sqlite.RenewJob"
	return db.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET locked_until = ?
			WHERE id = ? AND worker = ? AND state = 'running'`, micros(until), jobID, worker)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = weft.E(op, weft.Conflict, weft.Msgf("Job %d is no longer held by %s.", jobID, worker))
		}
		return err
	})
}

func (db *DB) FinishJob(ctx context.Context, jobID int64, state weft.JobState, catalogStatus weft.CatalogStatus) error {
	const op = "sqlite.FinishJob"
	if state != weft.JobDone && state != weft.JobFailed && state != weft.JobQueued {
		return weft.E(op, weft.Invalid, weft.Msgf("A job ends %q or %q, or is parked %q, not %q.", weft.JobDone, weft.JobFailed, weft.JobQueued, state))
	}
	return db.write(ctx, op, func(tx *sql.Tx) error {
		var catalogID string
		err := tx.QueryRowContext(ctx, `UPDATE jobs SET state = ?, locked_until = 0, worker = '' WHERE id = ? RETURNING catalog_id`,
			state, jobID).Scan(&catalogID)
		if errors.Is(err, sql.ErrNoRows) {
			return weft.E(op, weft.NotFound, weft.Msgf("Job %d not found.", jobID))
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE catalogs SET status = ? WHERE id = ?`, catalogStatus, catalogID)
		return err
	})
}

func (db *DB) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')`).Scan(&n)
	return n, wrap("sqlite.QueueDepth", err)
}
