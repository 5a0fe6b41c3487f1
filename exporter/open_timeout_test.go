package exporter

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/source"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// hangingOpener's first Open never answers (as a JetStream request whose
// reply was lost in a NATS fail-over): it returns only when its context ends.
// Later opens succeed.
type hangingOpener struct {
	calls    atomic.Int32
	released atomic.Bool
	body     []byte
}

func (o *hangingOpener) Open(ctx context.Context, _ *event.ScanCompleted, _ event.Artifact) (*source.Opened, error) {
	if o.calls.Add(1) == 1 {
		<-ctx.Done()
		o.released.Store(true)
		return nil, ctx.Err()
	}
	return &source.Opened{ReadCloser: io.NopCloser(bytes.NewReader(o.body)), Size: int64(len(o.body))}, nil
}

func TestAnOpenThatNeverAnswersIsTimedOutAndRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("runs versitygw")
	}
	s3srv := s3test.StartS3(t)
	s3srv.MustCreateBucket(t, "open-timeout")
	ctx := context.Background()
	clients, err := NewClients(ctx, ClientOptions{Endpoint: s3srv.Endpoint(), PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	op := &hangingOpener{body: []byte("a,b\n1,2\n")}
	e := New(clients, op, Options{OpenTimeout: 200 * time.Millisecond, Retries: 2, RetryBaseDelay: 10 * time.Millisecond,
		UploadTimeout: time.Hour}, zap.NewNop())
	ig := &integration.Integration{ID: "ig", TenantID: "t", Enabled: true, Providers: []string{"p"}, Bucket: "open-timeout",
		OutputDirectory: "output", Credentials: event.Credentials{AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey}}
	scan := &event.ScanCompleted{ScanID: "s", TenantID: "t", Provider: event.Provider{ID: "p", UID: "111122223333"},
		StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC),
		Artifacts: []event.Artifact{{Format: event.FormatCSV, Source: "nats-os://B/t/s/out.csv"}}}

	done := make(chan []Result, 1)
	go func() { done <- e.Export(ctx, scan, []Job{{Integration: ig}}) }()
	var res []Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Export still waiting for an open that never answers (bounded only by UploadTimeout, an hour)")
	}
	ar := res[0].Artifacts[0]
	if ar.Err != nil || ar.Object == nil {
		t.Fatalf("artifact not uploaded after the retry: %v", ar.Err)
	}
	if len(ar.Retried) != 1 || ar.Retried[0] != errcode.Timeout {
		t.Errorf("retried %v, want one Timeout", ar.Retried)
	}
	if !op.released.Load() || op.calls.Load() != 2 {
		t.Errorf("the hanging open was released=%v, opens=%d (want the first canceled and one more)", op.released.Load(), op.calls.Load())
	}
	got := s3srv.MustGetObject(t, "open-timeout", ar.Key)
	if !bytes.Equal(got.Body, op.body) {
		t.Errorf("object %s holds %q", ar.Key, got.Body)
	}
}
