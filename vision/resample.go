package vision

import (
	"image"
	"math"
)

// Resizing is Pillow's Image.resize(size, Image.BILINEAR), step for step
// (Pillow's Resample.c: antialiasing support widened by the scale, 22-bit
// fixed-point weights, a horizontal pass rounded to 8 bits, then a vertical
// one), so that Go feeds the networks the pixels they were trained on. It
// resizes a virtual canvas, the picture placed on a plain fill, without ever
// allocating the canvas: a 40000×1 photo padded to a square would otherwise
// need 40000² pixels.

const precisionBits = 32 - 8 - 2

// kernel holds, for each output position, the first input index, and the
// fixed-point weights of the inputs from there on.
type kernel struct {
	first []int
	w     [][]int64
}

// bilinearKernel is Pillow's precompute_coeffs and normalize_coeffs_8bpc for
// the bilinear filter, resizing in inputs to out outputs.
func bilinearKernel(in, out int) kernel {
	scale := float64(in) / float64(out)
	filterScale := max(scale, 1)
	support := filterScale // the bilinear filter's support is 1
	k := kernel{first: make([]int, out), w: make([][]int64, out)}
	for xx := range out {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0) // C's truncating cast; negatives clamp to 0 either way
		xmax := min(int(center+support+0.5), in) - xmin
		ws := make([]float64, max(xmax, 0))
		var sum float64
		for x := range ws {
			d := math.Abs((float64(x+xmin) - center + 0.5) / filterScale)
			if d < 1 {
				ws[x] = 1 - d
			}
			sum += ws[x]
		}
		fixed := make([]int64, len(ws))
		for x, w := range ws {
			if sum != 0 {
				w /= sum
			}
			// Weights are never negative for this filter: round half up.
			fixed[x] = int64(0.5 + w*(1<<precisionBits))
		}
		k.first[xx] = xmin
		k.w[xx] = fixed
	}
	return k
}

func clip8(v int64) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// canvas is a w×h image of colour fill with pic (an opaque RGBA image at the
// origin) placed at at.
type canvas struct {
	pic  *image.RGBA
	at   image.Point
	w, h int
	fill [3]uint8
}

// resizeCanvas returns c resized to ow×oh as Pillow's bilinear resize would.
func resizeCanvas(c canvas, ow, oh int) *image.RGBA {
	pw, ph := c.pic.Rect.Dx(), c.pic.Rect.Dy()
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))

	// Horizontal pass over the picture's rows, into rows of ow RGB
	// triples; the canvas rows above and below it are all fill, and so is
	// what the pass makes of them.
	rows := make([][]uint8, ph)
	fillRow := make([]uint8, 3*ow)
	if ow == c.w {
		for y := range ph {
			row := make([]uint8, 3*ow)
			for x := range ow {
				px := x - c.at.X
				if px >= 0 && px < pw {
					copy(row[3*x:3*x+3], c.pic.Pix[c.pic.PixOffset(px, y):][:3])
				} else {
					copy(row[3*x:3*x+3], c.fill[:])
				}
			}
			rows[y] = row
		}
		for x := range ow {
			copy(fillRow[3*x:3*x+3], c.fill[:])
		}
	} else {
		k := bilinearKernel(c.w, ow)
		// The weight each output puts on the fill left and right of the
		// picture is the same for every row.
		fillW := make([]int64, ow)
		for xx := range ow {
			for i, w := range k.w[xx] {
				if x := k.first[xx] + i - c.at.X; x < 0 || x >= pw {
					fillW[xx] += w
				}
			}
			for ch := range 3 {
				fillRow[3*xx+ch] = clip8(1<<(precisionBits-1) + int64(c.fill[ch])*sumW(k.w[xx]))
			}
		}
		for y := range ph {
			row := make([]uint8, 3*ow)
			src := c.pic.Pix[c.pic.PixOffset(0, y):]
			for xx := range ow {
				var s [3]int64
				for ch := range 3 {
					s[ch] = 1<<(precisionBits-1) + int64(c.fill[ch])*fillW[xx]
				}
				lo := max(k.first[xx]-c.at.X, 0)
				hi := min(k.first[xx]+len(k.w[xx])-c.at.X, pw)
				for x := lo; x < hi; x++ {
					w := k.w[xx][x+c.at.X-k.first[xx]]
					p := src[4*x:]
					s[0] += int64(p[0]) * w
					s[1] += int64(p[1]) * w
					s[2] += int64(p[2]) * w
				}
				row[3*xx], row[3*xx+1], row[3*xx+2] = clip8(s[0]), clip8(s[1]), clip8(s[2])
			}
			rows[y] = row
		}
	}

	// Vertical pass over the canvas rows: the picture's rows as the
	// horizontal pass left them, fill rows elsewhere.
	if oh == c.h {
		for y := range oh {
			row := fillRow
			if py := y - c.at.Y; py >= 0 && py < ph {
				row = rows[py]
			}
			setRow(out, y, row)
		}
		return out
	}
	k := bilinearKernel(c.h, oh)
	row := make([]uint8, 3*ow)
	acc := make([]int64, 3*ow)
	for yy := range oh {
		var fillW int64
		for i, w := range k.w[yy] {
			if y := k.first[yy] + i - c.at.Y; y < 0 || y >= ph {
				fillW += w
			}
		}
		for x := range acc {
			acc[x] = 1<<(precisionBits-1) + int64(fillRow[x])*fillW
		}
		lo := max(k.first[yy]-c.at.Y, 0)
		hi := min(k.first[yy]+len(k.w[yy])-c.at.Y, ph)
		for y := lo; y < hi; y++ {
			w := k.w[yy][y+c.at.Y-k.first[yy]]
			for x, v := range rows[y] {
				acc[x] += int64(v) * w
			}
		}
		for x, s := range acc {
			row[x] = clip8(s)
		}
		setRow(out, yy, row)
	}
	return out
}

func sumW(ws []int64) int64 {
	var s int64
	for _, w := range ws {
		s += w
	}
	return s
}

func setRow(m *image.RGBA, y int, rgb []uint8) {
	p := m.Pix[m.PixOffset(0, y):]
	for x := range len(rgb) / 3 {
		p[4*x], p[4*x+1], p[4*x+2], p[4*x+3] = rgb[3*x], rgb[3*x+1], rgb[3*x+2], 0xff
	}
}
