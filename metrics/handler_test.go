package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type readyState struct{ err atomic.Pointer[error] }

func (r *readyState) set(err error) { r.err.Store(&err) }
func (r *readyState) ready() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

func serve(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthzAndReadyz(t *testing.T) {
	var st readyState
	st.set(errors.New("integration cache not caught up: at 3 of 7"))
	s := NewServer("127.0.0.1:0", prometheus.NewRegistry(), st.ready, nil)
	h := s.srv.Handler

	if code, body := serve(t, h, http.MethodGet, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	code, body := serve(t, h, http.MethodGet, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "integration cache not caught up: at 3 of 7") {
		t.Errorf("/readyz while not ready = %d %q, want 503 with the reason", code, body)
	}
	// Liveness does not follow readiness.
	if code, _ := serve(t, h, http.MethodGet, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready = %d, want 200", code)
	}

	st.set(nil)
	if code, body := serve(t, h, http.MethodGet, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz when ready = %d %q, want 200 ok", code, body)
	}
	if code, _ := serve(t, h, http.MethodHead, "/readyz"); code != http.StatusOK {
		t.Errorf("HEAD /readyz = %d, want 200", code)
	}
	if code, _ := serve(t, h, http.MethodPost, "/healthz"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", code)
	}
	if code, _ := serve(t, h, http.MethodGet, "/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestNilReadyIsReady(t *testing.T) {
	s := NewServer("127.0.0.1:0", prometheus.NewRegistry(), nil, nil)
	if code, _ := serve(t, s.srv.Handler, http.MethodGet, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with nil ready = %d, want 200", code)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServerServesAndShutsDown(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{Version: "9.9.9", Revision: "deadbeef"})
	m.ScansReceived.Add(5)
	var st readyState
	st.set(errors.New("nats disconnected"))
	s := NewServer("127.0.0.1:0", reg, st.ready, nil)
	if err := s.listen(); err != nil {
		t.Fatal(err)
	}
	if err := s.listen(); err == nil {
		t.Error("second Start succeeded")
	}
	base := "http://" + s.Addr()
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("Addr() = %s, want the bound port", s.Addr())
	}

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK ||
		!strings.Contains(body, "s3exporter_scans_received_total 5") ||
		!strings.Contains(body, `s3exporter_build_info{branch="",goarch=`) ||
		!strings.Contains(body, `revision="deadbeef",tags="",version="9.9.9"} 1`) ||
		!strings.Contains(body, "\ngo_goroutines ") ||
		!strings.Contains(body, "\ngo_gc_gomemlimit_bytes ") ||
		!strings.Contains(body, "\nprocess_resident_memory_bytes ") ||
		!strings.Contains(body, "\nprocess_start_time_seconds ") ||
		!strings.Contains(body, `s3exporter_dead_letters_total{reason="MalformedEvent"} 0`) {
		t.Errorf("/metrics = %d\n%s", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "nats disconnected") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("server still answers after Shutdown")
	}
}

func TestStartFailsOnBusyAddress(t *testing.T) {
	a := NewServer("127.0.0.1:0", prometheus.NewRegistry(), nil, nil)
	if err := a.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.shutdown(context.Background()) })
	b := NewServer(a.Addr(), prometheus.NewRegistry(), nil, nil)
	if err := b.listen(); err == nil {
		_ = b.shutdown(context.Background())
		t.Fatalf("second server bound %s too", a.Addr())
	}
	// Shutdown of a server that never started is a no-op.
	if err := b.shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
}

// TestRunServesFromReadyUntilItsContextEnds: Run says ready once the
// address is bound, serves, and returns once its context ends, the
// listener closed; a busy address ends it with the error.
func TestRunServesFromReadyUntilItsContextEnds(t *testing.T) {
	s := NewServer("127.0.0.1:0", prometheus.NewRegistry(), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- s.Run(ctx, func() { close(ready) }) }()
	<-ready
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	busy := NewServer(s.Addr(), prometheus.NewRegistry(), nil, nil)
	if err := busy.Run(context.Background(), func() { t.Error("ready on a busy address") }); err == nil {
		t.Error("Run on a busy address succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if _, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Error("the server still answers after Run returned")
	}
}
