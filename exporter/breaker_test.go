package exporter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/sched"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

type bytesOpener []byte

func (b bytesOpener) Open(context.Context, *event.ScanCompleted, event.Artifact) (*source.Opened, error) {
	return &source.Opened{ReadCloser: io.NopCloser(bytes.NewReader(b)), Size: int64(len(b))}, nil
}

// A bucket that never answers: each Export fails within the response
// timeout as a retryable Timeout; after BreakerFailures of them the
// destination's breaker opens (OnBreaker is told, with the cause), and the
// next Export fails at once without a request, retryable, with the code of
// the failure that opened it and sched.ErrOpen in its chain.
func TestBlackHoleOpensTheBreakerAndThenFailsFast(t *testing.T) {
	srv, requests := blackHole(t, true)
	clients, err := NewClients(context.Background(), ClientOptions{Endpoint: srv.URL, PathStyle: true, ResponseTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		changes []string
	)
	e := New(clients, bytesOpener("a,b\n"), Options{BreakerFailures: 2, BreakerCooldown: time.Hour, RetryBaseDelay: time.Millisecond,
		OnBreaker: func(ig *integration.Integration, open bool, cause *errcode.Error) {
			mu.Lock()
			defer mu.Unlock()
			if open {
				changes = append(changes, "open "+string(cause.Code))
			} else {
				changes = append(changes, "closed")
			}
		}}, zap.NewNop())
	ig := &integration.Integration{ID: "ig", TenantID: "t", Enabled: true, Providers: []string{"p"}, Bucket: "hole",
		OutputDirectory: "output", Credentials: event.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}}
	size := int64(4)
	scan := &event.ScanCompleted{ScanID: "s", TenantID: "t", Provider: event.Provider{ID: "p", UID: "111122223333"},
		StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC),
		Artifacts: []event.Artifact{{Format: event.FormatCSV, Source: "nats-os://B/t/s/out.csv", Size: &size}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for i := range 2 {
		ar := e.Export(ctx, scan, []Job{{Integration: ig}})[0].Artifacts[0]
		if ar.Err == nil || ar.Err.Code != errcode.Timeout || !ar.Err.Retryable || !errors.Is(ar.Err, ErrNoResponse) {
			t.Fatalf("export %d through a black hole: %v, want a retryable Timeout (no response)", i+1, ar.Err)
		}
	}
	mu.Lock()
	got := append([]string(nil), changes...)
	mu.Unlock()
	if len(got) != 1 || got[0] != "open Timeout" {
		t.Fatalf("breaker changes %v, want one opening on Timeout", got)
	}
	before := requests.Load()
	ar := e.Export(ctx, scan, []Job{{Integration: ig}})[0].Artifacts[0]
	if ar.Err == nil || !ar.Err.Retryable || ar.Err.Code != errcode.Timeout || !errors.Is(ar.Err, sched.ErrOpen) {
		t.Fatalf("export with the breaker open: %v, want a retryable Timeout with ErrOpen", ar.Err)
	}
	if n := requests.Load(); n != before {
		t.Fatalf("%d requests sent with the breaker open", n-before)
	}
	if len(ar.Retried) != 0 {
		t.Fatalf("retried in process against an open breaker: %v", ar.Retried)
	}
	if st, ok := e.Scheduler().Dest(destKey("t", ig)); !ok || st.Breaker != sched.Open {
		t.Fatalf("destination state %+v", st)
	}
}
