package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// The TEXMEX formats of ANN benchmarks (corpus-texmex.irisa.fr): each
// vector is its dimension as a little-endian int32, then that many
// little-endian float32 (fvecs) or int32 (ivecs) values.

// maxVecsDim bounds a vector's dimension, so a damaged length cannot make a
// reader allocate without end.
const maxVecsDim = 1 << 16

// ReadFvecs reads an fvecs stream to its end; every vector must have the
// same dimension.
func ReadFvecs(r io.Reader) ([][]float32, error) {
	var out [][]float32
	err := readVecs(r, func(dim int, row []byte) {
		v := make([]float32, dim)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(row[4*i:]))
		}
		out = append(out, v)
	})
	return out, err
}

// ReadIvecs reads an ivecs stream to its end; every vector must have the
// same dimension.
func ReadIvecs(r io.Reader) ([][]int32, error) {
	var out [][]int32
	err := readVecs(r, func(dim int, row []byte) {
		v := make([]int32, dim)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(row[4*i:]))
		}
		out = append(out, v)
	})
	return out, err
}

func readVecs(r io.Reader, row func(dim int, b []byte)) error {
	br := bufio.NewReader(r)
	var head [4]byte
	var buf []byte
	want := -1
	for n := 0; ; n++ {
		if _, err := io.ReadFull(br, head[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("vector %d: truncated dimension", n)
		}
		dim := int(int32(binary.LittleEndian.Uint32(head[:])))
		switch {
		case dim <= 0 || dim > maxVecsDim:
			return fmt.Errorf("vector %d: dimension %d out of range", n, dim)
		case want >= 0 && dim != want:
			return fmt.Errorf("vector %d: dimension %d, earlier ones %d", n, dim, want)
		}
		want = dim
		if len(buf) < 4*dim {
			buf = make([]byte, 4*dim)
		}
		if _, err := io.ReadFull(br, buf[:4*dim]); err != nil {
			return fmt.Errorf("vector %d: %w", n, errors.Join(errTruncated, err))
		}
		row(dim, buf)
	}
}

var errTruncated = errors.New("truncated vector")

// WriteFvecs writes vecs in fvecs format.
func WriteFvecs(w io.Writer, vecs [][]float32) error {
	bw := bufio.NewWriter(w)
	for _, v := range vecs {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteIvecs writes vecs in ivecs format.
func WriteIvecs(w io.Writer, vecs [][]int32) error {
	bw := bufio.NewWriter(w)
	for _, v := range vecs {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}
