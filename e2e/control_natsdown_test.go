package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

// TestExporterStartedBeforeNATS is issue 13, point 1, end to end: the
// exporter starts while NATS is down, stays alive and not ready (saying
// why), then becomes ready by itself once NATS is up and exports a scan.
func TestExporterStartedBeforeNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s3 := s3Server(t)

	cfg := config.Default()
	cfg.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	cfg.S3Endpoint, cfg.S3ForcePathStyle, cfg.AllowPlaintextCredentials = s3.Endpoint(), true, true
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ShutdownGrace = 5 * time.Second
	core, logs := observer.New(zap.InfoLevel)
	d := daemon.New(cfg, zap.New(core), prometheus.NewRegistry())
	started := make(chan error, 1)
	go func() { started <- d.Start(context.Background()) }()
	// One cleanup stops the exporter, then NATS: in the other order the
	// exporter's shutdown would wait out its whole grace for a NATS that
	// is gone (its subscriptions cannot drain).
	var ns *server.Server
	storeDir := t.TempDir() // removed after the cleanup below
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if ns != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	})

	for deadline := time.Now().Add(30 * time.Second); d.MetricsAddr() == "" || logs.FilterMessage("NATS not reachable; trying again").Len() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the exporter never tried NATS")
		}
	}
	base := "http://" + d.MetricsAddr()
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while NATS is down, want 200 (alive)", code)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "NATS not connected") {
		t.Errorf("/readyz = %d %q while NATS is down, want 503 and the reason", code, body)
	}

	ns, err = natstest.RunNATS(natstest.NATSOptions{Port: port, StoreDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatalf("the exporter did not become ready: %v", err)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q once NATS is up", code, body)
	}

	// It exports.
	e := newEnvOn(t, ns, ns.ClientURL(), s3, nil, false)
	b := e.bucket("nats-late")
	e.putAndWaitConn(e.integration("tenant-late", "i1", b, "prov-1"))
	files, set := prowlerFiles(81, "111122223333")
	e.publishScan("tenant-late", "prov-1", "111122223333", "scan-late", files)
	if st := e.waitExport("scan-late", "i1"); st.State != event.StateSucceeded {
		t.Fatalf("export %s: %+v", st.State, st.Errors)
	}
	if got := len(e.objects(b)); got != len(set) {
		t.Errorf("%d objects landed, want %d", got, len(set))
	}
}
