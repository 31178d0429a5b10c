package http

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/weftlabs/weft"
)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{weft.E("op", weft.Invalid), 400},
		{weft.E("op", weft.Unauthorized), 401},
		{weft.E("op", weft.NotFound), 404},
		{weft.E("op", weft.Conflict), 409},
		{weft.E("op", weft.TooLarge), 413},
		{weft.E("op", weft.Unavailable), 503},
		{weft.E("op", weft.Internal), 500},
		{weft.E("op", weft.Other), 500},
		{errors.New("plain"), 500},
		{weft.E("outer", weft.E("inner", weft.NotFound)), 404},
	} {
		if got := statusOf(tc.err); got != tc.code {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

func TestCatalogOf(t *testing.T) {
	c := catalogOf(weft.Catalog{
		ID: "cdae7e788f1e4982", Name: "My Awesome Catalog", Status: weft.StatusReady,
		Created:  time.Date(2016, 12, 12, 10, 24, 54, 301953000, time.FixedZone("CET", 3600)),
		NumTotal: 50123, NumIndexed: 50120, ErrorLog: []string{"line 3: bad URL", "line 9: bad JSON"},
	})
	b, _ := json.Marshal(c)
	want := `{"catalog_id":"cdae7e788f1e4982","date_created":"2016-12-12 09:24:54.301953+00:00",` +
		`"error_log":"line 3: bad URL\nline 9: bad JSON","name":"My Awesome Catalog","num_images_indexed":50120,` +
		`"num_images_total":50123,"num_total_images":50123,"status":"ready for query"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestUsageJSON(t *testing.T) {
	u := weft.Usage{
		"2016-12": {weft.OpSearch: {Calls: 60, Images: 60}},
		"2017-1":  {weft.OpCatalogIndex: {Calls: 2, Images: 1000}, weft.OpDetect: {Calls: 1, Images: 1}},
		"2016-9":  {weft.OpTag: {Calls: 1, Images: 1}},
	}
	b, err := json.Marshal(usageJSON(u))
	if err != nil {
		t.Fatal(err)
	}
	zero := `{"num_calls":0,"num_images":0}`
	want := `{"2017-1":{"catalog_upload":` + zero + `,"catalog_index":{"num_calls":2,"num_images":1000},"search":` + zero + `,"tag":` + zero + `,"detect":{"num_calls":1,"num_images":1}},` +
		`"2016-12":{"catalog_upload":` + zero + `,"catalog_index":` + zero + `,"search":{"num_calls":60,"num_images":60},"tag":` + zero + `,"detect":` + zero + `},` +
		`"2016-9":{"catalog_upload":` + zero + `,"catalog_index":` + zero + `,"search":` + zero + `,"tag":{"num_calls":1,"num_images":1},"detect":` + zero + `}}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(usageJSON(nil)); string(b) != "{}" {
		t.Errorf("no usage: %s", b)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{32 << 20: "32 MiB", 8 << 30: "8 GiB", 4096: "4 KiB", 1000: "1000 bytes", 33<<20 + 1: "34603009 bytes"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}
