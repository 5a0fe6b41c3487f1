package main

import (
	"context"
	"fmt"

	"github.com/prowler-cloud/s3-exporter/internal/fernet"
)

const keyGenerateHelp = `Usage: exporterctl key generate > fernet.key

Prints a new random Fernet key (32 bytes, url-safe base64), the format of
S3EXPORTER_CREDENTIALS_KEY and of --key-file. It needs no NATS. To rotate,
put the new key first: S3EXPORTER_CREDENTIALS_KEY=<new>,<old> (the first
encrypts, all decrypt); drop the old one once every integration has been
put again with the new one.
`

func runKeyGenerate(_ context.Context, a *app, args []string) error {
	fs := newFlagSet("key generate")
	pos, err := a.parse(fs, "key generate", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	key, err := fernet.GenerateKey()
	if err != nil {
		return fmt.Errorf("generating a key: %w", err)
	}
	_, err = fmt.Fprintln(a.stdout, key)
	return err
}
