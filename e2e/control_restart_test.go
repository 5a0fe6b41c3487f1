package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gauge returns the value of a gauge series by its labels (-1 when absent).
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestRestartKeepsTheLastConnectionStatus (issue 15, part 2, point 4): a
// restarted replica shows the last connection status of each integration,
// read back from the status stream, in "integration get" and in the
// integrations gauge, before any new test.
func TestRestartKeepsTheLastConnectionStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	up := e.putAndWaitConn(e.integration("tenant-r", "up", e.bucket("restart-status"), "prov-1"))
	down := e.putAndWaitConn(e.integration("tenant-r", "down", "no-such-bucket-restart", "prov-1"))
	if !up.Connected || down.Connected {
		t.Fatalf("before the restart: up %+v, down %+v", up, down)
	}
	e.stop()
	before := len(e.statusStream())
	e.start()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, want := range []struct {
		id        string
		connected bool
		at        time.Time
	}{{"up", true, up.LastCheckedAt}, {"down", false, down.LastCheckedAt}} {
		got, err := e.cl.Get(ctx, "tenant-r", want.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == nil || got.Status.Connected != want.connected || !got.Status.LastCheckedAt.Equal(want.at) {
			t.Errorf("%s after the restart: status %+v, want connected=%t checked at %s", want.id, got.Status, want.connected, want.at)
		}
	}
	for _, tc := range []struct {
		connected string
		want      float64
	}{{"true", 1}, {"false", 1}, {"unknown", 0}} {
		if got := gauge(t, e.reg, "s3exporter_integrations", map[string]string{"enabled": "true", "connected": tc.connected}); got != tc.want {
			t.Errorf("s3exporter_integrations{enabled=true,connected=%s} = %v, want %v", tc.connected, got, tc.want)
		}
	}
	// Read back, not tested again: the restart published no status.
	if n := len(e.statusStream()); n != before {
		t.Errorf("the restart published %d statuses", n-before)
	}
}

// TestGracefulShutdownLogsNoDisconnection (issue 15, part 2, point 6): a
// shutdown closes the NATS connection on purpose; that is no warning.
func TestGracefulShutdownLogsNoDisconnection(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	e.putAndWaitConn(e.integration("tenant-s", "i1", e.bucket("graceful"), "prov-1"))
	logs := e.logs
	e.stop()
	if n := logs.FilterMessage("NATS disconnected").Len(); n != 0 {
		t.Errorf("a graceful shutdown logged %d \"NATS disconnected\" warnings:\n%s", n, e.logText())
	}
	if logs.FilterMessage("NATS connection closed").Len() != 1 {
		t.Errorf("the close of the connection was not logged (at debug):\n%s", e.logText())
	}
}
