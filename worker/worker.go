// Package worker runs Weft's background work: parsing uploaded catalog files
// and indexing catalogs. Index jobs live in the store (inserted in the same
// transaction as the catalog's status change) and are claimed with a lease,
// so a worker killed mid-job loses nothing: the images already flagged
// indexed stay done, and the job is claimed again once its lease runs out,
// by this node after a restart or by any other node on a shared database.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"image"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/weftlabs/weft"
)

// Config is what a Worker needs; zero values get the defaults noted.
type Config struct {
	Store   weft.Store
	Index   weft.Index
	Vision  weft.Vision
	Fetcher weft.Fetcher
	// Decode turns fetched bytes into an image, enforcing pixel limits. The
	// server passes one that also shrinks the image to the model's input
	// (vision.Prepare), so decoded images waiting for a batch stay small.
	Decode func(io.Reader) (image.Image, error)

	SpoolDir   string // uploaded catalog files wait here while they are parsed
	SingleNode bool   // the store is this process's alone (SQLite)

	Jobs        int           // index jobs run at once (default 1)
	Fetchers    int           // concurrent image fetches per job (default 16)
	Batch       int           // images per embedding batch (default 16)
	Lease       time.Duration // job lease, renewed at a third of it (default 15 s)
	Poll        time.Duration // how often idle workers look for jobs of other nodes (default 2 s)
	Name        string        // worker name for leases (default host-pid-random)
	Logger      *slog.Logger
	Now         func() time.Time
	OnIndexed   func(n int) // metrics hooks, may be nil
	OnFailed    func(n int)
	DrainPeriod time.Duration // how long shutdown waits for in-flight batches (default 10 s)
}

// Worker runs upload parsing and index jobs. New, then Run in a goroutine,
// then Close.
type Worker struct {
	cfg     Config
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	decodes chan struct{} // one token per core: decoding is CPU work, fetching is not
	uploads sync.WaitGroup
	jobs    sync.WaitGroup
}

// New checks cfg and fills in defaults.
func New(cfg Config) *Worker {
	if cfg.Jobs <= 0 {
		cfg.Jobs = 1
	}
	if cfg.Fetchers <= 0 {
		cfg.Fetchers = 16
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 15 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.DrainPeriod <= 0 {
		cfg.DrainPeriod = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Name = host + "-" + itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	}
	if cfg.OnIndexed == nil {
		cfg.OnIndexed = func(int) {}
	}
	if cfg.OnFailed == nil {
		cfg.OnFailed = func(int) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Worker{cfg: cfg, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1),
		decodes: make(chan struct{}, runtime.NumCPU())}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Wake tells idle job runners that a job was queued.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start recovers interrupted uploads and starts the job runners.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.recoverUploads(ctx); err != nil {
		return err
	}
	for i := 0; i < w.cfg.Jobs; i++ {
		w.jobs.Add(1)
		go func() {
			defer w.jobs.Done()
			w.runJobs()
		}()
	}
	return nil
}

// Close stops claiming jobs, parks the running ones (their images done so
// far stay done; the job goes back to the queue) and waits for upload
// parsing to finish.
func (w *Worker) Close() error {
	w.cancel()
	w.jobs.Wait()
	w.uploads.Wait()
	return nil
}

func (w *Worker) runJobs() {
	t := time.NewTicker(w.cfg.Poll)
	defer t.Stop()
	for {
		for w.ctx.Err() == nil {
			job, ok, err := w.cfg.Store.ClaimJob(w.ctx, w.cfg.Name, w.cfg.Now(), w.cfg.Lease)
			if err != nil {
				if w.ctx.Err() == nil {
					w.cfg.Logger.Error("claiming a job", "err", err)
				}
				break
			}
			if !ok {
				break
			}
			w.runJob(job)
		}
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		case <-t.C:
		}
	}
}
