package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestHelpDocumentsEveryFlag: `weft help serve` names every flag with the
// environment variable behind it, as the operator interface promises.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out, errw bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, &out, &errw)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve --help: %v", err)
	}
	help := errw.String()
	for _, want := range []string{"-addr", "WEFT_ADDR", "-data", "WEFT_DATA", "-db", "WEFT_DB",
		"-allow-private-urls", "WEFT_ALLOW_PRIVATE_URLS", "-max-image-bytes", "-max-pixels", "-models"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, help)
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"help"}, &out, &errw); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "keys create", "bench embed", "bench ann", "bench api", "eval"} {
		if !strings.Contains(out.String(), "weft "+cmd) {
			t.Errorf("weft help lacks %q", cmd)
		}
	}
}

func TestEnvironmentFallback(t *testing.T) {
	t.Setenv("WEFT_ADDR", "127.0.0.1:9999")
	t.Setenv("WEFT_ALLOW_PRIVATE_URLS", "true")
	t.Setenv("WEFT_FETCH_CONCURRENCY", "3")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	addr := strFlag(fs, "addr", "localhost:8080", "")
	allow := boolFlag(fs, "allow-private-urls", false, "")
	n := intFlag(fs, "fetch-concurrency", 16, "")
	data := strFlag(fs, "data", "./data", "")
	if err := fs.Parse([]string{"--fetch-concurrency", "5"}); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9999" || !*allow || *data != "./data" {
		t.Errorf("env fallback: addr %q allow %v data %q", *addr, *allow, *data)
	}
	if *n != 5 {
		t.Errorf("a flag on the command line should beat the environment: got %d", *n)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errw bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errw); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), nil, &out, &errw); err == nil {
		t.Fatal("no command accepted")
	}
}
