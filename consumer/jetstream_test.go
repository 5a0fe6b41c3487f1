package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
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
	rep := NewReporter(js, topo, led, m, cache, log)
	if opts.Durable == "" {
		opts.Durable = "s3-exporter"
	}
	exp := &fakeExporter{}
	c := NewScanConsumer(js, topo, opts, cache, fakeFollower{}, exp, led, rep, m, log)
	if err := c.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	return &liveConsumer{js: js, c: c, exp: exp, led: led}
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
	info, err := l.c.Consumer().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxDeliver != -1 {
		t.Errorf("JetStream MaxDeliver %d, want -1: the consumer counts attempts itself", info.Config.MaxDeliver)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.c.Run(ctx); close(done) }()
	for i := range 6 {
		l.publishScan(t, fmt.Sprintf("s%d", i))
	}
	eventually(t, "six scans exported and acknowledged", func() bool {
		ci, err := l.c.Consumer().Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && len(l.statuses(t)) == 6
	})
	for _, st := range l.statuses(t) {
		if st.State != event.StateSucceeded || st.Attempt != 1 {
			t.Errorf("status %+v", st)
		}
	}
	cancel()
	<-done
	if err := l.c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownGraceRunsOut(t *testing.T) {
	l := newLiveConsumer(t, ScanOptions{MaxDeliver: 3})
	started := make(chan struct{})
	l.exp.do = func(jobs []exporter.Job) []exporter.Result {
		close(started)
		<-l.c.work.Done() // an upload that only the grace running out stops
		return []exporter.Result{exported(jobs[0].Integration, nil, transient)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.c.Run(ctx); close(done) }()
	seq := l.publishScan(t, "slow")
	<-started
	cancel()
	<-done
	grace, cancelGrace := context.WithCancel(context.Background())
	cancelGrace() // no grace at all
	if err := l.c.Shutdown(grace); err == nil || !strings.Contains(err.Error(), "returned to the stream") {
		t.Fatalf("err %v", err)
	}
	e, err := l.led.Get(context.Background(), "t1", "slow", "a")
	if err != nil || e.State != event.StateRetrying || len(e.Objects) != 1 {
		t.Fatalf("ledger %+v %v: want the file that landed kept", e, err)
	}
	if n, err := l.led.Deferrals(context.Background(), seq); err != nil || n != 1 {
		t.Fatalf("deferrals %d %v: the interrupted delivery must not use an attempt", n, err)
	}
}
