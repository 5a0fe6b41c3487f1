package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadinessAndMetricsFollowTheExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the replica to notice that NATS is gone")
	}
	t.Parallel() // a world of its own: its NATS server, its bucket, its registry
	e := newEnv(t, nil)
	base := "http://" + e.d.MetricsAddr()
	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz of a started exporter: %d %s", code, body)
	}
	b := e.bucket("observed")
	e.put(e.integration("tenant-a", "observed", b, "prov-1"))
	files, _ := prowlerFiles(31, "111122223333", frameworks[0])
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-observed", files)
	if st := e.waitExport("scan-observed", "observed"); st.State != event.StateSucceeded {
		t.Fatalf("%s %v", st.State, st.Errors)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		"s3exporter_scans_received_total 1",
		`s3exporter_exports_total{result="succeeded"} 1`,
		`s3exporter_uploads_total{format="csv",result="success"} 1`,
		`s3exporter_uploads_total{format="compliance",result="success"} 1`,
		`s3exporter_uploads_total{format="html",result="failure"} 0`,
		"s3exporter_cache_ready 1",
		"s3exporter_nats_connected 1",
		`s3exporter_integrations{connected="true",enabled="true"} 1`,
		"s3exporter_uploads_in_flight 0",
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "tenant-a") || strings.Contains(metrics, "observed") {
		t.Error("/metrics carries tenant or integration ids as labels")
	}

	// Losing NATS makes the replica unready (and it recovers on its own, as
	// the reconnect tests show).
	e.ns.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := httpGet(t, base+"/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "NATS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q with NATS down", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Stop the exporter here, briefly: with NATS gone its subscriptions
	// cannot drain, so a shutdown takes whatever time it is given, which is
	// not what this test is about.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := e.d.Shutdown(ctx); err != nil {
		t.Errorf("shutdown with NATS down: %v", err)
	}
	e.d = nil
}
