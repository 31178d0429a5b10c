package vision

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The parity references are train/preprocess.py's 224×224 images, written
// by testdata/make_parity.py; the tensor is that image scaled by x/127.5-1.
const parityDir = "testdata/parity"

// Tolerances in levels of 255. Go's and Pillow's JPEG decoders round their
// integer DCTs differently, so pixels differ by a level or two here and
// there; everything after decoding is Pillow's arithmetic (see jpeg.go,
// resample.go, overWhite) and matches exactly. A misplaced pad, a wrong fill,
// a wrong orientation or Go's own chroma upsampling costs far more on
// average.
const parityMaxLevels, parityMeanLevels = 3, 0.05

func TestTaggerInputParity(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(parityDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ Input, Ref string }
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d parity cases", len(cases))
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.Input), func(t *testing.T) {
			f, err := os.Open(filepath.Join(parityDir, c.Input))
			if os.IsNotExist(err) {
				t.Skipf("no %s", c.Input)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := Decode(f, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, 3*224*224)
			TaggerInput(img, 224, got)
			ref := readPNG(t, filepath.Join(parityDir, c.Ref))
			var sum, worst float64
			for y := range 224 {
				for x := range 224 {
					r, g, b, _ := ref.At(x, y).RGBA()
					for ch, v := range []uint32{r >> 8, g >> 8, b >> 8} {
						d := math.Abs(float64(got[ch*224*224+y*224+x]) - (float64(v)/127.5 - 1))
						sum += d
						worst = max(worst, d)
					}
				}
			}
			mean := sum / (3 * 224 * 224)
			worst, mean = math.Round(worst*127.5*1e3)/1e3, mean*127.5 // float32 noise aside
			t.Logf("max |Δ| = %.1f levels, mean |Δ| = %.3f levels", worst, mean)
			if worst > parityMaxLevels || mean > parityMeanLevels {
				t.Errorf("Go's tensor strays from Python's: max |Δ| %.1f levels (limit %d), mean |Δ| %.3f (limit %.2f)",
					worst, parityMaxLevels, mean, parityMeanLevels)
			}
		})
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBorderColour(t *testing.T) {
	tests := []struct {
		name string
		w, h int
		fill func(x, y int) uint8
		want uint8
	}{
		// 3×3: the ring is the 8 outer pixels, 4 of 10 and 4 of 20: (10+20)/2.
		{"even ring", 3, 3, func(x, y int) uint8 {
			if y == 0 {
				return 10
			}
			if x == 1 && y == 1 {
				return 255
			}
			if y == 2 || x == 0 {
				return 20
			}
			return 10
		}, 15},
		// Rounded half up: (10+11)/2 = 10.5 → 11.
		{"half up", 2, 1, func(x, y int) uint8 { return uint8(10 + x) }, 11},
		// The inside never counts.
		{"inside ignored", 5, 4, func(x, y int) uint8 {
			if x > 0 && x < 4 && y > 0 && y < 3 {
				return 0
			}
			return 200
		}, 200},
		// Odd count: the middle value.
		{"odd", 1, 3, func(x, y int) uint8 { return uint8(y * 100) }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := image.NewRGBA(image.Rect(0, 0, tt.w, tt.h))
			for y := range tt.h {
				for x := range tt.w {
					v := tt.fill(x, y)
					m.Set(x, y, color.RGBA{v, v, v, 255})
				}
			}
			got := borderColour(m)
			if want := (color.RGBA{tt.want, tt.want, tt.want, 255}); got != want {
				t.Errorf("borderColour = %v, want %v", got, want)
			}
		})
	}
}

func TestSquareCanvas(t *testing.T) {
	// 4 wide, 1 tall: three rows of padding, one above and two below.
	m := image.NewRGBA(image.Rect(0, 0, 4, 1))
	for x, v := range []uint8{0, 0, 0, 100} {
		m.Set(x, 0, color.RGBA{v, v, v, 255})
	}
	sq := resizeCanvas(squareCanvas(m), 4, 4)
	// The ring is all four pixels: 0,0,0,100 → median 0. The image sits on row 1.
	if got := sq.RGBAAt(3, 1).R; got != 100 {
		t.Errorf("image row: pixel 3 is %d, want 100", got)
	}
	for _, y := range []int{0, 2, 3} {
		if got := sq.RGBAAt(3, y).R; got != 0 {
			t.Errorf("padding row %d is %d, want 0", y, got)
		}
	}
	// Tall: 1 wide, 4 tall, the odd pixel's column goes right.
	m = image.NewRGBA(image.Rect(0, 0, 1, 4))
	draw.Draw(m, m.Rect, &image.Uniform{color.RGBA{50, 50, 50, 255}}, image.Point{}, draw.Src)
	c := squareCanvas(m)
	if c.at != image.Pt(1, 0) || c.w != 4 || c.h != 4 || c.fill != [3]uint8{50, 50, 50} {
		t.Errorf("canvas %+v, want the picture at (1,0) on a 4×4 fill of 50", c)
	}
}

// The virtual canvas must resize exactly as the same canvas drawn out.
func TestResizeCanvasMatchesDrawn(t *testing.T) {
	pic := image.NewRGBA(image.Rect(0, 0, 37, 11))
	for y := range 11 {
		for x := range 37 {
			pic.Set(x, y, color.RGBA{uint8(7 * x), uint8(23 * y), uint8(x * y), 255})
		}
	}
	for _, tt := range []struct {
		w, h, atX, atY, ow, oh int
	}{
		{37, 37, 0, 13, 224, 224}, // upscale
		{37, 37, 0, 13, 9, 9},     // downscale
		{50, 20, 6, 4, 17, 31},
		{50, 20, 6, 4, 50, 7}, // one direction only
		{40, 11, 3, 0, 40, 11},
	} {
		fill := [3]uint8{9, 200, 77}
		c := canvas{pic: pic, at: image.Pt(tt.atX, tt.atY), w: tt.w, h: tt.h, fill: fill}
		drawn := image.NewRGBA(image.Rect(0, 0, tt.w, tt.h))
		draw.Draw(drawn, drawn.Rect, &image.Uniform{color.RGBA{fill[0], fill[1], fill[2], 255}}, image.Point{}, draw.Src)
		draw.Draw(drawn, pic.Rect.Add(c.at), pic, image.Point{}, draw.Src)
		got := resizeCanvas(c, tt.ow, tt.oh)
		want := resizeCanvas(canvas{pic: drawn, w: tt.w, h: tt.h}, tt.ow, tt.oh)
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%+v: the virtual canvas resizes differently from the drawn one", tt)
		}
	}
}

func TestOverWhite(t *testing.T) {
	tests := []struct{ v, a, want uint8 }{
		{0, 255, 0}, {200, 255, 200}, {0, 0, 255}, {77, 0, 255},
		{0, 128, 127}, // half-transparent black on white: mid grey
		{255, 128, 255},
	}
	for _, tt := range tests {
		if got := overWhite(tt.v, tt.a); got != tt.want {
			t.Errorf("overWhite(%d, %d) = %d, want %d", tt.v, tt.a, got, tt.want)
		}
	}
}

// TestPrepareIsTransparent: indexing feeds the tagger Prepare's output,
// search feeds it the decoded image; both must give the same tensor, or an
// image would not find itself at distance 0.
func TestPrepareIsTransparent(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join(parityDir, "*"))
	n := 0
	for _, path := range inputs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(f, Limits{})
		f.Close()
		if err != nil {
			continue // the reference PNGs and cases.json decode too; other files are not inputs
		}
		n++
		direct := make([]float32, 3*224*224)
		TaggerInput(img, 224, direct)
		prepared := Prepare(img, 224)
		if b := prepared.Bounds(); b.Dx() != 224 || b.Dy() != 224 {
			t.Fatalf("%s: Prepare gave %v, want 224×224", path, b)
		}
		again := make([]float32, 3*224*224)
		TaggerInput(prepared, 224, again)
		for i := range direct {
			if direct[i] != again[i] {
				t.Fatalf("%s: tensor differs at %d: %v direct, %v through Prepare", filepath.Base(path), i, direct[i], again[i])
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d images checked", n)
	}
}
