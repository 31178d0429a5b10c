package vision

import (
	"context"
	"encoding/csv"
	"image"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/weftlabs/weft"
	"github.com/weftlabs/weft/onnx"
)

const shared = "../../shared"

func initORT(t testing.TB) {
	t.Helper()
	if err := onnx.Init(""); err != nil {
		t.Skipf("ONNX Runtime: %v", err)
	}
}

// openCOCO loads the pretrained YOLOX-Nano, which has the layout of Weft's
// detector, with its json written for these tests.
func openCOCO(t testing.TB) *Detector {
	t.Helper()
	model := shared + "/models/init/yolox_nano_coco.onnx"
	if _, err := os.Stat(model); err != nil {
		t.Skipf("no %s", model)
	}
	initORT(t)
	d, err := OpenDetector(model, "testdata/yolox_nano_coco.json", onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func decodeFile(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := Decode(f, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// garmentBoxes reads the annotated garment boxes of one street photo, as
// exclusive pixel edges (boxes.csv's corners are inclusive pixels).
func garmentBoxes(t testing.TB, photo string) []weft.Box {
	f, err := os.Open(shared + "/data/street/boxes.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []weft.Box
	for _, r := range rows[1:] {
		if r[0] == photo {
			b := weft.Box{Category: r[1]}
			for i := range 4 {
				b.BBox[i], _ = strconv.Atoi(r[2+i])
			}
			b.BBox[2]++
			b.BBox[3]++
			out = append(out, b)
		}
	}
	return out
}

func TestDetectStreetPhotoCOCO(t *testing.T) {
	d := openCOCO(t)
	for _, photo := range []string{"images/0001.jpg", "images/0003.jpg", "images/0004.jpg"} {
		t.Run(photo, func(t *testing.T) {
			img := decodeFile(t, shared+"/data/street/"+photo)
			boxes, err := d.Detect(context.Background(), img)
			if err != nil {
				t.Fatal(err)
			}
			if len(boxes) == 0 || boxes[0].Category != "person" || boxes[0].Score < 0.5 {
				t.Fatalf("boxes %v: want a confident person first", boxes)
			}
			w, h := img.Bounds().Dx(), img.Bounds().Dy()
			for i, b := range boxes {
				if b.Score < 0.3 || b.Score > 1 || (i > 0 && b.Score > boxes[i-1].Score) {
					t.Errorf("box %d score %v: want ≥ the threshold, ≤ 1, sorted", i, b.Score)
				}
				if b.BBox[0] < 0 || b.BBox[1] < 0 || b.BBox[2] > w || b.BBox[3] > h || b.BBox[0] >= b.BBox[2] || b.BBox[1] >= b.BBox[3] {
					t.Errorf("box %d %v outside the %d×%d image or empty", i, b.BBox, w, h)
				}
			}
			// The person wears every annotated garment: their centres fall
			// inside the person's box.
			p := boxes[0].BBox
			for _, g := range garmentBoxes(t, photo) {
				cx, cy := (g.BBox[0]+g.BBox[2])/2, (g.BBox[1]+g.BBox[3])/2
				if cx < p[0] || cx > p[2] || cy < p[1] || cy > p[3] {
					t.Errorf("garment %v centre outside the person %v", g, p)
				}
			}
		})
	}
}

// raw builds a detector output of the given anchors (index → values) for
// decode, every other anchor being empty.
func raw(d *Detector, set map[int][]float32) []float32 {
	F := len(d.meta.Categories)
	out := make([]float32, len(d.cells)*(5+F))
	for i, v := range set {
		copy(out[i*(5+F):], v)
	}
	return out
}

func TestDecodeBoxes(t *testing.T) {
	d := &Detector{meta: detectorMeta{Size: 64, Strides: []int{8, 32}, Categories: []string{"top-tee", "top-shirt", "pants"},
		SigmoidInGraph: true, ScoreThreshold: 0.3, NMSIoU: 0.5}}
	for _, s := range d.meta.Strides {
		for y := range 64 / s {
			for x := range 64 / s {
				d.cells = append(d.cells, cell{float32(x), float32(y), float32(s)})
			}
		}
	}
	// Anchor 9 is stride 8, grid (1,1); anchor 64 the first of stride 32.
	ln := func(px float64, stride float64) float32 { return float32(math.Log(px / stride)) }
	tests := []struct {
		name  string
		set   map[int][]float32
		scale float64
		w, h  int
		want  []weft.Box
	}{
		{"one box, scaled back", map[int][]float32{9: {0.5, 0.5, ln(8, 8), ln(4, 8), 0.9, 0.9, 0, 0}}, 0.5, 100, 100,
			[]weft.Box{{Category: "top-tee", Score: 0.81, BBox: [4]int{16, 20, 32, 28}}}},
		{"below threshold", map[int][]float32{9: {0.5, 0.5, 0, 0, 0.5, 0.5, 0, 0}}, 1, 100, 100, nil},
		{"clamped to the image", map[int][]float32{64: {0, 0, ln(64, 32), ln(64, 32), 1, 0, 0, 0.8}}, 1, 20, 30,
			[]weft.Box{{Category: "pants", Score: 0.8, BBox: [4]int{0, 0, 20, 30}}}},
		{"same family suppressed", map[int][]float32{
			9:  {0.5, 0.5, ln(16, 8), ln(16, 8), 1, 0.9, 0, 0},
			10: {-0.4, 0.5, ln(16, 8), ln(16, 8), 1, 0, 0.7, 0},
		}, 1, 100, 100, []weft.Box{{Category: "top-tee", Score: 0.9, BBox: [4]int{4, 4, 20, 20}}}},
		{"other family kept, sorted", map[int][]float32{
			9:  {0.5, 0.5, ln(16, 8), ln(16, 8), 1, 0.6, 0, 0},
			10: {-0.4, 0.5, ln(16, 8), ln(16, 8), 1, 0, 0, 0.7},
		}, 1, 100, 100, []weft.Box{
			{Category: "pants", Score: 0.7, BBox: [4]int{5, 4, 21, 20}},
			{Category: "top-tee", Score: 0.6, BBox: [4]int{4, 4, 20, 20}}}},
		{"same family, far apart", map[int][]float32{
			9:  {0.5, 0.5, ln(8, 8), ln(8, 8), 1, 0.9, 0, 0},
			54: {0.5, 0.5, ln(8, 8), ln(8, 8), 1, 0, 0.8, 0},
		}, 1, 100, 100, []weft.Box{
			{Category: "top-tee", Score: 0.9, BBox: [4]int{8, 8, 16, 16}},
			{Category: "top-shirt", Score: 0.8, BBox: [4]int{48, 48, 56, 56}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.decode(raw(d, tt.set), tt.scale, tt.w, tt.h, d.meta.ScoreThreshold)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Category != tt.want[i].Category || got[i].BBox != tt.want[i].BBox || math.Abs(got[i].Score-tt.want[i].Score) > 1e-6 {
					t.Errorf("box %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
	// Logits when the graph has no sigmoid: 0 is a probability of one half.
	d.meta.SigmoidInGraph = false
	got := d.decode(raw(d, map[int][]float32{9: {0.5, 0.5, 0, 0, 10, 0, -10, -10}}), 1, 100, 100, 0.3)
	if len(got) != 1 || math.Abs(got[0].Score-0.5) > 1e-3 {
		t.Errorf("logits: %+v, want one box scoring 0.5", got)
	}
}

func TestLetterbox(t *testing.T) {
	d := &Detector{meta: detectorMeta{Size: 8, PadValue: 114, BGR: true}}
	img := newTestRGBA(4, 2, [3]uint8{10, 20, 30})
	x, r := d.letterbox(img)
	if r != 2 {
		t.Errorf("scale %v, want 2", r)
	}
	S := 8
	for c, want := range []float32{30, 20, 10} { // BGR
		if got := x[c*S*S]; got != want {
			t.Errorf("channel %d at the top-left: %v, want %v", c, got, want)
		}
		if got := x[c*S*S+3*S+7]; got != want {
			t.Errorf("channel %d at (7,3): %v, want %v", c, got, want)
		}
		if got := x[c*S*S+4*S]; got != 114 {
			t.Errorf("channel %d below the picture: %v, want the pad 114", c, got)
		}
	}
}

func newTestRGBA(w, h int, c [3]uint8) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = c[0], c[1], c[2], 255
	}
	return m
}
