package main

import (
	"context"
	"fmt"

	"github.com/prowler-cloud/s3-exporter/event"
)

const replayHelp = `Usage: exporterctl replay --tenant T --scan S [--integration I]

Asks the exporter to export a scan again, read back from the scans stream:
to one integration, or to every integration of the tenant that exports the
scan's provider. The ledger of what was already uploaded is ignored. Follow
the outcome with "exporterctl status watch --tenant T".
`

func runReplay(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("replay")
	a.g.register(fs)
	var tenant, scan, integ string
	fs.StringVar(&tenant, "tenant", "", "")
	fs.StringVar(&scan, "scan", "", "")
	fs.StringVar(&integ, "integration", "", "")
	pos, err := a.parse(fs, "replay", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	ids := map[string]string{"--tenant": tenant, "--scan": scan}
	if integ != "" {
		ids["--integration"] = integ
	}
	if err := requireIDs(ids); err != nil {
		return err
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	var rep event.ReplayReply
	err = a.request(ctx, func(ctx context.Context) (err error) { rep, err = cl.Replay(ctx, tenant, scan, integ); return err })
	if err != nil {
		return fmt.Errorf("replay of scan %s: %w", scan, err)
	}
	if !rep.Accepted {
		return fmt.Errorf("replay of scan %s was not accepted", scan)
	}
	if a.g.json {
		return a.printJSON(rep)
	}
	target := "every integration that exports its provider"
	if integ != "" {
		target = "integration " + integ
	}
	fmt.Fprintf(a.stdout, "replay of scan %s to %s accepted\n", scan, target)
	return nil
}
