// Package auth makes and checks Weft's credentials: API key pairs, which
// /v0/token exchanges for access tokens, and the tokens that every other
// call carries in its Authorization header.
//
// Secrets and tokens are 256-bit random strings, so a plain SHA-256 hash is
// as hard to reverse as the string is to guess: no slow password hash is
// needed, and the store keeps only the hashes.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
	"unicode"

	"github.com/weftlabs/weft"
)

// Lengths, in random bytes, of what NewKeyPair and IssueToken make. Encoded
// in URL-safe base64 without padding they are 22, 43 and 43 characters.
const (
	apiKeyBytes = 16 // an identifier: unique, need not be secret
	secretBytes = 32
	tokenBytes  = 32
)

// maxTokenLen bounds what Authenticate hashes and looks up; anything longer
// cannot be a token of ours.
const maxTokenLen = 512

// NewKeyPair returns a fresh random API key and secret, both URL-safe.
func NewKeyPair() (apiKey, secret string, err error) {
	if apiKey, err = random(apiKeyBytes); err != nil {
		return "", "", err
	}
	if secret, err = random(secretBytes); err != nil {
		return "", "", err
	}
	return apiKey, secret, nil
}

// HashSecret returns the hash of an API secret that Key.SecretHash stores.
func HashSecret(secret string) []byte { return hash(secret) }

// HashToken returns the hash of an access token that Token.Hash stores.
func HashToken(token string) []byte { return hash(token) }

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", weft.E("auth.random", weft.Internal, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Service creates keys and issues and checks tokens against a Store.
type Service struct {
	Store    weft.Store
	TokenTTL time.Duration    // default 24 h
	Now      func() time.Time // default time.Now
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) ttl() time.Duration {
	if s.TokenTTL > 0 {
		return s.TokenTTL
	}
	return 24 * time.Hour
}

// CreateKey makes and stores a new key pair named name. The secret is shown
// only here: the store keeps its hash.
func (s *Service) CreateKey(ctx context.Context, name string) (apiKey, secret string, err error) {
	const op = "auth.CreateKey"
	name = strings.TrimSpace(name)
	if name == "" {
		return "", "", weft.E(op, weft.Invalid, weft.Msgf("A key needs a name: say whose or what for."))
	}
	apiKey, secret, err = NewKeyPair()
	if err != nil {
		return "", "", weft.E(op, err)
	}
	k := &weft.Key{Name: name, APIKey: apiKey, SecretHash: HashSecret(secret)}
	if err := s.Store.CreateKey(ctx, k); err != nil {
		return "", "", weft.E(op, err)
	}
	return apiKey, secret, nil
}

const badCredentials = "Invalid api_key or api_secret: send the pair that was made for you, as api_key and api_secret."

// dummyHash stands in for the stored hash of an unknown API key, so that a
// wrong key costs the same comparison as a wrong secret.
var dummyHash = hash("")

// IssueToken exchanges an API key and secret for a new access token, valid
// for expiresIn. An unknown key and a wrong secret get the same Unauthorized
// answer, so that it does not tell which keys exist.
func (s *Service) IssueToken(ctx context.Context, apiKey, secret string) (token string, expiresIn time.Duration, err error) {
	const op = "auth.IssueToken"
	if apiKey == "" || secret == "" {
		return "", 0, weft.E(op, weft.Unauthorized,
			weft.Msgf("Missing api_key or api_secret: send both to get an access token."))
	}
	k, err := s.Store.KeyByAPIKey(ctx, apiKey)
	stored := k.SecretHash
	switch kind := weft.KindOf(err); {
	case err == nil:
	case kind == weft.Unauthorized || kind == weft.NotFound:
		stored = dummyHash
	default:
		return "", 0, weft.E(op, err)
	}
	if subtle.ConstantTimeCompare(HashSecret(secret), stored) != 1 || err != nil {
		return "", 0, weft.E(op, weft.Unauthorized, weft.Msgf(badCredentials))
	}
	if token, err = random(tokenBytes); err != nil {
		return "", 0, weft.E(op, err)
	}
	ttl, now := s.ttl(), s.now()
	t := weft.Token{Hash: HashToken(token), KeyID: k.ID, Expires: now.Add(ttl)}
	if err := s.Store.CreateToken(ctx, t, now); err != nil {
		return "", 0, weft.E(op, err)
	}
	return token, ttl, nil
}

const (
	missingToken = "Missing access token: get one from /v0/token and send it as Authorization: Bearer <token>."
	badToken     = "Invalid or expired access token: get a new one from /v0/token and send it as Authorization: Bearer <token>."
	badScheme    = "Unsupported Authorization header: send Authorization: Bearer <token>, with a token from /v0/token."
)

// Authenticate returns the key whose unexpired token the Authorization header
// carries.
func (s *Service) Authenticate(ctx context.Context, authorization string) (weft.Key, error) {
	const op = "auth.Authenticate"
	token, msg := bearerToken(authorization)
	if msg != "" {
		return weft.Key{}, weft.E(op, weft.Unauthorized, weft.Msgf("%s", msg))
	}
	k, err := s.Store.KeyByToken(ctx, HashToken(token), s.now())
	if err != nil {
		if kind := weft.KindOf(err); kind == weft.Unauthorized || kind == weft.NotFound {
			return weft.Key{}, weft.E(op, weft.Unauthorized, weft.Msgf(badToken), err)
		}
		return weft.Key{}, weft.E(op, err)
	}
	return k, nil
}

// bearerToken takes the token out of an Authorization header, or says what
// is wrong with it. It takes "Bearer <token>", the scheme in any case, and
// the bare token, as the v0 page's examples use both.
func bearerToken(header string) (token, msg string) {
	token = strings.TrimSpace(header)
	if scheme, rest, ok := strings.Cut(token, " "); ok {
		if !strings.EqualFold(scheme, "Bearer") {
			return "", badScheme
		}
		token = strings.TrimSpace(rest)
	}
	switch {
	case token == "" || strings.EqualFold(token, "Bearer"):
		return "", missingToken
	case len(token) > maxTokenLen || strings.ContainsFunc(token, unicode.IsSpace):
		return "", badToken
	}
	return token, ""
}
