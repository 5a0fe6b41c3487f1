package consumer

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/integration"
	"github.com/prowler-cloud/s3-exporter/ledger"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// ScanOptions tunes the scan consumer.
type ScanOptions struct {
	// Durable is the consumer name every replica shares.
	Durable string
	// MaxInFlight bounds the scans one replica processes at once; it never
	// holds more unacknowledged messages than that.
	MaxInFlight int
	AckWait     time.Duration
	MaxDeliver  int
	// Backoff returns the redelivery delay after delivery attempt n (1-based).
	Backoff func(attempt int) time.Duration
	// CacheWait bounds the wait for the integration cache to catch up.
	CacheWait time.Duration
}

// Exporter is what the consumer needs of the exporter.
type Exporter interface {
	Export(ctx context.Context, scan *event.ScanCompleted, jobs []exporter.Job) []exporter.Result
}

// ScanConsumer consumes scan-completed events from the durable pull consumer.
type ScanConsumer struct {
	js       jetstream.JetStream
	topo     Topology
	opts     ScanOptions
	cache    *integration.Cache
	follower *Follower
	exp      Exporter
	ledger   *ledger.Ledger
	report   *Reporter
	metrics  *metrics.Metrics
	log      *zap.Logger

	cons    jetstream.Consumer
	slots   chan struct{}
	wg      sync.WaitGroup
	work    context.Context // canceled when the shutdown grace runs out
	cancel  context.CancelFunc
	stopped chan struct{}
}

// NewScanConsumer returns a consumer; Bind creates the durable consumer.
func NewScanConsumer(js jetstream.JetStream, topo Topology, opts ScanOptions, cache *integration.Cache, f *Follower,
	exp Exporter, l *ledger.Ledger, rep *Reporter, m *metrics.Metrics, log *zap.Logger) *ScanConsumer {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 8
	}
	if opts.AckWait <= 0 {
		opts.AckWait = time.Minute
	}
	if opts.CacheWait <= 0 {
		opts.CacheWait = 10 * time.Second
	}
	if opts.Backoff == nil {
		opts.Backoff = func(int) time.Duration { return 5 * time.Second }
	}
	work, cancel := context.WithCancel(context.Background())
	return &ScanConsumer{js: js, topo: topo, opts: opts, cache: cache, follower: f, exp: exp, ledger: l,
		report: rep, metrics: m, log: log, slots: make(chan struct{}, opts.MaxInFlight),
		work: work, cancel: cancel, stopped: make(chan struct{})}
}

// Bind creates or updates the durable consumer shared by the replicas.
func (c *ScanConsumer) Bind(ctx context.Context) error {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.topo.ScansStream(), jetstream.ConsumerConfig{
		Durable:       c.opts.Durable,
		Description:   "s3-exporter replicas",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.opts.AckWait,
		MaxDeliver:    c.opts.MaxDeliver,
		FilterSubject: c.topo.Subject(event.ScansCompleted, ">"),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 10_000,
	})
	if err != nil {
		return err
	}
	c.cons = cons
	return nil
}

// Consumer returns the bound JetStream consumer (for its info).
func (c *ScanConsumer) Consumer() jetstream.Consumer { return c.cons }

// Run fetches and processes scans until ctx ends. It does not wait for the
// scans in flight; Shutdown does.
func (c *ScanConsumer) Run(ctx context.Context) {
	defer close(c.stopped)
	for ctx.Err() == nil {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < c.opts.MaxInFlight {
			select {
			case c.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		fctx, cancelFetch := context.WithTimeout(ctx, 5*time.Second)
		batch, err := c.cons.Fetch(n, jetstream.FetchContext(fctx))
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
				_ = msg.Nak() // stopping: let another replica take it now
				<-c.slots
				continue
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { <-c.slots }()
				c.handle(msg)
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

// Shutdown waits for the scans in flight until ctx ends, then cancels them
// (their uploads abort and their messages are nak'ed for redelivery).
func (c *ScanConsumer) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		c.cancel()
		return nil
	case <-ctx.Done():
		c.cancel()
		<-done
		return errors.New("shutdown grace ran out: in-flight scans were canceled and returned to the stream")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handle processes one scan-completed message and decides its fate.
func (c *ScanConsumer) handle(msg jetstream.Msg) {
	started := time.Now()
	c.metrics.ScansReceived.Inc()
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	attempt := int(md.NumDelivered)
	scan, err := event.DecodeScan(c.topo.Prefix, msg.Subject(), msg.Data())
	if err != nil {
		c.deadLetter(msg, subjectTenant(c.topo, msg.Subject()), metrics.ReasonMalformedEvent, err.Error())
		return
	}
	log := c.log.With(zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID), zap.Int("attempt", attempt))

	// Keep the message ours while uploads run longer than the ack wait.
	stopBeat := c.heartbeat(msg)
	defer stopBeat()

	if err := c.follower.CatchUp(c.work, c.opts.CacheWait); err != nil {
		log.Warn("integration cache behind the stream; retrying the scan later", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
		return
	}
	igs := c.cache.Select(scan.TenantID, scan.Provider.ID)
	if len(igs) == 0 {
		log.Debug("no integration for this scan")
		c.ack(msg, log)
		return
	}
	var jobs []exporter.Job
	entries := map[string]ledger.Entry{}
	for _, ig := range igs {
		e, err := c.ledger.Get(c.work, scan.TenantID, scan.ScanID, ig.ID)
		if err != nil {
			log.Warn("ledger unavailable; retrying the scan later", zap.Error(err))
			_ = msg.NakWithDelay(c.opts.Backoff(attempt))
			return
		}
		if e.State == event.StateSucceeded || e.State == event.StateFailed {
			continue // already settled for this integration
		}
		entries[ig.ID] = e
		// A redelivery, or a ledger entry from an earlier try (a replay):
		// uploads may have been left behind.
		jobs = append(jobs, exporter.Job{Integration: ig, Done: e.Objects, Failed: e.Failed, Retry: attempt > 1 || e.State != ""})
	}
	if len(jobs) == 0 {
		c.ack(msg, log)
		return
	}

	results := c.exp.Export(c.work, scan, jobs)

	if c.work.Err() != nil {
		// Shutting down: keep what landed, say nothing yet, and let the scan
		// be redelivered at once.
		for _, r := range results {
			e := entries[r.Integration.ID]
			e.Objects = landed(e.Objects, r)
			e.State, e.Attempt, e.UpdatedAt = event.StateRetrying, attempt, time.Now().UTC()
			_ = c.ledger.Put(context.Background(), scan.TenantID, scan.ScanID, r.Integration.ID, e)
		}
		_ = msg.Nak()
		log.Info("scan interrupted by shutdown; returned to the stream")
		return
	}

	v := judge(results, attempt, c.opts.MaxDeliver)
	unpublished := 0
	for i, r := range results {
		e := entries[r.Integration.ID]
		e.Objects = landed(e.Objects, r)
		e.Failed = permanentFailures(r)
		if !c.report.Export(c.work, Outcome{Scan: scan, Result: r, State: v.States[i], Attempt: attempt, Started: started, Entry: e}) {
			unpublished++
		}
	}
	if unpublished > 0 && v.Fate == fateAck {
		// A status that did not reach the stream would be lost with the
		// ack: have the scan redelivered, which publishes it (the ledger
		// kept the objects, so nothing is uploaded again).
		d := c.opts.Backoff(attempt)
		log.Warn("export status not published; the scan will be redelivered to publish it", zap.Duration("delay", d))
		_ = msg.NakWithDelay(d)
		return
	}
	switch v.Fate {
	case fateRetry:
		d := c.opts.Backoff(attempt)
		log.Info("scan will be retried", zap.Duration("delay", d))
		_ = msg.NakWithDelay(d)
	case fateDeadLetter:
		c.deadLetter(msg, scan.TenantID, string(v.RanOut.Code), "retries ran out after "+strconv.Itoa(attempt)+" deliveries: "+v.RanOut.Message())
	default:
		c.ack(msg, log)
	}
}

// landed merges the objects a result shows in the bucket into done.
func landed(done map[string]event.ObjectRecord, r exporter.Result) map[string]event.ObjectRecord {
	out := make(map[string]event.ObjectRecord, len(done)+len(r.Artifacts))
	for k, v := range done {
		out[k] = v
	}
	for _, a := range r.Artifacts {
		if a.Object != nil {
			out[a.Artifact.Name()] = *a.Object
		}
	}
	return out
}

// permanentFailures lists the artifacts that failed for good, so a
// redelivery (for another artifact's retryable failure) does not try them again.
func permanentFailures(r exporter.Result) map[string]event.ExportError {
	var out map[string]event.ExportError
	for _, a := range r.Failed() {
		if a.Err.Retryable {
			continue
		}
		if out == nil {
			out = map[string]event.ExportError{}
		}
		out[a.Artifact.Name()] = event.ExportError{Format: a.Artifact.Format, Framework: a.Artifact.Framework,
			Key: a.Key, Code: string(a.Err.Code), Message: a.Err.Message()}
	}
	return out
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

func subjectTenant(t Topology, subject string) string {
	toks, err := event.SubjectTokens(subject, t.Prefix, event.ScansCompleted, 2)
	if err != nil || !event.ValidID(toks[0]) {
		return "unknown"
	}
	return toks[0]
}
