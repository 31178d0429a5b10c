-- Times are timestamptz, which keeps microseconds: the precision Weft uses.

CREATE TABLE keys (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name        text        NOT NULL,
	api_key     text        NOT NULL UNIQUE,
	secret_hash bytea       NOT NULL,
	created     timestamptz NOT NULL
);

CREATE TABLE tokens (
	hash    bytea       PRIMARY KEY,
	key_id  bigint      NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	expires timestamptz NOT NULL
);

CREATE INDEX tokens_key ON tokens (key_id);

-- num_total and num_indexed are counters kept exact by every write that
-- changes them, under the catalog row's lock; num_errors counts every error
-- line ever appended, of which only the first MaxErrorLog are kept. seq
-- orders catalogs created within the same microsecond.
CREATE TABLE catalogs (
	id          text        PRIMARY KEY,
	seq         bigint      GENERATED ALWAYS AS IDENTITY,
	key_id      bigint      NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	name        text        NOT NULL,
	status      text        NOT NULL,
	created     timestamptz NOT NULL,
	num_total   integer     NOT NULL DEFAULT 0,
	num_indexed integer     NOT NULL DEFAULT 0,
	num_errors  integer     NOT NULL DEFAULT 0
);

CREATE INDEX catalogs_key ON catalogs (key_id, created, seq);
CREATE INDEX catalogs_status ON catalogs (status);

CREATE TABLE error_log (
	catalog_id text    NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
	n          integer NOT NULL,
	line       text    NOT NULL,
	PRIMARY KEY (catalog_id, n)
);

-- metadata is bytea, not jsonb: the uploaded bytes come back verbatim, keys
-- in their order. embedding is both the store's vector and the index's.
CREATE TABLE images (
	catalog_id text    NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
	iid        text    NOT NULL,
	url        text    NOT NULL,
	metadata   bytea,
	state      text    NOT NULL,
	embedding  vector(256),
	line       integer NOT NULL,
	PRIMARY KEY (catalog_id, iid)
);

CREATE INDEX images_pending ON images (catalog_id, iid) WHERE state = 'pending';
-- One graph for all catalogs: searches filter by catalog_id during the
-- index scan (hnsw.iterative_scan), see index.go.
CREATE INDEX images_embedding ON images USING hnsw (embedding vector_cosine_ops);

CREATE TABLE jobs (
	id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	catalog_id   text        NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
	key_id       bigint      NOT NULL,
	state        text        NOT NULL,
	attempts     integer     NOT NULL DEFAULT 0,
	worker       text        NOT NULL DEFAULT '',
	locked_until timestamptz, -- NULL unless running
	created      timestamptz NOT NULL
);

CREATE INDEX jobs_active ON jobs (id) WHERE state IN ('queued', 'running');
-- At most one live job per catalog, whatever races StartIndex loses.
CREATE UNIQUE INDEX jobs_one_live ON jobs (catalog_id) WHERE state IN ('queued', 'running');

CREATE TABLE usage (
	key_id bigint NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
	month  text   NOT NULL,
	op     text   NOT NULL,
	calls  bigint NOT NULL,
	images bigint NOT NULL,
	PRIMARY KEY (key_id, month, op)
);
