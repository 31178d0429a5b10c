package index

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftlabs/weft"
)

// A snapshot is one catalog's graph in one file, <hex of catalog id>.hnsw:
// a header, the arenas in order, and a CRC-32C of everything before it, all
// little-endian. Its length follows from the header, so a truncated file is
// known before anything is read.
const (
	snapMagic  = "WEFTHNS1"
	snapSuffix = ".hnsw"
	tmpSuffix  = ".tmp"
	headerLen  = 8 + 4*9 + 8*2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (ix *Index) path(catalogID string) string {
	return filepath.Join(ix.dir, hex.EncodeToString([]byte(catalogID))+snapSuffix)
}

func catalogOf(name string) (string, bool) {
	b, err := hex.DecodeString(strings.TrimSuffix(name, snapSuffix))
	return string(b), err == nil && len(b) > 0
}

// snapshot writes c's graph if it has changes pending; c.writeMu is held,
// so the graph cannot change while it is written, and searches go on.
func (ix *Index) snapshot(c *catalog) error {
	const op = "index.snapshot"
	if c.changes == 0 || c.dropped {
		return nil
	}
	if c.g == nil {
		c.changes = 0
		return nil
	}
	if err := writeSnapshot(ix.dir, ix.path(c.id), c.g); err != nil {
		return weft.E(op, weft.Internal, fmt.Errorf("catalog %s: %w", c.id, err))
	}
	c.changes = 0
	return nil
}

// writeSnapshot replaces path atomically: temp file, fsync, rename, fsync of
// the directory. A crash leaves the old snapshot or the new one.
func writeSnapshot(dir, path string, g *graph) (err error) {
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*"+tmpSuffix)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err = g.encode(w); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readSnapshot(path string) (*graph, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return decodeGraph(bufio.NewReaderSize(f, 1<<20), st.Size())
}

type header struct {
	dim, m, efC, nodes, entry, maxLevel, ndeleted, iidBytes, upperLen uint32
	levelMult                                                         float64
	rng                                                               uint64
}

// size is the length of a snapshot with header h.
func (h header) size() uint64 {
	n := uint64(h.nodes)
	return headerLen +
		4*n*uint64(h.dim) + // vecs
		4*n*uint64(2*h.m+1) + // links0
		n + // levels
		4*n + // upperOff
		4*uint64(h.upperLen) +
		4*(n+1) + // iidOff
		uint64(h.iidBytes) +
		8*((n+63)/64) + // deleted
		4 // crc
}

// crcWriter feeds a CRC with what passes through it.
type crcWriter struct {
	w io.Writer
	h hash.Hash32
}

func (c crcWriter) Write(p []byte) (int, error) {
	c.h.Write(p)
	return c.w.Write(p)
}

func (g *graph) encode(w io.Writer) error {
	cw := crcWriter{w, crc32.New(castagnoli)}
	n := uint32(g.nodes())
	ml := uint32(g.maxLevel) // -1 (empty) wraps to MaxUint32
	h := header{uint32(g.dim), uint32(g.m), uint32(g.efC), n, g.entry, ml, uint32(g.ndeleted),
		uint32(len(g.iidBuf)), uint32(len(g.upper)), g.levelMult, g.rng}
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, snapMagic...)
	for _, x := range []uint32{h.dim, h.m, h.efC, h.nodes, h.entry, h.maxLevel, h.ndeleted, h.iidBytes, h.upperLen} {
		buf = binary.LittleEndian.AppendUint32(buf, x)
	}
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(h.levelMult))
	buf = binary.LittleEndian.AppendUint64(buf, h.rng)
	if _, err := cw.Write(buf); err != nil {
		return err
	}
	vecBits := func(i int) uint32 { return math.Float32bits(g.vecs[i]) }
	for _, part := range []struct {
		n  int
		at func(int) uint32
	}{
		{len(g.vecs), vecBits},
		{len(g.links0), func(i int) uint32 { return g.links0[i] }},
	} {
		if err := writeWords(cw, buf, part.n, part.at); err != nil {
			return err
		}
	}
	if _, err := cw.Write(g.levels); err != nil {
		return err
	}
	for _, s := range [][]uint32{g.upperOff, g.upper, g.iidOff} {
		if err := writeWords(cw, buf, len(s), func(i int) uint32 { return s[i] }); err != nil {
			return err
		}
	}
	if _, err := cw.Write(g.iidBuf); err != nil {
		return err
	}
	buf = buf[:0]
	for _, d := range g.deleted[:(g.nodes()+63)/64] {
		buf = binary.LittleEndian.AppendUint64(buf, d)
		if len(buf) == cap(buf) {
			if _, err := cw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if _, err := cw.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(binary.LittleEndian.AppendUint32(nil, cw.h.Sum32()))
	return err
}

func writeWords(w io.Writer, buf []byte, n int, at func(int) uint32) error {
	buf = buf[:0]
	for i := range n {
		buf = binary.LittleEndian.AppendUint32(buf, at(i))
		if len(buf) == cap(buf) {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

var errCorrupt = errors.New("corrupt snapshot")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

// decodeGraph reads a snapshot of size bytes from r and checks it whole:
// length, checksum, and that every id and offset in it is in range, so that
// a damaged file is refused rather than searched.
func decodeGraph(r io.Reader, size int64) (*graph, error) {
	crc := crc32.New(castagnoli)
	tr := io.TeeReader(r, crc)
	hb := make([]byte, headerLen)
	if _, err := io.ReadFull(tr, hb); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if string(hb[:8]) != snapMagic {
		return nil, corrupt("bad magic")
	}
	u := func(i int) uint32 { return binary.LittleEndian.Uint32(hb[8+4*i:]) }
	h := header{u(0), u(1), u(2), u(3), u(4), u(5), u(6), u(7), u(8),
		math.Float64frombits(binary.LittleEndian.Uint64(hb[44:])), binary.LittleEndian.Uint64(hb[52:])}
	if h.dim == 0 || h.dim > 1<<16 || h.m < 2 || h.m > maxM || h.efC == 0 || h.efC > 1<<16 ||
		h.nodes == math.MaxUint32 || h.ndeleted > h.nodes || !(h.levelMult > 0 && h.levelMult < 10) {
		return nil, corrupt("bad header")
	}
	if size < 0 || h.size() != uint64(size) {
		return nil, corrupt("%d bytes, header says %d", size, h.size())
	}
	n := int(h.nodes)
	g := newGraph(int(h.dim), int(h.m), int(h.efC), h.rng)
	g.levelMult = h.levelMult
	g.entry, g.maxLevel, g.ndeleted = h.entry, int(int32(h.maxLevel)), int(h.ndeleted)
	g.vecs = make([]float32, n*g.dim)
	g.links0 = make([]uint32, n*(g.m0+1))
	g.levels = make([]uint8, n)
	g.upperOff = make([]uint32, n)
	g.upper = make([]uint32, h.upperLen)
	g.iidOff = make([]uint32, n+1)
	g.iidBuf = make([]byte, h.iidBytes)
	g.deleted = make([]uint64, (n+63)/64)
	buf := make([]byte, 64<<10)
	err := readWords(tr, buf, len(g.vecs), func(i int, x uint32) { g.vecs[i] = math.Float32frombits(x) })
	if err == nil {
		err = readWords(tr, buf, len(g.links0), func(i int, x uint32) { g.links0[i] = x })
	}
	if err == nil {
		_, err = io.ReadFull(tr, g.levels)
	}
	for _, s := range [][]uint32{g.upperOff, g.upper, g.iidOff} {
		if err == nil {
			err = readWords(tr, buf, len(s), func(i int, x uint32) { s[i] = x })
		}
	}
	if err == nil {
		_, err = io.ReadFull(tr, g.iidBuf)
	}
	if err == nil {
		err = readWords(tr, buf, 2*len(g.deleted), func(i int, x uint32) { g.deleted[i/2] |= uint64(x) << (32 * (i % 2)) })
	}
	if err != nil {
		return nil, corrupt("%v", err)
	}
	sum := crc.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(r, tail[:]); err != nil {
		return nil, corrupt("checksum: %v", err)
	}
	if binary.LittleEndian.Uint32(tail[:]) != sum {
		return nil, corrupt("checksum mismatch")
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	return g, nil
}

func readWords(r io.Reader, buf []byte, n int, set func(int, uint32)) error {
	for i := 0; i < n; {
		b := buf[:4*min(n-i, len(buf)/4)]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		for j := 0; j < len(b); j += 4 {
			set(i, binary.LittleEndian.Uint32(b[j:]))
			i++
		}
	}
	return nil
}

// check verifies the invariants searches rely on, and rebuilds the iid
// table (which is not stored).
func (g *graph) check() error {
	n := g.nodes()
	if g.maxLevel < -1 || g.maxLevel > levelCap || (n == 0) != (g.maxLevel == -1) ||
		(n > 0 && (int(g.entry) >= n || int(g.levels[g.entry]) != g.maxLevel)) {
		return corrupt("bad entry point")
	}
	if g.iidOff[0] != 0 || int(g.iidOff[n]) != len(g.iidBuf) {
		return corrupt("bad iid offsets")
	}
	dead := 0
	for id := range uint32(n) {
		if g.iidOff[id] > g.iidOff[id+1] {
			return corrupt("bad iid offsets")
		}
		lv := int(g.levels[id])
		if lv > g.maxLevel || int(g.upperOff[id])+lv*(g.m+1) > len(g.upper) {
			return corrupt("bad levels of node %d", id)
		}
		for l := 0; l <= lv; l++ {
			blk := g.block(id, l)
			if int(blk[0]) > len(blk)-1 {
				return corrupt("bad links of node %d", id)
			}
			for _, x := range blk[1 : 1+blk[0]] {
				if int(x) >= n || int(g.levels[x]) < l {
					return corrupt("bad link of node %d", id)
				}
			}
		}
		if g.isDeleted(id) {
			dead++
		}
	}
	if dead != g.ndeleted || (n%64 != 0 && g.deleted[len(g.deleted)-1]>>(n%64) != 0) {
		return corrupt("bad tombstones")
	}
	g.rehash(tableSize(g.live()))
	for id := range uint32(n) {
		if g.isDeleted(id) {
			continue
		}
		if _, dup := g.lookup(g.iid(id)); dup {
			return corrupt("iid %q twice", g.iid(id))
		}
		g.place(id)
	}
	return nil
}
