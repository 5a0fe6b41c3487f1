// Package consumer consumes scan-completed events from the durable consumer
// that replicas share. It owns every message and decides its fate (ack, nak
// with delay, term) from one step value (decide); nothing below it acks.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/clock"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// ScanOptions tunes the scan consumer.
type ScanOptions struct {
	// Durable is the consumer name every replica shares.
	Durable string
	// MaxInFlight bounds the scans one replica exports at once (default
	// DefaultMaxInFlight).
	MaxInFlight int
	// MaxHeld bounds the scan messages one replica holds (exporting or
	// waiting for a slot): it never has more unacknowledged messages than
	// that. At least MaxInFlight.
	MaxHeld int
	// MaxTenantInFlight bounds the scans of one tenant one replica exports
	// at once; a tenant holds at most TenantHoldFactor times that while
	// other tenants need the room (alone and progressing, up to MaxHeld -
	// MaxInFlight), the next ones are deferred.
	MaxTenantInFlight int
	AckWait           time.Duration
	// MaxDeliver is the number of export attempts of a scan (deliveries
	// that were not deferrals) before it is given up.
	MaxDeliver int
	// Backoff returns the redelivery delay after attempt n (1-based).
	Backoff func(attempt int) time.Duration
	// CacheWait bounds the wait for the integration cache to catch up.
	CacheWait time.Duration
	// DeferCooldown is how long the slot of a scan deferred for fairness
	// stays held after the deferral (0: DeferCooldown; negative: none).
	DeferCooldown time.Duration
	// Base is the context exports run under (the daemon's: canceled when
	// the shutdown grace runs out, which aborts the uploads and returns
	// their scans to the stream). Nil: Run waits for them however long.
	Base context.Context
	// CheckEvery is how often the bound consumer is looked at (its gauges,
	// and Check); 0: 10 s.
	CheckEvery time.Duration
}

// Defaults of the options that are settings of the daemon too
// (S3EXPORTER_MAX_INFLIGHT_SCANS, S3EXPORTER_ACK_WAIT, S3EXPORTER_BACKOFF):
// internal/daemon's TestPackageDefaultsAreTheSettingsDefaults holds them equal to
// config.Default's.
const (
	DefaultMaxInFlight = 32
	DefaultAckWait     = 60 * time.Second
)

// DefaultBackoff is the default of ScanOptions.Backoff: 5s, 30s, 2m, 10m,
// then 30m.
func DefaultBackoff(attempt int) time.Duration {
	delays := [...]time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute}
	return delays[min(max(attempt-1, 0), len(delays)-1)]
}

// progressWindow: a tenant that finished a scan within it is progressing
// (decide defers its refused scans by 1 s, not by their doubling delay).
const progressWindow = 10 * time.Second

// TenantHoldFactor: a tenant holds at most this many times its export
// slots in one replica, or more while the replica holds at most MaxHeld -
// MaxInFlight scans in all (lent room, taken back as other tenants' scans
// come: gate). Its scans beyond wait on the stream (deferred), where other
// replicas or, later, this one take them; the other tenants' scans keep
// the rest of the held slots.
const TenantHoldFactor = 4

// DeferCooldown is the default of ScanOptions.DeferCooldown: how long a
// replica keeps the slot of a scan it deferred for fairness before fetching
// another message into it.
const DeferCooldown = time.Second

// Exporter is what the consumer needs of the exporter.
type Exporter interface {
	Export(ctx context.Context, scan *event.ScanCompleted, jobs []exporter.Job) []exporter.Result
}

// ScanConsumer consumes scan-completed events from the durable pull consumer.
type ScanConsumer struct {
	js       jetstream.JetStream
	topo     streams.Topology
	opts     ScanOptions
	cache    Catalog
	follower CatchUpper
	exp      Exporter
	ledger   Ledger
	report   *Reporter
	metrics  *metrics.Metrics
	log      *zap.Logger
	gate     *gate
	now      func() time.Time

	slots  chan struct{}
	wg     sync.WaitGroup
	work   context.Context // canceled when the shutdown grace runs out
	cancel context.CancelFunc
	// health is why the bound consumer looks broken (nil: it does not).
	health atomic.Pointer[error]
}

// NewScanConsumer returns a consumer; Run binds the durable consumer.
func NewScanConsumer(js jetstream.JetStream, topo streams.Topology, opts ScanOptions, cache Catalog, f CatchUpper,
	exp Exporter, l Ledger, rep *Reporter, m *metrics.Metrics, log *zap.Logger) *ScanConsumer {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	opts.MaxHeld = max(opts.MaxHeld, opts.MaxInFlight)
	if opts.MaxTenantInFlight <= 0 {
		opts.MaxTenantInFlight = opts.MaxInFlight
	}
	if opts.AckWait <= 0 {
		opts.AckWait = DefaultAckWait
	}
	if opts.CacheWait <= 0 {
		opts.CacheWait = 10 * time.Second
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	switch {
	case opts.DeferCooldown == 0:
		opts.DeferCooldown = DeferCooldown
	case opts.DeferCooldown < 0:
		opts.DeferCooldown = 0
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = 10 * time.Second
	}
	base := opts.Base
	if base == nil {
		base = context.Background()
	}
	work, cancel := context.WithCancel(base)
	g := newGate(opts.MaxInFlight, opts.MaxTenantInFlight, TenantHoldFactor*opts.MaxTenantInFlight)
	// Held room beyond what fills every export slot is lent to a tenant
	// past its hold, and taken back when other tenants' scans come.
	g.lendUpTo = opts.MaxHeld - opts.MaxInFlight
	if m != nil {
		g.onChange = func(_, waiting int) { m.ScansWaiting.Set(float64(waiting)) }
	}
	return &ScanConsumer{js: js, topo: topo, opts: opts, cache: cache, follower: f, exp: exp, ledger: l,
		report: rep, metrics: m, log: log, slots: make(chan struct{}, opts.MaxHeld),
		gate: g,
		now:  time.Now,
		work: work, cancel: cancel}
}

// Run binds the durable consumer the replicas share (creating or updating
// it), says ready, and fetches and exports scans until ctx ends. It then
// stops fetching and waits for the scans in flight until they end or Base
// does; those still running are canceled (their uploads abort and their
// messages return to the stream for another replica).
func (c *ScanConsumer) Run(ctx context.Context, ready func()) error {
	defer c.cancel()
	cons, err := c.bind(ctx)
	if err != nil {
		return fmt.Errorf("binding the scans consumer %q: %w", c.opts.Durable, err)
	}
	watched := make(chan struct{})
	go func() { defer close(watched); c.watch(ctx, cons) }()
	defer func() { <-watched }()
	ready()
	c.fetch(ctx, cons)
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-c.work.Done():
		<-done
		// Expected when uploads outlast the grace: they were aborted and
		// their scans returned to the stream, nothing is lost.
		c.log.Warn("shutdown grace ran out: in-flight scans were canceled and returned to the stream")
	}
	return nil
}

// bind creates or updates the durable consumer shared by the replicas.
func (c *ScanConsumer) bind(ctx context.Context) (jetstream.Consumer, error) {
	return c.js.CreateOrUpdateConsumer(ctx, c.topo.ScansStream(), jetstream.ConsumerConfig{
		Durable:     c.opts.Durable,
		Description: "s3-exporter replicas",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     c.opts.AckWait,
		// No JetStream limit: the consumer gives up from its own count of
		// attempts (deliveries minus deferrals, in the ledger), so that
		// deferrals for fairness never use attempts up.
		MaxDeliver:    -1,
		FilterSubject: c.topo.Subject(event.ScansCompleted, ">"),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// A deferred scan stays pending (unacknowledged) until its delay
		// runs out: a tenant's backlog of deferred scans must not reach
		// this bound, or JetStream would stop delivering anyone's scans
		// until the delays expire. A pending message costs the server
		// about a hundred bytes.
		MaxAckPending: 100_000,
	})
}

// fetch fetches scans into free slots and hands each to its own goroutine
// until ctx ends.
func (c *ScanConsumer) fetch(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < c.opts.MaxHeld {
			select {
			case c.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		fctx, cancelFetch := context.WithTimeout(ctx, 5*time.Second)
		batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
		if err != nil {
			cancelFetch()
			c.release(n)
			if ctx.Err() == nil {
				c.log.Warn("fetching scans", zap.Error(err))
				sleep(ctx, time.Second)
			}
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if ctx.Err() != nil {
				c.giveBack(msg) // stopping: let another replica take it now
				<-c.slots
				continue
			}
			c.wg.Add(1)
			c.metrics.ScansHeld.Inc()
			go func() {
				defer c.wg.Done()
				defer func() { <-c.slots }()
				defer c.metrics.ScansHeld.Dec()
				c.handle(ctx, msg)
			}()
		}
		cancelFetch()
		c.release(n - got)
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
			c.log.Debug("fetch ended", zap.Error(err))
		}
	}
}

func (c *ScanConsumer) release(n int) {
	for range n {
		<-c.slots
	}
}

// watch keeps the consumer gauges current, and Check honest: a scans
// consumer deleted under a running replica leaves its fetch loop failing
// forever, which must show on /readyz.
func (c *ScanConsumer) watch(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(c.opts.CheckEvery)
	defer t.Stop()
	failures := 0
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failures = 0
			if c.health.Swap(nil) != nil {
				c.log.Info("the scans consumer is usable again")
			}
			c.metrics.ConsumerPending.Set(float64(info.NumPending))
			c.metrics.ConsumerAckPending.Set(float64(info.NumAckPending))
		default:
			failures++
			// Gone is gone; anything else (a slow or restarting JetStream)
			// gets a few chances before the replica says it cannot work.
			if errors.Is(err, jetstream.ErrConsumerNotFound) || failures >= 3 {
				err = fmt.Errorf("scans consumer %q: %w", c.opts.Durable, err)
				if c.health.Swap(&err) == nil {
					c.log.Error("the scans consumer is not usable", zap.Error(err))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check says why the bound consumer cannot be used, if it cannot.
func (c *ScanConsumer) Check() error {
	if err := c.health.Load(); err != nil {
		return *err
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) { clock.Sleep(ctx, d) }

// handle processes one scan-completed message: it gathers the facts decide
// needs, through the ports, and carries out what decide says.
func (c *ScanConsumer) handle(stopping context.Context, msg jetstream.Msg) {
	c.metrics.ScansReceived.Inc()
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	// A first delivery is decoded at once: a malformed event is
	// dead-lettered at once (contract §3). A redelivery is decoded only
	// once it has a slot: its bytes, which the stream does not change,
	// decoded on its first delivery, and a tenant's backlog beyond its
	// share comes back, deferred, several times before it gets one
	// (workload 1 of docs/BENCHMARKS.md: 478 deferrals for 200 scans), each
	// decode costing more than the rest of a deferral. The gate goes by the
	// subject's tenant, which a valid event repeats.
	var scan *event.ScanCompleted
	tenant := subjectTenant(c.topo, msg.Subject())
	if md.NumDelivered <= 1 || tenant == "unknown" {
		if scan, err = c.decode(msg); err != nil {
			return
		}
	}
	seq := md.Sequence.Stream
	log := c.log.With(zap.String("tenant_id", tenant), zap.Uint64("stream_seq", seq))

	// Keep the message ours while it waits for a slot and while uploads
	// run longer than the ack wait.
	stopBeat := c.heartbeat(msg)
	defer stopBeat()

	f := facts{MaxDeliver: c.opts.MaxDeliver, Started: c.now(), Published: md.Timestamp,
		Backoff: c.opts.Backoff}
	if md.NumDelivered > 1 { // a first delivery was never deferred: no read
		f.Deferrals, err = c.ledger.Deferrals(c.work, seq)
		if errors.Is(err, ledger.ErrCorrupt) {
			c.corrupt(log, err)
		} else if err != nil {
			f.LedgerErr = err
		}
	}
	f.Attempt = attemptOf(int(md.NumDelivered), f.Deferrals)
	log = log.With(zap.Int("attempt", f.Attempt))

	evicted := false // its lent place was taken back: its slot is needed now
	if f.LedgerErr == nil && (f.MaxDeliver <= 0 || f.Attempt <= f.MaxDeliver) {
		// A scan that will be given up needs no slot: it exports nothing.
		release, ok, err := c.gate.enter(stopping, tenant)
		evicted = errors.Is(err, errEvicted)
		switch {
		case err != nil && !evicted:
			c.carry(msg, log, nil, step{Fate: fateDefer, DeferReason: DeferShutdown, Why: "replica stopping"}, f)
			return
		case !ok: // refused, or evicted
			f.Refused = true
			f.Progressing = c.gate.progressing(tenant, progressWindow)
		default:
			defer release()
		}
	}
	if !f.Refused && scan == nil {
		if scan, err = c.decode(msg); err != nil {
			return
		}
	}
	if scan != nil {
		log = log.With(zap.String("scan_id", scan.ScanID))
		f.Scan = scan
	}
	if !f.Refused && f.LedgerErr == nil {
		f.CatchUpErr = c.follower.CatchUp(c.work, c.opts.CacheWait)
	}
	if !f.Refused && f.LedgerErr == nil && f.CatchUpErr == nil {
		f.Integrations = c.cache.Select(scan.TenantID, scan.Provider.ID)
		f.Entries = make(map[string]ledger.Entry, len(f.Integrations))
		for _, ig := range f.Integrations {
			e, err := c.ledger.Get(c.work, scan.TenantID, scan.ScanID, ig.ID)
			if errors.Is(err, ledger.ErrCorrupt) {
				// Starting over re-uploads the same bytes under the same
				// keys: safe, where refusing would block the scan for good.
				c.corrupt(log, err)
			} else if err != nil {
				f.LedgerErr = err
				break
			}
			f.Entries[ig.ID] = e
		}
	}
	f.Now = c.now().UTC()
	s := decide(f)
	if s.Fate == fateExport {
		f.Results = c.exp.Export(c.work, scan, s.Jobs)
		f.Exported, f.Shutdown, f.Now = true, c.work.Err() != nil, c.now().UTC()
		s = decide(f)
	}
	c.carry(msg, log, scan, s, f)
	if s.Fate == fateDefer && s.DeferReason == DeferTenantLimit && !evicted {
		// Keep the held slot a moment: otherwise a tenant's backlog would
		// cycle through fetch and deferral as fast as NATS answers, writing
		// the ledger and piling up pending messages (up to MaxAckPending,
		// which would stop delivery for everyone). This bounds deferrals to
		// about MaxHeld per cooldown; other tenants' scans still find a
		// free slot within one. An evicted scan frees its slot at once: it
		// was evicted because another tenant's scans need the room.
		sleep(stopping, c.opts.DeferCooldown)
	}
}

// decode decodes msg's scan-completed event; one that is not valid is
// dead-lettered, and the error returned.
func (c *ScanConsumer) decode(msg jetstream.Msg) (*event.ScanCompleted, error) {
	scan, err := event.DecodeScan(c.topo.Prefix, msg.Subject(), msg.Data())
	if err != nil {
		c.deadLetter(msg, subjectTenant(c.topo, msg.Subject()), metrics.ReasonMalformedEvent, err.Error())
	}
	return scan, err
}

// carry does what step s says for msg (scan is nil for a scan deferred
// before its event was decoded).
func (c *ScanConsumer) carry(msg jetstream.Msg, log *zap.Logger, scan *event.ScanCompleted, s step, f facts) {
	if s.Quiet {
		for _, o := range s.Outcomes {
			if err := c.ledger.Put(context.Background(), scan.TenantID, scan.ScanID, o.Result.Integration.ID, o.Entry); err != nil {
				log.Warn("ledger write failed", zap.Error(err))
			}
		}
	} else if len(s.Outcomes) > 0 {
		published := make([]bool, len(s.Outcomes))
		for i, o := range s.Outcomes {
			published[i] = c.report.Record(c.work, o)
		}
		s = afterPublish(s, published, c.opts.Backoff)
	}
	switch s.Fate {
	case fateRetry:
		c.metrics.Redeliveries.WithLabelValues(s.RetryReason).Inc()
		log.Info("scan will be retried", zap.String("why", s.Why), zap.Duration("delay", s.Delay))
		_ = msg.NakWithDelay(s.Delay)
	case fateDefer:
		c.deferScan(msg, log, s, f)
	case fateDeadLetter:
		log.Error("scan event "+s.Why, zap.String("reason", s.Reason))
		c.deadLetter(msg, scan.TenantID, s.Code, s.Reason)
	default:
		if s.Warn {
			log.Warn("scan event " + s.Why)
		} else {
			log.Debug("scan done", zap.String("why", s.Why))
		}
		c.ack(msg, log)
	}
}

// deferScan returns msg to the stream without using up an attempt: the
// deferral is counted in the ledger first (the count survives restarts and
// other replicas read it). When the count cannot be written the scan is
// still returned: that delivery then counts as an attempt, which is better
// than holding a message the replica will not work on.
func (c *ScanConsumer) deferScan(msg jetstream.Msg, log *zap.Logger, s step, f facts) {
	md, err := msg.Metadata()
	if err == nil {
		// A context of its own: on shutdown c.work may be canceled already.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.ledger.SetDeferrals(ctx, md.Sequence.Stream, f.Deferrals+1)
		cancel()
	}
	if err != nil {
		log.Warn("deferral not recorded; this delivery counts as an attempt", zap.Error(err))
	}
	c.metrics.ScansDeferred.WithLabelValues(s.DeferReason).Inc()
	if s.DeferReason == DeferShutdown {
		log.Info("scan interrupted by shutdown; returned to the stream")
		_ = msg.Nak()
		return
	}
	log.Debug("scan deferred", zap.String("why", s.Why), zap.Duration("delay", s.Delay), zap.Int("deferrals", f.Deferrals+1))
	_ = msg.NakWithDelay(s.Delay)
}

// giveBack returns a message fetched as the replica stops, recording a
// shutdown deferral first so that the delivery uses no attempt (a plain Nak
// would use one: with S3EXPORTER_MAX_DELIVER=1 a graceful restart could give
// the scan up). When the count cannot be read it is not overwritten: the
// delivery then counts as an attempt.
func (c *ScanConsumer) giveBack(msg jetstream.Msg) {
	var f facts
	md, err := msg.Metadata()
	if err == nil && md.NumDelivered > 1 { // a first delivery was never deferred
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		f.Deferrals, err = c.ledger.Deferrals(ctx, md.Sequence.Stream)
		cancel()
	}
	if err != nil {
		c.log.Warn("returning a scan on shutdown without recording it; this delivery counts as an attempt", zap.Error(err))
		_ = msg.Nak()
		return
	}
	c.deferScan(msg, c.log.With(zap.Uint64("stream_seq", md.Sequence.Stream)), step{Fate: fateDefer, DeferReason: DeferShutdown, Why: "replica stopping"}, f)
}

// corrupt reports a ledger entry that does not decode.
func (c *ScanConsumer) corrupt(log *zap.Logger, err error) {
	c.metrics.LedgerCorrupt.Inc()
	log.Warn("corrupt ledger entry: starting over (files already in the bucket are uploaded again, a status may repeat)", zap.Error(err))
}

// ack acknowledges msg and waits for the server to confirm it, so that the
// slot is freed only once the server counts the message done. The server
// processes acks apart from pull requests: with a plain Ack, the next Fetch
// could be served before the ack was counted, and the replica would hold,
// as JetStream sees it, more unacknowledged messages than MaxInFlight. An
// ack left unconfirmed means the scan may be redelivered after the ack wait;
// the ledger makes that redelivery a no-op.
func (c *ScanConsumer) ack(msg jetstream.Msg, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack not confirmed; the scan may be redelivered", zap.Error(err))
	}
}

func (c *ScanConsumer) heartbeat(msg jetstream.Msg) (stop func()) {
	every := c.opts.AckWait / 3
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

func (c *ScanConsumer) deadLetter(msg jetstream.Msg, tenant, code, reason string) {
	if err := c.report.DeadLetter(c.work, tenant, msg.Subject(), msg.Data(), code, reason); err != nil {
		c.log.Error("dead letter not written; the event stays on its stream", zap.Error(err))
		_ = msg.NakWithDelay(c.opts.Backoff(1))
		return
	}
	_ = msg.TermWithReason(code)
}

func subjectTenant(t streams.Topology, subject string) string {
	toks, err := event.SubjectTokens(subject, t.Prefix, event.ScansCompleted, 2)
	if err != nil || !event.ValidID(toks[0]) {
		return "unknown"
	}
	return toks[0]
}
