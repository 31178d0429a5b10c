package main

import (
	"context"
	"errors"
	"io"

	"github.com/weftlabs/weft/auth"
)

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: weft keys create (--data DIR | --db URL) --name NAME")
	}
	fs := flagSet("keys create (--data DIR | --db URL) --name NAME",
		`Creates an API key pair and prints {"api_key": …, "api_secret": …}. Only a hash
of the secret is stored: this is the one time it is shown. Safe to run while a
server uses the same store.`, stderr)
	data := strFlag(fs, "data", "./data", "data directory of the embedded store")
	db := strFlag(fs, "db", "", "PostgreSQL URL instead of --data")
	name := fs.String("name", "", "a name for the key (who or what uses it)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" {
		fs.Usage()
		return errors.New("--name is required")
	}
	store, _, err := openStore(ctx, *data, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	key, secret, err := (&auth.Service{Store: store}).CreateKey(ctx, *name)
	if err != nil {
		return err
	}
	return printJSON(stdout, map[string]string{"api_key": key, "api_secret": secret})
}
