package vision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/weftlabs/weft"
)

// openModels loads the committed models, or those in $WEFT_MODELS; tests
// skip while they are absent.
func openModels(t testing.TB) *Models {
	t.Helper()
	modelsDir := "../models"
	if d := os.Getenv("WEFT_MODELS"); d != "" {
		modelsDir = d
	}
	for _, f := range []string{"tagger.onnx", "embedder.onnx", "tagger.json", "detector.onnx", "detector.json"} {
		if _, err := os.Stat(filepath.Join(modelsDir, f)); err != nil {
			t.Skipf("no models/%s", f)
		}
	}
	initORT(t)
	m, err := Open(modelsDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func catalogPhoto(t testing.TB, name string) image.Image {
	return decodeFile(t, filepath.Join(shared, "data/catalog-val/images", name))
}

func TestEmbed(t *testing.T) {
	m := openModels(t)
	if m.Dim() != weft.EmbeddingDim {
		t.Fatalf("Dim() = %d", m.Dim())
	}
	// 18 images: one full batch and a short one.
	names := []string{"10003.jpg", "10414.jpg", "10848.jpg"}
	var imgs []image.Image
	for i := range 18 {
		imgs = append(imgs, catalogPhoto(t, names[i%3]))
	}
	vecs, err := m.Embed(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != len(imgs) {
		t.Fatalf("%d vectors for %d images", len(vecs), len(imgs))
	}
	for i, v := range vecs {
		if len(v) != weft.EmbeddingDim {
			t.Fatalf("vector %d has %d dimensions", i, len(v))
		}
		var ss float64
		for _, f := range v {
			ss += float64(f) * float64(f)
		}
		if math.Abs(ss-1) > 1e-5 {
			t.Errorf("vector %d has norm² %v", i, ss)
		}
		// The same photo embeds the same in any batch position.
		if d := dist(v, vecs[i%3]); d > 1e-4 {
			t.Errorf("image %d: distance %v from its first embedding", i, d)
		}
	}
	// Two T-shirts are closer to each other than to their mirror images'
	// strangers: at least, different photos embed differently.
	if dist(vecs[0], vecs[1]) < 1e-3 {
		t.Errorf("different photos embed alike")
	}
	if _, err := m.Embed(context.Background(), nil); err != nil {
		t.Errorf("no images: %v", err)
	}
}

func dist(a, b []float32) float64 {
	var dot float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
	}
	return 1 - dot
}

func TestTag(t *testing.T) {
	m := openModels(t)
	known := map[string]weft.LabelInfo{}
	for _, l := range m.Labels() {
		known[l.Type+"/"+l.Name] = l
	}
	if len(known) != len(m.Labels()) {
		t.Errorf("Labels() repeats names")
	}
	for _, name := range []string{"10003.jpg", "10414.jpg"} {
		labels, err := m.Tag(context.Background(), catalogPhoto(t, name))
		if err != nil {
			t.Fatal(err)
		}
		var shapes, colors int
		for i, l := range labels {
			if _, ok := known[l.Type+"/"+l.Name]; !ok {
				t.Errorf("%s: label %+v is not in Labels()", name, l)
			}
			if l.Confidence < 0 || l.Confidence > 1 {
				t.Errorf("%s: confidence %v", name, l.Confidence)
			}
			if i > 0 && labels[i-1].Type == l.Type && labels[i-1].Confidence < l.Confidence {
				t.Errorf("%s: %s labels not sorted", name, l.Type)
			}
			switch l.Type {
			case "shape":
				if colors > 0 {
					t.Errorf("%s: shapes must come before colours", name)
				}
				shapes++
			case "color":
				colors++
			default:
				t.Errorf("%s: type %q", name, l.Type)
			}
		}
		if shapes < 1 || colors < 2 {
			t.Errorf("%s: %d shape and %d colour labels, want ≥1 and ≥2", name, shapes, colors)
		}
	}
}

// TestPick: one label per parent, named by its most probable child, with
// the parent's summed probability.
func TestPick(t *testing.T) {
	names := []label{{"a", "x"}, {"b", "x"}, {"c", "y"}, {"d", "y"}}
	tests := []struct {
		probs   []float32
		atLeast int
		want    []string
		conf    []float64
	}{
		{[]float32{0.1, 0.6, 0.2, 0.1}, 1, []string{"b", "c"}, []float64{0.7, 0.3}},
		{[]float32{0.1, 0.1, 0.1, 0.1}, 2, []string{"a", "c"}, []float64{0.2, 0.2}},
		{[]float32{0.35, 0.05, 0.3, 0.3}, 1, []string{"c", "a"}, []float64{0.6, 0.4}},
		{[]float32{0.3, 0.01, 0.3, 0.39}, 1, []string{"d", "a"}, []float64{0.69, 0.31}},
		{[]float32{0.05, 0.05, 0.1, 0.8}, 1, []string{"d"}, []float64{0.9}},
	}
	for _, tt := range tests {
		got := pick("shape", names, tt.probs, tt.atLeast, 0.3)
		if len(got) != len(tt.want) {
			t.Errorf("%v: %v, want %v", tt.probs, got, tt.want)
			continue
		}
		for i, l := range got {
			if l.Name != tt.want[i] || math.Abs(l.Confidence-tt.conf[i]) > 1e-6 || l.Type != "shape" {
				t.Errorf("%v: label %d is %+v, want %s at %.2f", tt.probs, i, l, tt.want[i], tt.conf[i])
			}
		}
	}
}

// TestDetectModel runs the trained detector on held-out street photos: every
// box is one of its categories, and most annotated garments are found.
func TestDetectModel(t *testing.T) {
	m := openModels(t)
	cats := map[string]bool{}
	for _, c := range m.Categories() {
		cats[c] = true
	}
	found, total := 0, 0
	for _, photo := range []string{"images/0004.jpg", "images/0011.jpg", "images/0016.jpg", "images/0018.jpg", "images/0020.jpg"} {
		img := decodeFile(t, shared+"/data/street/"+photo)
		boxes, err := m.Detect(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range boxes {
			if !cats[b.Category] {
				t.Errorf("%s: category %q is not the model's", photo, b.Category)
			}
		}
		for _, g := range garmentBoxes(t, photo) {
			total++
			for _, b := range boxes {
				if family(b.Category) == g.Category && IoU(floats(b.BBox), floats(g.BBox)) >= 0.5 {
					found++
					break
				}
			}
		}
	}
	t.Logf("found %d of %d annotated garments", found, total)
	if total == 0 || found*3 < total {
		t.Errorf("found %d of %d annotated garments, want at least a third", found, total)
	}
}

func floats(b [4]int) [4]float64 {
	return [4]float64{float64(b[0]), float64(b[1]), float64(b[2]), float64(b[3])}
}

func TestOpenErrors(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); weft.KindOf(err) != weft.Unavailable {
		t.Errorf("empty dir: %v, want kind unavailable", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tagger.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); weft.KindOf(err) != weft.Invalid {
		t.Errorf("bad json: %v, want kind invalid", err)
	}
}

func benchImages(b *testing.B) []image.Image {
	var imgs []image.Image
	for _, p := range []string{"clothing/images/00003aeb-ace5-43bf-9a0c-dc31a03e9cd2.jpg", "catalog-val/images/10003.jpg",
		"clothing/images/003f4cab-7214-4770-b727-3400d4508741.jpg", "street/images/0001.jpg"} {
		imgs = append(imgs, decodeFile(b, filepath.Join(shared, "data", p)))
	}
	return imgs
}

// timed runs op b.N times over imgs and reports the median latency too,
// the figure the speed targets are set in.
func timed(b *testing.B, imgs []image.Image, op func(image.Image) error) {
	var lat []float64
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if err := op(imgs[i%len(imgs)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		i++
	}
	sort.Float64s(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
}

func BenchmarkTag(b *testing.B) {
	m := openModels(b)
	timed(b, benchImages(b), func(img image.Image) error {
		_, err := m.Tag(context.Background(), img)
		return err
	})
}

func BenchmarkDetect(b *testing.B) {
	m := openModels(b)
	timed(b, benchImages(b), func(img image.Image) error {
		_, err := m.Detect(context.Background(), img)
		return err
	})
}

func BenchmarkEmbedBatch16(b *testing.B) {
	m := openModels(b)
	imgs := benchImages(b)
	batch := make([]image.Image, EmbedBatch)
	for i := range batch {
		batch[i] = imgs[i%len(imgs)]
	}
	for b.Loop() {
		if _, err := m.Embed(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(EmbedBatch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDetectCOCO times the detector's layout on the pretrained
// YOLOX-Nano while the trained one is absent.
func BenchmarkDetectCOCO(b *testing.B) {
	d := openCOCO(b)
	timed(b, benchImages(b), func(img image.Image) error {
		_, err := d.Detect(context.Background(), img)
		return err
	})
}

func BenchmarkTaggerInput(b *testing.B) {
	imgs := benchImages(b)
	dst := make([]float32, 3*224*224)
	i := 0
	for b.Loop() {
		TaggerInput(imgs[i%len(imgs)], 224, dst)
		i++
	}
}

// TestTagColourFamily: the drawn demo garments (examples/, flat colours with
// shading) get their colour's family among their two colour labels. Khaki
// trousers are left out on purpose: the chroma gain moves khaki towards gold,
// a known miss written up in models/README.md.
func TestTagColourFamily(t *testing.T) {
	m := openModels(t)
	parent := map[string]string{}
	for _, l := range m.Labels() {
		parent[l.Type+"/"+l.Name] = l.Parent
	}
	for _, tc := range []struct{ file, family string }{
		{"red-tshirt.jpg", "red"}, {"navy-tshirt.jpg", "blue"}, {"white-tshirt.jpg", "white"},
		{"black-longsleeve.jpg", "black"}, {"blue-jeans.jpg", "blue"}, {"black-dress.jpg", "black"},
		{"green-dress.jpg", "green"}, {"yellow-skirt.jpg", "yellow"}, {"white-sneaker.jpg", "white"},
		{"brown-boot.jpg", "brown"}, {"pink-hat.jpg", "pink"}, {"grey-shorts.jpg", "grey"},
		{"purple-skirt.jpg", "purple"},
	} {
		labels, err := m.Tag(context.Background(), decodeFile(t, filepath.Join("../examples/images", tc.file)))
		if err != nil {
			t.Fatal(err)
		}
		var top []string
		for _, l := range labels {
			if l.Type == "color" && len(top) < 2 {
				top = append(top, parent["color/"+l.Name])
			}
		}
		if len(top) != 2 || (top[0] != tc.family && top[1] != tc.family) {
			t.Errorf("%s: colour families %v, want %s among them", tc.file, top, tc.family)
		}
	}
}

// The embedding model's name is the digest of embedder.onnx then tagger.json:
// stores compare it at start-up, so a change to how it is computed would
// re-index every catalog of every deployment.
func TestEmbeddingModelDigest(t *testing.T) {
	m := openModels(t)
	dir := "../models"
	if d := os.Getenv("WEFT_MODELS"); d != "" {
		dir = d
	}
	h := sha256.New()
	for _, f := range []string{"embedder.onnx", "tagger.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	if want := "sha256:" + hex.EncodeToString(h.Sum(nil)[:16]); m.EmbeddingModel() != want {
		t.Errorf("EmbeddingModel() = %q, want %q", m.EmbeddingModel(), want)
	}
}

// TestTagAccessories: things outside the garment types are named by their own
// top-level labels (the ImageNet tail in the graph), not as the nearest
// garment (a watch used to be a "hat", sunglasses "shoes").
func TestTagAccessories(t *testing.T) {
	m := openModels(t)
	parent := map[string]string{}
	for _, l := range m.Labels() {
		parent[l.Type+"/"+l.Name] = l.Parent
	}
	accessory := map[string]bool{"bag": true, "eyewear": true, "watch": true, "belt": true}
	for _, tc := range []struct{ file, want string }{
		{"19265.jpg", "watch"}, {"16841.jpg", "eyewear"}, {"10244.jpg", "bag"}, {"17774.jpg", "belt"},
		{"10003.jpg", ""}, // a T-shirt: any garment type, no accessory
	} {
		labels, err := m.Tag(context.Background(), catalogPhoto(t, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got := parent["shape/"+labels[0].Name]
		if labels[0].Type != "shape" || (tc.want != "" && got != tc.want) || (tc.want == "" && accessory[got]) {
			t.Errorf("%s: first label %+v (parent %q), want %q", tc.file, labels[0], got, tc.want)
		}
	}
}
