// Package onnx adapts ONNX Runtime, through github.com/yalue/onnxruntime_go,
// to Weft: it loads the shared library once per process and runs float32
// models whose first dimension (the batch) is dynamic.
package onnx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/weftlabs/weft"
)

// libName is the file `make deps` unpacks under .deps/onnxruntime.
const libName = "libonnxruntime.so.1"

// FindLibrary returns the ONNX Runtime shared library to load: $WEFT_ORT_LIB,
// else .deps/onnxruntime beside the executable's directory (bin/weft in a
// checkout), else .deps/onnxruntime in the working directory or one of its
// parents (go test runs in a package directory), else the system's
// libonnxruntime.so, left to the dynamic loader's search path.
func FindLibrary() string {
	if p := os.Getenv("WEFT_ORT_LIB"); p != "" {
		return p
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), ".."))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, ".deps", "onnxruntime", libName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "libonnxruntime.so"
}

var (
	initMu  sync.Mutex
	initLib string
)

// Init loads the ONNX Runtime library at libPath (FindLibrary's answer when
// empty). ONNX Runtime allows one environment per process, so later calls
// return nil without loading anything else.
func Init(libPath string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if ort.IsInitialized() {
		return nil
	}
	if libPath == "" {
		libPath = FindLibrary()
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return weft.E("onnx.Init", weft.Unavailable,
			weft.Msgf("cannot load ONNX Runtime from %s (run make deps, or set WEFT_ORT_LIB)", libPath), err)
	}
	initLib = libPath
	return nil
}

// Library returns the path Init loaded, or "" before a successful Init.
func Library() string {
	initMu.Lock()
	defer initMu.Unlock()
	return initLib
}

// Options tunes a Session.
type Options struct {
	// Threads is each session's intra-op thread count; 0 means
	// runtime.NumCPU().
	Threads int
	// Sessions is how many copies of the model may run at once; 0 means 1.
	// Runs beyond that wait their turn.
	Sessions int
}

// Tensor is a float32 tensor in row-major order.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Session runs one model. It is safe for concurrent use: each Run borrows
// one of the session's copies of the model, waiting for one to be free.
type Session struct {
	path    string
	inputs  []string
	outputs []string
	pool    chan *ort.DynamicAdvancedSession
	all     []*ort.DynamicAdvancedSession
}

// Open loads the model at path with the named inputs and outputs, in the
// order Run takes and returns them. Init must have succeeded.
func Open(path string, inputs, outputs []string, opts Options) (*Session, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, weft.E("onnx.Open", weft.Unavailable, weft.Msgf("model %s is missing", path), err)
	}
	return OpenData(path, data, inputs, outputs, opts)
}

// OpenData is Open for the model file at path already read into data: a
// caller that also hashes the file loads exactly the bytes it hashed, and
// reads them once.
func OpenData(path string, data []byte, inputs, outputs []string, opts Options) (*Session, error) {
	const op = "onnx.Open"
	if !ort.IsInitialized() {
		return nil, weft.E(op, weft.Internal, weft.Msgf("ONNX Runtime is not loaded: call onnx.Init first"))
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.Sessions <= 0 {
		opts.Sessions = 1
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, weft.E(op, weft.Internal, err)
	}
	defer so.Destroy()
	// Parallelism comes from intra-op threads (and from Sessions); the
	// models are single chains, so inter-op threads would only compete.
	for _, set := range []func() error{
		func() error { return so.SetIntraOpNumThreads(opts.Threads) },
		func() error { return so.SetInterOpNumThreads(1) },
		func() error { return so.SetExecutionMode(ort.ExecutionModeSequential) },
		func() error { return so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll) },
		// Idle intra-op threads sleep instead of spinning: Weft decodes
		// and fetches on the same cores while a model runs, and a spinning
		// thread steals their time (measured on 2 busy cores: a tagger run
		// cost about 34 ms of CPU spinning, 19 ms not).
		func() error { return so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") },
	} {
		if err := set(); err != nil {
			return nil, weft.E(op, weft.Internal, err)
		}
	}
	s := &Session{
		path:    path,
		inputs:  append([]string(nil), inputs...),
		outputs: append([]string(nil), outputs...),
		pool:    make(chan *ort.DynamicAdvancedSession, opts.Sessions),
	}
	for range opts.Sessions {
		ds, err := ort.NewDynamicAdvancedSessionWithONNXData(data, inputs, outputs, so)
		if err != nil {
			s.Close()
			return nil, weft.E(op, weft.Invalid, weft.Msgf("cannot load model %s", path), err)
		}
		s.all = append(s.all, ds)
		s.pool <- ds
	}
	return s, nil
}

// Run feeds one tensor per input name and returns one tensor per output
// name. A cancelled ctx stops the wait for a free copy and terminates a run
// in progress.
func (s *Session) Run(ctx context.Context, in ...Tensor) ([]Tensor, error) {
	const op = "onnx.Run"
	if len(in) != len(s.inputs) {
		return nil, weft.E(op, weft.Internal, fmt.Errorf("%s: %d inputs given, model takes %d", s.path, len(in), len(s.inputs)))
	}
	values := make([]ort.Value, len(in))
	defer func() {
		for _, v := range values {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range in {
		v, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, weft.E(op, weft.Internal, fmt.Errorf("input %s: %w", s.inputs[i], err))
		}
		values[i] = v
	}

	var ds *ort.DynamicAdvancedSession
	select {
	case ds = <-s.pool:
	case <-ctx.Done():
		return nil, weft.E(op, weft.Unavailable, ctx.Err())
	}
	defer func() { s.pool <- ds }()
	if err := ctx.Err(); err != nil {
		return nil, weft.E(op, weft.Unavailable, err)
	}

	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, weft.E(op, weft.Internal, err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { ro.Terminate() })
	outs := make([]ort.Value, len(s.outputs))
	err = ds.RunWithOptions(values, outs, ro)
	stop()
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err != nil {
		if ctx.Err() != nil {
			return nil, weft.E(op, weft.Unavailable, errors.Join(ctx.Err(), err))
		}
		return nil, weft.E(op, weft.Internal, fmt.Errorf("%s: %w", s.path, err))
	}
	res := make([]Tensor, len(outs))
	for i, v := range outs {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, weft.E(op, weft.Internal, fmt.Errorf("%s: output %s is not a float32 tensor", s.path, s.outputs[i]))
		}
		// GetData is a Go-allocated copy of ORT's buffer; it outlives Destroy.
		res[i] = Tensor{Shape: t.GetShape(), Data: t.GetData()}
	}
	return res, nil
}

// Close releases the model. The Session must not be used afterwards.
func (s *Session) Close() error {
	var errs []error
	for _, ds := range s.all {
		errs = append(errs, ds.Destroy())
	}
	s.all = nil
	return errors.Join(errs...)
}
