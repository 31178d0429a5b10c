-- Deleting a catalog of a million images by ON DELETE CASCADE rewrote most
-- of the file in one transaction and held the write lock for tens of
-- seconds, longer than another process's busy_timeout. Images therefore
-- lose their foreign key: DeleteCatalog removes the catalog row at once and
-- lists its id here, then deletes the images in short transactions.
CREATE TABLE purge (
	catalog_id TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE images_new (
	catalog_id TEXT    NOT NULL,
	iid        TEXT    NOT NULL,
	url        TEXT    NOT NULL,
	metadata   BLOB,
	state      TEXT    NOT NULL,
	vector     BLOB,
	line       INTEGER NOT NULL,
	PRIMARY KEY (catalog_id, iid)
);

INSERT INTO images_new (catalog_id, iid, url, metadata, state, vector, line)
	SELECT catalog_id, iid, url, metadata, state, vector, line FROM images;

DROP TABLE images;

ALTER TABLE images_new RENAME TO images;

CREATE INDEX images_pending ON images (catalog_id, iid) WHERE state = 'pending';
