// Package sched decides which upload runs next. Uploads wait in a fair queue
// per tenant; one runs when its tenant is the least served of those waiting,
// its destination (tenant, bucket, credentials) is under its adaptive
// concurrency limit and its circuit breaker lets it through, and its bytes
// fit the memory budget. It knows nothing of S3: the exporter tells it each
// upload's tenant, destination, bytes and outcome.
package sched

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Config tunes a Scheduler.
type Config struct {
	// Capacity is the most uploads running at once, across tenants.
	Capacity int
	// Budget is the most bytes the running uploads may hold in memory; an
	// upload larger than Budget runs alone.
	Budget int64
	// InitialLimit and MaxLimit bound each destination's adaptive
	// concurrency limit (defaults 4 and Capacity).
	InitialLimit, MaxLimit int
	// BreakerFailures is how many destination failures in a row open its
	// breaker (default 5); BreakerCooldown how long it stays open before a
	// probe (default 30s, doubling on each failed probe up to
	// BreakerMaxCooldown, default 5m).
	BreakerFailures                     int
	BreakerCooldown, BreakerMaxCooldown time.Duration
	// Observer is told of queue, budget, limit and breaker changes.
	Observer Observer
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Observer receives the scheduler's measurements; nil functions are skipped.
// They are called under the scheduler's lock: they must be quick and must not
// call back into it.
type Observer struct {
	// Queued is told of uploads starting (+1) and ending (-1) their wait.
	Queued func(delta int)
	// Waited observes one upload's wait in the fair queue.
	Waited func(time.Duration)
	// Running is told of uploads starting (+1) and ending (-1).
	Running func(delta int)
	// Bytes is told of the bytes held by running uploads, after each change.
	Bytes func(inFlight int64)
	// Limits is told of destinations entering (+1) and leaving (-1) a class
	// of LimitClasses.
	Limits func(class string, delta int)
	// Breakers is told of destinations entering (+1) and leaving (-1) a
	// breaker state. Open counts from the moment the breaker opens until the
	// probe that follows its cooldown starts.
	Breakers func(s State, delta int)
}

// ErrOpen is the error of an upload refused because its destination's
// breaker is open.
var ErrOpen = errors.New("circuit breaker open")

// OpenError is ErrOpen with how long until the breaker lets a probe through.
type OpenError struct{ RetryIn time.Duration }

func (e *OpenError) Error() string {
	return fmt.Sprintf("%v after repeated failures of this destination; next probe in %v", ErrOpen, e.RetryIn.Round(time.Second))
}

// Is makes errors.Is(err, ErrOpen) hold.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Request is an upload asking to run.
type Request struct {
	Tenant string
	// Dest identifies the destination: tenant, bucket and credentials.
	Dest string
	// Bytes is the most memory the upload holds while it runs.
	Bytes int64
}

// Signal is what the end of a request under a grant says about its
// destination; the destination's limit and breaker learn from it.
type Signal int

const (
	// Abandoned: nothing (the context ended, the source failed).
	Abandoned Signal = iota
	// Succeeded: the upload is in the bucket.
	Succeeded
	// Answered: the destination answered with an error that is not about
	// its load or health (access denied, a missing bucket): alive.
	Answered
	// Overloaded: throttling, a server error, a refused or reset connection,
	// a timeout.
	Overloaded
)

// Transition is a breaker's change of state reported by Grant.Done.
type Transition int

// Breaker transitions.
const (
	NoChange Transition = iota
	Opened
	ClosedAgain
)

// Scheduler is the fair queue of uploads. The zero value is not usable: call
// New.
type Scheduler struct {
	cfg Config

	mu      sync.Mutex
	running int
	bytes   int64
	peak    int64
	seq     uint64 // serves tenants and destinations round-robin on ties
	tenants map[string]*tenant
	// active holds the tenants with uploads waiting: dispatch looks at
	// those only, however many tenants were seen lately.
	active map[*tenant]struct{}
	dests  map[string]*dest
	swept  time.Time
}

// wait adds n (negative: removes) to t's waiting uploads.
func (s *Scheduler) wait(t *tenant, n int) {
	t.waiting += n
	if t.waiting > 0 {
		s.active[t] = struct{}{}
	} else {
		delete(s.active, t)
	}
	s.observeQueued(n)
}

type tenant struct {
	id      string
	running int
	waiting int
	served  uint64
	dests   map[string]*dest
}

type dest struct {
	key     string
	tenant  *tenant
	lim     Limiter
	br      Breaker
	running int
	queue   []*waiter
	served  uint64
	used    time.Time
	class   string
	state   State // as last reported to Observer.Breakers
}

type waiter struct {
	req   Request
	enq   time.Time
	ready chan error // buffered: dispatch never blocks on it
	grant *Grant
}

// New returns a Scheduler. The exporter passes every setting of the daemon's
// configuration (capacity, breaker); the fallbacks below serve the other
// callers, this package's tests and the benchmarks.
func New(cfg Config) *Scheduler {
	if cfg.Capacity <= 0 {
		cfg.Capacity = 64
	}
	if cfg.MaxLimit <= 0 || cfg.MaxLimit > cfg.Capacity {
		cfg.MaxLimit = cfg.Capacity
	}
	if cfg.InitialLimit <= 0 {
		cfg.InitialLimit = 4
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 30 * time.Second
	}
	if cfg.BreakerMaxCooldown <= 0 {
		cfg.BreakerMaxCooldown = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Budget <= 0 {
		cfg.Budget = math.MaxInt64
	}
	return &Scheduler{cfg: cfg, tenants: map[string]*tenant{}, active: map[*tenant]struct{}{}, dests: map[string]*dest{}}
}

// Acquire waits until r may run and returns its grant; the caller must call
// Grant.Done. It fails at once with an *OpenError when r's destination's
// breaker is open, and with ctx's error when ctx ends first.
func (s *Scheduler) Acquire(ctx context.Context, r Request) (*Grant, error) {
	s.mu.Lock()
	now := s.cfg.Now()
	s.sweep(now)
	d := s.dest(r, now)
	if d.br.State(now) == Open {
		err := &OpenError{RetryIn: d.br.RetryIn(now)}
		s.mu.Unlock()
		return nil, err
	}
	w := &waiter{req: r, enq: now, ready: make(chan error, 1)}
	d.queue = append(d.queue, w)
	s.wait(d.tenant, 1)
	s.dispatch(now)
	s.mu.Unlock()

	select {
	case err := <-w.ready:
		if err != nil {
			return nil, err
		}
		return w.grant, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if s.remove(d, w) {
		s.mu.Unlock()
		return nil, ctx.Err()
	}
	s.mu.Unlock()
	// Granted meanwhile: give it back.
	if err := <-w.ready; err == nil {
		w.grant.Done(Abandoned, false)
	}
	return nil, ctx.Err()
}

// dest returns r's destination, created on first use.
func (s *Scheduler) dest(r Request, now time.Time) *dest {
	d, ok := s.dests[r.Dest]
	if !ok {
		t, ok := s.tenants[r.Tenant]
		if !ok {
			t = &tenant{id: r.Tenant, dests: map[string]*dest{}}
			s.tenants[r.Tenant] = t
		}
		d = &dest{key: r.Dest, tenant: t,
			lim: NewLimiter(s.cfg.InitialLimit, s.cfg.MaxLimit),
			br:  NewBreaker(s.cfg.BreakerFailures, s.cfg.BreakerCooldown, s.cfg.BreakerMaxCooldown)}
		d.class = LimitClass(d.lim.Limit())
		s.dests[r.Dest] = d
		t.dests[r.Dest] = d
		s.observeLimit(d.class, 1)
		s.observeBreaker(Closed, 1)
	}
	d.used = now
	return d
}

// remove takes w out of d's queue; it reports false when w was no longer
// there (granted or failed meanwhile).
func (s *Scheduler) remove(d *dest, w *waiter) bool {
	for i, q := range d.queue {
		if q == w {
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			s.wait(d.tenant, -1)
			return true
		}
	}
	return false
}

// tenantMax is the most slots one tenant may hold: all but an eighth of the
// capacity. Fair share alone cannot take slots back from a tenant that
// filled them while alone (an upload is not preempted), so a tenant whose
// bucket answers in 1.5 s would hold every slot for that long and another
// tenant's first upload would wait for one to free; the headroom lets it
// start at once (docs/BENCHMARKS.md, workload 6), at the cost of an eighth
// of the concurrency for a tenant alone.
func (s *Scheduler) tenantMax() int { return max(1, s.cfg.Capacity-s.cfg.Capacity/8) }

// dispatch starts waiting uploads while capacity lasts. The next upload is
// the oldest waiting one of the least-served eligible destination of the
// tenant with the fewest running uploads (ties go round-robin): max-min fair
// share, so a tenant holds more than Capacity / (tenants waiting) slots only
// when the others do not need them. A destination is eligible when under its
// limit and allowed by its breaker.
//
// A head upload that does not fit the byte budget stops dispatch until bytes
// are released, rather than letting smaller uploads of others pass it
// forever; an upload larger than the whole budget runs when nothing else does.
func (s *Scheduler) dispatch(now time.Time) {
	for s.running < s.cfg.Capacity {
		d := s.next(now)
		if d == nil {
			return
		}
		w := d.queue[0]
		if s.bytes > 0 && s.bytes+w.req.Bytes > s.cfg.Budget {
			return
		}
		d.queue = d.queue[1:]
		t := d.tenant
		s.wait(t, -1)
		s.seq++
		t.served, d.served = s.seq, s.seq
		t.running++
		d.running++
		s.running++
		s.bytes += w.req.Bytes
		s.peak = max(s.peak, s.bytes)
		if d.br.State(now) == HalfOpen && d.state == Open {
			s.setBreakerState(d, HalfOpen)
		}
		d.br.Started(now)
		if s.cfg.Observer.Waited != nil {
			s.cfg.Observer.Waited(now.Sub(w.enq))
		}
		if s.cfg.Observer.Running != nil {
			s.cfg.Observer.Running(1)
		}
		if s.cfg.Observer.Bytes != nil {
			s.cfg.Observer.Bytes(s.bytes)
		}
		w.grant = &Grant{s: s, d: d, bytes: w.req.Bytes, start: now, saturated: d.running >= d.lim.Limit()}
		w.ready <- nil
	}
}

// next returns the destination whose head upload runs next, or nil.
func (s *Scheduler) next(now time.Time) *dest {
	var best *dest
	for t := range s.active {
		if t.running >= s.tenantMax() {
			continue
		}
		if best != nil && (t.running > best.tenant.running ||
			(t.running == best.tenant.running && t.served > best.tenant.served)) {
			continue
		}
		var pick *dest
		for _, d := range t.dests {
			if len(d.queue) == 0 || d.running >= d.lim.Limit() || !d.br.Allow(now) {
				continue
			}
			if pick == nil || d.served < pick.served {
				pick = d
			}
		}
		if pick != nil {
			best = pick
		}
	}
	return best
}

// Grant is a running upload's hold on its slot, its destination and its
// bytes.
type Grant struct {
	s         *Scheduler
	d         *dest
	bytes     int64
	start     time.Time
	saturated bool
	once      sync.Once
}

// Done releases the grant and feeds the request's signal to its
// destination's limit and breaker. When timed, the time since the grant is a
// round trip (an upload of one request) and feeds the limit's latency
// signal. It reports a change of the breaker: Opened (the fail-fast starts;
// uploads waiting for the destination fail with an *OpenError) or
// ClosedAgain. Calls after the first do nothing.
func (g *Grant) Done(o Signal, timed bool) (tr Transition) {
	g.once.Do(func() { tr = g.s.done(g, o, timed) })
	return tr
}

func (s *Scheduler) done(g *Grant, o Signal, timed bool) Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	d := g.d
	d.running--
	d.tenant.running--
	s.running--
	s.bytes -= g.bytes
	d.used = now
	if s.cfg.Observer.Running != nil {
		s.cfg.Observer.Running(-1)
	}
	if s.cfg.Observer.Bytes != nil {
		s.cfg.Observer.Bytes(s.bytes)
	}
	tr := NoChange
	switch o {
	case Succeeded:
		d.lim.Success(now, now.Sub(g.start), timed, g.saturated)
		if d.br.Success() {
			tr = ClosedAgain
		}
	case Answered:
		if d.br.Success() {
			tr = ClosedAgain
		}
	case Overloaded:
		d.lim.Overload(now)
		if d.br.Failure(now) {
			tr = Opened
		}
	default:
		d.br.Abandoned()
	}
	if c := LimitClass(d.lim.Limit()); c != d.class {
		s.observeLimit(d.class, -1)
		s.observeLimit(c, 1)
		d.class = c
	}
	switch tr {
	case Opened:
		s.setBreakerState(d, Open)
		err := &OpenError{RetryIn: d.br.RetryIn(now)}
		for _, w := range d.queue {
			w.ready <- err
		}
		s.wait(d.tenant, -len(d.queue))
		d.queue = nil
	case ClosedAgain:
		s.setBreakerState(d, Closed)
	}
	s.dispatch(now)
	return tr
}

func (s *Scheduler) setBreakerState(d *dest, st State) {
	if d.state == st {
		return
	}
	s.observeBreaker(d.state, -1)
	s.observeBreaker(st, 1)
	d.state = st
}

// idleDest is how long a destination with nothing running, nothing waiting
// and a closed breaker is remembered: its limit and round-trip mean are
// relearnt within a few uploads, and thousands of tenants must not grow the
// map for ever. An open breaker is kept: forgetting it would let the next
// scan wait for a black hole again.
const idleDest = 10 * time.Minute

func (s *Scheduler) sweep(now time.Time) {
	if now.Sub(s.swept) < time.Minute {
		return
	}
	s.swept = now
	for k, d := range s.dests {
		if d.running > 0 || len(d.queue) > 0 || d.state != Closed || now.Sub(d.used) < idleDest {
			continue
		}
		delete(s.dests, k)
		delete(d.tenant.dests, k)
		if len(d.tenant.dests) == 0 {
			delete(s.tenants, d.tenant.id)
		}
		s.observeLimit(d.class, -1)
		s.observeBreaker(d.state, -1)
	}
}

func (s *Scheduler) observeQueued(n int) {
	if s.cfg.Observer.Queued != nil && n != 0 {
		s.cfg.Observer.Queued(n)
	}
}

func (s *Scheduler) observeLimit(class string, n int) {
	if s.cfg.Observer.Limits != nil {
		s.cfg.Observer.Limits(class, n)
	}
}

func (s *Scheduler) observeBreaker(st State, n int) {
	if s.cfg.Observer.Breakers != nil {
		s.cfg.Observer.Breakers(st, n)
	}
}

// Stats is a snapshot of the scheduler.
type Stats struct {
	Running, Waiting int
	// Bytes is held by the running uploads now; Peak the most they held at
	// once since New.
	Bytes, Peak, Budget int64
}

// Stats returns a snapshot.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Running: s.running, Bytes: s.bytes, Peak: s.peak, Budget: s.cfg.Budget}
	for t := range s.active {
		st.Waiting += t.waiting
	}
	return st
}

// DestStats is one destination's state.
type DestStats struct {
	Running, Waiting, Limit int
	Breaker                 State
}

// Dest returns the state of the destination key, if known.
func (s *Scheduler) Dest(key string) (DestStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dests[key]
	if !ok {
		return DestStats{}, false
	}
	return DestStats{Running: d.running, Waiting: len(d.queue), Limit: d.lim.Limit(), Breaker: d.br.State(s.cfg.Now())}, true
}

// LimitClasses are the classes of destination limits reported to
// Observer.Limits: powers of two, so that the distribution reads at a glance
// (how many destinations were cut to 1, how many grew to 32 or more).
var LimitClasses = []string{"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64+"}

// LimitClass returns the class of a limit.
func LimitClass(limit int) string {
	switch {
	case limit <= 1:
		return "1"
	case limit < 4:
		return "2-3"
	case limit < 8:
		return "4-7"
	case limit < 16:
		return "8-15"
	case limit < 32:
		return "16-31"
	case limit < 64:
		return "32-63"
	}
	return "64+"
}
