package onnx

import (
	"bufio"
	"context"
	"fmt"
	"image"
	_ "image/jpeg"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"golang.org/x/image/draw"

	"github.com/weftlabs/weft"
)

const (
	shared    = "../../shared"
	mobilenet = shared + "/models/init/mobilenet_v2_imagenet.onnx"
)

// openMobileNet loads the pretrained MobileNetV2 the tagger starts from; it
// has the tagger's input layout and a dynamic batch.
func openMobileNet(t testing.TB, opts Options) *Session {
	t.Helper()
	if _, err := os.Stat(mobilenet); err != nil {
		t.Skipf("no %s: %v", mobilenet, err)
	}
	if err := Init(""); err != nil {
		t.Fatal(err)
	}
	s, err := Open(mobilenet, []string{"image"}, []string{"embedding", "probs"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// imageTensor loads a catalog photo as MobileNet's [1,3,224,224] input.
func imageTensor(t testing.TB, path string) []float32 {
	t.Helper()
	f, err := os.Open(filepath.Join(shared, "data/catalog-val", path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	dst := image.NewRGBA(image.Rect(0, 0, 224, 224))
	draw.BiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	out := make([]float32, 3*224*224)
	for i := range 224 * 224 {
		for c := range 3 {
			out[c*224*224+i] = float32(dst.Pix[4*i+c])/127.5 - 1
		}
	}
	return out
}

func imagenetLabels(t testing.TB) []string {
	f, err := os.Open(shared + "/models/init/imagenet_labels_1001.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var labels []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		labels = append(labels, sc.Text())
	}
	return labels
}

func top(probs []float32, k int) []int {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	return idx[:k]
}

func TestRunBatchMatchesSingle(t *testing.T) {
	s := openMobileNet(t, Options{})
	ctx := context.Background()
	photos := []string{"images/10003.jpg", "images/10414.jpg", "images/10848.jpg"}
	var batch []float32
	var singles [][]Tensor
	for _, p := range photos {
		x := imageTensor(t, p)
		batch = append(batch, x...)
		out, err := s.Run(ctx, Tensor{Shape: []int64{1, 3, 224, 224}, Data: x})
		if err != nil {
			t.Fatal(err)
		}
		singles = append(singles, out)
	}
	out, err := s.Run(ctx, Tensor{Shape: []int64{int64(len(photos)), 3, 224, 224}, Data: batch})
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Shape; len(got) != 2 || got[0] != 3 || got[1] != 1280 {
		t.Fatalf("embedding shape %v, want [3 1280]", got)
	}
	if got := out[1].Shape; len(got) != 2 || got[0] != 3 || got[1] != 1001 {
		t.Fatalf("probs shape %v, want [3 1001]", got)
	}
	labels := imagenetLabels(t)
	for i, p := range photos {
		probs := out[1].Data[i*1001 : (i+1)*1001]
		var sum float64
		for _, v := range probs {
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-3 {
			t.Errorf("%s: probabilities sum to %v", p, sum)
		}
		var names []string
		for _, j := range top(probs, 5) {
			names = append(names, labels[j])
		}
		found := false
		for _, n := range names {
			found = found || n == "jersey" || n == "sweatshirt"
		}
		if !found {
			t.Errorf("%s is a T-shirt; MobileNet's top 5 are %v", p, names)
		}
		for j, v := range singles[i][0].Data {
			if d := math.Abs(float64(v - out[0].Data[i*1280+j])); d > 1e-3 {
				t.Fatalf("%s: embedding[%d] is %v alone, %v in a batch", p, j, v, out[0].Data[i*1280+j])
			}
		}
	}
}

func TestRunConcurrent(t *testing.T) {
	for _, opts := range []Options{{Sessions: 1}, {Sessions: 2, Threads: 1}} {
		s := openMobileNet(t, opts)
		x := imageTensor(t, "images/10003.jpg")
		in := Tensor{Shape: []int64{1, 3, 224, 224}, Data: x}
		want, err := s.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				got, err := s.Run(context.Background(), in)
				if err != nil {
					errs <- err
					return
				}
				for j := range got[0].Data {
					if math.Abs(float64(got[0].Data[j]-want[0].Data[j])) > 1e-4 {
						t.Errorf("%+v: concurrent run differs at %d", opts, j)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

func TestRunErrors(t *testing.T) {
	s := openMobileNet(t, Options{})
	good := Tensor{Shape: []int64{1, 3, 224, 224}, Data: make([]float32, 3*224*224)}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		in   []Tensor
		kind weft.Kind
	}{
		{"no inputs", context.Background(), nil, weft.Internal},
		{"short data", context.Background(), []Tensor{{Shape: []int64{2, 3, 224, 224}, Data: good.Data}}, weft.Internal},
		{"wrong size", context.Background(), []Tensor{{Shape: []int64{1, 3, 100, 100}, Data: good.Data}}, weft.Internal},
		{"cancelled", cancelled, []Tensor{good}, weft.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(tt.ctx, tt.in...)
			if got := weft.KindOf(err); err == nil || got != tt.kind {
				t.Errorf("err = %v (kind %v), want kind %v", err, got, tt.kind)
			}
		})
	}
}

func TestOpenMissingModel(t *testing.T) {
	if err := Init(""); err != nil {
		t.Skip(err)
	}
	_, err := Open(filepath.Join(t.TempDir(), "none.onnx"), []string{"image"}, []string{"probs"}, Options{})
	if weft.KindOf(err) != weft.Unavailable {
		t.Errorf("err = %v, want kind unavailable", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.onnx")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad, []string{"image"}, []string{"probs"}, Options{}); weft.KindOf(err) != weft.Invalid {
		t.Errorf("err = %v, want kind invalid", err)
	}
}

func TestFindLibrary(t *testing.T) {
	t.Setenv("WEFT_ORT_LIB", "/opt/ort/libonnxruntime.so.1")
	if got := FindLibrary(); got != "/opt/ort/libonnxruntime.so.1" {
		t.Errorf("with WEFT_ORT_LIB set, FindLibrary() = %q", got)
	}
	t.Setenv("WEFT_ORT_LIB", "")
	root := t.TempDir()
	lib := filepath.Join(root, ".deps", "onnxruntime", libName)
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lib, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(pkg)
	if got := FindLibrary(); got != lib {
		t.Errorf("from %s, FindLibrary() = %q, want %q", pkg, got, lib)
	}
}

// The two ways to use two cores: one session with two intra-op threads,
// runs taking turns, or two single-threaded sessions running side by side.
var layouts = []struct {
	name string
	opts Options
}{
	{"serial-1x2threads", Options{Sessions: 1, Threads: 2}},
	{"pool-2x1thread", Options{Sessions: 2, Threads: 1}},
	{"pool-2x2threads", Options{Sessions: 2, Threads: 2}},
}

// BenchmarkRun times one caller at a time, one image or a batch of 16.
func BenchmarkRun(b *testing.B) {
	for _, l := range layouts {
		for _, n := range []int64{1, 16} {
			b.Run(fmt.Sprintf("%s/batch%d", l.name, n), func(b *testing.B) {
				s := openMobileNet(b, l.opts)
				in := Tensor{Shape: []int64{n, 3, 224, 224}, Data: make([]float32, n*3*224*224)}
				for b.Loop() {
					if _, err := s.Run(context.Background(), in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRunParallel times single images from two callers at once.
func BenchmarkRunParallel(b *testing.B) {
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			s := openMobileNet(b, l.opts)
			in := Tensor{Shape: []int64{1, 3, 224, 224}, Data: make([]float32, 3*224*224)}
			b.SetParallelism(1) // GOMAXPROCS callers: two here
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Run(context.Background(), in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
