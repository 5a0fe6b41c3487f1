package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/prowler-cloud/s3-exporter/event"
)

const integrationListHelp = `Usage: exporterctl integration list --tenant T

Lists the integrations of one tenant as the exporter holds them (credentials
redacted), with their last connection status: a table, or with --json the
reply as JSON ({"integrations": [...]}, each as "integration get" prints it).
The request goes to prowler.control.<T>.integrations.list, which a tenant's
admin may be granted alone (docs/security.md).
`

func runIntegrationList(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("integration list")
	a.g.register(fs)
	var tenant string
	fs.StringVar(&tenant, "tenant", "", "")
	pos, err := a.parse(fs, "integration list", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := requireIDs(map[string]string{"--tenant": tenant}); err != nil {
		return err
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	var rep event.ListReply
	if err := a.request(ctx, func(ctx context.Context) (err error) { rep, err = cl.List(ctx, tenant); return err }); err != nil {
		return fmt.Errorf("listing the integrations of tenant %s: %w", tenant, err)
	}
	if a.g.json {
		return a.printJSON(rep)
	}
	if len(rep.Integrations) == 0 {
		fmt.Fprintf(a.stdout, "tenant %s has no integration the exporter knows\n", tenant)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENABLED\tBUCKET\tDIRECTORY\tPROVIDERS\tCONNECTED\tLAST CHECKED")
	for _, r := range rep.Integrations {
		in := r.Integration
		enabled := in.Enabled == nil || *in.Enabled
		connected, checked := "unknown", "-"
		if r.Status != nil {
			connected = fmt.Sprint(r.Status.Connected)
			if r.Status.Error != nil {
				connected += " (" + r.Status.Error.Code + ")"
			}
			checked = r.Status.LastCheckedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%s\t%s\t%s\n", in.ID, enabled, in.Configuration.BucketName,
			orDash(in.Configuration.OutputDirectory), orDash(strings.Join(in.Providers, ",")), connected, checked)
	}
	return tw.Flush()
}
