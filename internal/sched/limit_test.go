package sched

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	ms := time.Millisecond
	type obs struct {
		at        time.Duration // since t0
		rtt       time.Duration // 0: not timed
		saturated bool
		overload  bool
	}
	for _, tc := range []struct {
		name    string
		initial int
		obs     []obs
		want    int
	}{
		{"slow start adds two per saturated success", 4,
			[]obs{{at: 1, saturated: true}, {at: 2, saturated: true}, {at: 3, saturated: true}}, 10},
		{"a success with room to spare says nothing", 4,
			[]obs{{at: 1}, {at: 2}, {at: 3}}, 4},
		{"never above max", 60,
			[]obs{{saturated: true}, {saturated: true}, {saturated: true}, {saturated: true}, {saturated: true}}, 64},
		{"throttling halves", 16, []obs{{at: 1, overload: true}}, 8},
		{"failures of uploads already running count once", 16,
			[]obs{{at: 1, overload: true}, {at: 2, overload: true}, {at: 3, overload: true}}, 8},
		{"spaced failures each halve, down to 1", 16,
			[]obs{{at: 0, overload: true}, {at: 200 * ms, overload: true}, {at: 400 * ms, overload: true},
				{at: 600 * ms, overload: true}, {at: 800 * ms, overload: true}, {at: 1000 * ms, overload: true}}, 1},
		{"after a decrease, one per limit successes (congestion avoidance)", 16,
			append([]obs{{at: 0, overload: true}}, repeat(obs{at: time.Second, saturated: true}, 9)...), 9},
		{"flat latency grows", 4,
			[]obs{{at: 1, rtt: 100 * ms, saturated: true}, {at: 2, rtt: 110 * ms, saturated: true}, {at: 3, rtt: 95 * ms, saturated: true}}, 10},
		{"latency doubling by more than the floor cuts by a quarter", 8,
			[]obs{{at: 1, rtt: 100 * ms}, {at: 2, rtt: 100 * ms}, {at: 3, rtt: 400 * ms}}, 6},
		{"a loopback jitter of a few ms is not a rise", 8,
			[]obs{{at: 1, rtt: 1 * ms}, {at: 2, rtt: 1 * ms}, {at: 3, rtt: 10 * ms}}, 8},
		{"a constantly slow destination is flat, not rising", 4,
			repeat(obs{at: 1, rtt: 1500 * ms, saturated: true}, 10), 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(tc.initial, 64)
			for _, o := range tc.obs {
				if o.overload {
					l.Overload(t0.Add(o.at))
				} else {
					l.Success(t0.Add(o.at), o.rtt, o.rtt > 0, o.saturated)
				}
			}
			if got := l.Limit(); got != tc.want {
				t.Fatalf("limit %d, want %d", got, tc.want)
			}
		})
	}
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestBreakerCooldownDoublesUpToItsMaximum(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	b := NewBreaker(1, 10*time.Second, 25*time.Second)
	now := t0
	if !b.Failure(now) {
		t.Fatal("threshold 1: the first failure opens")
	}
	for _, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second} {
		if got := b.RetryIn(now); got != want {
			t.Fatalf("retry in %v, want %v", got, want)
		}
		if b.Allow(now.Add(want - time.Millisecond)) {
			t.Fatal("allowed before the cooldown ended")
		}
		now = now.Add(want)
		if !b.Allow(now) || b.State(now) != HalfOpen {
			t.Fatal("no probe after the cooldown")
		}
		b.Started(now)
		if b.Allow(now) {
			t.Fatal("a second probe while the first runs")
		}
		if !b.Failure(now) {
			t.Fatal("a failed probe did not reopen")
		}
	}
	now = now.Add(25 * time.Second)
	b.Started(now)
	b.Abandoned()
	if !b.Allow(now) {
		t.Fatal("an abandoned probe must let another probe")
	}
	b.Started(now)
	if !b.Success() || b.State(now) != Closed {
		t.Fatal("a successful probe did not close")
	}
	b.Failure(now)
	if b.RetryIn(now) != 10*time.Second {
		t.Fatalf("after closing the cooldown is back to its base: %v", b.RetryIn(now))
	}
}
