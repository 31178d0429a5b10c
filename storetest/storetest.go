// Package storetest is the contract every weft.Store must pass. A store's
// own tests call Run with a function that opens a fresh, empty store; the
// suite knows nothing of how that store keeps its data.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftlabs/weft"
)

// Run runs the contract suite. open must return a new, empty store for
// each call and close it when its test ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) weft.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s weft.Store)
	}{
		{"Keys", testKeys},
		{"Tokens", testTokens},
		{"Catalogs", testCatalogs},
		{"Tenancy", testTenancy},
		{"StatusTransitions", testStatusTransitions},
		{"Upsert", testUpsert},
		{"UpsertFailedAndDuplicates", testUpsertFailedAndDuplicates},
		{"Counters", testCounters},
		{"ErrorLogBound", testErrorLogBound},
		{"StartIndex", testStartIndex},
		{"ClaimLease", testClaimLease},
		{"ParkJob", testParkJob},
		{"ConcurrentClaims", testConcurrentClaims},
		{"SaveVectorsOnce", testSaveVectorsOnce},
		{"FailImages", testFailImages},
		{"PendingImagesPaging", testPendingImagesPaging},
		{"VectorsOrder", testVectorsOrder},
		{"Images", testImages},
		{"Usage", testUsage},
		{"DeleteCatalogCascade", testDeleteCatalogCascade},
		{"CatalogsWithStatus", testCatalogsWithStatus},
		{"EmbeddingModel", testEmbeddingModel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// --- helpers ---

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantKind(t *testing.T, what string, err error, kind weft.Kind) {
	t.Helper()
	if got := weft.KindOf(err); got != kind || err == nil {
		t.Errorf("%s: error %v (kind %v), want kind %v", what, err, got, kind)
	}
}

func randHex(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func newKey(t *testing.T, s weft.Store, name string) weft.Key {
	t.Helper()
	k := weft.Key{Name: name, APIKey: "ak-" + randHex(t), SecretHash: []byte("hash of " + name)}
	ok(t, s.CreateKey(t.Context(), &k))
	return k
}

func newCatalog(t *testing.T, s weft.Store, keyID int64, name string) weft.Catalog {
	t.Helper()
	c := weft.Catalog{KeyID: keyID, Name: name}
	ok(t, s.CreateCatalog(t.Context(), &c))
	return c
}

func catalog(t *testing.T, s weft.Store, keyID int64, id string) weft.Catalog {
	t.Helper()
	c, err := s.Catalog(t.Context(), keyID, id)
	ok(t, err)
	return c
}

// vec is a deterministic unit vector, different for every seed.
func vec(seed int) []float32 {
	v := make([]float32, weft.EmbeddingDim)
	var sum float64
	for i := range v {
		x := math.Sin(float64(seed*weft.EmbeddingDim+i) + 0.5)
		v[i] = float32(x)
		sum += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(sum))
	}
	return v
}

func row(iid, url, meta string, line int) weft.Image {
	im := weft.Image{IID: iid, URL: url, Line: line}
	if meta != "" {
		im.Metadata = json.RawMessage(meta)
	}
	return im
}

// rows makes n rows with iids "img-00000"… in order.
func rows(n int) []weft.Image {
	rs := make([]weft.Image, n)
	for i := range rs {
		rs[i] = row(fmt.Sprintf("img-%05d", i), fmt.Sprintf("http://127.0.0.1/%d.jpg", i),
			fmt.Sprintf(`{"n":%d}`, i), i+1)
	}
	return rs
}

func upsert(t *testing.T, s weft.Store, keyID int64, catalogID string, rs []weft.Image) []string {
	t.Helper()
	inv, err := s.UpsertImages(t.Context(), keyID, catalogID, rs)
	ok(t, err)
	return inv
}

func save(t *testing.T, s weft.Store, catalogID string, iids ...string) {
	t.Helper()
	items := make([]weft.VectorItem, len(iids))
	for i, iid := range iids {
		items[i] = weft.VectorItem{IID: iid, Vector: vec(seedOf(iid))}
	}
	ok(t, s.SaveVectors(t.Context(), catalogID, items))
}

// seedOf gives each iid its own vector.
func seedOf(iid string) int {
	h := 0
	for _, c := range iid {
		h = h*31 + int(c)
	}
	return h % 100003
}

func imageByIID(t *testing.T, s weft.Store, keyID int64, catalogID, iid string) weft.Image {
	t.Helper()
	ims, err := s.Images(t.Context(), keyID, catalogID, []string{iid})
	ok(t, err)
	if len(ims) != 1 {
		t.Fatalf("Images(%s) = %d images, want 1", iid, len(ims))
	}
	return ims[0]
}

func vectorIIDs(t *testing.T, s weft.Store, catalogID string) []string {
	t.Helper()
	var iids []string
	ok(t, s.Vectors(t.Context(), catalogID, func(it weft.VectorItem) error {
		iids = append(iids, it.IID)
		return nil
	}))
	return iids
}

func wantCounts(t *testing.T, s weft.Store, keyID int64, catalogID string, total, indexed int) {
	t.Helper()
	c := catalog(t, s, keyID, catalogID)
	if c.NumTotal != total || c.NumIndexed != indexed {
		t.Errorf("NumTotal, NumIndexed = %d, %d; want %d, %d", c.NumTotal, c.NumIndexed, total, indexed)
	}
}

// wantStoreTime checks a time the store set: UTC, whole microseconds.
func wantStoreTime(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if tm.IsZero() || tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0 {
		t.Errorf("%s = %v, want a non-zero UTC time in whole microseconds", what, tm)
	}
}

// --- keys and tokens ---

func testKeys(t *testing.T, s weft.Store) {
	ctx := t.Context()
	a := newKey(t, s, "a")
	b := newKey(t, s, "b")
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Errorf("key ids %d, %d: want two distinct non-zero ids", a.ID, b.ID)
	}
	wantStoreTime(t, "Key.Created", a.Created)

	got, err := s.KeyByAPIKey(ctx, a.APIKey)
	ok(t, err)
	if got.ID != a.ID || got.Name != a.Name || got.APIKey != a.APIKey ||
		string(got.SecretHash) != string(a.SecretHash) || !got.Created.Equal(a.Created) {
		t.Errorf("KeyByAPIKey = %+v, want %+v", got, a)
	}

	_, err = s.KeyByAPIKey(ctx, "no-such-key")
	wantKind(t, "KeyByAPIKey(unknown)", err, weft.Unauthorized)

	dup := weft.Key{Name: "dup", APIKey: a.APIKey, SecretHash: []byte("x")}
	wantKind(t, "CreateKey(taken api key)", s.CreateKey(ctx, &dup), weft.Conflict)
}

func testTokens(t *testing.T, s weft.Store) {
	ctx := t.Context()
	a := newKey(t, s, "a")
	b := newKey(t, s, "b")
	now := time.Date(2017, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tok := range []weft.Token{
		{Hash: []byte("token-a-live"), KeyID: a.ID, Expires: now.Add(time.Hour)},
		{Hash: []byte("token-a-old"), KeyID: a.ID, Expires: now.Add(-time.Second)},
		{Hash: []byte("token-a-edge"), KeyID: a.ID, Expires: now},
		{Hash: []byte("token-b-live"), KeyID: b.ID, Expires: now.Add(time.Hour)},
	} {
		ok(t, s.CreateToken(ctx, tok, now))
	}
	tests := []struct {
		hash string
		at   time.Time
		want int64 // key id; 0 for Unauthorized
	}{
		{"token-a-live", now, a.ID},
		{"token-b-live", now, b.ID},
		{"token-a-live", now.Add(time.Hour), 0}, // expires at that instant
		{"token-a-live", now.Add(2 * time.Hour), 0},
		{"token-a-old", now, 0},
		{"token-a-edge", now, 0},
		{"token-a-edge", now.Add(-time.Minute), a.ID},
		// Live a minute before now, but creating token-a-edge at now
		// deleted it: a key's expired tokens are not kept.
		{"token-a-old", now.Add(-time.Minute), 0},
		{"token-b-live", now.Add(-time.Minute), b.ID},
		{"no-such-token", now, 0},
		{"", now, 0},
	}
	for _, tc := range tests {
		k, err := s.KeyByToken(ctx, []byte(tc.hash), tc.at)
		what := fmt.Sprintf("KeyByToken(%q, %v)", tc.hash, tc.at)
		if tc.want == 0 {
			wantKind(t, what, err, weft.Unauthorized)
			continue
		}
		if err != nil || k.ID != tc.want {
			t.Errorf("%s = key %d, %v; want key %d", what, k.ID, err, tc.want)
		}
	}
}

// --- catalogs ---

var catalogID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func testCatalogs(t *testing.T, s weft.Store) {
	ctx := t.Context()
	a := newKey(t, s, "a")
	b := newKey(t, s, "b")
	var made []weft.Catalog
	for _, name := range []string{"first", "second", "third"} {
		made = append(made, newCatalog(t, s, a.ID, name))
	}
	c := made[0]
	if !catalogID.MatchString(c.ID) {
		t.Errorf("catalog id %q: want 16 lowercase hex characters", c.ID)
	}
	if c.Status != weft.StatusNew {
		t.Errorf("new catalog's status %q, want %q", c.Status, weft.StatusNew)
	}
	wantStoreTime(t, "Catalog.Created", c.Created)
	if made[0].ID == made[1].ID || made[1].ID == made[2].ID || made[0].ID == made[2].ID {
		t.Errorf("catalog ids not distinct: %s %s %s", made[0].ID, made[1].ID, made[2].ID)
	}

	got := catalog(t, s, a.ID, c.ID)
	if got.ID != c.ID || got.KeyID != a.ID || got.Name != "first" || got.Status != weft.StatusNew ||
		!got.Created.Equal(c.Created) || got.NumTotal != 0 || got.NumIndexed != 0 || len(got.ErrorLog) != 0 {
		t.Errorf("Catalog = %+v, want %+v", got, c)
	}

	list, err := s.Catalogs(ctx, a.ID)
	ok(t, err)
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	if want := []string{"third", "second", "first"}; !slices.Equal(names, want) {
		t.Errorf("Catalogs = %v, want newest first %v", names, want)
	}

	list, err = s.Catalogs(ctx, b.ID)
	ok(t, err)
	if len(list) != 0 {
		t.Errorf("Catalogs of a key without any = %d catalogs, want 0", len(list))
	}
}

// testTenancy checks that no method taking a key id reaches another key's
// catalog, and that trying leaves it as it was.
func testTenancy(t *testing.T, s weft.Store) {
	ctx := t.Context()
	a := newKey(t, s, "a")
	b := newKey(t, s, "b")
	ca := newCatalog(t, s, a.ID, "a's")
	newCatalog(t, s, b.ID, "b's")
	upsert(t, s, a.ID, ca.ID, rows(3))
	save(t, s, ca.ID, "img-00000")
	ok(t, s.SetCatalogStatus(ctx, a.ID, ca.ID, weft.StatusUploadDone))
	before := catalog(t, s, a.ID, ca.ID)

	ops := []struct {
		name string
		call func(keyID int64, id string) error
	}{
		{"Catalog", func(k int64, id string) error { _, err := s.Catalog(ctx, k, id); return err }},
		{"DeleteCatalog", func(k int64, id string) error { return s.DeleteCatalog(ctx, k, id) }},
		{"SetCatalogStatus", func(k int64, id string) error {
			return s.SetCatalogStatus(ctx, k, id, weft.StatusUploading)
		}},
		{"SetCatalogStatus from", func(k int64, id string) error {
			return s.SetCatalogStatus(ctx, k, id, weft.StatusUploading, weft.StatusUploadDone)
		}},
		{"AppendErrorLog", func(k int64, id string) error { return s.AppendErrorLog(ctx, k, id, "intruder") }},
		{"UpsertImages", func(k int64, id string) error {
			_, err := s.UpsertImages(ctx, k, id, []weft.Image{row("img-00000", "http://127.0.0.1/evil.jpg", `{"evil":1}`, 1)})
			return err
		}},
		{"StartIndex", func(k int64, id string) error { _, err := s.StartIndex(ctx, k, id); return err }},
		{"Images", func(k int64, id string) error {
			_, err := s.Images(ctx, k, id, []string{"img-00000"})
			return err
		}},
	}
	for _, o := range ops {
		err := o.call(b.ID, ca.ID)
		wantKind(t, o.name+" by another key", err, weft.NotFound)
		if err != nil && !strings.Contains(weft.MessageOf(err), ca.ID) {
			t.Errorf("%s by another key: message %q does not name the catalog", o.name, weft.MessageOf(err))
		}
		wantKind(t, o.name+" of an unknown catalog", o.call(a.ID, "0123456789abcdef"), weft.NotFound)
	}

	after := catalog(t, s, a.ID, ca.ID)
	if after.Status != before.Status || after.NumTotal != before.NumTotal ||
		after.NumIndexed != before.NumIndexed || len(after.ErrorLog) != 0 {
		t.Errorf("another key's calls changed the catalog: %+v, was %+v", after, before)
	}
	im := imageByIID(t, s, a.ID, ca.ID, "img-00000")
	if im.URL != "http://127.0.0.1/0.jpg" || im.State != weft.ImageIndexed {
		t.Errorf("another key's upsert changed an image: %+v", im)
	}
	list, err := s.Catalogs(ctx, b.ID)
	ok(t, err)
	for _, c := range list {
		if c.ID == ca.ID {
			t.Errorf("Catalogs of key b lists key a's catalog")
		}
	}
	if d, err := s.QueueDepth(ctx); err != nil || d != 0 {
		t.Errorf("QueueDepth = %d, %v after another key's StartIndex; want 0", d, err)
	}
}

func testStatusTransitions(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	steps := []struct {
		to   weft.CatalogStatus
		from []weft.CatalogStatus
		ok   bool
		want weft.CatalogStatus // status after the step
	}{
		{weft.StatusIndexing, []weft.CatalogStatus{weft.StatusUploadDone}, false, weft.StatusNew},
		{weft.StatusUploading, []weft.CatalogStatus{weft.StatusNew, weft.StatusUploadDone}, true, weft.StatusUploading},
		{weft.StatusUploading, []weft.CatalogStatus{weft.StatusNew, weft.StatusUploadDone}, false, weft.StatusUploading},
		{weft.StatusUploadDone, []weft.CatalogStatus{weft.StatusUploading}, true, weft.StatusUploadDone},
		{weft.StatusUploadError, nil, true, weft.StatusUploadError},
		{weft.StatusReady, nil, true, weft.StatusReady},
		{weft.StatusNew, []weft.CatalogStatus{weft.StatusReady}, true, weft.StatusNew},
	}
	for i, st := range steps {
		err := s.SetCatalogStatus(ctx, k.ID, c.ID, st.to, st.from...)
		what := fmt.Sprintf("step %d: SetCatalogStatus(%q from %q)", i, st.to, st.from)
		if st.ok && err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if !st.ok {
			wantKind(t, what, err, weft.Conflict)
		}
		if got := catalog(t, s, k.ID, c.ID).Status; got != st.want {
			t.Errorf("%s: status %q, want %q", what, got, st.want)
		}
	}
}

// --- images ---

func testUpsert(t *testing.T, s weft.Store) {
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	inv := upsert(t, s, k.ID, c.ID, []weft.Image{
		row("a", "http://127.0.0.1/a.jpg", `{"colour":"red"}`, 1),
		row("b", "http://127.0.0.1/b.jpg", `{"colour":"blue"}`, 2),
		row("c", "http://127.0.0.1/c.jpg", "", 3),
	})
	if len(inv) != 0 {
		t.Errorf("first upload invalidated %v", inv)
	}
	wantCounts(t, s, k.ID, c.ID, 3, 0)
	save(t, s, c.ID, "a", "b", "c")
	wantCounts(t, s, k.ID, c.ID, 3, 3)

	// Odd spacing, key order and unicode must come back byte for byte.
	oddMeta := "{ \"z\" : [1 ,2],\n\"a\":\"é\\u00e9\" }"
	inv = upsert(t, s, k.ID, c.ID, []weft.Image{
		row("a", "http://127.0.0.1/a.jpg", oddMeta, 10), // same URL: keeps its vector
		row("b", "http://127.0.0.1/b2.jpg", `{}`, 11),   // new URL: loses it
		row("c", "http://127.0.0.1/c.jpg", "", 12),
		row("d", "http://127.0.0.1/d.jpg", `null`, 13), // new
	})
	if !slices.Equal(inv, []string{"b"}) {
		t.Errorf("invalidated = %v, want [b]", inv)
	}
	wantCounts(t, s, k.ID, c.ID, 4, 2)

	want := map[string]struct {
		url   string
		meta  string
		state weft.ImageState
		line  int
	}{
		"a": {"http://127.0.0.1/a.jpg", oddMeta, weft.ImageIndexed, 10},
		"b": {"http://127.0.0.1/b2.jpg", `{}`, weft.ImagePending, 11},
		"c": {"http://127.0.0.1/c.jpg", "", weft.ImageIndexed, 12},
		"d": {"http://127.0.0.1/d.jpg", `null`, weft.ImagePending, 13},
	}
	for iid, w := range want {
		im := imageByIID(t, s, k.ID, c.ID, iid)
		if im.CatalogID != c.ID || im.URL != w.url || string(im.Metadata) != w.meta || im.State != w.state || im.Line != w.line {
			t.Errorf("image %s = {%s %q %q %s line %d}, want {%s %q %q %s line %d}", iid,
				im.CatalogID, im.URL, im.Metadata, im.State, im.Line, c.ID, w.url, w.meta, w.state, w.line)
		}
		if w.meta == "" && im.Metadata != nil {
			t.Errorf("image %s: metadata %q, want nil", iid, im.Metadata)
		}
		switch {
		case w.state == weft.ImageIndexed && !slices.Equal(im.Vector, vec(seedOf(iid))):
			t.Errorf("image %s lost or changed its vector", iid)
		case w.state != weft.ImageIndexed && im.Vector != nil:
			t.Errorf("image %s (%s) still has a vector", iid, w.state)
		}
	}
	if got := vectorIIDs(t, s, c.ID); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Vectors = %v, want [a c]", got)
	}

	// Only the metadata changes (a new price), then it is dropped from the
	// file: the store follows, and the vector stays.
	upsert(t, s, k.ID, c.ID, []weft.Image{row("a", "http://127.0.0.1/a.jpg", `{"price":"8.99"}`, 10)})
	if im := imageByIID(t, s, k.ID, c.ID, "a"); string(im.Metadata) != `{"price":"8.99"}` || im.State != weft.ImageIndexed {
		t.Errorf("after a new price: metadata %q state %s, want the new price, indexed", im.Metadata, im.State)
	}
	upsert(t, s, k.ID, c.ID, []weft.Image{row("a", "http://127.0.0.1/a.jpg", "", 10)})
	if im := imageByIID(t, s, k.ID, c.ID, "a"); im.Metadata != nil || im.State != weft.ImageIndexed {
		t.Errorf("after re-upload without metadata: metadata %q state %s, want nil, indexed", im.Metadata, im.State)
	}

	// An empty batch is no error.
	upsert(t, s, k.ID, c.ID, nil)
	wantCounts(t, s, k.ID, c.ID, 4, 2)
}

func testUpsertFailedAndDuplicates(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	upsert(t, s, k.ID, c.ID, rows(4))
	ok(t, s.FailImages(ctx, c.ID, []string{"img-00000", "img-00001"}, []string{"404", "not an image"}))

	inv := upsert(t, s, k.ID, c.ID, []weft.Image{
		row("img-00000", "http://127.0.0.1/0.jpg", "", 1),   // same URL: stays failed
		row("img-00001", "http://127.0.0.1/new.jpg", "", 2), // new URL: pending again
		// The same iid twice in one batch: counted once, last row wins.
		row("dup", "http://127.0.0.1/dup1.jpg", `{"v":1}`, 3),
		row("dup", "http://127.0.0.1/dup2.jpg", `{"v":2}`, 4),
	})
	if len(inv) != 0 {
		t.Errorf("invalidated %v, want none: no vector was dropped", inv)
	}
	wantCounts(t, s, k.ID, c.ID, 5, 0)
	for iid, want := range map[string]weft.ImageState{
		"img-00000": weft.ImageFailed,
		"img-00001": weft.ImagePending,
		"dup":       weft.ImagePending,
	} {
		if im := imageByIID(t, s, k.ID, c.ID, iid); im.State != want {
			t.Errorf("image %s: state %s, want %s", iid, im.State, want)
		}
	}
	if im := imageByIID(t, s, k.ID, c.ID, "dup"); im.URL != "http://127.0.0.1/dup2.jpg" || string(im.Metadata) != `{"v":2}` || im.Line != 4 {
		t.Errorf("duplicate iid: got %s %s line %d, want the last row", im.URL, im.Metadata, im.Line)
	}
}

func testCounters(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	all := rows(2500)
	for start := 0; start < len(all); start += 1000 {
		upsert(t, s, k.ID, c.ID, all[start:min(start+1000, len(all))])
	}
	wantCounts(t, s, k.ID, c.ID, 2500, 0)

	// Re-uploading the whole file changes nothing.
	upsert(t, s, k.ID, c.ID, all[:1000])
	wantCounts(t, s, k.ID, c.ID, 2500, 0)

	var iids []string
	for _, r := range all[:1200] {
		iids = append(iids, r.IID)
	}
	save(t, s, c.ID, iids...)
	wantCounts(t, s, k.ID, c.ID, 2500, 1200)

	ok(t, s.FailImages(ctx, c.ID, []string{"img-00000", "img-02000"}, []string{"gone", "gone"}))
	wantCounts(t, s, k.ID, c.ID, 2500, 1199)

	changed := slices.Clone(all[10:20])
	for i := range changed {
		changed[i].URL += "?v=2"
	}
	if inv := upsert(t, s, k.ID, c.ID, changed); len(inv) != 10 {
		t.Errorf("invalidated %d, want 10", len(inv))
	}
	wantCounts(t, s, k.ID, c.ID, 2500, 1189)
	if n := len(vectorIIDs(t, s, c.ID)); n != 1189 {
		t.Errorf("Vectors yields %d, counter says 1189", n)
	}
}

func testErrorLogBound(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	var lines []string
	for i := range weft.MaxErrorLog + 5 {
		lines = append(lines, fmt.Sprintf("line %d: bad row", i+1))
	}
	ok(t, s.AppendErrorLog(ctx, k.ID, c.ID, lines[:3]...))
	if got := catalog(t, s, k.ID, c.ID).ErrorLog; !slices.Equal(got, lines[:3]) {
		t.Errorf("ErrorLog = %q, want %q", got, lines[:3])
	}
	ok(t, s.AppendErrorLog(ctx, k.ID, c.ID, lines[3:weft.MaxErrorLog-1]...))
	ok(t, s.AppendErrorLog(ctx, k.ID, c.ID, lines[weft.MaxErrorLog-1:]...))

	check := func(what string, log []string) {
		t.Helper()
		if len(log) != weft.MaxErrorLog+1 {
			t.Fatalf("%s: %d lines, want %d kept and one saying how many were dropped", what, len(log), weft.MaxErrorLog)
		}
		if !slices.Equal(log[:weft.MaxErrorLog], lines[:weft.MaxErrorLog]) {
			t.Errorf("%s: the first %d lines are not the oldest, in order", what, weft.MaxErrorLog)
		}
		if last := log[weft.MaxErrorLog]; !strings.Contains(last, "5 more") {
			t.Errorf("%s: last line %q does not say 5 more were dropped", what, last)
		}
	}
	check("Catalog", catalog(t, s, k.ID, c.ID).ErrorLog)
	list, err := s.Catalogs(ctx, k.ID)
	ok(t, err)
	check("Catalogs", list[0].ErrorLog)

	ok(t, s.FailImages(ctx, c.ID, []string{"x"}, []string{"late"}))
	check2 := catalog(t, s, k.ID, c.ID).ErrorLog
	if len(check2) != weft.MaxErrorLog+1 || !strings.Contains(check2[weft.MaxErrorLog], "6 more") {
		t.Errorf("after one more failure: %d lines, last %q; want %d, 6 more", len(check2), check2[len(check2)-1], weft.MaxErrorLog+1)
	}
}

// --- jobs ---

func testStartIndex(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	upsert(t, s, k.ID, c.ID, rows(3))

	ok(t, s.SetCatalogStatus(ctx, k.ID, c.ID, weft.StatusUploading))
	_, err := s.StartIndex(ctx, k.ID, c.ID)
	wantKind(t, "StartIndex while uploading", err, weft.Conflict)
	if d, _ := s.QueueDepth(ctx); d != 0 {
		t.Errorf("QueueDepth = %d after a refused StartIndex", d)
	}

	ok(t, s.SetCatalogStatus(ctx, k.ID, c.ID, weft.StatusUploadDone))
	j, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if j.ID == 0 || j.CatalogID != c.ID || j.KeyID != k.ID || j.State != weft.JobQueued || j.Attempts != 0 {
		t.Errorf("StartIndex = %+v, want a queued job of catalog %s, key %d", j, c.ID, k.ID)
	}
	wantStoreTime(t, "Job.Created", j.Created)
	if st := catalog(t, s, k.ID, c.ID).Status; st != weft.StatusIndexing {
		t.Errorf("status %q after StartIndex, want %q", st, weft.StatusIndexing)
	}

	again, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if again.ID != j.ID {
		t.Errorf("second StartIndex made job %d, want the queued job %d", again.ID, j.ID)
	}
	if d, err := s.QueueDepth(ctx); err != nil || d != 1 {
		t.Errorf("QueueDepth = %d, %v; want 1", d, err)
	}

	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	claimed, found, err := s.ClaimJob(ctx, "w1", now, time.Minute)
	ok(t, err)
	if !found || claimed.ID != j.ID {
		t.Fatalf("ClaimJob = %+v, %v; want job %d", claimed, found, j.ID)
	}
	running, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if running.ID != j.ID || running.State != weft.JobRunning || running.Worker != "w1" {
		t.Errorf("StartIndex while running = %+v, want running job %d of w1", running, j.ID)
	}

	ok(t, s.FinishJob(ctx, j.ID, weft.JobDone, weft.StatusReady))
	if st := catalog(t, s, k.ID, c.ID).Status; st != weft.StatusReady {
		t.Errorf("status %q after FinishJob, want %q", st, weft.StatusReady)
	}
	if d, _ := s.QueueDepth(ctx); d != 0 {
		t.Errorf("QueueDepth = %d after the job finished, want 0", d)
	}
	next, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if next.ID == j.ID || next.State != weft.JobQueued {
		t.Errorf("StartIndex after a finished job = %+v, want a new queued job", next)
	}
}

func testClaimLease(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	t0 := time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)

	if _, found, err := s.ClaimJob(ctx, "w1", t0, time.Minute); err != nil || found {
		t.Fatalf("ClaimJob on an empty queue = %v, %v; want nothing", found, err)
	}

	var jobs []weft.Job
	var cats []weft.Catalog
	for i := range 2 {
		c := newCatalog(t, s, k.ID, fmt.Sprint("c", i))
		j, err := s.StartIndex(ctx, k.ID, c.ID)
		ok(t, err)
		jobs, cats = append(jobs, j), append(cats, c)
	}

	claim := func(worker string, at time.Time, lease time.Duration) (weft.Job, bool) {
		t.Helper()
		j, found, err := s.ClaimJob(ctx, worker, at, lease)
		ok(t, err)
		return j, found
	}

	j1, found := claim("w1", t0, time.Minute)
	if !found || j1.ID != jobs[0].ID || j1.State != weft.JobRunning || j1.Worker != "w1" ||
		j1.Attempts != 1 || !j1.LockedUntil.Equal(t0.Add(time.Minute)) || j1.CatalogID != cats[0].ID {
		t.Errorf("first claim = %+v, want the oldest job %d running for w1 until %v, attempt 1", j1, jobs[0].ID, t0.Add(time.Minute))
	}
	j2, found := claim("w2", t0, time.Minute)
	if !found || j2.ID != jobs[1].ID {
		t.Errorf("second claim = %+v, %v; want job %d", j2, found, jobs[1].ID)
	}
	if _, found := claim("w3", t0.Add(30*time.Second), time.Minute); found {
		t.Errorf("a third claim found a job while both leases hold")
	}

	wantKind(t, "RenewJob by another worker", s.RenewJob(ctx, j1.ID, "w2", t0.Add(2*time.Minute)), weft.Conflict)
	ok(t, s.RenewJob(ctx, j1.ID, "w1", t0.Add(2*time.Minute)))

	// At t0+90s job 2's lease has run out, job 1's was renewed.
	j3, found := claim("w3", t0.Add(90*time.Second), time.Minute)
	if !found || j3.ID != jobs[1].ID || j3.Worker != "w3" || j3.Attempts != 2 {
		t.Errorf("claim after expiry = %+v, %v; want job %d for w3, attempt 2", j3, found, jobs[1].ID)
	}
	wantKind(t, "RenewJob by the worker that lost the lease", s.RenewJob(ctx, j2.ID, "w2", t0.Add(3*time.Minute)), weft.Conflict)
	if d, _ := s.QueueDepth(ctx); d != 2 {
		t.Errorf("QueueDepth = %d with two running jobs, want 2", d)
	}

	ok(t, s.FinishJob(ctx, j1.ID, weft.JobDone, weft.StatusReady))
	ok(t, s.FinishJob(ctx, j3.ID, weft.JobFailed, weft.StatusIndexError))
	for i, want := range []weft.CatalogStatus{weft.StatusReady, weft.StatusIndexError} {
		if st := catalog(t, s, k.ID, cats[i].ID).Status; st != want {
			t.Errorf("catalog %d: status %q, want %q", i, st, want)
		}
	}
	wantKind(t, "RenewJob of a finished job", s.RenewJob(ctx, j1.ID, "w1", t0.Add(time.Hour)), weft.Conflict)
	if _, found := claim("w4", t0.Add(24*time.Hour), time.Minute); found {
		t.Errorf("a finished job was claimed again")
	}
	if d, _ := s.QueueDepth(ctx); d != 0 {
		t.Errorf("QueueDepth = %d after both jobs finished, want 0", d)
	}
	wantKind(t, "FinishJob of an unknown job", s.FinishJob(ctx, j1.ID+1000, weft.JobDone, weft.StatusReady), weft.NotFound)
}

// testParkJob puts a running job back in the queue, as a node shutting
// down does: it is claimable at once, long before its lease would end.
func testParkJob(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	j, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, found, err := s.ClaimJob(ctx, "w1", t0, time.Hour); err != nil || !found {
		t.Fatalf("ClaimJob = %v, %v", found, err)
	}
	ok(t, s.FinishJob(ctx, j.ID, weft.JobQueued, weft.StatusIndexing))
	if st := catalog(t, s, k.ID, c.ID).Status; st != weft.StatusIndexing {
		t.Errorf("status %q after parking, want %q", st, weft.StatusIndexing)
	}
	if d, _ := s.QueueDepth(ctx); d != 1 {
		t.Errorf("QueueDepth = %d with a parked job, want 1", d)
	}
	parked, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if parked.ID != j.ID || parked.State != weft.JobQueued {
		t.Errorf("StartIndex with a parked job = %+v, want queued job %d", parked, j.ID)
	}
	wantKind(t, "RenewJob of a parked job", s.RenewJob(ctx, j.ID, "w1", t0.Add(2*time.Hour)), weft.Conflict)

	again, found, err := s.ClaimJob(ctx, "w2", t0.Add(time.Minute), time.Hour)
	ok(t, err)
	if !found || again.ID != j.ID || again.Worker != "w2" || again.Attempts != 2 {
		t.Errorf("claim of the parked job = %+v, %v; want job %d for w2, attempt 2", again, found, j.ID)
	}
}

// testConcurrentClaims races claimers: every job goes to exactly one.
func testConcurrentClaims(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	const numJobs, numWorkers = 24, 4
	for i := range numJobs {
		c := newCatalog(t, s, k.ID, fmt.Sprint("c", i))
		_, err := s.StartIndex(ctx, k.ID, c.ID)
		ok(t, err)
	}
	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	claimedBy := map[int64][]string{}
	var wg sync.WaitGroup
	errs := make(chan error, numWorkers)
	for w := range numWorkers {
		worker := fmt.Sprint("w", w)
		wg.Go(func() {
			// Bounded, so that a store handing out held jobs fails
			// instead of spinning.
			for range numJobs + 1 {
				j, found, err := s.ClaimJob(ctx, worker, now, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				if !found {
					return
				}
				mu.Lock()
				claimedBy[j.ID] = append(claimedBy[j.ID], worker)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(claimedBy) != numJobs {
		t.Errorf("%d jobs claimed, want %d", len(claimedBy), numJobs)
	}
	for id, ws := range claimedBy {
		if len(ws) != 1 {
			t.Errorf("job %d claimed by %v", id, ws)
		}
	}
}

func testSaveVectorsOnce(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	upsert(t, s, k.ID, c.ID, rows(5))
	save(t, s, c.ID, "img-00000", "img-00001")
	// A worker that resumes after a crash saves some images again.
	save(t, s, c.ID, "img-00001", "img-00002")
	wantCounts(t, s, k.ID, c.ID, 5, 3)

	// A vector saved again replaces the old one without counting it.
	ok(t, s.SaveVectors(ctx, c.ID, []weft.VectorItem{{IID: "img-00000", Vector: vec(7)}}))
	wantCounts(t, s, k.ID, c.ID, 5, 3)
	if im := imageByIID(t, s, k.ID, c.ID, "img-00000"); !slices.Equal(im.Vector, vec(7)) {
		t.Errorf("vector saved again was not replaced")
	}

	// An iid no longer in the catalog is skipped.
	save(t, s, c.ID, "gone")
	wantCounts(t, s, k.ID, c.ID, 5, 3)

	// A failed image that indexes after all counts once.
	ok(t, s.FailImages(ctx, c.ID, []string{"img-00003"}, []string{"timeout"}))
	save(t, s, c.ID, "img-00003")
	save(t, s, c.ID, "img-00003")
	wantCounts(t, s, k.ID, c.ID, 5, 4)
	if im := imageByIID(t, s, k.ID, c.ID, "img-00003"); im.State != weft.ImageIndexed {
		t.Errorf("state %s, want indexed", im.State)
	}

	wantKind(t, "SaveVectors of a short vector",
		s.SaveVectors(ctx, c.ID, []weft.VectorItem{{IID: "img-00004", Vector: []float32{1, 0}}}), weft.Invalid)
	wantCounts(t, s, k.ID, c.ID, 5, 4)
}

func testFailImages(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	upsert(t, s, k.ID, c.ID, rows(3))
	ok(t, s.FailImages(ctx, c.ID, []string{"img-00001"}, []string{"HTTP 404 from 127.0.0.1"}))

	if im := imageByIID(t, s, k.ID, c.ID, "img-00001"); im.State != weft.ImageFailed || im.Vector != nil {
		t.Errorf("failed image: state %s, vector %v", im.State, im.Vector != nil)
	}
	log := catalog(t, s, k.ID, c.ID).ErrorLog
	if len(log) != 1 || !strings.Contains(log[0], "img-00001") || !strings.Contains(log[0], "HTTP 404 from 127.0.0.1") {
		t.Errorf("ErrorLog = %q, want one line naming img-00001 and its reason", log)
	}
	pending, err := s.PendingImages(ctx, c.ID, "", 10)
	ok(t, err)
	if len(pending) != 2 || pending[0].IID != "img-00000" || pending[1].IID != "img-00002" {
		t.Errorf("PendingImages after a failure = %v, want img-00000 and img-00002", pending)
	}
	if s.FailImages(ctx, c.ID, []string{"a", "b"}, []string{"one reason"}) == nil {
		t.Errorf("FailImages with fewer reasons than images: no error")
	}

	// A new index request retries the failed image; a request that finds
	// its job still live changes nothing.
	j, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if im := imageByIID(t, s, k.ID, c.ID, "img-00001"); im.State != weft.ImagePending {
		t.Errorf("after StartIndex the failed image is %s, want pending", im.State)
	}
	ok(t, s.FailImages(ctx, c.ID, []string{"img-00001"}, []string{"still 404"}))
	again, err := s.StartIndex(ctx, k.ID, c.ID)
	ok(t, err)
	if again.ID != j.ID {
		t.Errorf("StartIndex while a job is queued made job %d, want %d", again.ID, j.ID)
	}
	if im := imageByIID(t, s, k.ID, c.ID, "img-00001"); im.State != weft.ImageFailed {
		t.Errorf("StartIndex on a live job reset a failure of that job: state %s", im.State)
	}
}

func testPendingImagesPaging(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	other := newCatalog(t, s, k.ID, "other")
	all := rows(25)
	// Upload out of order: the store sorts.
	slices.Reverse(all)
	upsert(t, s, k.ID, c.ID, all)
	upsert(t, s, k.ID, other.ID, rows(5))
	save(t, s, c.ID, "img-00003", "img-00010", "img-00011")

	var got []string
	after := ""
	for page := 0; ; page++ {
		ims, err := s.PendingImages(ctx, c.ID, after, 10)
		ok(t, err)
		if len(ims) > 10 {
			t.Fatalf("page of %d, limit 10", len(ims))
		}
		if len(ims) == 0 || page > 10 {
			break
		}
		for _, im := range ims {
			if im.CatalogID != c.ID || im.State != weft.ImagePending || im.URL == "" || im.Metadata == nil {
				t.Errorf("pending image %+v: want its catalog, url, metadata and state", im)
			}
			got = append(got, im.IID)
		}
		after = ims[len(ims)-1].IID
	}
	var want []string
	for _, r := range rows(25) {
		if r.IID != "img-00003" && r.IID != "img-00010" && r.IID != "img-00011" {
			want = append(want, r.IID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v,\nwant %v", got, want)
	}
}

func testVectorsOrder(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	iids := []string{"m", "b", "z", "a", "k", "c"}
	var rs []weft.Image
	for i, iid := range iids {
		rs = append(rs, row(iid, "http://127.0.0.1/"+iid, "", i+1))
	}
	upsert(t, s, k.ID, c.ID, rs)
	save(t, s, c.ID, "z", "a", "m", "k", "b") // c stays pending

	var got []string
	ok(t, s.Vectors(ctx, c.ID, func(it weft.VectorItem) error {
		if !slices.Equal(it.Vector, vec(seedOf(it.IID))) {
			t.Errorf("vector of %s differs from the one saved", it.IID)
		}
		got = append(got, it.IID)
		return nil
	}))
	if want := []string{"a", "b", "k", "m", "z"}; !slices.Equal(got, want) {
		t.Errorf("Vectors order %v, want %v", got, want)
	}

	stop := errors.New("stop")
	calls := 0
	err := s.Vectors(ctx, c.ID, func(weft.VectorItem) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Vectors with fn failing: %v after %d calls; want fn's error after 1", err, calls)
	}
}

func testImages(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	c := newCatalog(t, s, k.ID, "c")
	upsert(t, s, k.ID, c.ID, rows(300))
	save(t, s, c.ID, "img-00007")

	want := []string{"img-00299", "img-00007", "img-00150"}
	ims, err := s.Images(ctx, k.ID, c.ID, append(slices.Clone(want), "missing"))
	ok(t, err)
	var got []string
	for _, im := range ims {
		got = append(got, im.IID)
		n := 0
		fmt.Sscanf(im.IID, "img-%d", &n)
		if im.URL != fmt.Sprintf("http://127.0.0.1/%d.jpg", n) || string(im.Metadata) != fmt.Sprintf(`{"n":%d}`, n) || im.Line != n+1 {
			t.Errorf("image %s = %s %s line %d", im.IID, im.URL, im.Metadata, im.Line)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("Images = %v, want %v (missing skipped)", got, want)
	}

	ims, err = s.Images(ctx, k.ID, c.ID, nil)
	ok(t, err)
	if len(ims) != 0 {
		t.Errorf("Images(none) = %d images", len(ims))
	}

	// More iids than one SQL statement would like to bind.
	var many []string
	for i := range 3000 {
		many = append(many, fmt.Sprintf("img-%05d", i))
	}
	ims, err = s.Images(ctx, k.ID, c.ID, many)
	ok(t, err)
	if len(ims) != 300 {
		t.Errorf("Images of 3000 iids = %d images, want the 300 there are", len(ims))
	}
}

// --- usage ---

func testUsage(t *testing.T, s weft.Store) {
	ctx := t.Context()
	a := newKey(t, s, "a")
	b := newKey(t, s, "b")
	c := newKey(t, s, "c")
	jan := time.Date(2017, 1, 31, 23, 59, 59, 0, time.UTC)
	// 2017-02-01 00:30 in UTC+1 is still January in UTC.
	janElsewhere := time.Date(2017, 2, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600))
	feb := time.Date(2017, 2, 1, 0, 0, 0, 0, time.UTC)
	dec := time.Date(2017, 12, 5, 0, 0, 0, 0, time.UTC)
	records := []struct {
		key    int64
		op     weft.UsageOp
		images int
		at     time.Time
	}{
		{a.ID, weft.OpCatalogUpload, 1000, jan},
		{a.ID, weft.OpCatalogUpload, 500, janElsewhere},
		{a.ID, weft.OpSearch, 1, jan},
		{a.ID, weft.OpSearch, 1, feb},
		{a.ID, weft.OpTag, 1, dec},
		{b.ID, weft.OpSearch, 1, jan},
	}
	for _, r := range records {
		ok(t, s.RecordUsage(ctx, r.key, r.op, r.images, r.at))
	}
	// Concurrent records add up.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := s.RecordUsage(ctx, b.ID, weft.OpDetect, 2, feb); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	tests := []struct {
		key  int64
		want weft.Usage
	}{
		{a.ID, weft.Usage{
			"2017-1": {
				weft.OpCatalogUpload: {Calls: 2, Images: 1500},
				weft.OpSearch:        {Calls: 1, Images: 1},
			},
			"2017-2":  {weft.OpSearch: {Calls: 1, Images: 1}},
			"2017-12": {weft.OpTag: {Calls: 1, Images: 1}},
		}},
		{b.ID, weft.Usage{
			"2017-1": {weft.OpSearch: {Calls: 1, Images: 1}},
			"2017-2": {weft.OpDetect: {Calls: 40, Images: 80}},
		}},
		{c.ID, weft.Usage{}},
	}
	for _, tc := range tests {
		got, err := s.Usage(ctx, tc.key)
		ok(t, err)
		if !usageEqual(got, tc.want) {
			t.Errorf("Usage(key %d) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

// usageEqual compares usage, taking an operation with no calls as absent.
func usageEqual(a, b weft.Usage) bool {
	return usageIn(a, b) && usageIn(b, a)
}

func usageIn(a, b weft.Usage) bool {
	for month, ops := range a {
		for op, n := range ops {
			if n != (weft.UsageCount{}) && b[month][op] != n {
				return false
			}
		}
	}
	return true
}

// --- deletion and recovery ---

func testDeleteCatalogCascade(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	doomed := newCatalog(t, s, k.ID, "doomed")
	kept := newCatalog(t, s, k.ID, "kept")
	for _, c := range []weft.Catalog{doomed, kept} {
		upsert(t, s, k.ID, c.ID, rows(20))
		save(t, s, c.ID, "img-00001", "img-00002")
		ok(t, s.AppendErrorLog(ctx, k.ID, c.ID, "line 3: bad url"))
		_, err := s.StartIndex(ctx, k.ID, c.ID)
		ok(t, err)
	}

	ok(t, s.DeleteCatalog(ctx, k.ID, doomed.ID))
	_, err := s.Catalog(ctx, k.ID, doomed.ID)
	wantKind(t, "Catalog after delete", err, weft.NotFound)
	wantKind(t, "DeleteCatalog again", s.DeleteCatalog(ctx, k.ID, doomed.ID), weft.NotFound)

	if got := vectorIIDs(t, s, doomed.ID); len(got) != 0 {
		t.Errorf("Vectors of a deleted catalog = %v", got)
	}
	if p, err := s.PendingImages(ctx, doomed.ID, "", 100); err != nil || len(p) != 0 {
		t.Errorf("PendingImages of a deleted catalog = %d, %v", len(p), err)
	}
	if d, _ := s.QueueDepth(ctx); d != 1 {
		t.Errorf("QueueDepth = %d, want 1: the deleted catalog's job must go", d)
	}
	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	j, found, err := s.ClaimJob(ctx, "w", now, time.Minute)
	ok(t, err)
	if !found || j.CatalogID != kept.ID {
		t.Errorf("ClaimJob = %+v, %v; want the job of the kept catalog", j, found)
	}
	if _, found, _ := s.ClaimJob(ctx, "w", now, time.Minute); found {
		t.Errorf("claimed a job of the deleted catalog")
	}

	list, err := s.Catalogs(ctx, k.ID)
	ok(t, err)
	if len(list) != 1 || list[0].ID != kept.ID {
		t.Errorf("Catalogs after delete = %v, want only %s", list, kept.ID)
	}
	wantCounts(t, s, k.ID, kept.ID, 20, 2)
	if got := vectorIIDs(t, s, kept.ID); len(got) != 2 {
		t.Errorf("the other catalog's vectors: %v", got)
	}

	// An iid reused in a new catalog starts afresh.
	fresh := newCatalog(t, s, k.ID, "fresh")
	upsert(t, s, k.ID, fresh.ID, rows(1))
	wantCounts(t, s, k.ID, fresh.ID, 1, 0)
}

func testCatalogsWithStatus(t *testing.T, s weft.Store) {
	ctx := t.Context()
	a := newKey(t, s, "a")
	b := newKey(t, s, "b")
	statuses := []weft.CatalogStatus{weft.StatusUploading, weft.StatusNew, weft.StatusUploading, weft.StatusReady}
	want := map[weft.CatalogStatus][]string{}
	for i, st := range statuses {
		key := a
		if i%2 == 1 {
			key = b
		}
		c := newCatalog(t, s, key.ID, fmt.Sprint("c", i))
		ok(t, s.SetCatalogStatus(ctx, key.ID, c.ID, st))
		want[st] = append(want[st], c.ID)
	}
	c := newCatalog(t, s, b.ID, "indexing")
	_, err := s.StartIndex(ctx, b.ID, c.ID)
	ok(t, err)
	want[weft.StatusIndexing] = []string{c.ID}

	for _, st := range []weft.CatalogStatus{weft.StatusUploading, weft.StatusNew, weft.StatusReady, weft.StatusIndexing, weft.StatusIndexError} {
		list, err := s.CatalogsWithStatus(ctx, st)
		ok(t, err)
		var got []string
		for _, c := range list {
			if c.Status != st {
				t.Errorf("CatalogsWithStatus(%q) lists a catalog in %q", st, c.Status)
			}
			got = append(got, c.ID)
		}
		sort.Strings(got)
		w := slices.Clone(want[st])
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Errorf("CatalogsWithStatus(%q) = %v, want %v", st, got, w)
		}
	}
}

// indexAll runs one index job of catalog c to the end as a worker would:
// every image but the failed ones gets a vector, and c becomes ready.
func indexAll(t *testing.T, s weft.Store, keyID int64, c string, failed ...string) {
	t.Helper()
	ctx := t.Context()
	j, err := s.StartIndex(ctx, keyID, c)
	ok(t, err)
	claimed, found, err := s.ClaimJob(ctx, "w", time.Now(), time.Hour)
	if err != nil || !found || claimed.ID != j.ID {
		t.Fatalf("ClaimJob = %+v, %v, %v; want job %d", claimed, found, err, j.ID)
	}
	pending, err := s.PendingImages(ctx, c, "", 1000)
	ok(t, err)
	var iids []string
	for _, im := range pending {
		if !slices.Contains(failed, im.IID) {
			iids = append(iids, im.IID)
		}
	}
	save(t, s, c, iids...)
	if len(failed) > 0 {
		ok(t, s.FailImages(ctx, c, failed, slices.Repeat([]string{"unreachable"}, len(failed))))
	}
	ok(t, s.FinishJob(ctx, j.ID, weft.JobDone, weft.StatusReady))
}

func testEmbeddingModel(t *testing.T, s weft.Store) {
	ctx := t.Context()
	k := newKey(t, s, "k")
	ready := newCatalog(t, s, k.ID, "ready")
	upsert(t, s, k.ID, ready.ID, rows(3))
	indexAll(t, s, k.ID, ready.ID, "img-00002")
	reup := newCatalog(t, s, k.ID, "uploaded again")
	upsert(t, s, k.ID, reup.ID, rows(2))
	indexAll(t, s, k.ID, reup.ID)
	ok(t, s.SetCatalogStatus(ctx, k.ID, reup.ID, weft.StatusUploadDone))
	never := newCatalog(t, s, k.ID, "never indexed")
	upsert(t, s, k.ID, never.ID, rows(2))

	// Vectors stored before any model was recorded come from an unknown one.
	dropped, err := s.SetEmbeddingModel(ctx, "m1")
	ok(t, err)
	slices.Sort(dropped)
	if want := []string{ready.ID, reup.ID}; !slices.Equal(dropped, slices.Sorted(slices.Values(want))) {
		t.Errorf("SetEmbeddingModel(m1) on unrecorded vectors dropped %v, want %v", dropped, want)
	}
	for _, c := range []string{ready.ID, reup.ID} {
		if got := vectorIIDs(t, s, c); len(got) != 0 {
			t.Errorf("catalog %s keeps vectors %v after a model change", c, got)
		}
	}
	wantCounts(t, s, k.ID, ready.ID, 3, 0)
	wantCounts(t, s, k.ID, reup.ID, 2, 0)
	for iid, want := range map[string]weft.ImageState{"img-00000": weft.ImagePending, "img-00002": weft.ImageFailed} {
		if im := imageByIID(t, s, k.ID, ready.ID, iid); im.State != want || im.Vector != nil {
			t.Errorf("image %s: state %q, vector %d long; want %q and none", iid, im.State, len(im.Vector), want)
		}
	}
	for c, want := range map[string]weft.CatalogStatus{ready.ID: weft.StatusIndexing, reup.ID: weft.StatusUploadDone,
		never.ID: weft.StatusNew} {
		if st := catalog(t, s, k.ID, c).Status; st != want {
			t.Errorf("catalog %s: status %q after a model change, want %q", c, st, want)
		}
	}
	if d, err := s.QueueDepth(ctx); err != nil || d != 1 {
		t.Errorf("QueueDepth = %d, %v after a model change; want 1 (the ready catalog's job)", d, err)
	}
	j, found, err := s.ClaimJob(ctx, "w", time.Now(), time.Hour)
	ok(t, err)
	if !found || j.CatalogID != ready.ID || j.KeyID != k.ID {
		t.Fatalf("ClaimJob = %+v, %v; want the ready catalog's job", j, found)
	}
	pending, err := s.PendingImages(ctx, ready.ID, "", 10)
	ok(t, err)
	if len(pending) != 2 {
		t.Errorf("%d pending images after a model change, want 2 (the failed one stays failed)", len(pending))
	}
	save(t, s, ready.ID, "img-00000", "img-00001")
	ok(t, s.FinishJob(ctx, j.ID, weft.JobDone, weft.StatusReady))

	// The same model again changes nothing.
	dropped, err = s.SetEmbeddingModel(ctx, "m1")
	ok(t, err)
	if len(dropped) != 0 || len(vectorIIDs(t, s, ready.ID)) != 2 {
		t.Errorf("SetEmbeddingModel(m1) again dropped %v; vectors left %v", dropped, vectorIIDs(t, s, ready.ID))
	}
	if d, _ := s.QueueDepth(ctx); d != 0 {
		t.Errorf("QueueDepth = %d after setting the same model, want 0", d)
	}

	// A new model while the catalog's job is queued adds no second job.
	_, err = s.StartIndex(ctx, k.ID, ready.ID)
	ok(t, err)
	dropped, err = s.SetEmbeddingModel(ctx, "m2")
	ok(t, err)
	if !slices.Equal(dropped, []string{ready.ID}) {
		t.Errorf("SetEmbeddingModel(m2) dropped %v, want [%s]", dropped, ready.ID)
	}
	if d, _ := s.QueueDepth(ctx); d != 1 {
		t.Errorf("QueueDepth = %d after a model change with a job queued, want 1", d)
	}
	wantCounts(t, s, k.ID, ready.ID, 3, 0)
}
