package consumer

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// TestADeferredScanKeepsItsSlotForTheDefaultCooldown: a consumer built
// with no cooldown set keeps the slot of a scan it deferred for fairness
// for DeferCooldown (a second) after the deferral, as documented; the
// replica would otherwise cycle a tenant's backlog through fetch and
// deferral as fast as NATS answers. The wait is measured from below: a
// loaded machine only makes it longer.
func TestADeferredScanKeepsItsSlotForTheDefaultCooldown(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{})
	led, pub := newFakeLedger(), &fakePub{}
	topo := streams.Topology{Prefix: "prowler"}
	rep := NewReporter(pub, topo, led, m, nil, zap.NewNop())
	c := NewScanConsumer(nil, topo, ScanOptions{MaxInFlight: 4, MaxTenantInFlight: 1, MaxDeliver: 3, Backoff: backoff},
		fakeCatalog{igA}, fakeFollower{}, &fakeExporter{}, led, rep, m, zap.NewNop())
	t.Cleanup(c.cancel)

	// t1 holds its limit: one scan exports, TenantHoldFactor-1 wait.
	release, ok, err := c.gate.enter(context.Background(), "t1")
	if err != nil || !ok {
		t.Fatalf("could not fill the gate: %v %v", ok, err)
	}
	defer release()
	for range TenantHoldFactor - 1 {
		ch, cancel := waiter(c.gate, "t1")
		defer func() {
			cancel()
			if r, ok := <-ch; ok {
				r()
			}
		}()
	}
	waitCount(c.gate, 1, TenantHoldFactor-1)

	msg := scanMsg(t, 1)
	start := time.Now()
	c.handle(context.Background(), msg)
	held := time.Since(start)
	wantAnswer(t, msg, "nak", time.Second)
	if held < DeferCooldown {
		t.Fatalf("the deferred scan's slot was freed after %v, want the %v cooldown", held, DeferCooldown)
	}
}

// TestTheCooldownEndsWhenTheReplicaStops: the cooldown set through
// ScanOptions holds the slot, and a replica that stops does not wait it out.
func TestTheCooldownEndsWhenTheReplicaStops(t *testing.T) {
	s := newShell(t, ScanOptions{MaxInFlight: 4, MaxTenantInFlight: 1, DeferCooldown: time.Hour}, nil, igA)
	release, ok, err := s.c.gate.enter(context.Background(), "t1")
	if err != nil || !ok {
		t.Fatalf("could not fill the gate: %v %v", ok, err)
	}
	defer release()
	for range TenantHoldFactor - 1 {
		ch, cancel := waiter(s.c.gate, "t1")
		defer func() {
			cancel()
			if r, ok := <-ch; ok {
				r()
			}
		}()
	}
	waitCount(s.c.gate, 1, TenantHoldFactor-1)

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	msg := scanMsg(t, 1)
	go func() { s.c.handle(ctx, msg); close(done) }()
	for a, _ := msg.outcome(); a == ""; a, _ = msg.outcome() {
		runtime.Gosched()
	}
	select {
	case <-done:
		t.Fatal("the deferred scan's slot was freed before its cooldown")
	default:
	}
	stop()
	<-done
	wantAnswer(t, msg, "nak", time.Second)
}
