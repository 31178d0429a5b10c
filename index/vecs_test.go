package index

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

func TestVecsRoundTrip(t *testing.T) {
	fv := [][]float32{{1, -2.5, 3}, {0, float32(math.Inf(1)), -0}}
	var b bytes.Buffer
	if err := WriteFvecs(&b, fv); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 2*(4+3*4) {
		t.Fatalf("fvecs of %d bytes", b.Len())
	}
	got, err := ReadFvecs(&b)
	if err != nil || len(got) != 2 || !slices.Equal(got[0], fv[0]) || !slices.Equal(got[1], fv[1]) {
		t.Fatalf("ReadFvecs = %v, %v", got, err)
	}
	iv := [][]int32{{7, -1}, {0, math.MaxInt32}}
	b.Reset()
	if err := WriteIvecs(&b, iv); err != nil {
		t.Fatal(err)
	}
	gi, err := ReadIvecs(&b)
	if err != nil || len(gi) != 2 || !slices.Equal(gi[0], iv[0]) || !slices.Equal(gi[1], iv[1]) {
		t.Fatalf("ReadIvecs = %v, %v", gi, err)
	}
}

func TestVecsRejects(t *testing.T) {
	le := func(xs ...uint32) []byte {
		var b []byte
		for _, x := range xs {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"short dimension", []byte{1, 0}},
		{"zero dimension", le(0)},
		{"negative dimension", le(0xffffffff)},
		{"huge dimension", le(1 << 30)},
		{"short vector", le(3, 1, 2)},
		{"mixed dimensions", le(1, 5, 2, 5, 6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, err := ReadFvecs(bytes.NewReader(tc.in)); err == nil {
				t.Errorf("ReadFvecs = %v, want an error", v)
			}
			if v, err := ReadIvecs(bytes.NewReader(tc.in)); err == nil {
				t.Errorf("ReadIvecs = %v, want an error", v)
			}
		})
	}
}

// FuzzReadFvecs checks that any input is read or refused without a panic,
// and that what is read writes back to the same bytes.
func FuzzReadFvecs(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 128, 63})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := ReadFvecs(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := WriteFvecs(&b, v); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), in) {
			t.Fatalf("round trip changed %x to %x", in, b.Bytes())
		}
	})
}

func FuzzReadIvecs(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 9, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := ReadIvecs(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := WriteIvecs(&b, v); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), in) {
			t.Fatalf("round trip changed %x to %x", in, b.Bytes())
		}
	})
}
