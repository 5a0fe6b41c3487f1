package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/config"
)

// freePort returns a TCP port nothing listens on (for a server started
// later at a known address).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startNATSOn(t *testing.T, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func testConfig(natsURL string) *config.Config {
	cfg := config.Default()
	cfg.NATSURL = natsURL
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ShutdownGrace = 5 * time.Second
	cfg.S3Endpoint = "http://127.0.0.1:1" // never reached: no scan is exported
	return cfg
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond (the daemon works on its own goroutines).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartsBeforeNATSAndBecomesReadyByItself is issue 13, point 1: NATS
// down at start is no exit; /healthz says alive, /readyz says why not
// ready, and the replica becomes ready once NATS answers.
func TestStartsBeforeNATSAndBecomesReadyByItself(t *testing.T) {
	port := freePort(t)
	core, logs := observer.New(zap.InfoLevel)
	d := New(testConfig(fmt.Sprintf("nats://127.0.0.1:%d", port)), zap.New(core), nil)
	started := make(chan error, 1)
	go func() { started <- d.Start(context.Background()) }()
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })

	waitFor(t, "the metrics server listens", func() bool { return d.MetricsAddr() != "" })
	base := "http://" + d.MetricsAddr()
	waitFor(t, "a connection attempt failed", func() bool { return logs.FilterMessage("NATS not reachable; trying again").Len() > 0 })
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while NATS is down, want 200", code)
	}
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "NATS not connected") {
		t.Errorf("/readyz = %d %q while NATS is down, want 503 with the reason", code, body)
	}
	select {
	case err := <-started:
		t.Fatalf("Start returned %v while NATS is down", err)
	default:
	}

	startNATSOn(t, port)
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q once NATS is up", code, body)
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the metrics server still answers after Shutdown")
	}
}

// TestStartGivesUpWithItsContext: a Start that cannot reach NATS ends with
// its context, says why, and leaves nothing running.
func TestStartGivesUpWithItsContext(t *testing.T) {
	d := New(testConfig(fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))), zap.NewNop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, "the metrics server listens", func() bool { return d.MetricsAddr() != "" })
		cancel()
	}()
	err := d.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "NATS not connected") {
		t.Fatalf("Start = %v, want the reason it was not ready", err)
	}
	if _, err := http.Get("http://" + d.MetricsAddr() + "/healthz"); err == nil {
		t.Error("the metrics server outlived a failed Start")
	}
}

// TestFailedStartStopsWhatItStarted: a start that fails past the connection
// (the streams are missing and may not be created) takes the shutdown path.
func TestFailedStartStopsWhatItStarted(t *testing.T) {
	s := startNATSOn(t, server.RANDOM_PORT)
	cfg := testConfig(s.ClientURL())
	cfg.ManageStreams = false
	core, logs := observer.New(zap.DebugLevel)
	d := New(cfg, zap.New(core), nil)
	err := d.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded without the streams")
	}
	// The client closed; the server notices on its own time.
	waitFor(t, "no NATS connection left", func() bool { return s.NumClients() == 0 })
	if _, err := http.Get("http://" + d.MetricsAddr() + "/healthz"); err == nil {
		t.Error("the metrics server outlived a failed Start")
	}
	if logs.FilterMessage("NATS disconnected").Len() != 0 {
		t.Error("closing on a failed start warned of a disconnection")
	}
	if err := d.Shutdown(context.Background()); err == nil || err.Error() != d.err.Error() {
		t.Errorf("Shutdown after a failed start = %v", err)
	}
}

// TestReadinessFollowsTheScansConsumer is issue 14: a scans consumer
// deleted under a running replica makes it not ready, with the reason.
func TestReadinessFollowsTheScansConsumer(t *testing.T) {
	s := startNATSOn(t, server.RANDOM_PORT)
	d := New(testConfig(s.ClientURL()), zap.NewNop(), nil)
	d.checkEvery = 20 * time.Millisecond
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	if err := d.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteConsumer(context.Background(), "PROWLER_SCANS", "s3-exporter"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready", func() bool { return d.Ready() != nil })
	if err := d.Ready(); !strings.Contains(err.Error(), `scans consumer "s3-exporter"`) {
		t.Errorf("Ready = %v", err)
	}
}

// TestRefusedCredentialsEndTheStart: a server that refuses the exporter's
// credentials is no outage to wait out; the start fails and says why.
func TestRefusedCredentialsEndTheStart(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), Username: "exporter", Password: "right-pw"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	d := New(testConfig(fmt.Sprintf("nats://exporter:wrong-pw@%s", s.Addr())), zap.NewNop(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.Start(ctx)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") || strings.Contains(err.Error(), "wrong-pw") {
		t.Fatalf("Start = %v, want the refusal, without the password", err)
	}
	if ctx.Err() != nil {
		t.Error("Start waited for its context instead of failing")
	}
}
