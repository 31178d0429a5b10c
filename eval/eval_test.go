package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftlabs/weft/onnx"
	"github.com/weftlabs/weft/vision"
)

func TestAveragePrecision(t *testing.T) {
	gt := map[string][][4]float64{
		"a": {{0, 0, 10, 10}, {20, 20, 30, 30}},
		"b": {{0, 0, 10, 10}},
	}
	hit := func(s float64, im string, b [4]float64) detection { return detection{s, im, b} }
	tests := []struct {
		name string
		dets []detection
		want float64
	}{
		{"none", nil, 0},
		{"all found, no false alarms", []detection{
			hit(0.9, "a", [4]float64{0, 0, 10, 10}), hit(0.8, "a", [4]float64{20, 20, 30, 30}), hit(0.7, "b", [4]float64{1, 1, 10, 10})}, 1},
		// A duplicate counts as a false alarm, ranked above the last find:
		// precision 1, 1, 2/3, 3/4 at recalls 1/3, 2/3, 2/3, 1 → 2/3 + 1/3·3/4.
		{"duplicate", []detection{
			hit(0.9, "a", [4]float64{0, 0, 10, 10}), hit(0.8, "a", [4]float64{20, 20, 30, 30}),
			hit(0.75, "a", [4]float64{0, 0, 10, 10}), hit(0.7, "b", [4]float64{0, 0, 10, 10})}, 2.0/3 + 0.25},
		// IoU 0.25 < 0.5: a miss.
		{"poor overlap", []detection{hit(0.9, "b", [4]float64{0, 0, 5, 5})}, 0},
		// Half the truth, found first: recall 1/3 at precision 1.
		{"one of three", []detection{hit(0.9, "b", [4]float64{0, 0, 10, 10}), hit(0.1, "b", [4]float64{50, 50, 60, 60})}, 1.0 / 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := averagePrecision(tt.dets, gt, 0.5); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("AP = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPrecisionAt(t *testing.T) {
	// Two tight clusters on the unit circle; labels say which is which.
	vecs := [][]float32{{1, 0}, {0.99, 0.141}, {0.98, -0.199}, {0, 1}, {0.141, 0.99}, {-0.199, 0.98}}
	cluster := []int{0, 0, 0, 1, 1, 1}
	odd := []bool{true, false, true, false, true, false}
	p := precisionAt(vecs, 2,
		func(q, h int) bool { return cluster[q] == cluster[h] },
		func(q, h int) bool { return cluster[q] == cluster[h] && odd[q] == odd[h] })
	a, b := p[0], p[1]
	if math.Abs(a-1) > 1e-9 {
		t.Errorf("cluster precision@2 = %v, want 1", a)
	}
	// A query's two neighbours are the rest of its cluster, where two
	// members share a parity and one stands alone: (1/2 + 1/2 + 0)/3.
	if math.Abs(b-1.0/3) > 1e-9 {
		t.Errorf("cluster+parity precision@2 = %v, want 1/3", b)
	}
}

// TestRun evaluates the committed models (or those in $WEFT_MODELS) on a
// few files of each set, laid out as in ../shared, through the whole path.
func TestRun(t *testing.T) {
	shared, models := "../../shared", "../models"
	if d := os.Getenv("WEFT_MODELS"); d != "" {
		models = d
	}
	for _, f := range []string{"tagger.onnx", "detector.onnx", "splits/clothing_val.txt", "splits/street_val.txt"} {
		if _, err := os.Stat(filepath.Join(models, f)); err != nil {
			t.Skipf("no models/%s", f)
		}
	}
	if err := onnx.Init(""); err != nil {
		t.Skip(err)
	}
	v, err := vision.Open(models, vision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	mini, miniModels := t.TempDir(), t.TempDir()
	head := func(src, dst string, n int) []string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(b), "\n")
		lines = lines[:min(n, len(lines))]
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(strings.Join(lines, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		return lines
	}
	link := func(set string) {
		abs, err := filepath.Abs(filepath.Join(shared, "data", set, "images"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(mini, "data", set, "images")); err != nil {
			t.Fatal(err)
		}
	}
	for _, set := range []string{"clothing", "catalog-val", "street"} {
		if err := os.MkdirAll(filepath.Join(mini, "data", set), 0o755); err != nil {
			t.Fatal(err)
		}
		link(set)
	}
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(shared, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mini, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("data/clothing/labels.csv")
	copyFile("data/street/boxes.csv")
	head(filepath.Join(shared, "data/catalog-val/labels.csv"), filepath.Join(mini, "data/catalog-val/labels.csv"), 41)
	head(filepath.Join(models, "splits/clothing_val.txt"), filepath.Join(miniModels, "splits/clothing_val.txt"), 20)
	head(filepath.Join(models, "splits/street_val.txt"), filepath.Join(miniModels, "splits/street_val.txt"), 5)

	r, err := Run(context.Background(), v, mini, miniModels)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.TypeImages != 20 || r.SearchImages != 40 || r.DetectImages != 5 || r.ColorImages == 0 ||
		r.DetectMainClothingImages != 20 || r.DetectMainCatalogImages == 0 || r.DetectMainCatalogImages >= 40 ||
		r.TypeCatalogImages == 0 || r.TypeCatalogImages > 40 {
		t.Errorf("counted %d type, %d colour, %d search, %d detection, %d + %d main-garment images", r.TypeImages,
			r.ColorImages, r.SearchImages, r.DetectImages, r.DetectMainClothingImages, r.DetectMainCatalogImages)
	}
	for name, x := range map[string]float64{"type": r.TypeAccuracy, "colour": r.ColorTop2, "p10 type": r.SearchP10Type,
		"p10 type+colour": r.SearchP10TypeColor, "p10 normalised type": r.SearchP10NormType,
		"p10 normalised type+colour": r.SearchP10NormTypeColor, "mAP": r.DetectMAP50,
		"main family, clothing": r.DetectMainClothing, "main family, catalog": r.DetectMainCatalog,
		"type, catalog": r.TypeCatalog} {
		if x < 0 || x > 1 || math.IsNaN(x) {
			t.Errorf("%s = %v", name, x)
		}
	}
	// A trained tagger beats chance (1 in 17 types) by far.
	if r.TypeAccuracy < 0.3 {
		t.Errorf("type accuracy %v on 20 held-out photos", r.TypeAccuracy)
	}
	if r.SearchP10TypeColor > r.SearchP10Type {
		t.Errorf("type+colour precision %v above type precision %v", r.SearchP10TypeColor, r.SearchP10Type)
	}
	// Normalising only merges types, so no hit stops counting.
	if r.SearchP10NormType < r.SearchP10Type || r.SearchP10NormTypeColor < r.SearchP10TypeColor {
		t.Errorf("normalised precision %v / %v below literal %v / %v",
			r.SearchP10NormType, r.SearchP10NormTypeColor, r.SearchP10Type, r.SearchP10TypeColor)
	}
}

func TestNormType(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tshirts", "tshirt"},
		{"t-shirt", "tshirt"},
		{"tshirt", "tshirt"},
		{"watches", "watch"},
		{"watch", "watch"},
		{"sunglasses", "sunglass"},
		{"dress", "dress"},
		{"dresses", "dress"},
		{"boxes", "box"},
		{"jeans", "jean"},
		{"shoes", "shoe"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := normType(tc.in); got != tc.want {
			t.Errorf("normType(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
