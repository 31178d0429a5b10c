package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/gif" // registered for image.Decode
	_ "image/jpeg"
	_ "image/png"
	"io"

	_ "golang.org/x/image/webp"

	"github.com/weftlabs/weft"
)

// DefaultMaxPixels is the pixel limit of a zero Limits.
const DefaultMaxPixels = 40_000_000

// Limits bounds what Decode accepts.
type Limits struct {
	MaxPixels int // width × height; 0 means DefaultMaxPixels
}

// Decode reads a JPEG, PNG, GIF (its first frame) or WebP image and applies
// its EXIF orientation. The pixel limit is checked on the header, before any
// pixel buffer is allocated, so a small file that declares a huge image
// costs nothing.
func Decode(r io.Reader, lim Limits) (img image.Image, err error) {
	const op = "vision.Decode"
	// The decoders parse outside input; should one of them panic on a
	// crafted file, that file is refused instead of taking down the
	// indexing goroutine that fetched it.
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, weft.E(op, weft.Invalid, weft.Msgf("cannot decode the image: the file is damaged"), fmt.Errorf("decoder panic: %v", p))
		}
	}()
	maxPixels := lim.MaxPixels
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("cannot read the image"), err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if errors.Is(err, image.ErrFormat) {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("unsupported image format: send JPEG, PNG, GIF or WebP"), err)
	}
	if err != nil {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("cannot decode the image: the file is damaged or truncated"), err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("the image is empty (%d×%d pixels)", cfg.Width, cfg.Height))
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, weft.E(op, weft.TooLarge, weft.Msgf("the image is %d×%d pixels, over the limit of %d pixels", cfg.Width, cfg.Height, maxPixels))
	}
	img, _, err = image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, weft.E(op, weft.Invalid, weft.Msgf("cannot decode the %s image: the file is damaged or truncated", format), err)
	}
	if ycc, ok := img.(*image.YCbCr); ok && format == "jpeg" {
		if rgb, ok := libjpegRGB(ycc); ok {
			img = rgb
		}
	}
	return orient(img, exifOrientation(format, data)), nil
}

// exifOrientation returns the EXIF orientation tag (1..8) of a JPEG, PNG
// or WebP file, as Pillow's ImageOps.exif_transpose finds it, or 1 when
// there is none or it cannot be read.
func exifOrientation(format string, data []byte) int {
	switch format {
	case "jpeg":
		return jpegOrientation(data)
	case "png":
		return pngOrientation(data)
	case "webp":
		return webpOrientation(data)
	}
	return 1
}

// pngOrientation reads the eXIf chunk, a bare TIFF structure.
func pngOrientation(p []byte) int {
	if len(p) < 8 {
		return 1
	}
	p = p[8:] // signature
	for len(p) >= 12 {
		n := int64(binary.BigEndian.Uint32(p))
		if n > int64(len(p))-12 {
			return 1
		}
		switch string(p[4:8]) {
		case "eXIf":
			return tiffOrientation(p[8 : 8+n])
		case "IEND":
			return 1
		}
		p = p[12+n:]
	}
	return 1
}

// webpOrientation reads the EXIF chunk of an extended (VP8X) WebP, a TIFF
// structure that some writers prefix with JPEG's "Exif\0\0".
func webpOrientation(p []byte) int {
	if len(p) < 12 || string(p[:4]) != "RIFF" || string(p[8:12]) != "WEBP" {
		return 1
	}
	p = p[12:]
	for len(p) >= 8 {
		n := int64(binary.LittleEndian.Uint32(p[4:]))
		if n > int64(len(p))-8 {
			return 1
		}
		if string(p[:4]) == "EXIF" {
			return tiffOrientation(bytes.TrimPrefix(p[8:8+n], []byte("Exif\x00\x00")))
		}
		n += n & 1 // chunks are padded to even lengths
		if n > int64(len(p))-8 {
			return 1
		}
		p = p[8+n:]
	}
	return 1
}

// jpegOrientation reads the APP1 EXIF segment of a JPEG.
func jpegOrientation(jpg []byte) int {
	if len(jpg) < 4 || jpg[0] != 0xff || jpg[1] != 0xd8 {
		return 1
	}
	p := jpg[2:]
	for len(p) >= 4 && p[0] == 0xff {
		marker := p[1]
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image: no more headers
			return 1
		}
		n := int(binary.BigEndian.Uint16(p[2:4]))
		if n < 2 || 2+n > len(p) {
			return 1
		}
		seg := p[4 : 2+n]
		if marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
		p = p[2+n:]
	}
	return 1
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF structure.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:4]) != 42 {
		return 1
	}
	ifd := int64(bo.Uint32(t[4:8]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	entries := int64(bo.Uint16(t[ifd:]))
	for i := range entries {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(t)) {
			return 1
		}
		// A SHORT (type 3) with count 1 keeps its value in the entry itself.
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 && bo.Uint32(t[e+4:]) == 1 {
			if o := int(bo.Uint16(t[e+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}

// orient turns img as EXIF orientation o asks, the way PIL's
// ImageOps.exif_transpose does, so that Go and the training pipeline see
// the same pixels.
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	src, ok := img.(*image.RGBA)
	if !ok || b.Min != (image.Point{}) {
		src = image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(src, src.Bounds(), img, b.Min, draw.Src)
	}
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // upside down
				sx, sy = w-1-x, h-1-y
			case 4: // mirrored upside down
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // stored turned left: turn right
				sx, sy = y, h-1-x
			case 7: // transversed
				sx, sy = w-1-y, h-1-x
			case 8: // stored turned right: turn left
				sx, sy = w-1-y, x
			}
			copy(dst.Pix[dst.PixOffset(x, y):][:4], src.Pix[src.PixOffset(sx, sy):][:4])
		}
	}
	return dst
}
