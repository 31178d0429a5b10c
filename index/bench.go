package index

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// BenchOptions configures BenchANN; Base and Queries are fvecs files.
type BenchOptions struct {
	Base, Queries  string
	K              int     // neighbours per query; default 10
	Recall         float64 // recall@K to tune ef for; default 0.95
	Threads        int     // search threads; default 1
	Out            string  // ivecs file for the neighbours found; none when empty
	M              int     // default 16
	EfConstruction int     // default 200
}

// BenchParams are the graph settings a benchmark ran with.
type BenchParams struct {
	M              int `json:"M"`
	EfConstruction int `json:"ef_construction"`
	EfSearch       int `json:"ef_search"`
}

// BenchResult is what BenchANN measured. The CPU-time figures (queries per
// CPU-second of the process, build CPU seconds) are what a shared, busy
// machine disturbs least; they are zero where CPU time is unknown.
type BenchResult struct {
	QPS             float64     `json:"qps"`
	CPUQPS          float64     `json:"cpu_qps"`
	Recall          float64     `json:"recall"`
	BuildSeconds    float64     `json:"build_seconds"`
	BuildCPUSeconds float64     `json:"build_cpu_seconds"`
	BytesPerVector  float64     `json:"bytes_per_vector"`
	Params          BenchParams `json:"params"`
}

// BenchANN builds a graph of the base vectors (normalised, as Weft's are),
// finds the exact neighbours of the queries by brute force, raises ef to the
// lowest value whose recall@K reaches opts.Recall (doubling, then bisecting;
// scripts/bench_hnswlib.py does the same for hnswlib), then times every
// query on opts.Threads threads at that ef, best of three runs. Memory is the
// Go heap in use after the build minus before, over the base count.
func BenchANN(opts BenchOptions) (BenchResult, error) {
	if opts.K <= 0 {
		opts.K = 10
	}
	if opts.Recall <= 0 {
		opts.Recall = 0.95
	}
	opts.Threads = max(opts.Threads, 1)
	o := Options{M: opts.M, EfConstruction: opts.EfConstruction}.withDefaults()
	base, err := readFvecsFile(opts.Base)
	if err != nil {
		return BenchResult{}, err
	}
	queries, err := readFvecsFile(opts.Queries)
	if err != nil {
		return BenchResult{}, err
	}
	if len(base) == 0 || len(queries) == 0 || len(base[0]) != len(queries[0]) {
		return BenchResult{}, errors.New("bench: base and queries must be non-empty and of one dimension")
	}
	if opts.K > len(base) {
		return BenchResult{}, fmt.Errorf("bench: k %d exceeds the %d base vectors", opts.K, len(base))
	}
	for _, vs := range [][][]float32{base, queries} {
		for _, v := range vs {
			if err := checkVector("bench", v, len(base[0])); err != nil {
				return BenchResult{}, err
			}
			if !normalizeInPlace(v) {
				return BenchResult{}, errors.New("bench: zero vector")
			}
		}
	}
	truth := groundTruth(base, queries, opts.K)

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse
	start, cpuStart := time.Now(), cpuTime()
	g := newGraph(len(base[0]), o.M, o.EfConstruction, 42)
	iidBytes := 0
	for i := range base {
		iidBytes += len(strconv.Itoa(i))
	}
	g.reserve(len(base), iidBytes)
	s := newSearcher()
	for i, v := range base {
		g.insert(s, strconv.Itoa(i), v)
	}
	build, buildCPU := time.Since(start), cpuTime()-cpuStart
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(base) // else it is freed and taken off the graph's cost
	res := BenchResult{
		BuildSeconds:    build.Seconds(),
		BuildCPUSeconds: buildCPU.Seconds(),
		BytesPerVector:  float64(int64(ms.HeapInuse)-int64(heapBefore)) / float64(len(base)),
		Params:          BenchParams{M: o.M, EfConstruction: o.EfConstruction},
	}

	// Nodes are numbered in insertion order, so a node id is its base row.
	found := make([][]int32, len(queries))
	for i := range found {
		found[i] = make([]int32, opts.K)
	}
	run := func(ef, threads int) (wall, cpu time.Duration) {
		start, cpuStart := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for t := range threads {
			wg.Go(func() {
				s := newSearcher()
				for i := t; i < len(queries); i += threads {
					for j, r := range g.search(s, queries[i], opts.K, ef) {
						found[i][j] = int32(r.id)
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start), cpuTime() - cpuStart
	}
	recallAt := func(ef int) float64 {
		run(ef, opts.Threads)
		return recall(found, truth)
	}
	ef := opts.K
	for ; recallAt(ef) < opts.Recall && ef < len(base); ef *= 2 {
	}
	for lo := ef / 2; ef > opts.K && ef-lo > 1; {
		if mid := (lo + ef) / 2; recallAt(mid) >= opts.Recall {
			ef = mid
		} else {
			lo = mid
		}
	}
	res.Params.EfSearch = ef
	best, bestCPU := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 3 {
		wall, cpu := run(ef, opts.Threads)
		best, bestCPU = min(best, wall), min(bestCPU, cpu)
	}
	res.QPS = float64(len(queries)) / best.Seconds()
	if bestCPU > 0 {
		res.CPUQPS = float64(len(queries)) / bestCPU.Seconds()
	}
	res.Recall = recall(found, truth)
	runtime.KeepAlive(g)
	if opts.Out != "" {
		f, err := os.Create(opts.Out)
		if err != nil {
			return res, err
		}
		if err := WriteIvecs(f, found); err != nil {
			f.Close()
			return res, err
		}
		if err := f.Close(); err != nil {
			return res, err
		}
	}
	return res, nil
}

func readFvecsFile(path string) ([][]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := ReadFvecs(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func normalizeInPlace(v []float32) bool {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return false
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// groundTruth finds each query's k nearest base vectors by brute force, on
// every CPU.
func groundTruth(base, queries [][]float32, k int) [][]int32 {
	truth := make([][]int32, len(queries))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			top := make([]distID, 0, k+1)
			for i := w; i < len(queries); i += workers {
				top = top[:0]
				for id, b := range base {
					d := 1 - dot(queries[i], b)
					if len(top) < k {
						top = pushMax(top, distID{d, uint32(id)})
					} else if d < top[0].d {
						top[0] = distID{d, uint32(id)}
						siftDownMax(top, 0)
					}
				}
				ids := make([]int32, len(top))
				for j := len(ids) - 1; j >= 0; j-- {
					ids[j] = int32(top[0].id)
					top = popMax(top)
				}
				truth[i] = ids
			}
		})
	}
	wg.Wait()
	return truth
}

// recall is the share of true neighbours found.
func recall(found, truth [][]int32) float64 {
	hit, all := 0, 0
	for i, want := range truth {
		for _, w := range want {
			all++
			for _, f := range found[i] {
				if f == w {
					hit++
					break
				}
			}
		}
	}
	return float64(hit) / float64(all)
}
