package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/internal/status"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// fakeMsg is a scan message as the shell sees it; it records the answer.
type fakeMsg struct {
	jetstream.Msg // nil: a call the fake does not define panics
	subject       string
	data          []byte
	md            *jetstream.MsgMetadata
	mdErr         error

	mu         sync.Mutex
	answers    []string
	delay      time.Duration
	progress   int
	progressed chan struct{}
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { return m.md, m.mdErr }
func (m *fakeMsg) Subject() string                           { return m.subject }
func (m *fakeMsg) Data() []byte                              { return m.data }
func (m *fakeMsg) answer(a string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.answers, m.delay = append(m.answers, a), d
	return nil
}
func (m *fakeMsg) DoubleAck(context.Context) error    { return m.answer("ack", 0) }
func (m *fakeMsg) Nak() error                         { return m.answer("nak", 0) }
func (m *fakeMsg) NakWithDelay(d time.Duration) error { return m.answer("nak", d) }
func (m *fakeMsg) Term() error                        { return m.answer("term", 0) }
func (m *fakeMsg) TermWithReason(r string) error      { return m.answer("term:"+r, 0) }
func (m *fakeMsg) InProgress() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress++
	if m.progress == 1 && m.progressed != nil {
		close(m.progressed)
	}
	return nil
}

func (m *fakeMsg) outcome() (string, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.answers, ","), m.delay
}

// fakeLedger is an in-memory ledger with injectable failures.
type fakeLedger struct {
	mu        sync.Mutex
	entries   map[string]ledger.Entry
	corrupt   map[string]bool
	deferrals map[uint64]int
	getErr    error
	deferErr  error
	setErr    error
	puts      int
}

func newFakeLedger() *fakeLedger {
	return &fakeLedger{entries: map[string]ledger.Entry{}, corrupt: map[string]bool{}, deferrals: map[uint64]int{}}
}

func (l *fakeLedger) Get(_ context.Context, tenant, scan, ig string) (ledger.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := ledger.Key(tenant, scan, ig)
	if l.getErr != nil {
		return ledger.Entry{}, l.getErr
	}
	if l.corrupt[k] {
		return ledger.Entry{}, ledger.ErrCorrupt
	}
	return l.entries[k], nil
}

func (l *fakeLedger) Put(_ context.Context, tenant, scan, ig string, e ledger.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.puts++
	l.entries[ledger.Key(tenant, scan, ig)] = e
	return nil
}

func (l *fakeLedger) Deferrals(_ context.Context, seq uint64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deferrals[seq], l.deferErr
}

func (l *fakeLedger) SetDeferrals(_ context.Context, seq uint64, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.setErr != nil {
		return l.setErr
	}
	l.deferrals[seq] = n
	return nil
}

func (l *fakeLedger) entry(ig string) ledger.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[ledger.Key("t1", "s1", ig)]
}

// fakePub records what was published; subjects with a failing prefix fail.
type fakePub struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	fail string
}

func (p *fakePub) Publish(ctx context.Context, subject string, data []byte, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return p.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data})
}

func (p *fakePub) PublishMsg(_ context.Context, m *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != "" && strings.HasPrefix(m.Subject, p.fail) {
		return nil, errors.New("no responders")
	}
	p.msgs = append(p.msgs, m)
	return &jetstream.PubAck{}, nil
}

func (p *fakePub) on(prefix string) []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*nats.Msg
	for _, m := range p.msgs {
		if strings.HasPrefix(m.Subject, prefix) {
			out = append(out, m)
		}
	}
	return out
}

func (p *fakePub) exportStatuses(t *testing.T) []event.ExportStatus {
	t.Helper()
	var out []event.ExportStatus
	for _, m := range p.on("prowler.exports.status.") {
		var st event.ExportStatus
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

type fakeCatalog []*integration.Integration

func (c fakeCatalog) Select(tenant, provider string) []*integration.Integration {
	var out []*integration.Integration
	for _, ig := range c {
		if ig.TenantID == tenant {
			out = append(out, ig)
		}
	}
	return out
}

type fakeFollower struct{ err error }

func (f fakeFollower) CatchUp(context.Context, time.Duration) error { return f.err }

type fakeExporter struct {
	mu    sync.Mutex
	calls int
	jobs  [][]exporter.Job
	do    func(jobs []exporter.Job) []exporter.Result
}

func (e *fakeExporter) Export(_ context.Context, _ *event.ScanCompleted, jobs []exporter.Job) []exporter.Result {
	e.mu.Lock()
	e.calls++
	e.jobs = append(e.jobs, jobs)
	e.mu.Unlock()
	if e.do != nil {
		return e.do(jobs)
	}
	out := make([]exporter.Result, len(jobs))
	for i, j := range jobs {
		out[i] = exported(j.Integration)
	}
	return out
}

type shell struct {
	c    *ScanConsumer
	led  *fakeLedger
	pub  *fakePub
	exp  *fakeExporter
	m    *metrics.Metrics
	logs *observer.ObservedLogs
}

func newShell(t *testing.T, opts ScanOptions, catch error, igs ...*integration.Integration) *shell {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	m := metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{})
	s := &shell{led: newFakeLedger(), pub: &fakePub{}, exp: &fakeExporter{}, m: m, logs: logs}
	topo := streams.Topology{Prefix: "prowler"}
	cache := integration.NewCache()
	for _, ig := range igs {
		cache.Put(ig)
	}
	rep := NewReporter(s.pub, topo, s.led, m, status.NewPublisher(s.pub, "prowler", cache, m, log), log)
	if opts.MaxDeliver == 0 {
		opts.MaxDeliver = 3
	}
	if opts.Backoff == nil {
		opts.Backoff = backoff
	}
	if opts.DeferCooldown == 0 {
		opts.DeferCooldown = -1 // none
	}
	s.c = NewScanConsumer(nil, topo, opts, fakeCatalog(igs), fakeFollower{catch}, s.exp, s.led, rep, m, log)
	t.Cleanup(s.c.cancel)
	return s
}

func scanMsg(t *testing.T, delivered uint64) *fakeMsg {
	t.Helper()
	b, err := json.Marshal(testScan())
	if err != nil {
		t.Fatal(err)
	}
	return &fakeMsg{subject: "prowler.scans.completed.t1.p1", data: b,
		md: &jetstream.MsgMetadata{NumDelivered: delivered, Sequence: jetstream.SequencePair{Stream: 42}, Timestamp: published}}
}

func (s *shell) handle(msg *fakeMsg) { s.c.handle(context.Background(), msg) }

func wantAnswer(t *testing.T, msg *fakeMsg, answer string, delay time.Duration) {
	t.Helper()
	if a, d := msg.outcome(); a != answer || d != delay {
		t.Fatalf("message answered %q after %v, want %q after %v", a, d, answer, delay)
	}
}

func TestShellExportsAndAcks(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA, igB)
	msg := scanMsg(t, 1)
	s.handle(msg)
	wantAnswer(t, msg, "ack", 0)
	sts := s.pub.exportStatuses(t)
	if len(sts) != 2 || sts[0].State != event.StateSucceeded || sts[0].Attempt != 1 || len(sts[0].Objects) != 2 {
		t.Fatalf("statuses %+v", sts)
	}
	for _, id := range []string{"a", "b"} {
		if e := s.led.entry(id); e.State != event.StateSucceeded || len(e.Objects) != 2 {
			t.Errorf("ledger %s: %+v", id, e)
		}
	}
	// Uploaded: both integrations are reported connected.
	if n := len(s.pub.on("prowler.integrations.status.t1.")); n != 2 {
		t.Errorf("%d connection statuses, want 2", n)
	}
	// A redelivery (the ack was lost) exports nothing again.
	again := scanMsg(t, 2)
	s.handle(again)
	wantAnswer(t, again, "ack", 0)
	if s.exp.calls != 1 {
		t.Errorf("exporter called %d times, want 1", s.exp.calls)
	}
}

func TestShellMalformedEventIsDeadLettered(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	msg := scanMsg(t, 1)
	msg.data = []byte(`{"scan_id":`)
	s.handle(msg)
	wantAnswer(t, msg, "term:"+metrics.ReasonMalformedEvent, 0)
	dl := s.pub.on("prowler.dlq.scans.t1")
	if len(dl) != 1 || string(dl[0].Data) != `{"scan_id":` || !strings.HasPrefix(dl[0].Header.Get(event.HeaderDLQReason), metrics.ReasonMalformedEvent) {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestShellDeadLetterNotWrittenKeepsTheEvent(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.pub.fail = "prowler.dlq."
	msg := scanMsg(t, 1)
	msg.data = []byte(`[]`)
	s.handle(msg)
	wantAnswer(t, msg, "nak", time.Minute)
}

func TestShellUnreadableMetadataTerminates(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	msg := scanMsg(t, 1)
	msg.mdErr = errors.New("not a JetStream message")
	s.handle(msg)
	wantAnswer(t, msg, "term", 0)
}

func TestShellRetryableFailureIsRedelivered(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.exp.do = func(jobs []exporter.Job) []exporter.Result {
		r := exported(jobs[0].Integration, nil, transient)
		r.Artifacts[0].Retried = []errcode.Code{errcode.S3ClientError, errcode.S3ClientError}
		return []exporter.Result{r}
	}
	msg := scanMsg(t, 2)
	s.handle(msg)
	wantAnswer(t, msg, "nak", 2*time.Minute)
	if e := s.led.entry("a"); e.State != event.StateRetrying || len(e.Objects) != 1 || e.Attempt != 2 {
		t.Errorf("ledger %+v", e)
	}
	if v := promtest.ToFloat64(s.m.Redeliveries.WithLabelValues(string(errcode.S3ClientError))); v != 1 {
		t.Errorf("redeliveries %v, want 1", v)
	}
	if v := promtest.ToFloat64(s.m.UploadRetries.WithLabelValues(string(errcode.S3ClientError))); v != 2 {
		t.Errorf("upload retries %v, want 2 (the in-process ones only)", v)
	}
}

func TestShellAttemptsAreDeliveriesMinusDeferrals(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.led.deferrals[42] = 7
	msg := scanMsg(t, 9) // 7 of 9 deliveries were deferrals: attempt 2 of 3
	s.handle(msg)
	wantAnswer(t, msg, "ack", 0)
	if sts := s.pub.exportStatuses(t); len(sts) != 1 || sts[0].Attempt != 2 || sts[0].State != event.StateSucceeded {
		t.Fatalf("statuses %+v", sts)
	}
}

func TestShellGivesUpFromItsOwnCount(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	msg := scanMsg(t, 4) // 4 deliveries, none deferred, MaxDeliver 3
	s.handle(msg)
	wantAnswer(t, msg, "term:"+string(errcode.Timeout), 0)
	if s.exp.calls != 0 {
		t.Error("a scan whose attempts ran out was exported again")
	}
	sts := s.pub.exportStatuses(t)
	if len(sts) != 1 || sts[0].State != event.StateFailed || sts[0].Attempt != 3 || !sts[0].StartedAt.Equal(published) {
		t.Fatalf("statuses %+v", sts)
	}
	if dl := s.pub.on("prowler.dlq.scans.t1"); len(dl) != 1 || !strings.Contains(dl[0].Header.Get(event.HeaderDLQReason), "delivered 3 times") {
		t.Fatalf("dead letters %+v", dl)
	}
	if e := s.led.entry("a"); e.State != event.StateFailed {
		t.Errorf("ledger %+v", e)
	}
}

// holdTenantLimit makes tenant hold its limit in g (a gate with a tenant
// limit of 1): one scan exports and TenantHoldFactor-1 wait. It returns the
// running scan's release and the waiters' admissions; waiters still waiting
// when the test ends are canceled.
func holdTenantLimit(t *testing.T, g *gate, tenant string) (release func(), waiting []chan func()) {
	t.Helper()
	release, ok, err := g.enter(context.Background(), tenant)
	if err != nil || !ok {
		t.Fatalf("could not fill the gate: %v %v", ok, err)
	}
	for range TenantHoldFactor - 1 {
		ch, cancel := waiter(g, tenant)
		t.Cleanup(cancel)
		waiting = append(waiting, ch)
		waitCount(g, 1, len(waiting))
	}
	return release, waiting
}

func TestShellTenantAtItsLimitIsDeferred(t *testing.T) {
	s := newShell(t, ScanOptions{MaxInFlight: 4, MaxTenantInFlight: 1}, nil, igA)
	release, waiting := holdTenantLimit(t, s.c.gate, "t1")
	releases := []func(){release}
	msg := scanMsg(t, 3)
	s.led.deferrals[42] = 2
	s.handle(msg)
	wantAnswer(t, msg, "nak", 4*time.Second)
	if s.exp.calls != 0 {
		t.Error("a refused scan was exported")
	}
	if n := s.led.deferrals[42]; n != 3 {
		t.Errorf("deferrals %d, want 3", n)
	}
	if v := promtest.ToFloat64(s.m.ScansDeferred.WithLabelValues(DeferTenantLimit)); v != 1 {
		t.Errorf("deferred metric %v", v)
	}
	for _, r := range releases {
		r()
	}
	for _, ch := range waiting {
		(<-ch)()
	}
}

// TestShellEvictedScanIsDeferredWithoutCooldown: a scan waiting in a place
// lent to its tenant (past its hold, while the replica had room) is
// deferred when another tenant's scan takes the place back, like a refused
// one (no attempt used), and its slot is freed at once: the cooldown that
// keeps a refused backlog from spinning would keep the slot from the tenant
// that needs it.
func TestShellEvictedScanIsDeferredWithoutCooldown(t *testing.T) {
	s := newShell(t, ScanOptions{MaxInFlight: 1, MaxTenantInFlight: 1, MaxHeld: 8, DeferCooldown: time.Hour}, nil, igA)
	if s.c.gate.lendUpTo != 7 {
		t.Fatalf("lendUpTo %d, want MaxHeld - MaxInFlight = 7", s.c.gate.lendUpTo)
	}
	if r, ok, _ := s.c.gate.enter(context.Background(), "t1"); ok {
		r() // a scan of t1 finished: its scans are moving
	}
	release, waiting := holdTenantLimit(t, s.c.gate, "t1") // its hold: 1 + 3
	lent := make([]chan entered, 2)                        // a fifth and sixth, lent
	var cancels []func()
	for i := range lent {
		var cancel func()
		lent[i], cancel = enterAsync(s.c.gate, "t1")
		cancels = append(cancels, cancel)
		waitCount(s.c.gate, 1, TenantHoldFactor+i)
	}
	msg := scanMsg(t, 1)
	done := make(chan struct{})
	go func() { s.handle(msg); close(done) }() // a seventh, lent: the gate holds lendUpTo
	waitCount(s.c.gate, 1, TenantHoldFactor+2)
	if a, _ := msg.outcome(); a != "" {
		t.Fatalf("a scan in lent room was answered %q while the replica had room", a)
	}
	t2, cancelT2 := enterAsync(s.c.gate, "t2") // waits, taking the newest lent place
	cancels = append(cancels, cancelT2)
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the evicted scan kept its slot (a cooldown)")
	}
	wantAnswer(t, msg, "nak", time.Second)
	if n := s.led.deferrals[42]; n != 1 {
		t.Errorf("deferrals %d, want 1 (an eviction is not an attempt)", n)
	}
	if v := promtest.ToFloat64(s.m.ScansDeferred.WithLabelValues(DeferTenantLimit)); v != 1 {
		t.Errorf("deferred metric %v", v)
	}
	if s.exp.calls != 0 {
		t.Error("an evicted scan was exported")
	}
	for _, c := range cancels {
		c()
	}
	for _, c := range append(lent, t2) {
		if got := <-c; got.ok {
			got.release()
		}
	}
	release()
	for _, w := range waiting {
		if r, ok := <-w; ok {
			r()
		}
	}
}

// A first delivery is decoded at once, so a malformed event is
// dead-lettered at once (contract §3) even when its tenant is at its
// share. A redelivery refused for its tenant's share is deferred before
// its event is decoded (it decoded on its first delivery; a backlog comes
// back several times before it gets a slot), and decoded once it has one.
func TestShellRefusedRedeliveriesAreNotDecoded(t *testing.T) {
	s := newShell(t, ScanOptions{MaxInFlight: 4, MaxTenantInFlight: 1}, nil, igA)
	release, waiting := holdTenantLimit(t, s.c.gate, "t1")
	first := scanMsg(t, 1)
	first.data = []byte(`{"scan_id":`)
	s.handle(first)
	wantAnswer(t, first, "term:"+metrics.ReasonMalformedEvent, 0)
	if dl := s.pub.on("prowler.dlq.scans.t1"); len(dl) != 1 {
		t.Fatalf("a malformed first delivery: dead letters %+v, want it at once", dl)
	}

	// A redelivery that is not decoded: bytes that would not decode show it.
	again := scanMsg(t, 2)
	again.data = first.data
	s.handle(again)
	wantAnswer(t, again, "nak", time.Second)
	if dl := s.pub.on("prowler.dlq.scans.t1"); len(dl) != 1 {
		t.Fatalf("a refused redelivery was decoded: dead letters %+v", dl)
	}
	release()
	for _, ch := range waiting {
		(<-ch)()
	}
	admitted := scanMsg(t, 3)
	admitted.data = first.data
	s.handle(admitted)
	wantAnswer(t, admitted, "term:"+metrics.ReasonMalformedEvent, 0)
	if s.c.gate.running != 0 {
		t.Errorf("%d slots still held after the event was dead-lettered", s.c.gate.running)
	}
}

func TestShellDeferralNotRecordedStillReturnsTheScan(t *testing.T) {
	s := newShell(t, ScanOptions{}, errors.New("stream info timed out"), igA)
	s.led.setErr = errors.New("kv down")
	msg := scanMsg(t, 1)
	s.handle(msg)
	wantAnswer(t, msg, "nak", time.Minute)
	if s.logs.FilterMessageSnippet("deferral not recorded").Len() != 1 {
		t.Error("the lost deferral was not logged")
	}
}

func TestShellCacheBehindDefersOnTheBackoffSchedule(t *testing.T) {
	s := newShell(t, ScanOptions{}, errors.New("cache at 3, stream at 9"), igA)
	s.led.deferrals[42] = 1
	msg := scanMsg(t, 2)
	s.handle(msg)
	wantAnswer(t, msg, "nak", 2*time.Minute)
	if s.led.deferrals[42] != 2 || s.exp.calls != 0 {
		t.Errorf("deferrals %d, exports %d", s.led.deferrals[42], s.exp.calls)
	}
}

func TestShellCorruptLedgerEntryStartsOverLoudly(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.led.corrupt[ledger.Key("t1", "s1", "a")] = true
	msg := scanMsg(t, 1)
	s.handle(msg)
	wantAnswer(t, msg, "ack", 0)
	if s.exp.calls != 1 || len(s.exp.jobs[0][0].Done) != 0 {
		t.Fatalf("exports %d %+v, want one from scratch", s.exp.calls, s.exp.jobs)
	}
	if v := promtest.ToFloat64(s.m.LedgerCorrupt); v != 1 {
		t.Errorf("corrupt metric %v", v)
	}
	if s.logs.FilterMessageSnippet("corrupt ledger entry").FilterLevelExact(zap.WarnLevel).Len() != 1 {
		t.Error("no warning for the corrupt entry")
	}
}

func TestShellCorruptDeferralCountIsReported(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.led.deferErr = ledger.ErrCorrupt
	msg := scanMsg(t, 2)
	s.handle(msg)
	wantAnswer(t, msg, "ack", 0)
	if v := promtest.ToFloat64(s.m.LedgerCorrupt); v != 1 {
		t.Errorf("corrupt metric %v", v)
	}
}

func TestShellLedgerUnavailable(t *testing.T) {
	for name, mod := range map[string]func(*fakeLedger){
		"entries":   func(l *fakeLedger) { l.getErr = errors.New("timeout") },
		"deferrals": func(l *fakeLedger) { l.deferErr = errors.New("timeout") },
	} {
		t.Run(name, func(t *testing.T) {
			s := newShell(t, ScanOptions{}, nil, igA)
			mod(s.led)
			msg := scanMsg(t, 2)
			s.handle(msg)
			wantAnswer(t, msg, "nak", 2*time.Minute)
			if s.exp.calls != 0 {
				t.Error("exported without the ledger")
			}
			if v := promtest.ToFloat64(s.m.Redeliveries.WithLabelValues(metrics.RedeliveryLedgerUnavailable)); v != 1 {
				t.Errorf("redeliveries %v", v)
			}
		})
	}
}

func TestShellUnpublishedStatusIsRedelivered(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.pub.fail = "prowler.exports.status."
	msg := scanMsg(t, 1)
	s.handle(msg)
	wantAnswer(t, msg, "nak", time.Minute)
	if e := s.led.entry("a"); e.State != event.StateRetrying || len(e.Objects) != 2 {
		t.Fatalf("ledger %+v: want the objects kept and the export unsettled", e)
	}
	// The redelivery publishes it without uploading again.
	s.pub.fail = ""
	again := scanMsg(t, 2)
	s.handle(again)
	wantAnswer(t, again, "ack", 0)
	if len(s.exp.jobs) != 2 || len(s.exp.jobs[1][0].Done) != 2 {
		t.Fatalf("jobs %+v: the redelivery must know both files landed", s.exp.jobs)
	}
}

func TestShellShutdownKeepsProgressAndReturnsTheScan(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.exp.do = func(jobs []exporter.Job) []exporter.Result {
		s.c.cancel() // the shutdown grace ran out mid-export
		return []exporter.Result{exported(jobs[0].Integration, nil, errcode.Retryable(errcode.Timeout, context.Canceled))}
	}
	msg := scanMsg(t, 1)
	s.handle(msg)
	wantAnswer(t, msg, "nak", 0)
	if n := len(s.pub.exportStatuses(t)); n != 0 {
		t.Errorf("%d statuses published on shutdown, want none", n)
	}
	if e := s.led.entry("a"); e.State != event.StateRetrying || len(e.Objects) != 1 {
		t.Errorf("ledger %+v", e)
	}
	if s.led.deferrals[42] != 1 {
		t.Error("the interrupted delivery was counted as an attempt")
	}
}

func TestShellStoppingWhileWaitingForASlot(t *testing.T) {
	s := newShell(t, ScanOptions{MaxInFlight: 1}, nil, igA)
	release, ok, _ := s.c.gate.enter(context.Background(), "other")
	if !ok {
		t.Fatal("gate")
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	msg := scanMsg(t, 1)
	go func() { s.c.handle(ctx, msg); close(done) }()
	for _, w := s.c.gate.counts(); w == 0; _, w = s.c.gate.counts() {
	}
	cancel()
	<-done
	wantAnswer(t, msg, "nak", 0)
	if s.exp.calls != 0 {
		t.Error("exported while stopping")
	}
}

func TestShellHeartbeatsWhileHolding(t *testing.T) {
	s := newShell(t, ScanOptions{AckWait: 3 * time.Millisecond}, nil, igA)
	msg := scanMsg(t, 1)
	msg.progressed = make(chan struct{})
	s.exp.do = func(jobs []exporter.Job) []exporter.Result {
		<-msg.progressed // the export lasts until the message was kept alive
		return []exporter.Result{exported(jobs[0].Integration)}
	}
	s.handle(msg)
	wantAnswer(t, msg, "ack", 0)
}

func TestShellConnectionStatusFromExport(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	s.exp.do = func(jobs []exporter.Job) []exporter.Result {
		return []exporter.Result{exported(jobs[0].Integration, denied, denied)}
	}
	msg := scanMsg(t, 1)
	s.handle(msg)
	wantAnswer(t, msg, "ack", 0)
	cs := s.pub.on("prowler.integrations.status.t1.a")
	if len(cs) != 1 {
		t.Fatalf("%d connection statuses", len(cs))
	}
	var st event.ConnectionStatus
	if err := json.Unmarshal(cs[0].Data, &st); err != nil || st.Connected || st.Error == nil || st.Error.Code != string(errcode.S3BucketAccessDenied) {
		t.Fatalf("connection status %+v %v", st, err)
	}
}

func TestSubjectTenant(t *testing.T) {
	topo := streams.Topology{Prefix: "prowler"}
	for subject, want := range map[string]string{
		"prowler.scans.completed.t1.p1": "t1",
		"prowler.scans.completed.t1":    "unknown",
		"other.scans.completed.t1.p1":   "unknown",
	} {
		if got := subjectTenant(topo, subject); got != want {
			t.Errorf("%s: %s, want %s", subject, got, want)
		}
	}
}

// A message fetched as the replica stops goes back with its deferral
// recorded, so that the delivery uses no attempt; when the count cannot be
// read, it goes back without one (and the count is not reset).
func TestShellGiveBackOnShutdownRecordsADeferral(t *testing.T) {
	s := newShell(t, ScanOptions{}, nil, igA)
	first := scanMsg(t, 1)
	s.c.giveBack(first)
	wantAnswer(t, first, "nak", 0)
	if n := s.led.deferrals[42]; n != 1 {
		t.Fatalf("deferrals after giving back a first delivery: %d, want 1", n)
	}
	again := scanMsg(t, 3)
	s.c.giveBack(again)
	wantAnswer(t, again, "nak", 0)
	if n := s.led.deferrals[42]; n != 2 {
		t.Fatalf("deferrals after giving back a later delivery: %d, want 2", n)
	}
	if n := promtest.ToFloat64(s.m.ScansDeferred.WithLabelValues(DeferShutdown)); n != 2 {
		t.Errorf("shutdown deferrals counted: %v, want 2", n)
	}

	s.led.deferErr = errors.New("kv down")
	unread := scanMsg(t, 4)
	s.c.giveBack(unread)
	wantAnswer(t, unread, "nak", 0)
	if n := s.led.deferrals[42]; n != 2 {
		t.Fatalf("deferrals %d after a failed read, want them left at 2", n)
	}
}
