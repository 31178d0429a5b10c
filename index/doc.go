// Package index is Weft's in-process vector index: weft.Index over one HNSW
// graph per catalog, cosine distance (1 − dot) on unit vectors, persisted
// as one snapshot file per catalog under the directory given to Open.
//
// Writes (Add, which upserts, and Delete) may run while searches do: a
// catalog's graph is guarded by a RWMutex that writers take per vector. A
// deleted or replaced vector becomes a tombstone, which still routes
// searches but is never returned; once tombstones are a quarter of a graph,
// it is rebuilt from its live vectors while searches go on over the old one.
// Below Options.ExactBelow live vectors a search scans every vector, which
// is exact and, there, faster than the graph.
//
// # Persistence and recovery
//
// The store is the source of truth; snapshots only spare rebuilding graphs
// at start. A catalog's snapshot is written (temp file, fsync, rename, fsync
// of the directory) after SnapshotEvery changes, every SnapshotInterval
// while changes are pending, on Flush and on Close. Open loads every
// snapshot and checks its length, checksum and structure; one that fails is
// logged, deleted and skipped, never searched.
//
// A crash can thus lose index writes made after the last snapshot, while
// the store kept them, or keep ones the store never committed. At start the
// caller therefore reconciles every catalog the store has vectors for:
//
//	ix, err := index.Open(filepath.Join(data, "index"), index.Options{})
//	for each catalog id with indexed images in the store:
//	    ix.Sync(ctx, id, func(fn func(weft.VectorItem) error) error {
//	        return st.Vectors(ctx, id, fn)
//	    })
//	for each id in ix.Catalogs() the store no longer has:
//	    ix.Drop(ctx, id)
//
// Sync adds what the snapshot lacks, replaces vectors that differ and
// deletes iids the store does not have; vectors already present cost a
// comparison, not an insert. Because Add is an upsert keyed by iid, adding
// an image twice (the store write and the index write racing a crash)
// never duplicates it. In normal running, write the store first and then
// the index: a crash in between is repaired by the next start's Sync.
package index
