package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/weftlabs/weft"
)

// CreateCatalog stores c for c.KeyID and sets its ID, Created and Status.
func (db *DB) CreateCatalog(ctx context.Context, c *weft.Catalog) error {
	const op = "postgres.CreateCatalog"
	created := now()
	var id string
	// A clash of 64 random bits is all but impossible; retrying keeps it
	// from ever reaching a caller. Each try is its own statement, as a
	// failed one would spoil a transaction.
	for try := 0; ; try++ {
		var err error
		if id, err = weft.NewCatalogID(); err != nil {
			return wrap(op, err)
		}
		_, err = db.pool.Exec(ctx,
			`INSERT INTO catalogs (id, key_id, name, status, created) VALUES ($1, $2, $3, $4, $5)`,
			id, c.KeyID, c.Name, weft.StatusNew, created)
		if err == nil {
			break
		}
		if isForeignKey(err) {
			return weft.E(op, weft.NotFound, weft.Msgf("Key %d not found.", c.KeyID), err)
		}
		if !isUnique(err) || try == 2 {
			return wrap(op, err)
		}
	}
	c.ID, c.Created, c.Status = id, created, weft.StatusNew
	c.NumTotal, c.NumIndexed, c.ErrorLog = 0, 0, nil
	return nil
}

// catalogSelect reads catalogs with their error logs in one statement, so
// that counters and logs agree.
const catalogSelect = `SELECT c.id, c.key_id, c.name, c.status, c.created, c.num_total, c.num_indexed, c.num_errors,
	ARRAY(SELECT l.line FROM error_log l WHERE l.catalog_id = c.id ORDER BY l.n)
	FROM catalogs c `

func (db *DB) Catalog(ctx context.Context, keyID int64, id string) (weft.Catalog, error) {
	const op = "postgres.Catalog"
	cs, err := db.catalogs(ctx, `WHERE c.id = $1 AND c.key_id = $2`, id, keyID)
	if err != nil {
		return weft.Catalog{}, wrap(op, err)
	}
	if len(cs) == 0 {
		return weft.Catalog{}, catalogNotFound(op, id)
	}
	return cs[0], nil
}

func (db *DB) Catalogs(ctx context.Context, keyID int64) ([]weft.Catalog, error) {
	cs, err := db.catalogs(ctx, `WHERE c.key_id = $1 ORDER BY c.created DESC, c.seq DESC`, keyID)
	return cs, wrap("postgres.Catalogs", err)
}

func (db *DB) CatalogsWithStatus(ctx context.Context, status weft.CatalogStatus) ([]weft.Catalog, error) {
	cs, err := db.catalogs(ctx, `WHERE c.status = $1 ORDER BY c.created, c.seq`, status)
	return cs, wrap("postgres.CatalogsWithStatus", err)
}

func (db *DB) catalogs(ctx context.Context, where string, args ...any) ([]weft.Catalog, error) {
	rows, err := db.pool.Query(ctx, catalogSelect+where, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (weft.Catalog, error) {
		var c weft.Catalog
		var numErrors int
		var lines []string
		if err := row.Scan(&c.ID, &c.KeyID, &c.Name, &c.Status, &c.Created,
			&c.NumTotal, &c.NumIndexed, &numErrors, &lines); err != nil {
			return c, err
		}
		c.Created = c.Created.UTC()
		if dropped := numErrors - len(lines); dropped > 0 {
			lines = append(lines, weft.ErrorLogDropped(dropped))
		}
		if len(lines) > 0 {
			c.ErrorLog = lines
		}
		return c, nil
	})
}

func (db *DB) DeleteCatalog(ctx context.Context, keyID int64, id string) error {
	const op = "postgres.DeleteCatalog"
	// Images with their vectors, error lines and jobs go by ON DELETE
	// CASCADE; a worker still indexing finds the catalog gone.
	tag, err := db.pool.Exec(ctx, `DELETE FROM catalogs WHERE id = $1 AND key_id = $2`, id, keyID)
	if err != nil {
		return wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return catalogNotFound(op, id)
	}
	return nil
}

func (db *DB) SetCatalogStatus(ctx context.Context, keyID int64, id string, status weft.CatalogStatus, from ...weft.CatalogStatus) error {
	const op = "postgres.SetCatalogStatus"
	return db.write(ctx, op, func(tx pgx.Tx) error {
		current, err := lockCatalog(ctx, tx, op, keyID, id)
		if err != nil {
			return err
		}
		if err := weft.CheckTransition(op, id, current, from); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE catalogs SET status = $1 WHERE id = $2`, status, id)
		return err
	})
}

// lockCatalog locks the row of keyID's catalog id for the rest of tx and
// returns its status; NotFound when there is no such catalog of that key.
// Every write that changes a catalog's counters or status takes this lock
// first, so that they serialise per catalog, across nodes, without
// deadlocking on image rows.
func lockCatalog(ctx context.Context, tx pgx.Tx, op string, keyID int64, id string) (weft.CatalogStatus, error) {
	var s weft.CatalogStatus
	err := tx.QueryRow(ctx, `SELECT status FROM catalogs WHERE id = $1 AND key_id = $2 FOR UPDATE`, id, keyID).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", catalogNotFound(op, id)
	}
	return s, err
}

// lockCatalogOfAnyKey is lockCatalog for the indexer, which works on
// behalf of whichever key owns the catalog.
func lockCatalogOfAnyKey(ctx context.Context, tx pgx.Tx, op string, id string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM catalogs WHERE id = $1 FOR UPDATE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return catalogNotFound(op, id)
	}
	return err
}

func (db *DB) AppendErrorLog(ctx context.Context, keyID int64, id string, lines ...string) error {
	const op = "postgres.AppendErrorLog"
	return db.write(ctx, op, func(tx pgx.Tx) error {
		if _, err := lockCatalog(ctx, tx, op, keyID, id); err != nil {
			return err
		}
		return appendErrorLog(ctx, tx, id, lines)
	})
}

// appendErrorLog keeps the first weft.MaxErrorLog lines of a catalog and
// only counts the rest. The caller holds the catalog's lock.
func appendErrorLog(ctx context.Context, tx pgx.Tx, catalogID string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	var n int
	if err := tx.QueryRow(ctx,
		`UPDATE catalogs SET num_errors = num_errors + $1 WHERE id = $2 RETURNING num_errors - $1`,
		len(lines), catalogID).Scan(&n); err != nil {
		return err
	}
	if n >= weft.MaxErrorLog {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO error_log (catalog_id, n, line)
		SELECT $1, $2 + l.i - 1, l.line FROM unnest($3::text[]) WITH ORDINALITY AS l(line, i)`,
		catalogID, n, lines[:min(len(lines), weft.MaxErrorLog-n)])
	return err
}
