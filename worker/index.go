package worker

import (
	"bytes"
	"context"
	"errors"
	"image"
	"sync"
	"time"

	"github.com/weftlabs/weft"
)

// maxAttempts bounds how often a job that hit an internal error is retried
// before its catalog is marked "index error".
const maxAttempts = 3

// pendingPage is how many pending images one store query returns.
const pendingPage = 256

type decoded struct {
	iid string
	img image.Image
}

type failure struct {
	iid    string
	reason string
}

type jobStats struct {
	mu      sync.Mutex
	indexed int
	failed  int
}

func (s *jobStats) add(indexed, failed int) {
	s.mu.Lock()
	s.indexed += indexed
	s.failed += failed
	s.mu.Unlock()
}

// runJob indexes one claimed job's catalog: the images still pending are
// fetched and decoded concurrently, embedded in batches, and stored, the
// stages overlapping so that the model is kept busy.
func (w *Worker) runJob(job weft.Job) {
	log := w.cfg.Logger.With("job", job.ID, "catalog", job.CatalogID, "attempt", job.Attempts)
	log.Info("index job started")
	start := time.Now()

	// jctx outlives a shutdown request by DrainPeriod, so batches in flight
	// can be stored instead of thrown away.
	jctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopFeeding := make(chan struct{})
	go func() {
		select {
		case <-w.ctx.Done():
			close(stopFeeding)
			select {
			case <-time.After(w.cfg.DrainPeriod):
				cancel()
			case <-jctx.Done():
			}
		case <-jctx.Done():
		}
	}()
	lost := w.keepLease(jctx, cancel, job)

	var st jobStats
	err := w.indexCatalog(jctx, job, stopFeeding, &st)
	ctx := context.WithoutCancel(jctx)
	if st.indexed > 0 {
		if uerr := w.cfg.Store.RecordUsage(ctx, job.KeyID, weft.OpCatalogIndex, st.indexed, w.cfg.Now()); uerr != nil {
			log.Error("recording usage", "err", uerr)
		}
	}
	log = log.With("indexed", st.indexed, "failed", st.failed, "seconds", time.Since(start).Seconds())

	select {
	case <-lost:
		log.Warn("index job lease lost; another worker has it")
		return
	default:
	}
	switch {
	case weft.KindOf(err) == weft.NotFound:
		log.Info("catalog deleted while indexing")
		return
	case w.ctx.Err() != nil:
		// Shutdown: park the job so that the next start (or another node)
		// goes on from the images not yet flagged indexed.
		if ferr := w.cfg.Store.FinishJob(ctx, job.ID, weft.JobQueued, weft.StatusIndexing); ferr != nil {
			log.Error("parking job", "err", ferr)
		}
		log.Info("index job parked for shutdown")
		return
	case err != nil && job.Attempts < maxAttempts:
		log.Error("index job failed, will retry", "err", err)
		_ = w.cfg.Store.FinishJob(ctx, job.ID, weft.JobQueued, weft.StatusIndexing)
		return
	case err != nil:
		log.Error("index job failed", "err", err)
		_ = w.cfg.Store.AppendErrorLog(ctx, job.KeyID, job.CatalogID, "index: "+weft.MessageOf(err))
		_ = w.cfg.Store.FinishJob(ctx, job.ID, weft.JobFailed, weft.StatusIndexError)
		return
	}
	status := weft.StatusReady
	if c, cerr := w.cfg.Store.Catalog(ctx, job.KeyID, job.CatalogID); cerr == nil && c.NumIndexed == 0 && c.NumTotal > 0 {
		status = weft.StatusIndexError
	}
	if ferr := w.cfg.Store.FinishJob(ctx, job.ID, weft.JobDone, status); ferr != nil {
		log.Error("finishing job", "err", ferr)
		return
	}
	log.Info("index job done", "status", status)
}

// keepLease renews the job's lease until ctx ends. The returned channel is
// closed, and ctx cancelled, when the lease turns out to be lost.
func (w *Worker) keepLease(ctx context.Context, cancel context.CancelFunc, job weft.Job) <-chan struct{} {
	lost := make(chan struct{})
	go func() {
		t := time.NewTicker(w.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := w.cfg.Store.RenewJob(ctx, job.ID, w.cfg.Name, w.cfg.Now().Add(w.cfg.Lease))
			if err == nil || ctx.Err() != nil {
				continue
			}
			if k := weft.KindOf(err); k == weft.Conflict || k == weft.NotFound {
				close(lost)
				cancel()
				return
			}
			w.cfg.Logger.Warn("renewing job lease", "job", job.ID, "err", err)
		}
	}()
	return lost
}

// indexCatalog runs passes over the catalog's pending images until none is
// left: images upserted while a pass runs are picked up by the next one.
func (w *Worker) indexCatalog(ctx context.Context, job weft.Job, stop <-chan struct{}, st *jobStats) error {
	for {
		before := st.indexed + st.failed
		if err := w.pass(ctx, job, stop, st); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		default:
		}
		more, err := w.cfg.Store.PendingImages(ctx, job.CatalogID, "", 1)
		if err != nil {
			return err
		}
		if len(more) == 0 {
			return nil
		}
		if st.indexed+st.failed == before {
			return weft.E("worker.indexCatalog", weft.Internal, weft.Msgf("no progress on %d pending images", len(more)))
		}
	}
}

// pass is one sweep of the pipeline: list → fetch+decode (Fetchers wide) →
// embed (batches) → store.
func (w *Worker) pass(ctx context.Context, job weft.Job, stop <-chan struct{}, st *jobStats) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := make(chan weft.Image, w.cfg.Fetchers)
	ready := make(chan decoded, w.cfg.Batch)
	failed := make(chan failure, w.cfg.Fetchers)
	type batch struct {
		items []weft.VectorItem
	}
	embedded := make(chan batch, 2)

	var wg sync.WaitGroup
	// List pending images in pages.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(todo)
		after := ""
		for {
			page, err := w.cfg.Store.PendingImages(ctx, job.CatalogID, after, pendingPage)
			if err != nil {
				cancel(err)
				return
			}
			if len(page) == 0 {
				return
			}
			for _, im := range page {
				select {
				case todo <- im:
				case <-stop:
					return
				case <-ctx.Done():
					return
				}
			}
			after = page[len(page)-1].IID
		}
	}()
	// Fetch and decode.
	var fetchers sync.WaitGroup
	for i := 0; i < w.cfg.Fetchers; i++ {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			for im := range todo {
				img, err := w.load(ctx, im.URL)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					failed <- failure{im.IID, "image " + im.IID + ": " + weft.MessageOf(err)}
					continue
				}
				ready <- decoded{im.IID, img}
			}
		}()
	}
	go func() {
		fetchers.Wait()
		close(ready)
		close(failed)
	}()
	// Embed in batches; a partial batch goes when no image is waiting.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(embedded)
		var ids []string
		var imgs []image.Image
		flush := func() bool {
			if len(imgs) == 0 {
				return true
			}
			vecs, err := w.cfg.Vision.Embed(ctx, imgs)
			if err != nil {
				cancel(err)
				return false
			}
			items := make([]weft.VectorItem, len(ids))
			for i := range ids {
				items[i] = weft.VectorItem{IID: ids[i], Vector: vecs[i]}
			}
			ids, imgs = nil, nil
			select {
			case embedded <- batch{items}:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			var d decoded
			var ok bool
			if len(imgs) == 0 {
				d, ok = <-ready
			} else {
				select {
				case d, ok = <-ready:
				default:
					if !flush() {
						return
					}
					continue
				}
			}
			if !ok {
				flush()
				return
			}
			ids = append(ids, d.iid)
			imgs = append(imgs, d.img)
			if len(imgs) >= w.cfg.Batch && !flush() {
				return
			}
		}
	}()
	// Store failures as they come, in small groups.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var iids, reasons []string
		save := func() {
			if len(iids) == 0 {
				return
			}
			if err := w.cfg.Store.FailImages(ctx, job.CatalogID, iids, reasons); err != nil {
				cancel(err)
			}
			st.add(0, len(iids))
			w.cfg.OnFailed(len(iids))
			iids, reasons = nil, nil
		}
		for f := range failed {
			iids = append(iids, f.iid)
			reasons = append(reasons, f.reason)
			if len(iids) >= 64 {
				save()
			}
		}
		save()
	}()
	// Store vectors: index first, then the store's flag, so that a crash in
	// between only means the image is embedded again (an upsert).
	for b := range embedded {
		if err := w.cfg.Index.Add(ctx, job.CatalogID, b.items); err != nil {
			cancel(err)
			break
		}
		if err := w.cfg.Store.SaveVectors(ctx, job.CatalogID, b.items); err != nil {
			cancel(err)
			break
		}
		st.add(len(b.items), 0)
		w.cfg.OnIndexed(len(b.items))
	}
	cancel(nil)
	// Drain so that no goroutine blocks on a full channel.
	go func() {
		for range embedded {
		}
	}()
	go func() {
		for range ready {
		}
	}()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (w *Worker) load(ctx context.Context, url string) (image.Image, error) {
	body, err := w.cfg.Fetcher.Fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	// At most one decode per core: sixteen fetchers decoding 40-megapixel
	// images at once would hold gigabytes and gain nothing.
	select {
	case w.decodes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-w.decodes }()
	return w.cfg.Decode(bytes.NewReader(body))
}
