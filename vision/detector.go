package vision

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/onnx"
)

// detectorMeta is detector.json: how to feed and read a YOLOX-layout
// detector.
type detectorMeta struct {
	Input          string   `json:"input"`
	Output         string   `json:"output"` // "output" when absent
	Size           int      `json:"size"`
	Strides        []int    `json:"strides"`
	PadValue       float32  `json:"pad_value"`
	BGR            bool     `json:"bgr"`
	SigmoidInGraph bool     `json:"sigmoid_in_graph"`
	Categories     []string `json:"categories"`
	ScoreThreshold float64  `json:"score_threshold"`
	NMSIoU         float64  `json:"nms_iou"`
}

// maxBoxes bounds one photo's answer.
const maxBoxes = 100

// Detector finds garments in photos with a YOLOX-layout model: input
// [1,3,S,S] letterboxed at the top-left, output [1,A,5+F] with, per anchor
// point of each stride's grid, cx, cy, log w, log h, objectness and F class
// scores.
type Detector struct {
	meta  detectorMeta
	sess  *onnx.Session
	cells []cell // one per anchor point, in the output's order
}

type cell struct{ x, y, stride float32 }

// OpenDetector loads a detector and its json description.
func OpenDetector(model, meta string, opts onnx.Options) (*Detector, error) {
	const op = "vision.OpenDetector"
	var m detectorMeta
	if _, err := readJSON(meta, &m); err != nil {
		return nil, weft.E(op, err)
	}
	if m.Output == "" {
		m.Output = "output"
	}
	if m.Input == "" || m.Size <= 0 || len(m.Strides) == 0 || len(m.Categories) == 0 || m.NMSIoU <= 0 {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("%s: input, size, strides, categories and nms_iou are required", meta))
	}
	d := &Detector{meta: m}
	for _, s := range m.Strides {
		if s <= 0 || m.Size%s != 0 {
			return nil, weft.E(op, weft.Invalid, weft.Msgf("%s: stride %d does not divide size %d", meta, s, m.Size))
		}
		n := m.Size / s
		for y := range n {
			for x := range n {
				d.cells = append(d.cells, cell{float32(x), float32(y), float32(s)})
			}
		}
	}
	sess, err := onnx.Open(model, []string{m.Input}, []string{m.Output}, opts)
	if err != nil {
		return nil, weft.E(op, err)
	}
	d.sess = sess
	return d, nil
}

func readJSON(path string, v any) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, weft.E(weft.Unavailable, weft.Msgf("%s is missing", path), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, weft.E(weft.Invalid, weft.Msgf("%s is not valid JSON", path), err)
	}
	return b, nil
}

// Close releases the model.
func (d *Detector) Close() error { return d.sess.Close() }

// Categories lists the category names, in the model's column order.
func (d *Detector) Categories() []string { return d.meta.Categories }

// Detect returns the garments found in img scoring at least the model's
// score threshold, best first.
func (d *Detector) Detect(ctx context.Context, img image.Image) ([]weft.Box, error) {
	return d.DetectMin(ctx, img, d.meta.ScoreThreshold)
}

// DetectMin is Detect with another score threshold; evaluation uses a low
// one to trace the whole precision-recall curve.
func (d *Detector) DetectMin(ctx context.Context, img image.Image, minScore float64) ([]weft.Box, error) {
	const op = "vision.Detect"
	S := d.meta.Size
	x, scale := d.letterbox(img)
	out, err := d.sess.Run(ctx, onnx.Tensor{Shape: []int64{1, 3, int64(S), int64(S)}, Data: x})
	if err != nil {
		return nil, weft.E(op, err)
	}
	F := len(d.meta.Categories)
	if sh := out[0].Shape; len(sh) != 3 || sh[0] != 1 || sh[1] != int64(len(d.cells)) || sh[2] != int64(5+F) {
		return nil, weft.E(op, weft.Internal, fmt.Errorf("output shape %v, want [1 %d %d]", sh, len(d.cells), 5+F))
	}
	b := img.Bounds()
	return d.decode(out[0].Data, scale, b.Dx(), b.Dy(), minScore), nil
}

// letterbox scales img to fit S×S, keeping its aspect, places it at the
// top-left of an S×S field of the pad value, and returns the CHW float
// tensor (0..255, BGR when the model wants it) with the scale used.
func (d *Detector) letterbox(img image.Image) ([]float32, float64) {
	S := d.meta.Size
	pic := flatten(img)
	w, h := pic.Rect.Dx(), pic.Rect.Dy()
	r := min(float64(S)/float64(w), float64(S)/float64(h))
	nw := min(max(int(math.RoundToEven(float64(w)*r)), 1), S)
	nh := min(max(int(math.RoundToEven(float64(h)*r)), 1), S)
	m := resizeCanvas(canvas{pic: pic, w: w, h: h}, nw, nh)
	x := make([]float32, 3*S*S)
	for i := range x {
		x[i] = d.meta.PadValue
	}
	order := [3]int{0, 1, 2}
	if d.meta.BGR {
		order = [3]int{2, 1, 0}
	}
	for y := range nh {
		row := m.Pix[m.PixOffset(0, y):]
		for xx := range nw {
			for c, src := range order {
				x[c*S*S+y*S+xx] = float32(row[4*xx+src])
			}
		}
	}
	return x, r
}

type candidate struct {
	box    [4]float64
	score  float64
	cat    int
	family string
}

// decode turns the raw output into boxes in the original w×h image, with
// non-maximum suppression within each category family (the part of the
// name before '-').
func (d *Detector) decode(out []float32, scale float64, w, h int, minScore float64) []weft.Box {
	F := len(d.meta.Categories)
	act := func(v float32) float64 { return float64(v) }
	if !d.meta.SigmoidInGraph {
		act = func(v float32) float64 { return 1 / (1 + math.Exp(-float64(v))) }
	}
	var cands []candidate
	for i, c := range d.cells {
		v := out[i*(5+F) : (i+1)*(5+F)]
		obj := act(v[4])
		if obj < minScore {
			continue // no class score can lift it back
		}
		cx := (float64(v[0]) + float64(c.x)) * float64(c.stride)
		cy := (float64(v[1]) + float64(c.y)) * float64(c.stride)
		bw := math.Exp(min(float64(v[2]), 20)) * float64(c.stride)
		bh := math.Exp(min(float64(v[3]), 20)) * float64(c.stride)
		box := [4]float64{
			clamp((cx-bw/2)/scale, 0, float64(w)), clamp((cy-bh/2)/scale, 0, float64(h)),
			clamp((cx+bw/2)/scale, 0, float64(w)), clamp((cy+bh/2)/scale, 0, float64(h)),
		}
		if box[2]-box[0] < 1 || box[3]-box[1] < 1 {
			continue
		}
		for k := range F {
			s := obj * act(v[5+k])
			if s >= minScore && s > 0 {
				cands = append(cands, candidate{box, min(s, 1), k, family(d.meta.Categories[k])})
			}
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	var kept []candidate
	for _, c := range cands {
		if len(kept) == maxBoxes {
			break
		}
		ok := true
		for _, k := range kept {
			if k.family == c.family && IoU(k.box, c.box) > d.meta.NMSIoU {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	boxes := make([]weft.Box, len(kept))
	for i, c := range kept {
		boxes[i] = weft.Box{
			Category: d.meta.Categories[c.cat],
			Score:    c.score,
			BBox: [4]int{
				int(math.Round(c.box[0])), int(math.Round(c.box[1])),
				int(math.Round(c.box[2])), int(math.Round(c.box[3])),
			},
		}
	}
	return boxes
}

func family(category string) string {
	f, _, _ := strings.Cut(category, "-")
	return f
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

// IoU is the intersection over union of two boxes [x0, y0, x1, y1].
func IoU(a, b [4]float64) float64 {
	iw := min(a[2], b[2]) - max(a[0], b[0])
	ih := min(a[3], b[3]) - max(a[1], b[1])
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	return inter / ((a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter)
}
