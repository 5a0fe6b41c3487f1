package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

func TestUnmanagedStreamsMustExist(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server
	ns := natstest.StartNATS(t)
	cfg := config.Default()
	cfg.NATSURL = ns.ClientURL()
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ManageStreams = false
	d := daemon.New(cfg, zap.NewNop(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Start(ctx)
	if err == nil {
		_ = d.Shutdown(ctx)
		t.Fatal("started without the streams it may not create")
	}
	if !strings.Contains(err.Error(), "PROWLER_SCANS does not exist") || !strings.Contains(err.Error(), "S3EXPORTER_MANAGE_STREAMS") {
		t.Fatalf("unclear error: %v", err)
	}
	// Once created (here by a managing replica), an unmanaged one starts.
	ensureStreams(t, cfg)
	d = daemon.New(cfg, zap.NewNop(), nil)
	if err := d.Start(ctx); err != nil {
		t.Fatalf("with the streams in place: %v", err)
	}
	_ = d.Shutdown(ctx)
}

// An upload longer than the ack wait is not redelivered: the consumer sends
// InProgress while it runs.
func TestLongUploadsOutliveTheAckWait(t *testing.T) {
	if testing.Short() {
		t.Skip("takes several ack waits")
	}
	// Not parallel: with an ack wait of 1 s the exporter's heartbeat runs
	// every 333 ms, and the guarantee is that the server never sees 1 s
	// without one. Starved of CPU by parallel tests on a small machine, a
	// heartbeat late by 0.7 s would redeliver the scan and fail the test
	// for a reason that is the machine's, not the exporter's.
	proxy := s3test.NewFaultProxy(t, s3Server(t).Endpoint())
	proxy.SetFaults(s3test.Faults{BytesPerSecond: 3 << 19}) // per request; parts upload three at a time
	e := newEnv(t, func(c *config.Config) {
		c.S3Endpoint = proxy.URL()
		c.AckWait = time.Second
		c.PartSize, c.MultipartThreshold = 5<<20, 5<<20
	})
	b := e.bucket("slow")
	e.put(e.integration("tenant-a", "slow", b, "prov-1"))
	big := make([]byte, 12<<20) // parts of 5, 5 and 2 MiB: ~3.4 s, over three ack waits
	for i := range big {
		big[i] = byte(i >> 8)
	}
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-slow",
		[]fixtures.OutputFile{{Format: "json-ocsf", FileName: "out.ocsf.json", Body: big}})
	st := e.waitExport("scan-slow", "slow")
	if st.State != event.StateSucceeded || st.Attempt != 1 {
		t.Fatalf("want succeeded on the first delivery, got %s attempt %d %v", st.State, st.Attempt, st.Errors)
	}
	if took := st.FinishedAt.Sub(st.StartedAt); took < 2*e.cfg.AckWait {
		t.Fatalf("the upload took %v: not longer than the ack wait, the test proves nothing", took)
	}
	key := "output/json-ocsf/prowler-output-111122223333-20250805120000.ocsf.json"
	if n := e.s3.MustPutCount(t, b, key); n != 1 {
		t.Fatalf("%s completed %d times, want 1 (redelivered while uploading?)", key, n)
	}
	if n := len(e.exports("scan-slow", "slow")); n != 1 {
		t.Fatalf("%d statuses, want 1", n)
	}
}

// An integration without credentials uses the exporter's own AWS identity
// (the SDK default chain; here its environment variables).
func TestNoCredentialsMeansTheDefaultChain(t *testing.T) {
	// Not parallel: t.Setenv changes the process's environment, which
	// every exporter of this test binary reads (a serial test runs before
	// the parallel ones start).
	srv := s3Server(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	// Contract v1.1: only where the operator allows the exporter's own
	// identity (TestAmbientCredentialsRefusedUnlessAllowed shows the refusal).
	e := newEnv(t, func(c *config.Config) { c.AllowAmbientCredentials = true })
	b := e.bucket("default-chain")
	in := e.integration("tenant-a", "ambient", b, "prov-1")
	in.Credentials = nil
	e.put(in)
	files, _ := prowlerFiles(41, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-ambient", files)
	if st := e.waitExport("scan-ambient", "ambient"); st.State != event.StateSucceeded {
		t.Fatalf("%s %v", st.State, st.Errors)
	}
	if got := e.objects(b); len(got) != len(files) {
		t.Fatalf("%d objects, want %d", len(got), len(files))
	}
}

// A stream an operator created or tuned is left as it is.
func TestExistingStreamsAreNotChanged(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server
	ns := natstest.StartNATS(t)
	cfg := config.Default()
	cfg.NATSURL = ns.ClientURL()
	cfg.MetricsAddr = "127.0.0.1:0"
	ensureStreams(t, cfg)
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "PROWLER_SCANS")
	if err != nil {
		t.Fatal(err)
	}
	sc := st.CachedInfo().Config
	sc.MaxAge = 72 * time.Hour
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	d := daemon.New(cfg, zap.NewNop(), nil)
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_ = d.Shutdown(ctx)
	st, _ = js.Stream(ctx, "PROWLER_SCANS")
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 72*time.Hour {
		t.Fatalf("the exporter changed the stream's max age to %v", info.Config.MaxAge)
	}
}
