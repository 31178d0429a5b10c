-- Times are INTEGER microseconds since the Unix epoch, UTC: exact, compact
-- and ordered the same way as the times themselves.

CREATE TABLE keys (
	id          INTEGER PRIMARY KEY,
	name        TEXT    NOT NULL,
	api_key     TEXT    NOT NULL UNIQUE,
	secret_hash BLOB    NOT NULL,
	created     INTEGER NOT NULL
);

CREATE TABLE tokens (
	hash    BLOB    PRIMARY KEY,
	key_id  INTEGER NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	expires INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX tokens_key ON tokens (key_id);

-- num_total and num_indexed are counters kept exact by every write that
-- changes them, so that reading a catalog of a million images stays cheap.
-- num_errors counts every error line ever appended; only the first
-- MaxErrorLog are kept in error_log.
CREATE TABLE catalogs (
	id          TEXT    PRIMARY KEY,
	key_id      INTEGER NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	name        TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	created     INTEGER NOT NULL,
	num_total   INTEGER NOT NULL DEFAULT 0,
	num_indexed INTEGER NOT NULL DEFAULT 0,
	num_errors  INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX catalogs_key ON catalogs (key_id, created);
CREATE INDEX catalogs_status ON catalogs (status);

CREATE TABLE error_log (
	catalog_id TEXT    NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
	n          INTEGER NOT NULL,
	line       TEXT    NOT NULL,
	PRIMARY KEY (catalog_id, n)
) WITHOUT ROWID;

-- A rowid table rather than WITHOUT ROWID: rows carry a 1 KiB vector, too
-- wide for a clustered b-tree to pay off. metadata holds the uploaded bytes
-- verbatim; vector is EmbeddingDim little-endian float32s.
CREATE TABLE images (
	catalog_id TEXT    NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
	iid        TEXT    NOT NULL,
	url        TEXT    NOT NULL,
	metadata   BLOB,
	state      TEXT    NOT NULL,
	vector     BLOB,
	line       INTEGER NOT NULL,
	PRIMARY KEY (catalog_id, iid)
);

CREATE INDEX images_pending ON images (catalog_id, iid) WHERE state = 'pending';

CREATE TABLE jobs (
	id           INTEGER PRIMARY KEY,
	catalog_id   TEXT    NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
	key_id       INTEGER NOT NULL,
	state        TEXT    NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	worker       TEXT    NOT NULL DEFAULT '',
	locked_until INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL
);

CREATE INDEX jobs_active ON jobs (id) WHERE state IN ('queued', 'running');
-- At most one live job per catalog, whatever races StartIndex loses.
CREATE UNIQUE INDEX jobs_one_live ON jobs (catalog_id) WHERE state IN ('queued', 'running');

CREATE TABLE usage (
	key_id INTEGER NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	month  TEXT    NOT NULL,
	op     TEXT    NOT NULL,
	calls  INTEGER NOT NULL,
	images INTEGER NOT NULL,
	PRIMARY KEY (key_id, month, op)
) WITHOUT ROWID;
