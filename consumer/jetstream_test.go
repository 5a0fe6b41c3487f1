package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/internal/status"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/metrics"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

// liveConsumer is a ScanConsumer on a real JetStream with a fake exporter.
type liveConsumer struct {
	js  jetstream.JetStream
	c   *ScanConsumer
	exp *fakeExporter
	led *ledger.Ledger
	m   *metrics.Metrics
}

func newLiveConsumer(t *testing.T, opts ScanOptions) *liveConsumer {
	t.Helper()
	js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topo := streams.Topology{Prefix: "prowler"}
	kv, err := streams.EnsureStreams(ctx, js, topo, true)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	m := metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{})
	cache := integration.NewCache()
	cache.Put(igA)
	led := ledger.New(kv)
	rep := NewReporter(js, topo, led, m, status.NewPublisher(js, "prowler", cache, m, log), log)
	if opts.Durable == "" {
		opts.Durable = "s3-exporter"
	}
	exp := &fakeExporter{}
	c := NewScanConsumer(js, topo, opts, cache, fakeFollower{}, exp, led, rep, m, log)
	return &liveConsumer{js: js, c: c, exp: exp, led: led, m: m}
}

// run runs the consumer until stop is called (or the test ends); stop
// waits for Run to return.
func (l *liveConsumer) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- l.c.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (l *liveConsumer) consumer(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := l.js.Consumer(context.Background(), "PROWLER_SCANS", "s3-exporter")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (l *liveConsumer) publishScan(t *testing.T, scanID string) uint64 {
	t.Helper()
	s := testScan()
	s.ScanID = scanID
	b, _ := json.Marshal(s)
	ack, err := l.js.Publish(context.Background(), "prowler.scans.completed.t1.p1", b)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// statuses returns the export statuses on the status stream (read by
// sequence: no consumer is created).
func (l *liveConsumer) statuses(t *testing.T) []event.ExportStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := l.js.Stream(ctx, "PROWLER_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []event.ExportStatus
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || !strings.HasPrefix(m.Subject, "prowler.exports.status.") {
			continue
		}
		var es event.ExportStatus
		if err := json.Unmarshal(m.Data, &es); err != nil {
			t.Fatal(err)
		}
		out = append(out, es)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a generous bound: proves behaviour, not speed
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunExportsFromTheStreamAndShutsDown(t *testing.T) {
	l := newLiveConsumer(t, ScanOptions{MaxInFlight: 2, MaxHeld: 4, MaxDeliver: 3})
	stop := l.run(t)
	if info := l.consumer(t); info.Config.MaxDeliver != -1 {
		t.Errorf("JetStream MaxDeliver %d, want -1: the consumer counts attempts itself", info.Config.MaxDeliver)
	}
	for i := range 6 {
		l.publishScan(t, fmt.Sprintf("s%d", i))
	}
	eventually(t, "six scans exported and acknowledged", func() bool {
		ci := l.consumer(t)
		return ci.NumPending == 0 && ci.NumAckPending == 0 && len(l.statuses(t)) == 6
	})
	for _, st := range l.statuses(t) {
		if st.State != event.StateSucceeded || st.Attempt != 1 {
			t.Errorf("status %+v", st)
		}
	}
	stop()
	if l.c.work.Err() == nil {
		t.Error("exports may still run after Run returned")
	}
}

func TestShutdownGraceRunsOut(t *testing.T) {
	grace, graceOver := context.WithCancel(context.Background())
	l := newLiveConsumer(t, ScanOptions{MaxDeliver: 3, Base: grace})
	started := make(chan struct{})
	l.exp.do = func(jobs []exporter.Job) []exporter.Result {
		close(started)
		<-l.c.work.Done() // an upload that only the grace running out stops
		return []exporter.Result{exported(jobs[0].Integration, nil, transient)}
	}
	stop := l.run(t)
	seq := l.publishScan(t, "slow")
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a scan was exporting, its grace not over")
	case <-time.After(100 * time.Millisecond):
		// Not a timing assertion: a Run that did not wait would have
		// returned by now; one that waits is still waiting either way.
	}
	graceOver()
	<-stopped
	e, err := l.led.Get(context.Background(), "t1", "slow", "a")
	if err != nil || e.State != event.StateRetrying || len(e.Objects) != 1 {
		t.Fatalf("ledger %+v %v: want the file that landed kept", e, err)
	}
	if n, err := l.led.Deferrals(context.Background(), seq); err != nil || n != 1 {
		t.Fatalf("deferrals %d %v: the interrupted delivery must not use an attempt", n, err)
	}
}

// TestCheckFollowsTheBoundConsumer: the consumer gauges follow the bound
// consumer, and a consumer deleted under a running replica makes Check say
// so, with its name; recreated, it is usable again.
func TestCheckFollowsTheBoundConsumer(t *testing.T) {
	grace, graceOver := context.WithCancel(context.Background())
	l := newLiveConsumer(t, ScanOptions{MaxDeliver: 3, CheckEvery: 20 * time.Millisecond, Base: grace})
	l.exp.do = func(jobs []exporter.Job) []exporter.Result {
		<-l.c.work.Done() // the scans stay held: the gauges count them
		return []exporter.Result{exported(jobs[0].Integration, nil, transient)}
	}
	l.run(t)
	t.Cleanup(graceOver) // before Run's stop, which waits for the held scans
	if err := l.c.Check(); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if err := l.js.DeleteConsumer(context.Background(), "PROWLER_SCANS", "s3-exporter"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Check fails", func() bool { return l.c.Check() != nil })
	if err := l.c.Check(); !strings.Contains(err.Error(), `scans consumer "s3-exporter"`) {
		t.Errorf("Check = %v", err)
	}
	if _, err := l.c.bind(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Check passes again", func() bool { return l.c.Check() == nil })
	l.publishScan(t, "s1")
	l.publishScan(t, "s2")
	eventually(t, "the pending gauge counts the scans", func() bool {
		return promtest.ToFloat64(l.m.ConsumerPending)+promtest.ToFloat64(l.m.ConsumerAckPending) == 2
	})
}

// TestRunWithoutTheScansStream: a consumer that cannot bind never says
// ready, and says why.
func TestRunWithoutTheScansStream(t *testing.T) {
	js := natstest.StartJetStream(t)
	m := metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{})
	c := NewScanConsumer(js, streams.Topology{Prefix: "prowler"}, ScanOptions{Durable: "x"}, fakeCatalog{}, fakeFollower{},
		&fakeExporter{}, newFakeLedger(), nil, m, zap.NewNop())
	err := c.Run(context.Background(), func() { t.Error("ready without a stream") })
	if err == nil || !strings.Contains(err.Error(), `binding the scans consumer "x"`) {
		t.Errorf("Run = %v", err)
	}
}

// TestABacklogInRoomNoOneUsesIsNotDeferred: one tenant's backlog, larger
// than its hold (4 × 1) but within what the replica holds beyond its export
// slots (12 - 2), waits in the replica instead of cycling through
// deferrals once a scan of the tenant finished (its scans are moving):
// every scan is exported at its first delivery, none deferred.
// (With the hold alone, 6 of these 10 were deferred at least once; workload
// 1 of docs/BENCHMARKS.md deferred 200 scans 478 times.)
func TestABacklogInRoomNoOneUsesIsNotDeferred(t *testing.T) {
	l := newLiveConsumer(t, ScanOptions{MaxInFlight: 2, MaxTenantInFlight: 1, MaxHeld: 12, MaxDeliver: 3})
	l.exp.do = func(jobs []exporter.Job) []exporter.Result {
		time.Sleep(20 * time.Millisecond) // the backlog is all fetched before the first scans finish
		out := make([]exporter.Result, len(jobs))
		for i, j := range jobs {
			out[i] = exported(j.Integration)
		}
		return out
	}
	l.run(t)
	l.publishScan(t, "first")
	eventually(t, "a first scan exported", func() bool { return len(l.statuses(t)) == 1 })
	for i := range 10 {
		l.publishScan(t, fmt.Sprintf("s%d", i))
	}
	eventually(t, "ten more scans exported and acknowledged", func() bool {
		ci := l.consumer(t)
		return ci.NumPending == 0 && ci.NumAckPending == 0 && len(l.statuses(t)) == 11
	})
	if v := promtest.ToFloat64(l.m.ScansDeferred.WithLabelValues(DeferTenantLimit)); v != 0 {
		t.Errorf("%v deferrals of a backlog the replica had room for", v)
	}
	for _, st := range l.statuses(t) {
		if st.State != event.StateSucceeded || st.Attempt != 1 {
			t.Errorf("status %+v", st)
		}
	}
	if ci := l.consumer(t); ci.NumRedelivered != 0 {
		t.Errorf("%d redeliveries", ci.NumRedelivered)
	}
}
