package weft_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftlabs/weft"
)

func TestKindAndMessage(t *testing.T) {
	cause := errors.New("disk on fire")
	notFound := weft.E("sqlite.Catalog", weft.NotFound, weft.Msgf("Catalog %s not found.", "abc"))
	tests := []struct {
		name     string
		err      error
		kind     weft.Kind
		message  string
		contains string // in Error(), for logs
	}{
		{"plain error is internal and hidden", cause, weft.Internal, "Internal server error.", "disk on fire"},
		{"kind and message", notFound, weft.NotFound, "Catalog abc not found.", "sqlite.Catalog"},
		{"kind inherited through E", weft.E("http.get", notFound), weft.NotFound, "Catalog abc not found.", "http.get"},
		{"outer message wins", weft.E("http.get", weft.Msgf("Outer."), notFound), weft.NotFound, "Outer.", "Catalog abc"},
		{"wrapped by fmt", fmt.Errorf("ctx: %w", notFound), weft.NotFound, "Catalog abc not found.", "ctx"},
		{"kind without message", weft.E("op", weft.Unauthorized), weft.Unauthorized, "Unauthorized: send a valid access token in the Authorization header.", "op"},
		{"cause never leaks", weft.E("op", weft.Internal, cause), weft.Internal, "Internal server error.", "disk on fire"},
		{"outer kind wins", weft.E("op", weft.Conflict, notFound), weft.Conflict, "Catalog abc not found.", "op"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if k := weft.KindOf(tc.err); k != tc.kind {
				t.Errorf("KindOf = %v, want %v", k, tc.kind)
			}
			if m := weft.MessageOf(tc.err); m != tc.message {
				t.Errorf("MessageOf = %q, want %q", m, tc.message)
			}
			if s := tc.err.Error(); !strings.Contains(s, tc.contains) {
				t.Errorf("Error() = %q, want it to contain %q", s, tc.contains)
			}
		})
	}
	if weft.KindOf(nil) != weft.Other {
		t.Error("KindOf(nil) should be Other")
	}
	if !errors.Is(weft.E("op", weft.Internal, cause), cause) {
		t.Error("E should wrap its cause")
	}
}

func TestUsageMonth(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2017, 1, 31, 23, 59, 0, 0, time.UTC), "2017-1"},
		{time.Date(2016, 12, 1, 0, 0, 0, 0, time.UTC), "2016-12"},
		{time.Date(2017, 2, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2017-1"}, // UTC decides
	}
	for _, tc := range tests {
		if got := weft.UsageMonth(tc.t); got != tc.want {
			t.Errorf("UsageMonth(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestCheckTransition(t *testing.T) {
	tests := []struct {
		current weft.CatalogStatus
		from    []weft.CatalogStatus
		msg     string // empty: allowed
	}{
		{weft.StatusNew, nil, ""},
		{weft.StatusReady, []weft.CatalogStatus{weft.StatusIndexing, weft.StatusReady}, ""},
		{weft.StatusUploading, []weft.CatalogStatus{weft.StatusNew},
			`Catalog c1 is uploading, not "new".`},
		{weft.StatusUploading, []weft.CatalogStatus{weft.StatusNew, weft.StatusUploadDone},
			`Catalog c1 is uploading, not "new" or "upload done".`},
	}
	for _, tc := range tests {
		err := weft.CheckTransition("op", "c1", tc.current, tc.from)
		if tc.msg == "" {
			if err != nil {
				t.Errorf("%s from %v: %v, want nil", tc.current, tc.from, err)
			}
			continue
		}
		if weft.KindOf(err) != weft.Conflict || weft.MessageOf(err) != tc.msg {
			t.Errorf("%s from %v: kind %v, message %q; want Conflict, %q",
				tc.current, tc.from, weft.KindOf(err), weft.MessageOf(err), tc.msg)
		}
	}
}
