package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/weftlabs/weft"
)

// CreateKey stores k and sets its ID and Created; Conflict when its APIKey
// is taken.
func (db *DB) CreateKey(ctx context.Context, k *weft.Key) error {
	const op = "postgres.CreateKey"
	created := now()
	var id int64
	err := db.pool.QueryRow(ctx,
		`INSERT INTO keys (name, api_key, secret_hash, created) VALUES ($1, $2, $3, $4) RETURNING id`,
		k.Name, k.APIKey, k.SecretHash, created).Scan(&id)
	if isUnique(err) {
		return weft.E(op, weft.Conflict, weft.Msgf("API key %s exists already.", k.APIKey), err)
	}
	if err != nil {
		return wrap(op, err)
	}
	k.ID, k.Created = id, created
	return nil
}

// KeyByAPIKey answers Unauthorized for an unknown API key: its only caller
// exchanges credentials, where an unknown key must look like a bad secret.
func (db *DB) KeyByAPIKey(ctx context.Context, apiKey string) (weft.Key, error) {
	const op = "postgres.KeyByAPIKey"
	k, err := scanKey(db.pool.QueryRow(ctx,
		`SELECT id, name, api_key, secret_hash, created FROM keys WHERE api_key = $1`, apiKey))
	if errors.Is(err, pgx.ErrNoRows) {
		return weft.Key{}, weft.E(op, weft.Unauthorized, weft.Msgf("Unknown API key."))
	}
	return k, wrap(op, err)
}

// CreateToken stores t and drops its key's expired tokens, in one
// statement; NotFound when its key does not exist, Conflict when its hash
// does already.
func (db *DB) CreateToken(ctx context.Context, t weft.Token, now time.Time) error {
	const op = "postgres.CreateToken"
	_, err := db.pool.Exec(ctx, `WITH expired AS (DELETE FROM tokens WHERE key_id = $2 AND expires <= $4)
		INSERT INTO tokens (hash, key_id, expires) VALUES ($1, $2, $3)`,
		t.Hash, t.KeyID, t.Expires, now)
	switch {
	case isUnique(err):
		return weft.E(op, weft.Conflict, weft.Msgf("Token exists already."), err)
	case isForeignKey(err):
		return weft.E(op, weft.NotFound, weft.Msgf("Key %d not found.", t.KeyID), err)
	}
	return wrap(op, err)
}

func (db *DB) KeyByToken(ctx context.Context, hash []byte, at time.Time) (weft.Key, error) {
	const op = "postgres.KeyByToken"
	k, err := scanKey(db.pool.QueryRow(ctx,
		`SELECT k.id, k.name, k.api_key, k.secret_hash, k.created
		FROM tokens t JOIN keys k ON k.id = t.key_id
		WHERE t.hash = $1 AND t.expires > $2`, hash, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return weft.Key{}, weft.E(op, weft.Unauthorized, weft.Msgf("Invalid or expired access token."))
	}
	return k, wrap(op, err)
}

func scanKey(row pgx.Row) (weft.Key, error) {
	var k weft.Key
	if err := row.Scan(&k.ID, &k.Name, &k.APIKey, &k.SecretHash, &k.Created); err != nil {
		return weft.Key{}, err
	}
	k.Created = k.Created.UTC()
	return k, nil
}
