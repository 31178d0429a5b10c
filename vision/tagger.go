package vision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/onnx"
)

// EmbedBatch is how many images one tagger run takes; indexing batches the
// same way.
const EmbedBatch = 16

// taggerMeta is tagger.json; types and colors are in the columns' order.
type taggerMeta struct {
	Input        string  `json:"input"`
	Size         int     `json:"size"`
	EmbeddingDim int     `json:"embedding_dim"`
	Types        []label `json:"types"`
	Colors       []label `json:"colors"`
}

type label struct {
	Name   string `json:"name"`
	Parent string `json:"parent"`
}

// What Embed and Tag fetch. The embedding comes from its own graph
// (embedder.onnx, the tagger without what only the tags need): ONNX Runtime
// runs every node of a graph whatever is fetched (microsoft/onnxruntime#16483).
var (
	embedOutputs = []string{"embedding"}
	tagOutputs   = []string{"type_probs", "color_probs"}
)

// Tagger embeds images for search and tags them with garment types and
// colours.
type Tagger struct {
	meta      taggerMeta
	embedSess *onnx.Session // embedder.onnx
	tagSess   *onnx.Session // tagger.onnx
	threshold float64
	model     string // EmbeddingModel
}

// OpenTagger loads a tagger (model), its embedding-only graph (embedder)
// and their json description. Labels under threshold are left out of Tag's
// answer, except the best type and the two best colours.
func OpenTagger(model, embedder, meta string, threshold float64, opts onnx.Options) (*Tagger, error) {
	const op = "vision.OpenTagger"
	var m taggerMeta
	metaData, err := readJSON(meta, &m)
	if err != nil {
		return nil, weft.E(op, err)
	}
	if m.Input == "" || m.Size <= 0 || m.EmbeddingDim <= 0 || len(m.Types) == 0 || len(m.Colors) < 2 {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("%s: input, size, embedding_dim, types and at least two colors are required", meta))
	}
	embedData, err := os.ReadFile(embedder)
	if err != nil {
		return nil, weft.E(op, weft.Unavailable, weft.Msgf("model %s is missing", embedder), err)
	}
	t := &Tagger{meta: m, threshold: threshold, model: digest(embedData, metaData)}
	if t.embedSess, err = onnx.OpenData(embedder, embedData, []string{m.Input}, embedOutputs, opts); err != nil {
		return nil, weft.E(op, err)
	}
	if t.tagSess, err = onnx.Open(model, []string{m.Input}, tagOutputs, opts); err != nil {
		t.embedSess.Close()
		return nil, weft.E(op, err)
	}
	return t, nil
}

// digest is "sha256:" and the first 16 bytes, in hex, of the SHA-256 of the
// parts one after another.
func digest(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// EmbeddingModel names the embedding by the digest of embedder.onnx and
// tagger.json: any retraining changes it. (Go preprocessing is part of the
// embedding too; it is pinned to the training code's by a test.)
func (t *Tagger) EmbeddingModel() string { return t.model }

// Close releases the model.
func (t *Tagger) Close() error { return errors.Join(t.embedSess.Close(), t.tagSess.Close()) }

// Dim is the embedding length.
func (t *Tagger) Dim() int { return t.meta.EmbeddingDim }

// run preprocesses imgs (in parallel: it costs about as much as the
// network on small batches) and runs them as one batch through sess, whose
// outputs (names) are [len(imgs), width] with the given widths.
func (t *Tagger) run(ctx context.Context, sess *onnx.Session, names []string, widths []int, imgs []image.Image) ([][]float32, error) {
	S := t.meta.Size
	per := 3 * S * S
	x := make([]float32, len(imgs)*per)
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.NumCPU(), len(imgs)) {
		wg.Go(func() {
			for i := range next {
				TaggerInput(imgs[i], S, x[i*per:(i+1)*per])
			}
		})
	}
	for i := range imgs {
		next <- i
	}
	close(next)
	wg.Wait()
	out, err := sess.Run(ctx, onnx.Tensor{Shape: []int64{int64(len(imgs)), 3, int64(S), int64(S)}, Data: x})
	if err != nil {
		return nil, err
	}
	res := make([][]float32, len(out))
	n := int64(len(imgs))
	for i, want := range widths {
		if sh := out[i].Shape; len(sh) != 2 || sh[0] != n || sh[1] != int64(want) {
			return nil, weft.E(weft.Internal, fmt.Errorf("tagger output %s has shape %v, want [%d %d]", names[i], sh, n, want))
		}
		res[i] = out[i].Data
	}
	return res, nil
}

// Embed returns one unit-length vector per image, EmbedBatch images per run.
func (t *Tagger) Embed(ctx context.Context, imgs []image.Image) ([][]float32, error) {
	const op = "vision.Embed"
	D := t.meta.EmbeddingDim
	vecs := make([][]float32, 0, len(imgs))
	for start := 0; start < len(imgs); start += EmbedBatch {
		batch := imgs[start:min(start+EmbedBatch, len(imgs))]
		out, err := t.run(ctx, t.embedSess, embedOutputs, []int{D}, batch)
		if err != nil {
			return nil, weft.E(op, err)
		}
		for i := range batch {
			v := append([]float32(nil), out[0][i*D:(i+1)*D]...)
			// The graph normalises already; doing it again in float64
			// keeps cosine distances exact for the index.
			var ss float64
			for _, f := range v {
				ss += float64(f) * float64(f)
			}
			if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
				return nil, weft.E(op, weft.Internal, fmt.Errorf("embedding of image %d has norm² %v", start+i, ss))
			}
			inv := 1 / math.Sqrt(ss)
			for j := range v {
				v[j] = float32(float64(v[j]) * inv)
			}
			vecs = append(vecs, v)
		}
	}
	return vecs, nil
}

// Tag returns the image's garment types (type "shape") then its colours
// (type "color"), each best first: those over the threshold, and at least
// one type and two colours.
//
// Labels are ranked by their parent: a parent's confidence is the sum of
// its children's probabilities, and it is named by its most probable child.
// For colours this matters: the palette has several greys (charcoal, grey,
// light grey…) and one red, so a red shirt in grey light would otherwise
// be answered "color charcoal, color grey" — two names for one guess. Ranked
// by family, the two colour labels are two different answers, and a
// confidence is the share of the garment's pixels in that family.
func (t *Tagger) Tag(ctx context.Context, img image.Image) ([]weft.Label, error) {
	out, err := t.run(ctx, t.tagSess, tagOutputs, []int{len(t.meta.Types), len(t.meta.Colors)}, []image.Image{img})
	if err != nil {
		return nil, weft.E("vision.Tag", err)
	}
	labels := pick("shape", t.meta.Types, out[0], 1, t.threshold)
	return append(labels, pick("color", t.meta.Colors, out[1], 2, t.threshold)...), nil
}

// pick groups probabilities by parent and returns one label per parent,
// named by its most probable child, with the parent's summed probability:
// those at least threshold, best first, and at least the best atLeast.
func pick(typ string, names []label, probs []float32, atLeast int, threshold float64) []weft.Label {
	type group struct {
		mass float64
		best int
	}
	var groups []group
	at := map[string]int{}
	for i, p := range probs {
		g, ok := at[names[i].Parent]
		if !ok {
			g = len(groups)
			at[names[i].Parent] = g
			groups = append(groups, group{best: i})
		}
		groups[g].mass += float64(p)
		if p > probs[groups[g].best] {
			groups[g].best = i
		}
	}
	sort.SliceStable(groups, func(a, b int) bool { return groups[a].mass > groups[b].mass })
	var out []weft.Label
	for rank, g := range groups {
		if rank >= atLeast && g.mass < threshold {
			break
		}
		out = append(out, weft.Label{Confidence: min(g.mass, 1), Type: typ, Name: names[g.best].Name})
	}
	return out
}

// Labels lists every label the tagger can give: types, then colours.
func (t *Tagger) Labels() []weft.LabelInfo {
	var out []weft.LabelInfo
	for _, l := range t.meta.Types {
		out = append(out, weft.LabelInfo{Type: "shape", Name: l.Name, Parent: l.Parent})
	}
	for _, l := range t.meta.Colors {
		out = append(out, weft.LabelInfo{Type: "color", Name: l.Name, Parent: l.Parent})
	}
	return out
}
