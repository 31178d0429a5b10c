package vision

import (
	"image"
	"image/color"
	"image/draw"
)

// The tagger's preprocessing is defined once, in train/preprocess.py; every
// step here mirrors one there, and the parity test holds them together.

// flatten returns img as an opaque RGBA image at the origin, alpha
// composited on white (transparent product shots are meant to sit on white).
// The result may be img itself: callers only read it.
func flatten(img image.Image) *image.RGBA {
	if m, ok := img.(*image.RGBA); ok && m.Rect.Min == (image.Point{}) && m.Opaque() {
		return m // what Decode makes of a colour JPEG
	}
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	if o, ok := img.(interface{ Opaque() bool }); ok && o.Opaque() {
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
		return dst
	}
	nrgba, ok := img.(*image.NRGBA) // PNGs with alpha decode to this
	for y := range b.Dy() {
		for x := range b.Dx() {
			var c color.NRGBA
			if ok {
				p := nrgba.Pix[nrgba.PixOffset(b.Min.X+x, b.Min.Y+y):]
				c = color.NRGBA{p[0], p[1], p[2], p[3]}
			} else {
				c = color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			}
			p := dst.Pix[dst.PixOffset(x, y):]
			p[0], p[1], p[2], p[3] = overWhite(c.R, c.A), overWhite(c.G, c.A), overWhite(c.B, c.A), 0xff
		}
	}
	return dst
}

// overWhite is Pillow's Image.alpha_composite of one channel of a
// non-premultiplied pixel over opaque white, its rounding included
// (AlphaComposite.c with 7 bits of precision; the white's full alpha makes
// the output alpha 255×255 and the coefficients a×128 and (255−a)×128).
func overWhite(v, a uint8) uint8 {
	if a == 0 {
		return 0xff
	}
	t := uint32(v)*uint32(a)<<7 + 255*uint32(255-a)<<7 + 0x80<<7
	return uint8((t>>8 + t) >> 8 >> 7)
}

// borderColour is the per-channel median of the 1-pixel outer ring of an
// opaque image, each ring pixel counted once, the mean of the two middle
// values when the count is even, rounded half up.
func borderColour(m *image.RGBA) color.RGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	var hist [3][256]int
	n := 0
	add := func(x, y int) {
		p := m.Pix[m.PixOffset(x, y):]
		for c := range 3 {
			hist[c][p[c]]++
		}
		n++
	}
	if w <= 2 || h <= 2 {
		for y := range h {
			for x := range w {
				add(x, y)
			}
		}
	} else {
		for x := range w {
			add(x, 0)
			add(x, h-1)
		}
		for y := 1; y < h-1; y++ {
			add(0, y)
			add(w-1, y)
		}
	}
	// nth returns the k-th smallest value (from 0) of a histogram.
	nth := func(h *[256]int, k int) int {
		for v, c := range h {
			if k < c {
				return v
			}
			k -= c
		}
		return 255
	}
	var med [3]uint8
	for c := range 3 {
		if n%2 == 1 {
			med[c] = uint8(nth(&hist[c], n/2))
		} else {
			med[c] = uint8((nth(&hist[c], n/2-1) + nth(&hist[c], n/2) + 1) / 2)
		}
	}
	return color.RGBA{med[0], med[1], med[2], 0xff}
}

// squareCanvas pads the shorter side of an opaque image symmetrically, the
// odd extra pixel going bottom/right, with the border colour.
func squareCanvas(m *image.RGBA) canvas {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	side := max(w, h)
	c := canvas{pic: m, at: image.Pt((side-w)/2, (side-h)/2), w: side, h: side}
	if w != h {
		b := borderColour(m)
		c.fill = [3]uint8{b.R, b.G, b.B}
	}
	return c
}

// Prepare returns img as the tagger sees it before scaling to floats:
// flattened on white, padded to a square with its border colour, resized to
// size×size. TaggerInput of the result equals TaggerInput of img (a square
// opaque image of the model's size passes through unchanged), so indexing
// shrinks each image right after decoding: memory stays bounded whatever
// the source size, and the resampling runs on the decoding goroutines.
func Prepare(img image.Image, size int) *image.RGBA {
	return resizeCanvas(squareCanvas(flatten(img)), size, size)
}

// TaggerInput writes the tagger's input for img into dst, a float32 CHW RGB
// tensor of 3×size×size values scaled to [-1, 1].
func TaggerInput(img image.Image, size int, dst []float32) {
	m := Prepare(img, size)
	plane := size * size
	for i := range plane {
		p := m.Pix[4*i:]
		dst[i] = float32(p[0])/127.5 - 1
		dst[plane+i] = float32(p[1])/127.5 - 1
		dst[2*plane+i] = float32(p[2])/127.5 - 1
	}
}
