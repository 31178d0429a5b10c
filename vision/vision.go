// Package vision turns images into what Weft answers with: it decodes and
// bounds them, prepares them exactly as the models were trained
// (train/preprocess.py for the tagger, the YOLOX letterbox for the
// detector), and runs the models through onnx: embeddings for search,
// garment type and colour labels, garment boxes.
package vision

import (
	"context"
	"errors"
	"image"
	"path/filepath"
	"time"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/onnx"
)

// Options tunes Open.
type Options struct {
	// Threads is each model's intra-op thread count; 0 means one per core.
	Threads int
	// Sessions is how many runs of each model may proceed at once; 0
	// means 1.
	Sessions int
	// TagThreshold is the probability a label needs to be given beyond
	// the best type and the two best colours; 0 means 0.3.
	TagThreshold float64
}

// Models is Weft's weft.Vision: the tagger (tagger.onnx, embedder.onnx,
// tagger.json) and the detector (detector.onnx, detector.json) of one models
// directory.
type Models struct {
	*Tagger
	*Detector
}

var _ weft.Vision = (*Models)(nil)

// Open loads both models from dir. onnx.Init must have succeeded.
func Open(dir string, opts Options) (*Models, error) {
	const op = "vision.Open"
	if opts.TagThreshold == 0 {
		opts.TagThreshold = 0.3
	}
	o := onnx.Options{Threads: opts.Threads, Sessions: opts.Sessions}
	t, err := OpenTagger(filepath.Join(dir, "tagger.onnx"), filepath.Join(dir, "embedder.onnx"), filepath.Join(dir, "tagger.json"), opts.TagThreshold, o)
	if err != nil {
		return nil, weft.E(op, err)
	}
	if t.Dim() != weft.EmbeddingDim {
		t.Close()
		return nil, weft.E(op, weft.Invalid, weft.Msgf("%s: embedding_dim is %d; Weft stores %d", dir, t.Dim(), weft.EmbeddingDim))
	}
	d, err := OpenDetector(filepath.Join(dir, "detector.onnx"), filepath.Join(dir, "detector.json"), o)
	if err != nil {
		t.Close()
		return nil, weft.E(op, err)
	}
	return &Models{t, d}, nil
}

// InputSize is the side of the square the tagger takes (see Prepare).
func (m *Models) InputSize() int { return m.Tagger.meta.Size }

// Close releases both models.
func (m *Models) Close() error {
	return errors.Join(m.Tagger.Close(), m.Detector.Close())
}

// BenchEmbed embeds n images, cycling through imgs, in batches of
// EmbedBatch as indexing does, and returns images per second. Decoding is
// not timed; preprocessing is, as it is part of Embed.
func BenchEmbed(ctx context.Context, v weft.Vision, imgs []image.Image, n int) (float64, error) {
	if len(imgs) == 0 || n <= 0 {
		return 0, weft.E("vision.BenchEmbed", weft.Invalid, weft.Msgf("need at least one image and n > 0"))
	}
	batch := make([]image.Image, 0, EmbedBatch)
	start := time.Now()
	for i := range n {
		batch = append(batch, imgs[i%len(imgs)])
		if len(batch) == EmbedBatch || i == n-1 {
			if _, err := v.Embed(ctx, batch); err != nil {
				return 0, err
			}
			batch = batch[:0]
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
