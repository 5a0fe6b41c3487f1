package sched

import "time"

// State is a circuit breaker's state.
type State int

// The states of a breaker.
const (
	// Closed lets every upload through.
	Closed State = iota
	// Open fails every upload at once, until its cooldown has passed.
	Open
	// HalfOpen lets one upload through, the probe: its success closes the
	// breaker, its failure opens it again for twice as long.
	HalfOpen
)

// States lists every state, for pre-creating metric series.
var States = []State{Closed, Open, HalfOpen}

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "closed"
}

// Breaker is one destination's circuit breaker. Failures are the
// destination's own (timeouts, throttling, 5xx, refused connections);
// any answer that shows it alive (a success, or an error such as
// AccessDenied) resets the count. Like Limiter it is a value driven under
// the Scheduler's lock, with the time passed in.
type Breaker struct {
	threshold         int
	base, maxCooldown time.Duration

	state    State
	fails    int
	cooldown time.Duration
	openedAt time.Time
	probing  bool
}

// NewBreaker returns a closed breaker that opens after threshold failures in
// a row and stays open for cooldown, doubling on each failed probe up to
// maxCooldown.
func NewBreaker(threshold int, cooldown, maxCooldown time.Duration) Breaker {
	if threshold < 1 {
		threshold = 1
	}
	if maxCooldown < cooldown {
		maxCooldown = cooldown
	}
	return Breaker{threshold: threshold, base: cooldown, maxCooldown: maxCooldown, cooldown: cooldown}
}

// State returns the breaker's state at now: an open breaker whose cooldown
// has passed reads HalfOpen.
func (b *Breaker) State(now time.Time) State {
	if b.state == Open && now.Sub(b.openedAt) >= b.cooldown {
		return HalfOpen
	}
	return b.state
}

// RetryIn is how long until an open breaker lets a probe through.
func (b *Breaker) RetryIn(now time.Time) time.Duration {
	if b.state != Open {
		return 0
	}
	return max(0, b.cooldown-now.Sub(b.openedAt))
}

// Allow reports whether an upload may start at now; when the breaker is
// half-open, the one upload it allows is the probe, and the others wait for
// its outcome (Allow reports false for them until then).
func (b *Breaker) Allow(now time.Time) bool {
	switch b.State(now) {
	case Closed:
		return true
	case HalfOpen:
		return !b.probing
	}
	return false
}

// Started records that an allowed upload started at now.
func (b *Breaker) Started(now time.Time) {
	if b.State(now) == HalfOpen {
		b.state, b.probing = HalfOpen, true
	}
}

// Success records an answer showing the destination alive; it reports
// whether that closed the breaker.
func (b *Breaker) Success() (closed bool) {
	b.fails = 0
	if b.state == Closed {
		return false
	}
	b.state, b.probing, b.cooldown = Closed, false, b.base
	return true
}

// Failure records a failure of the destination at now; it reports whether
// that opened the breaker (the threshold reached, or a failed probe).
func (b *Breaker) Failure(now time.Time) (opened bool) {
	b.fails++
	switch {
	case b.state == HalfOpen:
		b.cooldown = min(2*b.cooldown, b.maxCooldown)
	case b.state == Closed && b.fails >= b.threshold:
	default:
		return false
	}
	b.state, b.probing, b.openedAt = Open, false, now
	return true
}

// Abandoned records that an allowed upload ended without telling anything
// about the destination (its context ended, its source failed): a probe
// that did so lets the next upload probe.
func (b *Breaker) Abandoned() {
	b.probing = false
}
