package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/weftlabs/weft"
)

// CreateKey stores k and sets its ID and Created; Conflict when its APIKey
// is taken.
func (db *DB) CreateKey(ctx context.Context, k *weft.Key) error {
	const op = "sqlite.CreateKey"
	created := now()
	var id int64
	err := db.write(ctx, op, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			`INSERT INTO keys (name, api_key, secret_hash, created) VALUES (?, ?, ?, ?) RETURNING id`,
			k.Name, k.APIKey, k.SecretHash, micros(created)).Scan(&id)
		if isUnique(err) {
			return weft.E(op, weft.Conflict, weft.Msgf("API key %s exists already.", k.APIKey), err)
		}
		return err
	})
	if err != nil {
		return err
	}
	k.ID, k.Created = id, created
	return nil
}

// KeyByAPIKey answers Unauthorized for an unknown API key: its only caller
// exchanges credentials, where an unknown key must look like a bad secret.
func (db *DB) KeyByAPIKey(ctx context.Context, apiKey string) (weft.Key, error) {
	const op = "sqlite.KeyByAPIKey"
	k, err := scanKey(db.r.QueryRowContext(ctx,
		`SELECT id, name, api_key, secret_hash, created FROM keys WHERE api_key = ?`, apiKey))
	if errors.Is(err, sql.ErrNoRows) {
		return weft.Key{}, weft.E(op, weft.Unauthorized, weft.Msgf("Unknown API key."))
	}
	return k, wrap(op, err)
}

func (db *DB) CreateToken(ctx context.Context, t weft.Token, now time.Time) error {
	const op = "sqlite.CreateToken"
	return db.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE key_id = ? AND expires <= ?`,
			t.KeyID, micros(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (hash, key_id, expires) VALUES (?, ?, ?)`,
			t.Hash, t.KeyID, micros(t.Expires))
		if isUnique(err) {
			return weft.E(op, weft.Conflict, weft.Msgf("Token exists already."), err)
		}
		return err
	})
}

func (db *DB) KeyByToken(ctx context.Context, hash []byte, at time.Time) (weft.Key, error) {
	const op = "sqlite.KeyByToken"
	k, err := scanKey(db.r.QueryRowContext(ctx,
		`SELECT k.id, k.name, k.api_key, k.secret_hash, k.created
		FROM tokens t JOIN keys k ON k.id = t.key_id
		WHERE t.hash = ? AND t.expires > ?`, hash, micros(at)))
	if errors.Is(err, sql.ErrNoRows) {
		return weft.Key{}, weft.E(op, weft.Unauthorized, weft.Msgf("Invalid or expired access token."))
	}
	return k, wrap(op, err)
}

func scanKey(row *sql.Row) (weft.Key, error) {
	var k weft.Key
	var created int64
	if err := row.Scan(&k.ID, &k.Name, &k.APIKey, &k.SecretHash, &created); err != nil {
		return weft.Key{}, err
	}
	k.Created = fromMicros(created)
	return k, nil
}
