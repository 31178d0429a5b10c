package vision

import "image"

// Go's JPEG decoder and libjpeg (under Pillow, which the models were
// trained through) agree on the DCT but not on the colour step: Go repeats
// subsampled chroma where libjpeg interpolates it ("fancy upsampling"), and
// their YCbCr→RGB roundings differ. libjpegRGB redoes that step libjpeg's
// way (jdsample.c, jdcolor.c), which brings Go's pixels from about half a
// level off Pillow's on average to a few hundredths.

// libjpegRGB converts a decoded JPEG's YCbCr image as libjpeg would; ok is
// false for subsampling layouts it does not cover, left to Go's conversion.
func libjpegRGB(m *image.YCbCr) (out *image.RGBA, ok bool) {
	if m.Rect.Min != (image.Point{}) {
		return nil, false
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	var cw, ch int
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		cw, ch = w, h
	case image.YCbCrSubsampleRatio422:
		cw, ch = (w+1)/2, h
	case image.YCbCrSubsampleRatio420:
		cw, ch = (w+1)/2, (h+1)/2
	default:
		return nil, false
	}
	if w == 0 || h == 0 || len(m.Cb) < (ch-1)*m.CStride+cw || len(m.Cr) < (ch-1)*m.CStride+cw {
		return nil, false
	}
	out = image.NewRGBA(m.Rect)
	cb := make([]uint8, w)
	cr := make([]uint8, w)
	for y := range h {
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio444:
			copy(cb, m.Cb[y*m.CStride:][:w])
			copy(cr, m.Cr[y*m.CStride:][:w])
		case image.YCbCrSubsampleRatio422:
			h2v1(cb, m.Cb[y*m.CStride:][:cw])
			h2v1(cr, m.Cr[y*m.CStride:][:cw])
		case image.YCbCrSubsampleRatio420:
			// The nearer chroma row weighs 3/4, the one beyond it 1/4; at
			// the image's edges the row is its own neighbour.
			cy := y / 2
			far := cy + 1
			if y%2 == 0 {
				far = cy - 1
			}
			far = min(max(far, 0), ch-1)
			h2v2(cb, m.Cb[cy*m.CStride:][:cw], m.Cb[far*m.CStride:][:cw])
			h2v2(cr, m.Cr[cy*m.CStride:][:cw], m.Cr[far*m.CStride:][:cw])
		}
		ys := m.Y[y*m.YStride:][:w]
		p := out.Pix[y*out.Stride:]
		for x := range w {
			yy := int32(ys[x])
			b := int32(cb[x]) - 128
			r := int32(cr[x]) - 128
			const half = 1 << 15
			p[4*x] = clamp8(yy + (91881*r+half)>>16)
			p[4*x+1] = clamp8(yy + (-22554*b-46802*r+half)>>16)
			p[4*x+2] = clamp8(yy + (116130*b+half)>>16)
			p[4*x+3] = 0xff
		}
	}
	return out, true
}

func clamp8(v int32) uint8 {
	return uint8(min(max(v, 0), 255))
}

// h2v1 is libjpeg's h2v1_fancy_upsample: each output sample is 3/4 of its
// own chroma sample and 1/4 of the neighbour on its side.
func h2v1(dst, src []uint8) {
	n := len(src)
	out := func(i int, v int32) {
		if i < len(dst) {
			dst[i] = uint8(v)
		}
	}
	if n == 1 {
		out(0, int32(src[0]))
		out(1, int32(src[0]))
		return
	}
	out(0, int32(src[0]))
	out(1, (int32(src[0])*3+int32(src[1])+2)>>2)
	for i := 1; i < n-1; i++ {
		v := int32(src[i]) * 3
		out(2*i, (v+int32(src[i-1])+1)>>2)
		out(2*i+1, (v+int32(src[i+1])+2)>>2)
	}
	out(2*n-2, (int32(src[n-1])*3+int32(src[n-2])+1)>>2)
	out(2*n-1, int32(src[n-1]))
}

// h2v2 is one output row of libjpeg's h2v2_fancy_upsample, from the nearer
// chroma row and the one beyond it.
func h2v2(dst, near, far []uint8) {
	n := len(near)
	sum := func(i int) int32 { return int32(near[i])*3 + int32(far[i]) }
	out := func(i int, v int32) {
		if i < len(dst) {
			dst[i] = uint8(v)
		}
	}
	if n == 1 {
		out(0, (sum(0)*4+8)>>4)
		out(1, (sum(0)*4+7)>>4)
		return
	}
	out(0, (sum(0)*4+8)>>4)
	out(1, (sum(0)*3+sum(1)+7)>>4)
	for i := 1; i < n-1; i++ {
		out(2*i, (sum(i)*3+sum(i-1)+8)>>4)
		out(2*i+1, (sum(i)*3+sum(i+1)+7)>>4)
	}
	out(2*n-2, (sum(n-1)*3+sum(n-2)+8)>>4)
	out(2*n-1, (sum(n-1)*4+7)>>4)
}
