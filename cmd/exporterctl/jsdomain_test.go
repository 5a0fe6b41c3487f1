package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// TestJSDomainFromALeafNode: a scan engine on a leaf node publishes a scan
// folder with exporterctl to an exporter at the hub, naming the hub's
// JetStream domain with --js-domain, and again through a nats CLI context's
// jetstream_domain; --wait sees the export succeed and the objects land.
func TestJSDomainFromALeafNode(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: NATS hub and leaf, versitygw, the exporter")
	}
	t.Parallel() // a world of its own: its NATS server, its S3 server, its exporter
	hub, leaf := natstest.StartHubAndLeaf(t)
	s3srv := s3test.StartS3(t)
	cfg := config.Default()
	cfg.NATSURL = hub.ClientURL()
	cfg.NATSJSDomain = natstest.HubDomain
	cfg.S3Endpoint = s3srv.Endpoint()
	cfg.S3ForcePathStyle = true
	cfg.AllowPlaintextCredentials = true
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.Backoff = []time.Duration{200 * time.Millisecond}
	cfg.RetryBaseDelay = 20 * time.Millisecond
	cfg.ShutdownGrace = 5 * time.Second
	d := daemon.New(cfg, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("starting the exporter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	waitStreamsAtLeaf(ctx, t, leaf.ClientURL(), "PROWLER_SCANS")

	home := t.TempDir()
	writeContext(t, home, "edge", `{"url":"`+leaf.ClientURL()+`","jetstream_domain":"hub"}`)
	w := &world{t: t, url: leaf.ClientURL(), s3: s3srv, env: map[string]string{"HOME": home}}
	const (
		tenant = "tenant-1"
		uid    = "111122223333"
		bucket = "jsdomain-ctl"
	)
	if err := s3srv.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	w.env["AWS_SECRET_ACCESS_KEY"] = s3srv.SecretKey
	w.must(0, "--js-domain", "hub", "integration", "put", "--tenant", tenant, "--id", "i1", "--bucket", bucket,
		"--dir", "edge", "--provider", "aws-1", "--access-key-id", s3srv.AccessKey)
	delete(w.env, "AWS_SECRET_ACCESS_KEY")
	w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "i1")

	// Without the domain the leaf's own JetStream answers: the scan is not
	// published, and the error says where to look.
	folder, _, start := writeScanFolder(t, 39, uid, "cis_5.0_aws")
	r := w.must(exitError, "scan", "publish", folder, "--tenant", tenant, "--provider-id", "aws-1",
		"--provider-uid", uid, "--started-at", start.Format(time.RFC3339), "--wait")
	if !strings.Contains(r.stderr, "no JetStream domain") || !strings.Contains(r.stderr, "--js-domain") {
		t.Errorf("scan publish --wait without the domain: %v", r)
	}

	for i, how := range [][]string{{"--js-domain", "hub"}, {"--context", "edge"}} {
		folder, files, start := writeScanFolder(t, int64(40+i), uid, "cis_5.0_aws")
		// --context sets the server too; run passes the leaf's URL anyway.
		args := append(append([]string{}, how...), "scan", "publish", folder, "--tenant", tenant,
			"--provider-id", "aws-1", "--provider-uid", uid, "--started-at", start.Format(time.RFC3339), "--wait")
		r := w.must(0, args...)
		if !strings.Contains(r.stdout, "integration i1: succeeded") {
			t.Errorf("%v scan publish --wait:\n%s", how, r.stdout)
		}
		for _, f := range files {
			key := exporter.ObjectKey("edge", event.Artifact{Format: f.Format, Framework: f.Framework}, uid, start)
			o, err := s3srv.GetObject(bucket, key)
			if err != nil || !bytes.Equal(o.Body, f.Body) {
				t.Errorf("%v: %s: %v, or not the file's %d bytes", how, key, err, len(f.Body))
			}
		}
	}
}

// waitStreamsAtLeaf waits until the stream the exporter made at the hub
// answers through the hub's domain at the leaf.
func waitStreamsAtLeaf(ctx context.Context, t *testing.T, url, stream string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, natstest.HubDomain)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := js.Stream(ctx, stream); err == nil {
			return
		} else if ctx.Err() != nil {
			t.Fatalf("%s never answered at the leaf: %v", stream, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
