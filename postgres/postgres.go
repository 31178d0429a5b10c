// Package postgres is weft.Store and weft.Index on PostgreSQL with the
// pgvector extension, through pgx. Several weft processes may share one
// database: migrations run under an advisory lock, jobs are claimed with
// FOR UPDATE SKIP LOCKED, and every write that moves a catalog's counters
// locks that catalog's row first, so they stay exact across nodes.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/weftlabs/weft"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the pg_advisory_lock key that serialises migrations of all
// weft processes on one database ("weft" in ASCII).
const migrateLock = 0x77656674

// DB is a weft.Store and a weft.Index on one PostgreSQL database.
type DB struct {
	pool      *pgxpool.Pool
	exactUpTo int // see Search; tests lower it to reach the HNSW path
}

var (
	_ weft.Store = (*DB)(nil)
	_ weft.Index = (*DB)(nil)
)

// Open connects to the database at url (postgres://user@host:port/db?...),
// creates the vector extension if need be and brings the schema up to date.
func Open(ctx context.Context, url string) (*DB, error) {
	const op = "postgres.Open"
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("Bad PostgreSQL URL."), err)
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		return nil, wrap(op, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(op, err)
	}
	return &DB{pool: pool, exactUpTo: exactUpTo}, nil
}

// Close closes the pool. The DB is both the Store and the Index of a
// server, so Close is safe to call twice.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// migrate applies the numbered files of migrations/ that schema_migrations
// does not list yet, each in its own transaction, on a connection of its
// own that holds the advisory lock: weft processes starting together take
// turns, and the later ones find nothing left to do. Closing the connection
// releases the lock whatever happened.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS vector;
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer     PRIMARY KEY,
			applied timestamptz NOT NULL)`); err != nil {
		return err
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		base := path.Base(f)
		num, _, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", base)
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
				version).Scan(&done); err != nil || done {
				return err
			}
			// No arguments: pgx sends the file by the simple protocol,
			// which runs several statements.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, version, now())
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// write runs fn in a transaction, committing when it returns nil, and
// gives every error that is not already a *weft.Error a kind.
func (db *DB) write(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	return wrap(op, pgx.BeginFunc(ctx, db.pool, fn))
}

// read runs fn in a read-only repeatable-read transaction: one snapshot,
// so that counters and rows read together agree.
func (db *DB) read(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	return wrap(op, pgx.BeginTxFunc(ctx, db.pool,
		pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn))
}

// wrap classifies err: what a retry may cure (a lost connection, a
// cancelled context, a deadlock or serialisation failure, a server short of
// resources) is Unavailable, anything else not already a *weft.Error is
// Internal.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var we *weft.Error
	if errors.As(err, &we) {
		return err
	}
	if retryable(err) {
		return weft.E(op, weft.Unavailable, weft.Msgf("The database is unavailable, try again later."), err)
	}
	return weft.E(op, weft.Internal, err)
}

func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources
			strings.HasPrefix(pe.Code, "57P"),      // operator intervention: shutdown
			pe.Code == "40001", pe.Code == "40P01": // serialisation failure, deadlock
			return true
		}
	}
	return false
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// isForeignKey reports whether err is a foreign key violation.
func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

func catalogNotFound(op, id string) error {
	return weft.E(op, weft.NotFound, weft.Msgf("Catalog %s not found.", id))
}

// now is the store's clock, at the precision it keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
