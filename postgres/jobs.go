package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/weftlabs/weft"
)

const jobColumns = `id, catalog_id, key_id, state, attempts, worker, locked_until, created`

func scanJob(row pgx.Row) (weft.Job, error) {
	var j weft.Job
	var locked *time.Time
	if err := row.Scan(&j.ID, &j.CatalogID, &j.KeyID, &j.State, &j.Attempts, &j.Worker, &locked, &j.Created); err != nil {
		return weft.Job{}, err
	}
	if locked != nil {
		j.LockedUntil = locked.UTC()
	}
	j.Created = j.Created.UTC()
	return j, nil
}

// StartIndex holds the catalog's lock while it looks for a live job and
// queues one, so two nodes starting the same catalog make one job.
func (db *DB) StartIndex(ctx context.Context, keyID int64, catalogID string) (weft.Job, error) {
	const op = "postgres.StartIndex"
	var job weft.Job
	err := db.write(ctx, op, func(tx pgx.Tx) error {
		status, err := lockCatalog(ctx, tx, op, keyID, catalogID)
		if err != nil {
			return err
		}
		if status == weft.StatusUploading {
			return weft.E(op, weft.Conflict, weft.Msgf("Catalog %s is still uploading.", catalogID))
		}
		job, err = scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs
			WHERE catalog_id = $1 AND state IN ('queued', 'running')`, catalogID))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE catalogs SET status = $1 WHERE id = $2`,
			weft.StatusIndexing, catalogID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE images SET state = 'pending'
			WHERE catalog_id = $1 AND state = 'failed'`, catalogID); err != nil {
			return err
		}
		job, err = scanJob(tx.QueryRow(ctx, `INSERT INTO jobs (catalog_id, key_id, state, created)
			VALUES ($1, $2, 'queued', $3) RETURNING `+jobColumns, catalogID, keyID, now()))
		return err
	})
	return job, err
}

// ClaimJob is safe for workers on every node at once: SKIP LOCKED lets each
// pass over a job another is claiming this instant rather than wait for it,
// and the row's recheck after locking keeps two from taking the same job.
func (db *DB) ClaimJob(ctx context.Context, worker string, at time.Time, lease time.Duration) (weft.Job, bool, error) {
	const op = "postgres.ClaimJob"
	job, err := scanJob(db.pool.QueryRow(ctx, `UPDATE jobs
		SET state = 'running', worker = $1, locked_until = $2, attempts = attempts + 1
		WHERE id = (SELECT id FROM jobs
			WHERE state = 'queued' OR (state = 'running' AND locked_until <= $3)
			ORDER BY id LIMIT 1
			FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, worker, at.Add(lease), at))
	if errors.Is(err, pgx.ErrNoRows) {
		return weft.Job{}, false, nil
	}
	if err != nil {
		return weft.Job{}, false, wrap(op, err)
	}
	return job, true, nil
}

func (db *DB) RenewJob(ctx context.Context, jobID int64, worker string, until time.Time) error {
	const op = "postgres.RenewJob"
	tag, err := db.pool.Exec(ctx, `UPDATE jobs SET locked_until = $1
		WHERE id = $2 AND worker = $3 AND state = 'running'`, until, jobID, worker)
	if err != nil {
		return wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return weft.E(op, weft.Conflict, weft.Msgf("Job %d is no longer held by %s.", jobID, worker))
	}
	return nil
}

// FinishJob ends a job, or parks it (JobQueued) for any node to claim.
func (db *DB) FinishJob(ctx context.Context, jobID int64, state weft.JobState, catalogStatus weft.CatalogStatus) error {
	const op = "postgres.FinishJob"
	if state != weft.JobDone && state != weft.JobFailed && state != weft.JobQueued {
		return weft.E(op, weft.Invalid, weft.Msgf("A job ends %q or %q, or is parked %q, not %q.",
			weft.JobDone, weft.JobFailed, weft.JobQueued, state))
	}
	return db.write(ctx, op, func(tx pgx.Tx) error {
		var catalogID string
		err := tx.QueryRow(ctx, `UPDATE jobs SET state = $1, locked_until = NULL, worker = '' WHERE id = $2
			RETURNING catalog_id`, state, jobID).Scan(&catalogID)
		if errors.Is(err, pgx.ErrNoRows) {
			return weft.E(op, weft.NotFound, weft.Msgf("Job %d not found.", jobID))
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE catalogs SET status = $1 WHERE id = $2`, catalogStatus, catalogID)
		return err
	})
}

func (db *DB) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')`).Scan(&n)
	return n, wrap("postgres.QueueDepth", err)
}
