package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

type followerEnv struct {
	t    *testing.T
	js   jetstream.JetStream
	topo streams.Topology
}

func newFollowerEnv(t *testing.T) *followerEnv {
	t.Helper()
	js := natstest.StartJetStream(t)
	e := &followerEnv{t: t, js: js, topo: streams.Topology{Prefix: "prowler"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := streams.EnsureStreams(ctx, js, e.topo, true); err != nil {
		t.Fatal(err)
	}
	return e
}

// publish sends an integration change (asynchronously: a burst arrives
// together); providers nil means a delete, and a bucket "INVALID" a payload
// the parser rejects. flush waits for the acknowledgements.
func (e *followerEnv) publish(tenant, id, bucket string, providers []string) {
	e.t.Helper()
	ch := event.IntegrationChanged{Action: event.ActionUpsert, Integration: event.IntegrationPayload{
		ID: id, TenantID: tenant, Type: event.TypeAmazonS3, Providers: providers,
		Configuration: event.Configuration{BucketName: bucket},
	}}
	if providers == nil {
		ch.Action = event.ActionDelete
	}
	b, err := json.Marshal(ch)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.PublishAsync(e.topo.Subject(event.IntegrationsChanged, tenant, id), b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *followerEnv) flush() {
	e.t.Helper()
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		e.t.Fatal("publishes not acknowledged")
	}
}

func (e *followerEnv) start(cache *integration.Cache, log *zap.Logger) *integration.Follower {
	e.t.Helper()
	f := integration.NewFollower(e.js, e.topo, cache, &integration.Parser{Prefix: "prowler", AllowAmbient: true}, log) // payloads without credentials
	ctx, stop := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- f.Run(ctx, func() { close(ready) }) }()
	e.t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			e.t.Errorf("Run = %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("Run ended before the cache caught up: %v", err)
	case <-time.After(30 * time.Second):
		e.t.Fatal("the cache never caught up")
	}
	return f
}

// Parsing runs on several goroutines, but changes reach the cache in stream
// order: after a burst of changes to the same integrations, each one holds its
// last state, whether that is an update, a delete or a rejection.
func TestFollowerAppliesInStreamOrder(t *testing.T) {
	e := newFollowerEnv(t)
	for i := range 300 { // caught up at start
		e.publish("t0", fmt.Sprintf("i%d", i), "bucket-start", []string{"p"})
	}
	e.flush()
	cache := integration.NewCache()
	core, logs := observer.New(zapcore.DebugLevel)
	f := e.start(cache, zap.New(core))
	if cache.Len() != 300 {
		t.Fatalf("%d integrations after the catch-up, want 300", cache.Len())
	}
	if n := logs.FilterMessage("integration updated").FilterLevelExact(zapcore.InfoLevel).Len(); n != 0 {
		t.Errorf("%d catch-up updates logged at info, want them at debug", n)
	}

	want := map[string]string{} // id -> last bucket ("" deleted or rejected)
	for round := range 200 {
		for k := range 4 {
			id := fmt.Sprintf("i%d", k)
			switch (round + k) % 4 {
			case 0, 1:
				b := fmt.Sprintf("bucket-%d-%d", round, k)
				e.publish("t1", id, b, []string{"p", fmt.Sprint(round)})
				want[id] = b
			case 2:
				e.publish("t1", id, "", nil)
				want[id] = ""
			case 3:
				e.publish("t1", id, "INVALID", []string{"p"}) // rejected: drops the earlier state
				want[id] = ""
			}
		}
	}
	e.flush()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.CatchUp(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for id, b := range want {
		ig, ok := cache.Get("t1", id)
		switch {
		case b == "" && ok:
			t.Errorf("%s: holds bucket %s, want it gone", id, ig.Bucket)
		case b != "" && !ok:
			t.Errorf("%s: gone, want bucket %s", id, b)
		case b != "" && ig.Bucket != b:
			t.Errorf("%s: bucket %s, want %s (an older change was applied last)", id, ig.Bucket, b)
		}
	}
	if n := logs.FilterMessage("integration updated").FilterLevelExact(zapcore.InfoLevel).Len(); n == 0 {
		t.Error("changes after the catch-up are not logged at info")
	}
	if got := idsOnly(cache.Select("t1", "p")); !slices.IsSorted(got) {
		t.Errorf("Select not sorted: %v", got)
	}
}

func idsOnly(igs []*integration.Integration) []string {
	out := make([]string, len(igs))
	for i, ig := range igs {
		out[i] = ig.ID
	}
	return out
}

// Run returns once its context ends, the parsers and the applier gone,
// also when it ends before the cache caught up.
func TestFollowerRunEndsWithItsContext(t *testing.T) {
	e := newFollowerEnv(t)
	f := integration.NewFollower(e.js, e.topo, integration.NewCache(), &integration.Parser{Prefix: "prowler"}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Run(ctx, func() {}); err != nil {
		t.Errorf("Run, its context ended at once: %v", err)
	}
	e.start(integration.NewCache(), zap.NewNop()) // the cleanup waits for Run
}

// A follower of a stream that is not there cannot start.
func TestFollowerRunWithoutItsStream(t *testing.T) {
	e := newFollowerEnv(t)
	topo := e.topo
	topo.Prefix = "other"
	f := integration.NewFollower(e.js, topo, integration.NewCache(), &integration.Parser{Prefix: "other"}, zap.NewNop())
	if err := f.Run(t.Context(), func() { t.Error("ready without a stream") }); err == nil {
		t.Error("Run without its stream succeeded")
	}
}
