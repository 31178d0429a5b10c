// Command weft is Weft's single binary: the v0 API server, key management,
// benchmarks and model evaluation. Run `weft help` for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `weft — self-hosted fashion image recognition (Thread Genius v0 API)

Usage:
  weft serve  [--addr HOST:PORT] [--data DIR] [--db URL] [--allow-private-urls] [flags]
  weft keys create (--data DIR | --db URL) --name NAME
  weft bench embed --images DIR [--n N]
  weft bench ann --base B.fvecs --queries Q.fvecs [--k 10] [--recall 0.95] [--threads 1] [--out N.ivecs]
  weft bench api [--images DIR] [--n N]
  weft eval [--shared DIR] [--models DIR]
  weft help [COMMAND]

Every flag can also be set by an environment variable, named in each
command's help (weft help serve); a flag on the command line wins.
Benchmarks and eval print one JSON object on their last line.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stderr)
	case "keys":
		return runKeys(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "eval":
		return runEval(ctx, rest, stdout, stderr)
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// flagSet returns a FlagSet whose usage names the environment variable
// behind each flag.
func flagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: weft %s\n\n%s\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// env names the environment variable that stands in for a flag.
func env(flagName string) string {
	return "WEFT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func strFlag(fs *flag.FlagSet, name, def, help string) *string {
	if v, ok := os.LookupEnv(env(name)); ok {
		def = v
	}
	return fs.String(name, def, help+" (env "+env(name)+")")
}

func intFlag(fs *flag.FlagSet, name string, def int, help string) *int {
	if v, ok := os.LookupEnv(env(name)); ok {
		if n, err := strconv.Atoi(v); err == nil {
			def = n
		}
	}
	return fs.Int(name, def, help+" (env "+env(name)+")")
}

func boolFlag(fs *flag.FlagSet, name string, def bool, help string) *bool {
	if v, ok := os.LookupEnv(env(name)); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			def = b
		}
	}
	return fs.Bool(name, def, help+" (env "+env(name)+")")
}

func durFlag(fs *flag.FlagSet, name string, def time.Duration, help string) *time.Duration {
	if v, ok := os.LookupEnv(env(name)); ok {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		}
	}
	return fs.Duration(name, def, help+" (env "+env(name)+")")
}

// printJSON writes v as one line of JSON: the last line of every bench and
// eval command, for the tools that read it.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
