package sched

import "time"

// Limiter is one destination's adaptive concurrency limit, after Vector's
// adaptive request concurrency: additive increase while the round-trip time
// stays near its running mean, multiplicative decrease when it rises well
// above it or the destination throttles, fails or stops answering.
//
// Two refinements over plain AIMD, both for the same reason (a scan is a
// burst of a few dozen uploads, over before a limit growing by one per round
// trip would have grown): the limit starts at Initial, not 1, and until the
// first decrease it grows by slowStartGrowth per success (a faster slow start
// than TCP's: it triples per round trip), by 1/limit per success (one per
// round trip) after.
//
// A Limiter is not safe for concurrent use: the Scheduler calls it under its
// lock. Its decisions depend only on the values passed in, so tests drive it
// with a table of observations.
type Limiter struct {
	min, max  int
	limit     float64
	slowStart bool
	// mean is the exponentially weighted moving average of the round-trip
	// times observed, 0 before the first.
	mean         time.Duration
	lastDecrease time.Time
}

// RTT rise: a round trip counts as "rising latency" when it is both
// rttFactor times the running mean and rttFloor above it. The floor keeps
// the noise of a loopback or same-zone link (1 ms becoming 4 ms on a busy
// CPU) from being read as a destination in trouble.
const (
	rttFactor = 2.0
	rttFloor  = 50 * time.Millisecond
	// rttAlpha weighs a new sample in the running mean: about the last ten
	// round trips count.
	rttAlpha = 0.1
	// errorDecrease and rttDecrease are the multiplicative decreases. An
	// error (throttling, 5xx, timeout) is a clear signal and halves the
	// limit, as TCP does on loss; rising latency is a softer one (Vector
	// uses 0.9).
	errorDecrease = 0.5
	rttDecrease   = 0.75
	// minDecreaseGap bounds how often the limit decreases when the running
	// mean is still unknown or tiny: the failures of uploads that were
	// already running when the first one failed are one event, not many.
	minDecreaseGap = 100 * time.Millisecond
	// slowStartGrowth is what a saturated success adds to the limit until
	// the first decrease: the limit triples per round trip. At 100 ms a
	// destination goes from 16 to 224 in three round trips, where doubling
	// took four from 8 to 128 (docs/BENCHMARKS.md, workload 5); overshooting
	// costs one halving at the first sign of trouble.
	slowStartGrowth = 2
)

// NewLimiter returns a limiter starting at initial, kept within [1, most].
func NewLimiter(initial, most int) Limiter {
	most = max(most, 1)
	initial = min(max(initial, 1), most)
	return Limiter{min: 1, max: most, limit: float64(initial), slowStart: true}
}

// Limit is how many uploads the destination may have running now.
func (l *Limiter) Limit() int { return int(l.limit) }

// Mean is the running mean round-trip time (0 before the first).
func (l *Limiter) Mean() time.Duration { return l.mean }

// Success records an upload that succeeded at now. When timed, rtt is its
// round-trip time (an upload of one request); saturated says the destination
// was using its whole limit, the only case where a success says the limit
// could be higher (Vector's "limit reached in the window").
func (l *Limiter) Success(now time.Time, rtt time.Duration, timed, saturated bool) {
	if timed {
		rising := l.mean > 0 && float64(rtt) > rttFactor*float64(l.mean) && rtt-l.mean > rttFloor
		if l.mean == 0 {
			l.mean = rtt
		} else {
			l.mean = time.Duration((1-rttAlpha)*float64(l.mean) + rttAlpha*float64(rtt))
		}
		if rising {
			l.decrease(now, rttDecrease)
			return
		}
	}
	if !saturated {
		return
	}
	if l.slowStart {
		l.limit += slowStartGrowth
	} else {
		l.limit += 1 / l.limit
	}
	if l.limit > float64(l.max) {
		l.limit = float64(l.max)
	}
}

// Overload records throttling, a server error or a timeout at now.
func (l *Limiter) Overload(now time.Time) { l.decrease(now, errorDecrease) }

// decrease multiplies the limit by f, at most once per round trip (the
// uploads already running when the trouble started fail together).
func (l *Limiter) decrease(now time.Time, f float64) {
	l.slowStart = false
	if gap := max(l.mean, minDecreaseGap); !l.lastDecrease.IsZero() && now.Sub(l.lastDecrease) < gap {
		return
	}
	l.lastDecrease = now
	l.limit *= f
	if l.limit < float64(l.min) {
		l.limit = float64(l.min)
	}
}
