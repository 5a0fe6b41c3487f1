package status

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

var at = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestConnectionAndBreaker(t *testing.T) {
	denied := errcode.Permanent(errcode.S3BucketAccessDenied, errors.New("access denied"))
	for _, tc := range []struct {
		name string
		got  event.ConnectionStatus
		want event.ConnectionStatus
	}{
		{"connected", Connection("t1", "i1", at, "eu-west-1", nil),
			event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", Connected: true, LastCheckedAt: at, BucketRegion: "eu-west-1"}},
		{"disconnected", Connection("t1", "i1", at, "", denied),
			event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", LastCheckedAt: at,
				Error: &event.ErrorBody{Code: "S3BucketAccessDenied", Message: "access denied"}}},
		{"breaker opened by a failure", Breaker("t1", "i1", at, "eu-west-1", true, denied),
			event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", LastCheckedAt: at, BucketRegion: "eu-west-1",
				Error: &event.ErrorBody{Code: "S3BucketAccessDenied", Message: "access denied"}, Breaker: event.BreakerOpen}},
		{"breaker opened, cause unknown", Breaker("t1", "i1", at, "", true, nil),
			event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", LastCheckedAt: at,
				Error: &event.ErrorBody{Code: "Timeout", Message: "uploads fail fast after repeated failures"}, Breaker: event.BreakerOpen}},
		{"breaker closed", Breaker("t1", "i1", at, "eu-west-1", false, nil),
			event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", Connected: true, LastCheckedAt: at, BucketRegion: "eu-west-1",
				Breaker: event.BreakerClosed}},
	} {
		got, _ := json.Marshal(tc.got)
		want, _ := json.Marshal(tc.want)
		if string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
}

// blockingJS is a JetStream whose publishes wait for release; it records
// the statuses in the order published.
type blockingJS struct {
	mu       sync.Mutex
	got      []event.ConnectionStatus
	entered  chan struct{} // one per publish, before it waits
	release  chan struct{}
	subjects []string
}

func (j *blockingJS) Publish(ctx context.Context, subject string, data []byte, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	j.entered <- struct{}{}
	select {
	case <-j.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var st event.ConnectionStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.got, j.subjects = append(j.got, st), append(j.subjects, subject)
	return &jetstream.PubAck{}, nil
}

func (j *blockingJS) published() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, st := range j.got {
		out = append(out, st.IntegrationID+":"+st.Breaker)
	}
	return out
}

// TestOfferNeverWaitsForAPublish: while the publisher is stuck on a
// publish (NATS slow or gone), breaker changes are still handed over at
// once; only the latest of each integration is published, in the order the
// integrations were first queued, and what is still queued when the
// publisher stops goes out before Run returns.
func TestOfferNeverWaitsForAPublish(t *testing.T) {
	js := &blockingJS{entered: make(chan struct{}, 16), release: make(chan struct{})}
	cache := integration.NewCache()
	cache.Put(&integration.Integration{TenantID: "t1", ID: "b", Enabled: true})
	m := metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{})
	p := NewPublisher(js, "prowler", cache, m, zap.NewNop())
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func() {}) }()

	p.Offer(Breaker("t1", "a", at, "", true, nil))
	<-js.entered // the publisher is now stuck on a's publish

	offered := make(chan struct{})
	go func() {
		defer close(offered)
		for i := range 1000 { // an upload goroutine's breaker flapping
			p.Offer(Breaker("t1", "b", at.Add(time.Duration(i)), "", i%2 == 0, nil))
		}
		p.Offer(Breaker("t1", "c", at, "", true, nil))
		p.Offer(Breaker("t1", "b", at, "", false, nil)) // b's latest: closed
	}()
	select {
	case <-offered:
	case <-time.After(30 * time.Second): // a bound for a deadlock, not a speed
		t.Fatal("Offer waited for the stuck publish")
	}
	stop() // the queue still holds b and c
	close(js.release)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got, want := js.published(), []string{"a:open", "b:closed", "c:open"}; !slices.Equal(got, want) {
		t.Errorf("published %v, want %v", got, want)
	}
	if js.subjects[1] != "prowler.integrations.status.t1.b" {
		t.Errorf("subject %s", js.subjects[1])
	}
	if st, ok := cache.Status("t1", "b"); !ok || !st.Connected || st.Breaker != event.BreakerClosed {
		t.Errorf("cached status of b: %+v %t", st, ok)
	}
}

// failingJS refuses every publish.
type failingJS struct{}

func (failingJS) Publish(context.Context, string, []byte, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return nil, errors.New("no responders")
}

// TestPublishKeepsTheStatusAndCounts: a status is kept with its cached
// integration, and the integrations gauge counts it, even when it cannot
// be published.
func TestPublishKeepsTheStatusAndCounts(t *testing.T) {
	cache := integration.NewCache()
	cache.Put(&integration.Integration{TenantID: "t1", ID: "a", Enabled: true})
	m := metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{})
	p := NewPublisher(failingJS{}, "prowler", cache, m, zap.NewNop())
	p.Publish(context.Background(), Connection("t1", "a", at, "", nil))
	if st, ok := cache.Status("t1", "a"); !ok || !st.Connected {
		t.Errorf("cached status %+v %t", st, ok)
	}
	if v := promtest.ToFloat64(m.Integrations.WithLabelValues("true", "true")); v != 1 {
		t.Errorf("integrations{enabled=true,connected=true} = %v", v)
	}
}
