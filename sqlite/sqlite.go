// Package sqlite is weft.Store on one SQLite file, through the pure-Go
// driver modernc.org/sqlite.
//
// The file is opened twice: a pool of one connection for writes, whose
// transactions all BEGIN IMMEDIATE, and a pool of read-only connections.
// Writers of this process therefore queue in Go instead of racing for
// SQLite's lock, and writers of another process (weft keys create beside a
// running server) wait for it under busy_timeout rather than failing with
// SQLITE_BUSY; in WAL mode readers never wait for writers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weftlabs/weft"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// busyTimeout is how long a statement waits for another process's write
// lock before it gives up.
const busyTimeout = 10 * time.Second

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a weft.Store on one SQLite file.
type DB struct {
	w *sql.DB // one connection: every write
	r *sql.DB // read-only connections
}

var _ weft.Store = (*DB)(nil)

// Open opens (creating it if need be) the database file at path and brings
// its schema up to date.
func Open(path string) (*DB, error) {
	const op = "sqlite.Open"
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, weft.E(op, weft.Internal, err)
	}
	w, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, weft.E(op, weft.Internal, err)
	}
	w.SetMaxOpenConns(1)
	// A new connection's pragmas can meet SQLITE_BUSY without the busy
	// handler being asked: switching a new file to WAL, or opening while
	// another connection recovers the WAL, fails at once. Open retries
	// that for as long as busy_timeout would have waited.
	deadline := time.Now().Add(busyTimeout)
	for err = migrate(context.Background(), w); isBusy(err) && time.Now().Before(deadline); err = migrate(context.Background(), w) {
		time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
	}
	if err != nil {
		w.Close()
		return nil, weft.E(op, weft.Internal, weft.Msgf("Cannot open the database %s.", path), err)
	}
	r, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, weft.E(op, weft.Internal, err)
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	r.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	return &DB{w: w, r: r}, nil
}

func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	// busy_timeout comes first so that the pragmas after it wait, too.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// migrate applies, in one transaction, the numbered files of migrations/
// that schema_migrations does not list yet. Two processes that open a new
// file at once are serialised by BEGIN IMMEDIATE; the second finds nothing
// left to do.
func migrate(ctx context.Context, w *sql.DB) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	return inTx(ctx, w, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			applied INTEGER NOT NULL)`); err != nil {
			return err
		}
		for _, f := range files {
			base := filepath.Base(f)
			num, _, _ := strings.Cut(base, "_")
			version, err := strconv.Atoi(num)
			if err != nil {
				return fmt.Errorf("migration %s: name must start with its number", base)
			}
			var done bool
			if err := tx.QueryRowContext(ctx,
				`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, version).Scan(&done); err != nil {
				return err
			}
			if done {
				continue
			}
			body, err := migrations.ReadFile(f)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`,
				version, micros(time.Now())); err != nil {
				return err
			}
		}
		return nil
	})
}

// inTx runs fn in a transaction of pool, committing when fn returns nil.
func inTx(ctx context.Context, pool *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// write runs fn in a write transaction and gives every error that is not
// already a *weft.Error the kind Internal.
func (db *DB) write(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	return wrap(op, inTx(ctx, db.w, fn))
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var we *weft.Error
	if errors.As(err, &we) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return weft.E(op, weft.Unavailable, err)
	}
	if isBusy(err) {
		return weft.E(op, weft.Unavailable, weft.Msgf("The database is busy, try again later."), err)
	}
	return weft.E(op, weft.Internal, err)
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func isBusy(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqlite3lib.SQLITE_BUSY || se.Code()&0xff == sqlite3lib.SQLITE_LOCKED)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) &&
		(se.Code() == sqlite3lib.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY)
}

func catalogNotFound(op, id string) error {
	return weft.E(op, weft.NotFound, weft.Msgf("Catalog %s not found.", id))
}

// micros is t as stored: microseconds since the epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// now is the store's clock, at the precision it keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("vector of %d bytes", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
