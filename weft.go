// Package weft holds Weft's domain types and the interfaces between its
// rooms: the store (sqlite, postgres), the vector index (index, postgres),
// the vision models (vision, onnx) and the image fetcher (fetch). It imports
// nothing of the project's own; every other package imports it.
package weft

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EmbeddingDim is the length of every embedding Weft stores. It is fixed by
// the committed tagger model (models/tagger.json says the same) so that
// stores can declare typed vector columns.
const EmbeddingDim = 256

// Key is an API key pair. The secret is never stored, only its hash.
type Key struct {
	ID         int64
	Name       string
	APIKey     string // public identifier, sent with the secret to /v0/token
	SecretHash []byte // see auth.HashSecret
	Created    time.Time
}

// Token is an access token handed out by /v0/token. Only its hash is stored.
type Token struct {
	Hash    []byte
	KeyID   int64
	Expires time.Time
}

// CatalogStatus is a catalog's life-cycle state; the strings are the v0 API's.
type CatalogStatus string

const (
	StatusNew         CatalogStatus = "new"
	StatusUploading   CatalogStatus = "uploading"
	StatusUploadDone  CatalogStatus = "upload done"
	StatusUploadError CatalogStatus = "upload error"
	// StatusIndexing is what Weft reports while indexing. The v0 page's
	// example says "index in progress"; clients shipped here accept both.
	StatusIndexing   CatalogStatus = "indexing"
	StatusReady      CatalogStatus = "ready for query"
	StatusIndexError CatalogStatus = "index error"
)

// ReindexStatuses are the statuses of catalogs whose owner asked for them
// to be indexed: they are indexed again when the embedding model changes.
var ReindexStatuses = []CatalogStatus{StatusIndexing, StatusReady, StatusIndexError}

// CheckTransition is Store.SetCatalogStatus's guard: nil when from is empty
// or holds current, Conflict otherwise.
func CheckTransition(op, id string, current CatalogStatus, from []CatalogStatus) error {
	if len(from) == 0 || slices.Contains(from, current) {
		return nil
	}
	q := make([]string, len(from))
	for i, s := range from {
		q[i] = strconv.Quote(string(s))
	}
	return E(op, Conflict, Msgf("Catalog %s is %s, not %s.", id, current, strings.Join(q, " or ")))
}

// StatusIndexInProgress is the v0 page's example spelling of StatusIndexing.
const StatusIndexInProgress CatalogStatus = "index in progress"

// NewCatalogID returns a fresh catalog id: 16 lowercase hex characters from
// crypto/rand, as the v0 API shows them.
func NewCatalogID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Catalog is a key's collection of images to search.
type Catalog struct {
	ID         string // 16 lowercase hex characters
	KeyID      int64
	Name       string
	Status     CatalogStatus
	Created    time.Time
	NumTotal   int      // images uploaded
	NumIndexed int      // images with a vector
	ErrorLog   []string // upload and indexing errors, oldest first, bounded
}

// MaxErrorLog bounds the lines kept in a catalog's error log; the last line
// then says how many more were dropped (ErrorLogDropped).
const MaxErrorLog = 1000

// ErrorLogDropped is the error log's last line when n more lines were
// dropped past MaxErrorLog.
func ErrorLogDropped(n int) string {
	if n == 1 {
		return "... 1 more error line dropped."
	}
	return fmt.Sprintf("... %d more error lines dropped.", n)
}

// ImageState is an image's indexing state.
type ImageState string

const (
	ImagePending ImageState = "pending" // uploaded, no vector yet
	ImageIndexed ImageState = "indexed" // vector stored
	ImageFailed  ImageState = "failed"  // could not be fetched or decoded
)

// Image is one row of a catalog file and what indexing made of it.
type Image struct {
	CatalogID string
	IID       string // the shop's image id, unique in a catalog
	URL       string
	Metadata  json.RawMessage // exactly as uploaded; nil when none
	State     ImageState
	Vector    []float32 // unit length; nil unless State is ImageIndexed
	Line      int       // line in the last catalog file that wrote it
}

// JobState is the state of a background job.
type JobState string

const (
	JobQueued  JobState = "queued"
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// Job is durable background work on one catalog, inserted in the same
// transaction as the catalog's status change. A running job holds a lease
// (LockedUntil) that its worker renews; a job whose lease ran out is claimed
// again, by any worker of any node.
type Job struct {
	ID          int64
	CatalogID   string
	KeyID       int64
	State       JobState
	Attempts    int
	Worker      string
	LockedUntil time.Time
	Created     time.Time
}

// UsageOp is a billable operation of the v0 usage summary.
type UsageOp string

const (
	OpCatalogUpload UsageOp = "catalog_upload"
	OpCatalogIndex  UsageOp = "catalog_index"
	OpSearch        UsageOp = "search"
	OpTag           UsageOp = "tag"
	OpDetect        UsageOp = "detect"
)

// UsageOps lists every UsageOp in the order the API emits them.
var UsageOps = []UsageOp{OpCatalogUpload, OpCatalogIndex, OpSearch, OpTag, OpDetect}

// UsageCount is one operation's count in one month.
type UsageCount struct {
	Calls  int64 `json:"num_calls"`
	Images int64 `json:"num_images"`
}

// Usage is a key's usage by month ("2017-1", no zero padding) then operation.
type Usage map[string]map[UsageOp]UsageCount

// Add sets the count of op in month.
func (u Usage) Add(month string, op UsageOp, c UsageCount) {
	if u[month] == nil {
		u[month] = map[UsageOp]UsageCount{}
	}
	u[month][op] = c
}

// UsageMonth formats t's month as the v0 API keys it.
func UsageMonth(t time.Time) string {
	t = t.UTC()
	return strconv.Itoa(t.Year()) + "-" + strconv.Itoa(int(t.Month()))
}

// Label is one tag of an image.
type Label struct {
	Confidence float64 `json:"confidence"`
	Type       string  `json:"type"` // "shape" or "color"
	Name       string  `json:"name"` // "t-shirt", "color charcoal"
}

// LabelInfo describes a label the tagger can give, for GET /v0/labels.
type LabelInfo struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Parent string `json:"parent"`
}

// Box is one garment found in a photo, in pixels of the original image.
type Box struct {
	Category string  `json:"category"` // "<family>" or "<family>-<kind>"
	Score    float64 `json:"score"`
	BBox     [4]int  `json:"bbox"` // x0, y0, x1, y1
}

// Hit is one search result: an image id and its cosine distance (1 − cos).
type Hit struct {
	IID      string
	Distance float32
}

// VectorItem is one vector to put into an index.
type VectorItem struct {
	IID    string
	Vector []float32
}

// Store keeps keys, tokens, catalogs, images with their vectors, jobs and
// usage. Every method that touches a catalog takes the owning key's id and
// answers NotFound for a catalog of another key. Implementations: sqlite,
// postgres; both pass storetest.
type Store interface {
	CreateKey(ctx context.Context, k *Key) error // sets k.ID, k.Created
	KeyByAPIKey(ctx context.Context, apiKey string) (Key, error)
	// CreateToken stores t and, in the same transaction, deletes the
	// tokens of t's key that have expired by now, so that a key's stored
	// tokens are only those issued within one lifetime.
	CreateToken(ctx context.Context, t Token, now time.Time) error
	// KeyByToken returns the key of an unexpired token; Unauthorized otherwise.
	KeyByToken(ctx context.Context, hash []byte, now time.Time) (Key, error)

	CreateCatalog(ctx context.Context, c *Catalog) error // sets c.ID, c.Created, c.Status
	Catalog(ctx context.Context, keyID int64, id string) (Catalog, error)
	Catalogs(ctx context.Context, keyID int64) ([]Catalog, error) // newest first
	// CatalogsWithStatus lists every key's catalogs in one status, for
	// recovery at start (e.g. uploads cut short by a crash).
	CatalogsWithStatus(ctx context.Context, status CatalogStatus) ([]Catalog, error)
	// DeleteCatalog removes the catalog, its images, vectors and jobs.
	DeleteCatalog(ctx context.Context, keyID int64, id string) error
	// SetCatalogStatus moves a catalog to status; with from non-empty only
	// when its current status is one of from (Conflict otherwise).
	SetCatalogStatus(ctx context.Context, keyID int64, id string, status CatalogStatus, from ...CatalogStatus) error
	AppendErrorLog(ctx context.Context, keyID int64, id string, lines ...string) error

	// UpsertImages writes catalog rows (IID, URL, Metadata, Line). A row whose
	// URL is unchanged keeps its vector and state (its metadata is updated); a
	// new row or a changed URL becomes ImagePending. It returns the iids whose
	// stored vector it dropped, so the caller can drop them from the Index.
	UpsertImages(ctx context.Context, keyID int64, catalogID string, rows []Image) (invalidated []string, err error)

	// StartIndex, in one transaction, sets the catalog to StatusIndexing,
	// turns its ImageFailed images back to ImagePending (a new index request
	// retries what could not be fetched before) and queues an index job,
	// unless one is already queued or running (then it returns that job and
	// changes nothing). Conflict when the catalog is uploading.
	StartIndex(ctx context.Context, keyID int64, catalogID string) (Job, error)
	// ClaimJob takes the oldest queued job, or a running one whose lease has
	// expired, for worker until now+lease. ok is false when there is none.
	ClaimJob(ctx context.Context, worker string, now time.Time, lease time.Duration) (job Job, ok bool, err error)
	// RenewJob extends a lease; Conflict when the job is no longer worker's.
	RenewJob(ctx context.Context, jobID int64, worker string, until time.Time) error
	// FinishJob ends a job (JobDone, JobFailed) or parks it (JobQueued: back
	// in the queue, lease cleared, for a graceful shutdown) and sets its
	// catalog's status, in one transaction.
	FinishJob(ctx context.Context, jobID int64, state JobState, catalogStatus CatalogStatus) error
	// QueueDepth counts queued and running jobs, for metrics.
	QueueDepth(ctx context.Context) (int, error)

	// PendingImages returns up to limit ImagePending images of a catalog with
	// IID > after, in IID order.
	PendingImages(ctx context.Context, catalogID string, after string, limit int) ([]Image, error)
	// SaveVectors stores vectors and flags the images indexed, in one
	// transaction; an image already indexed is not counted twice.
	SaveVectors(ctx context.Context, catalogID string, items []VectorItem) error
	// FailImages flags images failed and appends one error-log line each.
	FailImages(ctx context.Context, catalogID string, iids []string, reasons []string) error
	// Images returns the rows of the given iids (missing ones are skipped).
	Images(ctx context.Context, keyID int64, catalogID string, iids []string) ([]Image, error)
	// Vectors calls fn for every indexed image of a catalog, in IID order.
	Vectors(ctx context.Context, catalogID string, fn func(VectorItem) error) error
	// SetEmbeddingModel records model as the one the stored vectors come
	// from. When they came from another (or from before models were
	// recorded), vectors of two models do not compare, so in the same
	// transaction it drops every vector, turns indexed images back to
	// ImagePending and, for each catalog whose indexing was asked for
	// (ReindexStatuses), sets StatusIndexing and queues an index job. It
	// returns the catalogs whose vectors it dropped.
	SetEmbeddingModel(ctx context.Context, model string) (dropped []string, err error)

	RecordUsage(ctx context.Context, keyID int64, op UsageOp, images int, at time.Time) error
	Usage(ctx context.Context, keyID int64) (Usage, error)

	Close() error
}

// Index is a nearest-neighbour index of catalogs' vectors by cosine distance.
// The store remains the source of truth: an Index can be rebuilt from
// Store.Vectors. Implementations: index (in-process HNSW), postgres (pgvector).
type Index interface {
	Add(ctx context.Context, catalogID string, items []VectorItem) error // upsert
	Delete(ctx context.Context, catalogID string, iids []string) error
	Drop(ctx context.Context, catalogID string) error
	Search(ctx context.Context, catalogID string, q []float32, k int) ([]Hit, error)
	Close() error
}

// Vision runs Weft's models on decoded images.
type Vision interface {
	// Embed returns one unit-length vector per image, batched internally.
	Embed(ctx context.Context, imgs []image.Image) ([][]float32, error)
	Tag(ctx context.Context, img image.Image) ([]Label, error)
	Detect(ctx context.Context, img image.Image) ([]Box, error)
	Labels() []LabelInfo
	Dim() int // embedding length
	// EmbeddingModel names the embedding: vectors of two names do not
	// compare (see Store.SetEmbeddingModel).
	EmbeddingModel() string
}

// Fetcher fetches images from outside, within limits; only it opens
// outbound connections.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}
