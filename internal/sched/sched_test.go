package sched

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for the scheduler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// pending is an Acquire running in its own goroutine.
type pending struct {
	g   *Grant
	err error
	ok  chan struct{}
}

func acquire(s *Scheduler, ctx context.Context, r Request) *pending {
	p := &pending{ok: make(chan struct{})}
	go func() {
		p.g, p.err = s.Acquire(ctx, r)
		close(p.ok)
	}()
	return p
}

// wait returns the outcome of p; a scheduler that never answers fails the
// test (after long enough to be a hang, not slowness).
func (p *pending) wait(t *testing.T) (*Grant, error) {
	t.Helper()
	select {
	case <-p.ok:
		return p.g, p.err
	case <-time.After(20 * time.Second):
		t.Fatal("Acquire never returned")
		return nil, nil
	}
}

// waitingFor blocks until n uploads wait in s (Acquire queued them).
func waitingFor(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	for i := 0; ; i++ {
		if s.Stats().Waiting == n {
			return
		}
		if i > 20000 {
			t.Fatalf("%d waiting, want %d", s.Stats().Waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func running(t *testing.T, s *Scheduler, dest string) int {
	t.Helper()
	d, ok := s.Dest(dest)
	if !ok {
		t.Fatalf("no destination %s", dest)
	}
	return d.Running
}

func TestTenantGetsItsShareBackWhileAnotherHoldsEverySlot(t *testing.T) {
	s := New(Config{Capacity: 4, InitialLimit: 64})
	ctx := context.Background()
	var a []*Grant
	for range 4 {
		g, err := s.Acquire(ctx, Request{Tenant: "A", Dest: "A/b"})
		if err != nil {
			t.Fatal(err)
		}
		a = append(a, g)
	}
	// A has more waiting; B arrives after.
	var aWait []*pending
	for range 6 {
		aWait = append(aWait, acquire(s, ctx, Request{Tenant: "A", Dest: "A/b"}))
	}
	waitingFor(t, s, 6)
	var bWait []*pending
	for range 4 {
		bWait = append(bWait, acquire(s, ctx, Request{Tenant: "B", Dest: "B/b"}))
	}
	waitingFor(t, s, 10)

	// Each slot A frees goes to B until B holds its share (2 of 4), then
	// the two alternate: A never again holds more than 2 while B waits.
	want := []struct{ a, b int }{{3, 1}, {2, 2}, {2, 2}, {2, 2}}
	for i, w := range want {
		a[0].Done(Succeeded, false)
		a = a[1:]
		if got := (struct{ a, b int }{running(t, s, "A/b"), running(t, s, "B/b")}); got != w {
			t.Fatalf("after A's release %d: A runs %d, B runs %d; want %d, %d", i+1, got.a, got.b, w.a, w.b)
		}
		if len(a) == 0 {
			// A's next grants come from its waiters.
			for _, p := range aWait {
				select {
				case <-p.ok:
					a = append(a, p.g)
				default:
				}
			}
		}
	}
	granted := 0
	for _, p := range bWait {
		select {
		case <-p.ok:
			granted++
		case <-time.After(100 * time.Millisecond):
		}
	}
	if granted != 2 {
		t.Fatalf("%d of B's uploads got a slot, want 2", granted)
	}
}

func TestDestinationAtItsLimitDoesNotBlockOthers(t *testing.T) {
	s := New(Config{Capacity: 8, InitialLimit: 2, MaxLimit: 2})
	ctx := context.Background()
	var slow []*Grant
	for range 2 {
		g, err := s.Acquire(ctx, Request{Tenant: "A", Dest: "A/slow"})
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, g)
	}
	queued := acquire(s, ctx, Request{Tenant: "A", Dest: "A/slow"})
	waitingFor(t, s, 1)
	// Another bucket of the same tenant, and another tenant, still run.
	for _, r := range []Request{{Tenant: "A", Dest: "A/fast"}, {Tenant: "B", Dest: "B/b"}} {
		g, err := acquire(s, ctx, r).wait(t)
		if err != nil {
			t.Fatal(err)
		}
		g.Done(Succeeded, false)
	}
	select {
	case <-queued.ok:
		t.Fatal("an upload over its destination's limit started")
	default:
	}
	slow[0].Done(Succeeded, false)
	if _, err := queued.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestBreakerOpensFailsFastProbesAndCloses(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	var open, half int
	s := New(Config{Capacity: 8, InitialLimit: 8, BreakerFailures: 3, BreakerCooldown: 10 * time.Second, Now: clk.Now,
		Observer: Observer{Breakers: func(st State, d int) {
			switch st {
			case Open:
				open += d
			case HalfOpen:
				half += d
			}
		}}})
	ctx := context.Background()
	r := Request{Tenant: "A", Dest: "A/hole"}
	var gs []*Grant
	for range 3 {
		g, err := s.Acquire(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	if tr := gs[0].Done(Overloaded, false); tr != NoChange {
		t.Fatalf("one failure: %v", tr)
	}
	if tr := gs[1].Done(Overloaded, false); tr != NoChange {
		t.Fatalf("two failures: %v", tr)
	}
	if tr := gs[2].Done(Overloaded, false); tr != Opened {
		t.Fatalf("three failures in a row did not open the breaker: %v", tr)
	}
	if open != 1 {
		t.Fatalf("open breakers reported %d, want 1", open)
	}
	_, err := s.Acquire(ctx, r)
	var oe *OpenError
	if !errors.Is(err, ErrOpen) || !errors.As(err, &oe) || oe.RetryIn != 10*time.Second {
		t.Fatalf("Acquire on an open breaker: %v", err)
	}
	// Another destination of the same tenant is not affected.
	if g, err := s.Acquire(ctx, Request{Tenant: "A", Dest: "A/ok"}); err != nil {
		t.Fatal(err)
	} else {
		g.Done(Succeeded, false)
	}

	// After the cooldown one probe runs; the others wait for its outcome.
	clk.Add(10 * time.Second)
	probe, err := s.Acquire(ctx, r)
	if err != nil {
		t.Fatalf("no probe after the cooldown: %v", err)
	}
	if open != 0 || half != 1 {
		t.Fatalf("during the probe: %d open, %d half-open", open, half)
	}
	behind := acquire(s, ctx, r)
	waitingFor(t, s, 1)
	// A failed probe opens it again, for twice as long, and fails those
	// waiting.
	if tr := probe.Done(Overloaded, false); tr != Opened {
		t.Fatalf("failed probe: %v", tr)
	}
	if _, err := behind.wait(t); !errors.Is(err, ErrOpen) {
		t.Fatalf("an upload waiting behind a failed probe: %v", err)
	}
	clk.Add(10 * time.Second)
	if _, err := s.Acquire(ctx, r); !errors.Is(err, ErrOpen) {
		t.Fatalf("the cooldown did not double: %v", err)
	}
	clk.Add(10 * time.Second)
	probe, err = s.Acquire(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	behind = acquire(s, ctx, r)
	waitingFor(t, s, 1)
	if tr := probe.Done(Succeeded, false); tr != ClosedAgain {
		t.Fatalf("successful probe: %v", tr)
	}
	g, err := behind.wait(t)
	if err != nil {
		t.Fatalf("an upload waiting behind a successful probe: %v", err)
	}
	g.Done(Succeeded, false)
	if open != 0 || half != 0 {
		t.Fatalf("after closing: %d open, %d half-open", open, half)
	}
}

func TestAnswersThatAreNotOverloadResetTheFailureCount(t *testing.T) {
	s := New(Config{Capacity: 8, InitialLimit: 8, BreakerFailures: 2})
	ctx := context.Background()
	r := Request{Tenant: "A", Dest: "A/b"}
	for _, o := range []Signal{Overloaded, Answered, Overloaded, Abandoned, Succeeded, Overloaded} {
		g, err := s.Acquire(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if tr := g.Done(o, false); tr != NoChange {
			t.Fatalf("outcome %v: %v", o, tr)
		}
	}
}

func TestByteBudgetBoundsWhatRunsAtOnce(t *testing.T) {
	var inFlight, over int64
	s := New(Config{Capacity: 16, InitialLimit: 16, Budget: 100, Observer: Observer{Bytes: func(n int64) {
		inFlight = n
		if n > 100 {
			over = n
		}
	}}})
	ctx := context.Background()
	first, err := s.Acquire(ctx, Request{Tenant: "A", Dest: "A/b", Bytes: 60})
	if err != nil {
		t.Fatal(err)
	}
	// 60 + 60 > 100: the second waits, even with slots and limit to spare,
	// and so does a small one behind it (no overtaking).
	second := acquire(s, ctx, Request{Tenant: "A", Dest: "A/b", Bytes: 60})
	waitingFor(t, s, 1)
	third := acquire(s, ctx, Request{Tenant: "A", Dest: "A/b", Bytes: 10})
	waitingFor(t, s, 2)
	if st := s.Stats(); st.Running != 1 || st.Bytes != 60 {
		t.Fatalf("stats %+v", st)
	}
	first.Done(Succeeded, false)
	g2, err := second.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	g3, err := third.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if inFlight != 70 {
		t.Fatalf("%d bytes in flight, want 70", inFlight)
	}
	g2.Done(Succeeded, false)
	g3.Done(Succeeded, false)
	// An upload larger than the whole budget runs, alone.
	big, err := s.Acquire(ctx, Request{Tenant: "A", Dest: "A/b", Bytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	small := acquire(s, ctx, Request{Tenant: "B", Dest: "B/b", Bytes: 1})
	waitingFor(t, s, 1)
	big.Done(Succeeded, false)
	g, err := small.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	g.Done(Succeeded, false)
	if st := s.Stats(); st.Peak != 500 || st.Bytes != 0 {
		t.Fatalf("stats %+v: peak is the one oversized upload", st)
	}
	if over != 500 {
		t.Fatalf("only the oversized upload may exceed the budget, saw %d", over)
	}
}

func TestCanceledWaitLeavesTheQueue(t *testing.T) {
	s := New(Config{Capacity: 1})
	g, err := s.Acquire(context.Background(), Request{Tenant: "A", Dest: "A/b"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := acquire(s, ctx, Request{Tenant: "B", Dest: "B/b"})
	waitingFor(t, s, 1)
	cancel()
	if _, err := p.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled wait: %v", err)
	}
	if st := s.Stats(); st.Waiting != 0 || st.Running != 1 {
		t.Fatalf("stats %+v", st)
	}
	g.Done(Succeeded, false)
	if st := s.Stats(); st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueuedAndLimitObservers(t *testing.T) {
	queued := 0
	classes := map[string]int{}
	s := New(Config{Capacity: 8, InitialLimit: 4, Observer: Observer{
		Queued: func(d int) { queued += d },
		Limits: func(c string, d int) { classes[c] += d },
	}})
	ctx := context.Background()
	r := Request{Tenant: "A", Dest: "A/b"}
	var gs []*Grant
	for range 4 {
		g, err := s.Acquire(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	p := acquire(s, ctx, r)
	waitingFor(t, s, 1)
	if queued != 1 || classes["4-7"] != 1 {
		t.Fatalf("queued %d, limit classes %v", queued, classes)
	}
	gs[0].Done(Overloaded, false) // 4 halves to 2: 3 running, still full
	if queued != 1 || classes["2-3"] != 1 || classes["4-7"] != 0 {
		t.Fatalf("queued %d, limit classes %v", queued, classes)
	}
	gs[1].Done(Abandoned, false)
	gs[2].Done(Abandoned, false)
	g, err := p.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	g.Done(Abandoned, false)
	gs[3].Done(Abandoned, false)
	if queued != 0 {
		t.Fatalf("queued %d", queued)
	}
}

// With one slot and three tenants waiting, the slot goes round: no tenant is
// served twice while another waits.
func TestWaitingTenantsAreServedInTurn(t *testing.T) {
	s := New(Config{Capacity: 1, InitialLimit: 8})
	ctx := context.Background()
	block, err := s.Acquire(ctx, Request{Tenant: "X", Dest: "X/b"})
	if err != nil {
		t.Fatal(err)
	}
	type tp struct {
		tenant string
		p      *pending
	}
	var ps []tp
	for _, tenant := range []string{"A", "B", "C"} {
		for range 3 {
			ps = append(ps, tp{tenant, acquire(s, ctx, Request{Tenant: tenant, Dest: tenant + "/b"})})
		}
	}
	waitingFor(t, s, 9)
	block.Done(Succeeded, false)
	var order []string
	for len(order) < 9 {
		var got *tp
		for i := 0; got == nil; i++ {
			for j := range ps {
				select {
				case <-ps[j].p.ok:
					v := ps[j]
					got = &v
				default:
				}
				if got != nil {
					ps = append(ps[:j], ps[j+1:]...)
					break
				}
			}
			if i > 20000 {
				t.Fatalf("no grant after %v", order)
			}
			time.Sleep(time.Millisecond)
		}
		order = append(order, got.tenant)
		got.p.g.Done(Succeeded, false)
	}
	for i := 0; i+3 <= len(order); i += 3 {
		seen := map[string]bool{}
		for _, x := range order[i : i+3] {
			seen[x] = true
		}
		if len(seen) != 3 {
			t.Fatalf("grants %v: a tenant served twice while another waited", order)
		}
	}
}

// A tenant alone never fills the last eighth of the slots: another tenant's
// upload starts at once, without waiting for one of the first tenant's to end.
func TestATenantAloneLeavesHeadroomForOthers(t *testing.T) {
	s := New(Config{Capacity: 16, InitialLimit: 16})
	ctx := context.Background()
	var held []*Grant
	for range 14 {
		g, err := s.Acquire(ctx, Request{Tenant: "A", Dest: "A/slow"})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, g)
	}
	more := acquire(s, ctx, Request{Tenant: "A", Dest: "A/slow"})
	waitingFor(t, s, 1)
	if st := s.Stats(); st.Running != 14 {
		t.Fatalf("tenant A alone runs %d of 16, want 14", st.Running)
	}
	for range 2 {
		g, err := acquire(s, ctx, Request{Tenant: "B", Dest: "B/b"}).wait(t)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Done(Succeeded, false)
	}
	held[0].Done(Succeeded, false)
	if _, err := more.wait(t); err != nil {
		t.Fatal(err)
	}
}
