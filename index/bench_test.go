package index

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBenchANN(t *testing.T) {
	dir := t.TempDir()
	data := dataset(11, 2100, 32, 20)
	for name, vs := range map[string][][]float32{"base": data[:2000], "queries": data[2000:]} {
		f, err := os.Create(filepath.Join(dir, name+".fvecs"))
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteFvecs(f, vs); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out := filepath.Join(dir, "out.ivecs")
	res, err := BenchANN(BenchOptions{
		Base: filepath.Join(dir, "base.fvecs"), Queries: filepath.Join(dir, "queries.fvecs"),
		K: 5, Recall: 0.9, Threads: 2, Out: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Recall < 0.9 || res.Params.EfSearch < 5 || res.Params.M != 16 || res.QPS <= 0 || res.BytesPerVector <= 0 {
		t.Errorf("result %+v", res)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found, err := ReadIvecs(f)
	if err != nil || len(found) != 100 || len(found[0]) != 5 {
		t.Fatalf("ivecs: %d rows, %v", len(found), err)
	}
	truth := groundTruth(data[:2000], data[2000:], 5)
	if r := recall(found, truth); r != res.Recall {
		t.Errorf("recall of the ivecs file %.3f, reported %.3f", r, res.Recall)
	}
}
