package vision

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftlabs/weft"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pngHeader is a PNG whose header declares w×h pixels and whose data is
// that of a 1×1 image: enough for DecodeConfig, a failure for Decode.
func pngHeader(t testing.TB, w, h uint32) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// 8-byte signature, then IHDR: length(4) "IHDR"(4) width(4) height(4) ... crc.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestDecode(t *testing.T) {
	good := func(name string) []byte { return readFile(t, filepath.Join(parityDir, name)) }
	png := good("alpha.png")
	tests := []struct {
		name   string
		data   []byte
		lim    Limits
		w, h   int
		kind   weft.Kind
		substr string // in the caller's message
	}{
		{"png", png, Limits{}, 90, 50, 0, ""},
		{"jpeg, EXIF 6 turns it upright", good("exif6.jpg"), Limits{}, 40, 64, 0, ""},
		{"jpeg, EXIF 3", good("exif3.jpg"), Limits{}, 64, 40, 0, ""},
		{"png, EXIF 6", good("exif6p.png"), Limits{}, 30, 50, 0, ""},
		{"webp, EXIF 8", good("exif8w.webp"), Limits{}, 30, 50, 0, ""},
		{"gif", good("palette.gif"), Limits{}, 40, 70, 0, ""},
		{"webp", good("lossless.webp"), Limits{}, 120, 80, 0, ""},
		{"at the limit", png, Limits{MaxPixels: 90 * 50}, 90, 50, 0, ""},
		{"over a set limit", png, Limits{MaxPixels: 90*50 - 1}, 0, 0, weft.TooLarge, "limit of 4499 pixels"},
		{"30000×30000 header", pngHeader(t, 30000, 30000), Limits{}, 0, 0, weft.TooLarge, "limit of 40000000 pixels"},
		{"header overflowing int32", pngHeader(t, 1<<31-1, 1<<31-1), Limits{}, 0, 0, weft.Invalid, ""},
		{"not an image", []byte("hello, world"), Limits{}, 0, 0, weft.Invalid, "unsupported image format: send JPEG, PNG, GIF or WebP"},
		{"empty", nil, Limits{}, 0, 0, weft.Invalid, "unsupported image format"},
		{"truncated png", png[:len(png)/2], Limits{}, 0, 0, weft.Invalid, "damaged or truncated"},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), Limits{}, 0, 0, weft.Invalid, "unsupported image format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(tt.data), tt.lim)
			if tt.kind != 0 {
				if err == nil || weft.KindOf(err) != tt.kind || !strings.Contains(weft.MessageOf(err), tt.substr) {
					t.Fatalf("err = %v (kind %v, message %q), want kind %v with %q", err, weft.KindOf(err), weft.MessageOf(err), tt.kind, tt.substr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("decoded %v, want %d×%d", b, tt.w, tt.h)
			}
		})
	}
}

// withEXIF inserts an APP1 EXIF segment carrying orientation o right after
// the JPEG's start-of-image marker.
func withEXIF(jpg []byte, o uint16, order binary.ByteOrder) []byte {
	tiff := make([]byte, 8+2+12+4)
	if order == binary.LittleEndian {
		copy(tiff, "II")
	} else {
		copy(tiff, "MM")
	}
	order.PutUint16(tiff[2:], 42)
	order.PutUint32(tiff[4:], 8)
	order.PutUint16(tiff[8:], 1)
	order.PutUint16(tiff[10:], 0x0112)
	order.PutUint16(tiff[12:], 3)
	order.PutUint32(tiff[14:], 1)
	order.PutUint16(tiff[18:], o)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xff, 0xd8, 0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(out[4:], uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestEXIFOrientation(t *testing.T) {
	// A 60×30 card: red on the left third top half, blue elsewhere.
	src := image.NewRGBA(image.Rect(0, 0, 60, 30))
	for y := range 30 {
		for x := range 60 {
			c := color.RGBA{0, 0, 255, 255}
			if x < 20 && y < 15 {
				c = color.RGBA{255, 0, 0, 255}
			}
			src.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	// Where the red block's centre lands once the image is shown upright.
	tests := []struct {
		o      uint16
		w, h   int
		rx, ry int
	}{
		{1, 60, 30, 10, 7},
		{2, 60, 30, 50, 7},
		{3, 60, 30, 50, 22},
		{4, 60, 30, 10, 22},
		{5, 30, 60, 7, 10},
		{6, 30, 60, 22, 10},
		{7, 30, 60, 22, 50},
		{8, 30, 60, 7, 50},
		{0, 60, 30, 10, 7}, // out of range: left alone
		{9, 60, 30, 10, 7},
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, tt := range tests {
			img, err := Decode(bytes.NewReader(withEXIF(buf.Bytes(), tt.o, order)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("%v orientation %d: %v, want %d×%d", order, tt.o, b, tt.w, tt.h)
				continue
			}
			r, _, b, _ := img.At(img.Bounds().Min.X+tt.rx, img.Bounds().Min.Y+tt.ry).RGBA()
			if r < 0xc000 || b > 0x4000 {
				t.Errorf("%v orientation %d: pixel (%d,%d) is not red", order, tt.o, tt.rx, tt.ry)
			}
		}
	}
}

func TestEXIFMalformed(t *testing.T) {
	base := withEXIF([]byte{0xff, 0xd8}, 6, binary.BigEndian)
	tests := map[string][]byte{
		"no SOI":         {0x00, 0x01, 0xff, 0xe1},
		"short segment":  base[:10],
		"length too big": append([]byte{0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff}, "Exif\x00\x00MM"...),
		"bad byte order": bytes.Replace(base, []byte("MM"), []byte("XX"), 1),
		"bad magic":      bytes.Replace(base, []byte("MM\x00\x2a"), []byte("MM\x00\x2b"), 1),
		"IFD past end":   bytes.Replace(base, []byte("MM\x00\x2a\x00\x00\x00\x08"), []byte("MM\x00\x2a\x7f\x00\x00\x08"), 1),
		"zero length":    {0xff, 0xd8, 0xff, 0xe1, 0x00, 0x00},
	}
	if got := jpegOrientation(base); got != 6 {
		t.Fatalf("well-formed: %d, want 6", got)
	}
	for name, data := range tests {
		if got := jpegOrientation(data); got != 1 {
			t.Errorf("%s: orientation %d, want 1", name, got)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"alpha.png", "exif6.jpg", "palette.gif", "lossless.webp", "tiny.png", "grey.jpg", "sub422.jpg", "sub420.jpg"} {
		f.Add(readFile(f, filepath.Join(parityDir, name)))
	}
	for _, size := range []int{1, 7, 16} { // Go's encoder writes 4:2:0
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, image.NewRGBA(image.Rect(0, 0, size, size+2)), nil); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(pngHeader(f, 30000, 30000))
	f.Add(withEXIF([]byte{0xff, 0xd8, 0xff, 0xd9}, 6, binary.LittleEndian))
	const maxPixels = 1 << 16 // keeps each input's work bounded
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(bytes.NewReader(data), Limits{MaxPixels: maxPixels})
		if err != nil {
			if k := weft.KindOf(err); k != weft.Invalid && k != weft.TooLarge {
				t.Fatalf("kind %v: %v", k, err)
			}
			return
		}
		b := img.Bounds()
		if b.Empty() || b.Dx()*b.Dy() > maxPixels {
			t.Fatalf("decoded %v past the limit", b)
		}
		TaggerInput(img, 32, make([]float32, 3*32*32))
	})
}

func FuzzEXIFOrientation(f *testing.F) {
	f.Add(withEXIF([]byte{0xff, 0xd8}, 6, binary.BigEndian))
	f.Add(withEXIF([]byte{0xff, 0xd8}, 3, binary.LittleEndian))
	f.Add(readFile(f, filepath.Join(parityDir, "exif8.jpg")))
	f.Add(readFile(f, filepath.Join(parityDir, "exif6p.png")))
	f.Add(readFile(f, filepath.Join(parityDir, "exif8w.webp")))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []string{"jpeg", "png", "webp"} {
			if o := exifOrientation(format, data); o < 1 || o > 8 {
				t.Fatalf("%s orientation %d", format, o)
			}
		}
	})
}

// A decoder that panics stands for a bug in one of the standard ones.
func init() {
	image.RegisterFormat("boom", "BOOM",
		func(io.Reader) (image.Image, error) { panic("index out of range") },
		func(io.Reader) (image.Config, error) { return image.Config{Width: 1, Height: 1}, nil })
}

func TestDecodePanicRefused(t *testing.T) {
	_, err := Decode(strings.NewReader("BOOM"), Limits{})
	if weft.KindOf(err) != weft.Invalid || !strings.Contains(weft.MessageOf(err), "damaged") {
		t.Errorf("err = %v, want kind invalid saying the file is damaged", err)
	}
}
