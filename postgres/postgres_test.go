package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/storetest"
)

// testURL returns the database the tests may use, skipping the test when
// there is none.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("WEFT_TEST_POSTGRES_URL")
	if u == "" {
		t.Skip("WEFT_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped " +
			"(scripts/pg-throwaway.sh start DIR PORT prints one)")
	}
	return u
}

// freshSchema creates a schema of its own for t, dropped when t ends, and
// returns a URL whose connections work in it. The vector extension lives in
// public, once per database, so dropping a test's schema cannot drop it.
func freshSchema(t testing.TB) string {
	t.Helper()
	base := testURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	schema := "weft_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+fmt.Sprint(migrateLock)+`);
		CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
		SELECT pg_advisory_unlock(`+fmt.Sprint(migrateLock)+`);
		CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("WEFT_TEST_POSTGRES_URL must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB, u string) *DB {
	t.Helper()
	db, err := Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func freshDB(t testing.TB) *DB { return open(t, freshSchema(t)) }

// hnswDB is freshDB for the HNSW path of Search. With a few thousand rows
// the planner rightly sorts the catalog's rows rather than walk the graph;
// with sorts disabled on its connections it walks the graph, as it does on
// the tables of production size the path is for. settings are more
// runtime parameters.
func hnswDB(t testing.TB, settings url.Values) *DB {
	u, err := url.Parse(freshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("enable_sort", "off")
	q.Set("jit", "off") // the cost of a disabled sort would start the JIT compiler
	for k, v := range settings {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	db := open(t, u.String())
	db.exactUpTo = 0
	return db
}

// newCatalog makes a key and a catalog of it.
func newCatalog(t testing.TB, db *DB) weft.Catalog {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	k := weft.Key{Name: "test", APIKey: hex.EncodeToString(b[:]), SecretHash: []byte("hash")}
	if err := db.CreateKey(ctx, &k); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	c := weft.Catalog{KeyID: k.ID, Name: "shop"}
	if err := db.CreateCatalog(ctx, &c); err != nil {
		t.Fatalf("CreateCatalog: %v", err)
	}
	return c
}

func TestStoreContract(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) weft.Store { return freshDB(t) })
}

// TestMetadataByteExact guards the choice of bytea over jsonb, which would
// reorder keys, drop duplicates and respace.
func TestMetadataByteExact(t *testing.T) {
	db := freshDB(t)
	ctx := context.Background()
	c := newCatalog(t, db)
	metas := []string{
		`{"price": 19.99, "SKU": 120984, "categories": ["sweatshirt", "red"]}`,
		`{"b":1,"a":2}`,
		`{"a":1,"a":2}`,
		`{ "name" : "caf\u00e9 été",  "n": 1.50 }`,
		`[1, 2, 3]`,
		`null`,
	}
	rows := make([]weft.Image, len(metas))
	iids := make([]string, len(metas))
	for i, m := range metas {
		iids[i] = fmt.Sprint("m", i)
		rows[i] = weft.Image{IID: iids[i], URL: "http://127.0.0.1/" + iids[i], Metadata: []byte(m), Line: i + 1}
	}
	if _, err := db.UpsertImages(ctx, c.KeyID, c.ID, rows); err != nil {
		t.Fatal(err)
	}
	ims, err := db.Images(ctx, c.KeyID, c.ID, iids)
	if err != nil || len(ims) != len(metas) {
		t.Fatalf("Images = %d images, %v", len(ims), err)
	}
	for i, im := range ims {
		if string(im.Metadata) != metas[i] {
			t.Errorf("metadata %q came back as %q", metas[i], im.Metadata)
		}
	}
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	u := freshSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := Open(context.Background(), u)
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d of 4 at once: %v", i, err)
		}
	}
	db := open(t, u) // and once more, after
	var versions, dim int
	if err := db.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	files, _ := migrations.ReadDir("migrations")
	if versions != len(files) {
		t.Errorf("schema_migrations has %d rows, want %d", versions, len(files))
	}
	// The column's declared length must be the domain's.
	if err := db.pool.QueryRow(context.Background(), `SELECT atttypmod FROM pg_attribute
		WHERE attrelid = 'images'::regclass AND attname = 'embedding'`).Scan(&dim); err != nil {
		t.Fatal(err)
	}
	if dim != weft.EmbeddingDim {
		t.Errorf("embedding column is vector(%d), want vector(%d)", dim, weft.EmbeddingDim)
	}
}

func TestClaimersOnTwoPoolsNeverShareAJob(t *testing.T) {
	u := freshSchema(t)
	dbs := []*DB{open(t, u), open(t, u)}
	ctx := context.Background()
	const jobs = 40
	want := map[int64]bool{}
	for range jobs {
		c := newCatalog(t, dbs[0])
		j, err := dbs[0].StartIndex(ctx, c.KeyID, c.ID)
		if err != nil {
			t.Fatalf("StartIndex: %v", err)
		}
		want[j.ID] = true
	}
	at := time.Now()
	var mu sync.Mutex
	claimed := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		db := dbs[w%2]
		worker := fmt.Sprintf("node%d-worker%d", w%2, w)
		wg.Go(func() {
			for {
				j, ok, err := db.ClaimJob(ctx, worker, at, time.Hour)
				if err != nil {
					t.Errorf("ClaimJob: %v", err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				if prev, dup := claimed[j.ID]; dup {
					t.Errorf("job %d claimed by %s and %s", j.ID, prev, worker)
				}
				claimed[j.ID] = worker
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != len(want) {
		t.Errorf("%d jobs claimed, want %d", len(claimed), len(want))
	}
	for id := range want {
		if _, ok := claimed[id]; !ok {
			t.Errorf("job %d never claimed", id)
		}
	}
}

func TestStartIndexOnTwoNodesMakesOneJob(t *testing.T) {
	u := freshSchema(t)
	dbs := []*DB{open(t, u), open(t, u)}
	c := newCatalog(t, dbs[0])
	ids := make([]int64, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			j, err := dbs[i%2].StartIndex(context.Background(), c.KeyID, c.ID)
			if err != nil {
				t.Errorf("StartIndex: %v", err)
			}
			ids[i] = j.ID
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("StartIndex %d returned job %d, StartIndex 0 job %d", i, id, ids[0])
		}
	}
	if n, err := dbs[1].QueueDepth(context.Background()); err != nil || n != 1 {
		t.Errorf("QueueDepth = %d, %v; want 1", n, err)
	}
}

func TestExpiredLeaseIsTakenOver(t *testing.T) {
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	ctx := context.Background()
	c := newCatalog(t, a)
	job, err := a.StartIndex(ctx, c.KeyID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lease := time.Minute
	got, ok, err := a.ClaimJob(ctx, "a", t0, lease)
	if err != nil || !ok || got.ID != job.ID {
		t.Fatalf("first claim = %+v, %v, %v", got, ok, err)
	}
	// Node a dies here: it never renews.
	if _, ok, err := b.ClaimJob(ctx, "b", t0.Add(lease/2), lease); err != nil || ok {
		t.Fatalf("claim within the lease = %v, %v; want none", ok, err)
	}
	got, ok, err = b.ClaimJob(ctx, "b", t0.Add(lease), lease)
	if err != nil || !ok {
		t.Fatalf("claim after the lease = %v, %v", ok, err)
	}
	if got.ID != job.ID || got.Worker != "b" || got.Attempts != 2 || !got.LockedUntil.Equal(t0.Add(2*lease)) {
		t.Errorf("taken over job = %+v; want id %d, worker b, attempt 2, locked until %v", got, job.ID, t0.Add(2*lease))
	}
	if err := a.RenewJob(ctx, job.ID, "a", t0.Add(3*lease)); weft.KindOf(err) != weft.Conflict {
		t.Errorf("renewal by the old worker = %v, want Conflict", err)
	}
	if err := b.RenewJob(ctx, job.ID, "b", t0.Add(3*lease)); err != nil {
		t.Errorf("renewal by the new worker: %v", err)
	}
}

// cosineDistance is the exact computation Search must agree with.
func cosineDistance(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return 1 - dot/math.Sqrt(na*nb)
}

// clustered returns n unit vectors around a few centres, as embeddings of
// similar garments are.
func clustered(r *mrand.Rand, n int) [][]float32 {
	centres := make([][]float32, 8)
	for i := range centres {
		centres[i] = make([]float32, weft.EmbeddingDim)
		for j := range centres[i] {
			centres[i][j] = float32(r.NormFloat64())
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[r.IntN(len(centres))]
		v := make([]float32, weft.EmbeddingDim)
		var norm float64
		for j := range v {
			v[j] = c[j] + float32(0.7*r.NormFloat64())
			norm += float64(v[j]) * float64(v[j])
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(norm))
		}
		out[i] = v
	}
	return out
}

// fill uploads n images with vectors to c and returns the vectors by iid.
func fill(t testing.TB, db *DB, c weft.Catalog, vecs [][]float32) map[string][]float32 {
	t.Helper()
	ctx := context.Background()
	rows := make([]weft.Image, len(vecs))
	items := make([]weft.VectorItem, len(vecs))
	byIID := make(map[string][]float32, len(vecs))
	for i, v := range vecs {
		iid := fmt.Sprintf("%s-%05d", c.ID[:4], i)
		rows[i] = weft.Image{IID: iid, URL: "http://127.0.0.1/" + iid, Line: i + 1}
		items[i] = weft.VectorItem{IID: iid, Vector: v}
		byIID[iid] = v
	}
	if _, err := db.UpsertImages(ctx, c.KeyID, c.ID, rows); err != nil {
		t.Fatalf("UpsertImages: %v", err)
	}
	for start := 0; start < len(items); start += 500 {
		if err := db.SaveVectors(ctx, c.ID, items[start:min(start+500, len(items))]); err != nil {
			t.Fatalf("SaveVectors: %v", err)
		}
	}
	return byIID
}

// exactHits ranks vecs by exact cosine distance to q, ties by iid.
func exactHits(vecs map[string][]float32, q []float32, k int) []weft.Hit {
	var hits []weft.Hit
	for iid, v := range vecs {
		hits = append(hits, weft.Hit{IID: iid, Distance: float32(cosineDistance(q, v))})
	}
	slices.SortFunc(hits, compareHits)
	return hits[:min(k, len(hits))]
}

func TestSearchMatchesExactComputation(t *testing.T) {
	db := hnswDB(t, nil)
	ctx := context.Background()
	r := mrand.New(mrand.NewPCG(1, 2))
	small, large, other := newCatalog(t, db), newCatalog(t, db), newCatalog(t, db)
	smallVecs := fill(t, db, small, clustered(r, 300))
	largeVecs := fill(t, db, large, clustered(r, 2000))
	fill(t, db, other, clustered(r, 2000))
	db.exactUpTo = 1000 // the large catalog walks the graph, the small one not
	if plan := explainApproximate(t, db, large.ID, clustered(r, 1)[0], 10); !strings.Contains(plan, "images_embedding") {
		t.Fatalf("the large catalog's search does not use the HNSW index:\n%s", plan)
	}

	tests := []struct {
		name    string
		catalog weft.Catalog
		vecs    map[string][]float32
		k       int
		exact   bool    // each rank's distance must be the exact ranking's
		recall  float64 // least share of the exact k nearest found
	}{
		{"small catalog, exact scan", small, smallVecs, 10, true, 1},
		{"small catalog, k over its size", small, smallVecs, 500, true, 1},
		{"large catalog, HNSW", large, largeVecs, 10, false, 0.85},
		{"large catalog, HNSW, k=50", large, largeVecs, 50, false, 0.85},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			queries := clustered(r, 20)
			found, total := 0, 0
			for _, q := range queries {
				got, err := db.Search(ctx, tt.catalog.ID, q, tt.k)
				if err != nil {
					t.Fatalf("Search: %v", err)
				}
				want := exactHits(tt.vecs, q, tt.k)
				if len(got) != len(want) {
					t.Fatalf("%d hits, want %d", len(got), len(want))
				}
				if !slices.IsSortedFunc(got, compareHits) {
					t.Errorf("hits not sorted by distance then iid: %v", got)
				}
				for _, h := range got {
					v, ok := tt.vecs[h.IID]
					if !ok {
						t.Fatalf("hit %s is not of catalog %s", h.IID, tt.catalog.ID)
					}
					if d := cosineDistance(q, v); math.Abs(d-float64(h.Distance)) > 1e-5 {
						t.Errorf("hit %s at distance %v, exact %v", h.IID, h.Distance, d)
					}
				}
				// pgvector sums in float32, so near ties may swap places:
				// compare distances rank by rank, not iids.
				for i := range want {
					if tt.exact && math.Abs(float64(got[i].Distance-want[i].Distance)) > 1e-5 {
						t.Fatalf("hit %d = %v, exact ranking has %v", i, got[i], want[i])
					}
				}
				wantSet := map[string]bool{}
				for _, h := range want {
					wantSet[h.IID] = true
				}
				for _, h := range got {
					if wantSet[h.IID] {
						found++
					}
				}
				total += len(want)
			}
			recall := float64(found) / float64(total)
			t.Logf("recall@%d = %.3f", tt.k, recall)
			if recall < tt.recall-1e-9 {
				t.Errorf("recall@%d = %.3f against the exact ranking, want ≥ %v", tt.k, recall, tt.recall)
			}
		})
	}
}

// explainApproximate returns the plan of the HNSW path's query.
func explainApproximate(t *testing.T, db *DB, catalogID string, q []float32, k int) string {
	t.Helper()
	ctx := context.Background()
	var plan []string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := tuneHNSW(ctx, tx, k); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+approximateSQL, catalogID, q, k)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	return strings.Join(plan, "\n")
}

// TestSearchSmallCatalogInLargeTable checks what a filtered HNSW walk gets
// wrong: a catalog with few vectors among many of other catalogs still
// gets all of its k nearest, from the exact scan, when the walk gives up
// before finding them. Here the walk stops after its first hnsw.ef_search
// candidates, all near the query, while the tiny catalog's vectors point
// the other way: the nearest of its own, but far behind the others.
func TestSearchSmallCatalogInLargeTable(t *testing.T) {
	db := hnswDB(t, url.Values{"hnsw.max_scan_tuples": {"1"}})
	ctx := context.Background()
	r := mrand.New(mrand.NewPCG(3, 4))
	big, tiny := newCatalog(t, db), newCatalog(t, db)
	bigVecs := clustered(r, 1000)
	fill(t, db, big, bigVecs)
	q := bigVecs[0]
	opposite := make([][]float32, 8)
	for i := range opposite {
		v := make([]float32, weft.EmbeddingDim)
		var norm float64
		for j, x := range q {
			v[j] = -x + float32(0.02*r.NormFloat64())
			norm += float64(v[j]) * float64(v[j])
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(norm))
		}
		opposite[i] = v
	}
	tinyVecs := fill(t, db, tiny, opposite)
	const k = 8
	var walked []weft.Hit
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) (err error) {
		walked, err = approximate(ctx, tx, tiny.ID, q, k)
		return err
	})
	if err != nil || len(walked) >= k {
		t.Fatalf("the graph walk alone found %d hits (%v); the test needs it short", len(walked), err)
	}
	t.Logf("the graph walk alone found %d of %d", len(walked), k)
	got, err := db.Search(ctx, tiny.ID, q, k)
	if err != nil {
		t.Fatal(err)
	}
	want := exactHits(tinyVecs, q, k)
	if len(got) != len(want) {
		t.Fatalf("%d hits, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i].Distance-want[i].Distance)) > 1e-5 {
			t.Errorf("hit %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSearchOtherCases(t *testing.T) {
	db := freshDB(t)
	ctx := context.Background()
	c := newCatalog(t, db)
	q := make([]float32, weft.EmbeddingDim)
	q[0] = 1
	if hits, err := db.Search(ctx, c.ID, q, 10); err != nil || len(hits) != 0 {
		t.Errorf("empty catalog: %v, %v", hits, err)
	}
	if _, err := db.Search(ctx, "0000000000000000", q, 10); weft.KindOf(err) != weft.NotFound {
		t.Errorf("missing catalog: %v, want NotFound", err)
	}
	if _, err := db.Search(ctx, c.ID, q[:3], 10); weft.KindOf(err) != weft.Invalid {
		t.Errorf("short query: %v, want Invalid", err)
	}
}

// BenchmarkSearch times both paths of Search on one catalog of exactUpTo
// vectors, the size at which Search switches from one to the other.
func BenchmarkSearch(b *testing.B) {
	db := hnswDB(b, nil)
	r := mrand.New(mrand.NewPCG(5, 6))
	c := newCatalog(b, db)
	fill(b, db, c, clustered(r, exactUpTo))
	queries := clustered(r, 64)
	for _, bc := range []struct {
		name      string
		exactUpTo int
	}{{"exact", exactUpTo}, {"hnsw", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			db.exactUpTo = bc.exactUpTo
			i := 0
			for b.Loop() {
				if _, err := db.Search(context.Background(), c.ID, queries[i%len(queries)], 50); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
