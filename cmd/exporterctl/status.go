package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prowler-cloud/s3-exporter/client"
)

const statusWatchHelp = `Usage: exporterctl status watch [--tenant T] [--from-start] [--count N]

Prints export and connection status events as JSON lines, one event per
line, as the exporter published them, until interrupted.

Flags:
  --tenant T      only this tenant's events
  --from-start    start at the oldest event the status stream holds (default: new events only)
  --count N       exit after N events (default 0: never)
`

func runStatusWatch(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("status watch")
	a.g.register(fs)
	var tenant string
	var fromStart bool
	var count int
	fs.StringVar(&tenant, "tenant", "", "")
	fs.BoolVar(&fromStart, "from-start", false, "")
	fs.IntVar(&count, "count", 0, "")
	pos, err := a.parse(fs, "status watch", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if tenant != "" {
		if err := requireIDs(map[string]string{"--tenant": tenant}); err != nil {
			return err
		}
	}
	if count < 0 {
		return usageErrorf("--count must not be negative")
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	seen := 0
	var writeErr error
	err = cl.WatchStatus(ctx, tenant, fromStart, func(s client.Status) bool {
		var b []byte
		if s.Export != nil {
			b, writeErr = json.Marshal(s.Export)
		} else {
			b, writeErr = json.Marshal(s.Connection)
		}
		if writeErr == nil {
			_, writeErr = fmt.Fprintf(a.stdout, "%s\n", b)
		}
		seen++
		return writeErr == nil && (count == 0 || seen < count)
	})
	if err != nil {
		return fmt.Errorf("watching status events: %w", err)
	}
	if writeErr != nil {
		return writeErr
	}
	if count > 0 && seen < count {
		// Interrupted before the count was reached.
		return fmt.Errorf("stopped after %d of %d events: %w", seen, count, context.Cause(ctx))
	}
	return nil
}
