package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/weftlabs/weft"
)

// CreateCatalog stores c for c.KeyID and sets its ID, Created and Status.
func (db *DB) CreateCatalog(ctx context.Context, c *weft.Catalog) error {
	const op = "sqlite.CreateCatalog"
	created := now()
	var id string
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		// A clash of 64 random bits is all but impossible; retrying keeps
		// it from ever reaching a caller.
		for range 3 {
			var err error
			if id, err = weft.NewCatalogID(); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx,
				`INSERT INTO catalogs (id, key_id, name, status, created) VALUES (?, ?, ?, ?, ?)`,
				id, c.KeyID, c.Name, weft.StatusNew, micros(created))
			if !isUnique(err) {
				return err
			}
		}
		return errors.New("no free catalog id after 3 tries")
	})
	if err != nil {
		return err
	}
	c.ID, c.Created, c.Status = id, created, weft.StatusNew
	c.NumTotal, c.NumIndexed, c.ErrorLog = 0, 0, nil
	return nil
}

const catalogColumns = `id, key_id, name, status, created, num_total, num_indexed, num_errors`

func (db *DB) Catalog(ctx context.Context, keyID int64, id string) (weft.Catalog, error) {
	const op = "sqlite.Catalog"
	cs, err := db.catalogs(ctx, `WHERE id = ? AND key_id = ?`, id, keyID)
	if err != nil {
		return weft.Catalog{}, wrap(op, err)
	}
	if len(cs) == 0 {
		return weft.Catalog{}, catalogNotFound(op, id)
	}
	return cs[0], nil
}

func (db *DB) Catalogs(ctx context.Context, keyID int64) ([]weft.Catalog, error) {
	cs, err := db.catalogs(ctx, `WHERE key_id = ? ORDER BY created DESC, rowid DESC`, keyID)
	return cs, wrap("sqlite.Catalogs", err)
}

func (db *DB) CatalogsWithStatus(ctx context.Context, status weft.CatalogStatus) ([]weft.Catalog, error) {
	cs, err := db.catalogs(ctx, `WHERE status = ? ORDER BY created, rowid`, status)
	return cs, wrap("sqlite.CatalogsWithStatus", err)
}

// catalogs reads the catalogs that where selects, each with its error log,
// in one read transaction so that counters and logs agree.
func (db *DB) catalogs(ctx context.Context, where string, args ...any) ([]weft.Catalog, error) {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+catalogColumns+` FROM catalogs `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cs []weft.Catalog
	var numErrors []int
	for rows.Next() {
		var c weft.Catalog
		var created int64
		var n int
		if err := rows.Scan(&c.ID, &c.KeyID, &c.Name, &c.Status, &created,
			&c.NumTotal, &c.NumIndexed, &n); err != nil {
			return nil, err
		}
		c.Created = fromMicros(created)
		cs = append(cs, c)
		numErrors = append(numErrors, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range cs {
		if numErrors[i] == 0 {
			continue
		}
		if cs[i].ErrorLog, err = errorLog(ctx, tx, cs[i].ID, numErrors[i]); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

func errorLog(ctx context.Context, tx *sql.Tx, catalogID string, numErrors int) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT line FROM error_log WHERE catalog_id = ? ORDER BY n`, catalogID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lines := make([]string, 0, min(numErrors, weft.MaxErrorLog)+1)
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if dropped := numErrors - len(lines); dropped > 0 {
		lines = append(lines, weft.ErrorLogDropped(dropped))
	}
	return lines, nil
}

// DeleteCatalog removes the catalog, its jobs and error lines in one
// transaction, then its images in short ones (see purge).
func (db *DB) DeleteCatalog(ctx context.Context, keyID int64, id string) error {
	const op = "sqlite.DeleteCatalog"
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		// Jobs and error lines go by ON DELETE CASCADE.
		res, err := tx.ExecContext(ctx, `DELETE FROM catalogs WHERE id = ? AND key_id = ?`, id, keyID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return catalogNotFound(op, id)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO purge (catalog_id) VALUES (?) ON CONFLICT DO NOTHING`, id)
		return err
	})
	if err != nil {
		return err
	}
	// The catalog is gone for every caller already; a client hanging up
	// must not leave its images behind.
	return db.purge(context.WithoutCancel(ctx))
}

// purgeBatch bounds the images one purge transaction deletes, so that other
// writers wait for it a fraction of a second, not the length of the purge.
const purgeBatch = 5000

// purgePause separates purge transactions. Writers of this process are
// handed the connection as soon as it is free, but those of another
// process poll for SQLite's lock (every 100 ms at worst) and need a gap to
// find it free.
const purgePause = 10 * time.Millisecond

// purge deletes the images of every catalog listed in purge, including
// any that a crash cut short.
func (db *DB) purge(ctx context.Context) error {
	const op = "sqlite.purge"
	for {
		done := false
		err := db.write(ctx, op, func(tx *sql.Tx) error {
			var id string
			err := tx.QueryRowContext(ctx, `SELECT catalog_id FROM purge LIMIT 1`).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM images WHERE rowid IN
				(SELECT rowid FROM images WHERE catalog_id = ? LIMIT ?)`, id, purgeBatch)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil || n == purgeBatch {
				return err
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM purge WHERE catalog_id = ?`, id)
			return err
		})
		if err != nil || done {
			return err
		}
		time.Sleep(purgePause)
	}
}

func (db *DB) SetCatalogStatus(ctx context.Context, keyID int64, id string, status weft.CatalogStatus, from ...weft.CatalogStatus) error {
	const op = "sqlite.SetCatalogStatus"
	return db.write(ctx, op, func(tx *sql.Tx) error {
		current, err := catalogStatus(ctx, tx, op, keyID, id)
		if err != nil {
			return err
		}
		if err := weft.CheckTransition(op, id, current, from); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE catalogs SET status = ? WHERE id = ?`, status, id)
		return err
	})
}

// catalogStatus reads the status of keyID's catalog id inside tx;
// NotFound when there is no such catalog of that key.
func catalogStatus(ctx context.Context, tx *sql.Tx, op string, keyID int64, id string) (weft.CatalogStatus, error) {
	var s weft.CatalogStatus
	err := tx.QueryRowContext(ctx, `SELECT status FROM catalogs WHERE id = ? AND key_id = ?`, id, keyID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", catalogNotFound(op, id)
	}
	return s, err
}

func (db *DB) AppendErrorLog(ctx context.Context, keyID int64, id string, lines ...string) error {
	const op = "sqlite.AppendErrorLog"
	return db.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := catalogStatus(ctx, tx, op, keyID, id); err != nil {
			return err
		}
		return appendErrorLog(ctx, tx, id, lines)
	})
}

// appendErrorLog keeps the first weft.MaxErrorLog lines of a catalog and
// only counts the rest.
func appendErrorLog(ctx context.Context, tx *sql.Tx, catalogID string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	var n int
	err := tx.QueryRowContext(ctx,
		`UPDATE catalogs SET num_errors = num_errors + ? WHERE id = ? RETURNING num_errors - ?`,
		len(lines), catalogID, len(lines)).Scan(&n)
	if err != nil {
		return err
	}
	if n >= weft.MaxErrorLog {
		return nil
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO error_log (catalog_id, n, line) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, l := range lines[:min(len(lines), weft.MaxErrorLog-n)] {
		if _, err := ins.ExecContext(ctx, catalogID, n, l); err != nil {
			return err
		}
		n++
	}
	return nil
}
