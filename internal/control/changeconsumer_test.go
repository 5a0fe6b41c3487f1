package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/control"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

// changesEnv is a JetStream with the exporter's streams.
type changesEnv struct {
	t    *testing.T
	js   jetstream.JetStream
	topo streams.Topology
}

func newChangesEnv(t *testing.T) *changesEnv {
	t.Helper()
	js := natstest.StartJetStream(t)
	e := &changesEnv{t: t, js: js, topo: streams.Topology{Prefix: "prowler"}}
	if _, err := streams.EnsureStreams(t.Context(), js, e.topo, true); err != nil {
		t.Fatal(err)
	}
	return e
}

// publish stores an integration change.
func (e *changesEnv) publish(tenant, id, bucket string, providers []string) {
	e.t.Helper()
	b, err := json.Marshal(event.IntegrationChanged{Action: event.ActionUpsert, Integration: event.IntegrationPayload{
		ID: id, TenantID: tenant, Type: event.TypeAmazonS3, Providers: providers,
		Configuration: event.Configuration{BucketName: bucket},
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.Publish(e.t.Context(), e.topo.Subject(event.IntegrationsChanged, tenant, id), b); err != nil {
		e.t.Fatal(err)
	}
}

// changeHandlerFunc is a control.ChangeHandler made of a function.
type changeHandlerFunc func(ctx context.Context, ch integration.Change, err error)

func (f changeHandlerFunc) OnChange(ctx context.Context, ch integration.Change, err error) {
	f(ctx, ch, err)
}

// TestChangeConsumerStopWaitsForTheChangeBeingHandled: Run, told to stop
// while a change is handled (a connection test running), returns only once
// the handler has finished, and the change is acknowledged, not redelivered
// to run its side effects twice.
func TestChangeConsumerStopWaitsForTheChangeBeingHandled(t *testing.T) {
	e := newChangesEnv(t)
	entered := make(chan integration.Change, 1)
	release := make(chan struct{})
	var mu sync.Mutex
	var handled []string
	base, kill := context.WithCancel(context.Background())
	defer kill()
	c := &control.ChangeConsumer{JS: e.js, Topo: e.topo, Durable: "changes", Parser: &integration.Parser{Prefix: "prowler", AllowAmbient: true}, // payloads without credentials
		Base: base, Log: zap.NewNop(),
		Handler: changeHandlerFunc(func(ctx context.Context, ch integration.Change, err error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("a change handled without a time limit")
			}
			entered <- ch
			<-release
			mu.Lock()
			handled = append(handled, ch.TenantID+"/"+ch.ID)
			mu.Unlock()
		})}
	ctx, stop := context.WithCancel(context.Background())
	done, ready := make(chan error, 1), make(chan struct{})
	go func() { done <- c.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}

	e.publish("t1", "i1", "bucket-one", []string{"p1"})
	if ch := <-entered; ch.TenantID != "t1" || ch.ID != "i1" || ch.Integration == nil {
		t.Fatalf("handled %+v", ch)
	}
	stop()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a change was being handled", err)
	case <-time.After(100 * time.Millisecond):
		// Not a timing assertion: a Run that did not wait would have
		// returned by now; one that waits is still waiting either way.
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	if len(handled) != 1 {
		t.Errorf("handled %v", handled)
	}
	mu.Unlock()
	cons, err := e.js.Consumer(t.Context(), e.topo.IntegrationsStream(), "changes")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
		t.Errorf("the change was not acknowledged: %d pending, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
	}
}

func TestChangeConsumerRefusesAStreamThatIsNotThere(t *testing.T) {
	e := newChangesEnv(t)
	c := &control.ChangeConsumer{JS: e.js, Topo: streams.Topology{Prefix: "other"}, Durable: "changes",
		Parser: &integration.Parser{}, Log: zap.NewNop()}
	if err := c.Run(t.Context(), func() { t.Error("ready without a stream") }); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Run = %v, want stream not found", err)
	}
}
