package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// enterNow enters and requires an immediate answer (no wait).
func enterNow(t *testing.T, g *gate, tenant string) (func(), bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a wait would return ctx's error at once
	release, ok, err := g.enter(ctx, tenant)
	if err != nil {
		return nil, false
	}
	return release, ok
}

// waiter enters in the background; the channel yields once admitted.
func waiter(g *gate, tenant string) (admitted chan func(), cancel func()) {
	ctx, cancel := context.WithCancel(context.Background())
	admitted = make(chan func(), 1)
	go func() {
		release, ok, err := g.enter(ctx, tenant)
		if ok && err == nil {
			admitted <- release
		}
		close(admitted)
	}()
	return admitted, cancel
}

func waitCount(g *gate, running, waiting int) {
	for {
		r, w := g.counts()
		if r == running && w == waiting {
			return
		}
		runtime.Gosched() // the waiter goroutines register on their own

	}
}

func TestGatePerTenantLimit(t *testing.T) {
	g := newGate(4, 2, 3)
	r1, ok1 := enterNow(t, g, "a")
	r2, ok2 := enterNow(t, g, "a")
	if !ok1 || !ok2 {
		t.Fatal("a's first two scans were not admitted")
	}
	if _, ok := enterNow(t, g, "a"); ok {
		t.Fatal("a third scan of a ran beyond its limit of 2")
	}
	// Another tenant still gets a slot: a's scans do not take them all.
	rb, okb := enterNow(t, g, "b")
	if !okb {
		t.Fatal("b was not admitted while a was at its limit")
	}
	// a holds 2 + 1 waiting = 3 = hold: the next is refused outright.
	aw, cancelA := waiter(g, "a")
	defer cancelA()
	waitCount(g, 3, 1)
	if release, ok, err := g.enter(context.Background(), "a"); ok || err != nil || release != nil {
		t.Fatalf("a's fourth scan: ok %v err %v, want refused at once", ok, err)
	}
	r1()
	release := <-aw
	if release == nil {
		t.Fatal("a's waiting scan was not admitted when a's slot freed")
	}
	release()
	r2()
	rb()
	if r, w := g.counts(); r != 0 || w != 0 || len(g.tenants) != 0 || len(g.ring) != 0 {
		t.Fatalf("after every release: running %d waiting %d tenants %v ring %v", r, w, g.tenants, g.ring)
	}
}

func TestGateServesWaitingTenantsInTurn(t *testing.T) {
	g := newGate(1, 1, 10)
	r0, _ := enterNow(t, g, "x")
	var order []string
	a1, ca1 := waiter(g, "a")
	defer ca1()
	waitCount(g, 1, 1)
	a2, ca2 := waiter(g, "a")
	defer ca2()
	waitCount(g, 1, 2)
	b1, cb1 := waiter(g, "b")
	defer cb1()
	waitCount(g, 1, 3)
	release := r0
	pending := map[string]chan func(){"a1": a1, "b1": b1, "a2": a2}
	for range 3 {
		release()
		// Exactly one waiter is admitted per freed slot: see which.
		var got string
		select {
		case release = <-pending["a1"]:
			got = "a1"
		case release = <-pending["b1"]:
			got = "b1"
		case release = <-pending["a2"]:
			got = "a2"
		}
		delete(pending, got)
		order = append(order, got)
	}
	if fmt.Sprint(order) != "[a1 b1 a2]" {
		t.Fatalf("admitted %v, want a1 b1 a2 (tenants in turn, each first come first served)", order)
	}
	release()
	if r, w := g.counts(); r != 0 || w != 0 {
		t.Fatalf("running %d waiting %d", r, w)
	}
}

func TestGateWaitEndsWithItsContext(t *testing.T) {
	g := newGate(1, 1, 5)
	var changes int
	g.onChange = func(int, int) { changes++ }
	r, _ := enterNow(t, g, "a")
	ch, cancel := waiter(g, "b")
	waitCount(g, 1, 1)
	cancel()
	if release := <-ch; release != nil {
		t.Fatal("admitted after its context ended")
	}
	if _, w := g.counts(); w != 0 || len(g.ring) != 0 {
		t.Fatalf("waiting %d ring %v after the wait ended", w, g.ring)
	}
	r()
	if _, ok := g.tenants["b"]; ok {
		t.Error("tenant b still tracked")
	}
	if changes == 0 {
		t.Error("onChange never called")
	}
}

func TestGateLimitsAreSane(t *testing.T) {
	g := newGate(0, 10, 0)
	if g.total != 1 || g.perTenant != 1 || g.hold != 1 {
		t.Fatalf("total %d perTenant %d hold %d", g.total, g.perTenant, g.hold)
	}
	g = newGate(8, 2, 1)
	if g.total != 8 || g.perTenant != 2 || g.hold != 2 {
		t.Fatalf("total %d perTenant %d hold %d", g.total, g.perTenant, g.hold)
	}
}

// TestGateProgressing: a tenant is progressing once one of its scans has left
// its slot, within the window; a tenant that has finished nothing (its scans
// stuck on a dead bucket) is not, and neither is an unknown one.
func TestGateProgressing(t *testing.T) {
	g := newGate(4, 2, 4)
	release, ok, err := g.enter(t.Context(), "t1")
	if !ok || err != nil {
		t.Fatalf("enter: %v %v", ok, err)
	}
	if _, ok, _ := g.enter(t.Context(), "t1"); !ok {
		t.Fatal("second enter refused")
	}
	if g.progressing("t1", time.Minute) {
		t.Error("progressing before any scan finished")
	}
	release()
	if !g.progressing("t1", time.Minute) {
		t.Error("not progressing right after a scan finished")
	}
	if g.progressing("t1", 0) {
		t.Error("progressing outside the window")
	}
	if g.progressing("t2", time.Minute) {
		t.Error("an unknown tenant is progressing")
	}
}

// A tenant whose every scan just finished (its entry forgotten: nothing of
// it runs or waits) is still progressing, and so is it once its next scans
// hold every place it has: a scan refused then comes back in a second, not
// in 30 s.
func TestGateProgressingAcrossAGap(t *testing.T) {
	g := newGate(4, 2, 2)
	release, ok, err := g.enter(t.Context(), "t1")
	if !ok || err != nil {
		t.Fatalf("enter: %v %v", ok, err)
	}
	release() // nothing of t1 runs now
	if running, waiting := g.counts(); running != 0 || waiting != 0 {
		t.Fatalf("running %d waiting %d", running, waiting)
	}
	if !g.progressing("t1", time.Minute) {
		t.Error("not progressing right after its last scan finished")
	}
	for range 2 {
		if _, ok, _ := g.enter(t.Context(), "t1"); !ok {
			t.Fatal("enter refused")
		}
	}
	if _, ok, _ := g.enter(t.Context(), "t1"); ok {
		t.Fatal("a third scan admitted past hold")
	}
	if !g.progressing("t1", time.Minute) {
		t.Error("not progressing when its next scans came, a moment after the last finished")
	}
	if g.progressing("t1", 0) {
		t.Error("progressing outside the window")
	}
}

// counts returns the scans exporting and waiting.
func (g *gate) counts() (running, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.waiting
}

// entered is enter's answer, for scans that wait in the background.
type entered struct {
	release func()
	ok      bool
	err     error
}

func enterAsync(g *gate, tenant string) (answer chan entered, cancel func()) {
	ctx, cancel := context.WithCancel(context.Background())
	answer = make(chan entered, 1)
	go func() {
		release, ok, err := g.enter(ctx, tenant)
		answer <- entered{release, ok, err}
	}()
	return answer, cancel
}

// TestGateLendsRoomAndTakesItBack: a tenant alone, whose scans are moving,
// holds past its hold while the gate holds fewer than lendUpTo scans;
// another tenant's scan, within its own hold, takes a lent place back by
// evicting the newest waiting scan of the tenant past its hold
// (errEvicted), oldest waiters keeping theirs.
func TestGateLendsRoomAndTakesItBack(t *testing.T) {
	g := newGate(2, 1, 2)
	g.lendUpTo = 5
	if r, ok := enterNow(t, g, "a"); ok {
		r() // a scan of a finished: a is progressing
	}
	ra, ok := enterNow(t, g, "a")
	if !ok {
		t.Fatal("a's first scan was not admitted")
	}
	var aw []chan entered
	for i := range 4 { // 1 running + 4 waiting = 5: 3 past a's hold of 2
		ch, cancel := enterAsync(g, "a")
		defer cancel()
		aw = append(aw, ch)
		waitCount(g, 1, i+1)
	}
	if _, ok := enterNow(t, g, "a"); ok {
		t.Fatal("a held more than lendUpTo scans")
	}

	rb, ok := enterNow(t, g, "b") // runs at once, and takes a's newest place
	if !ok {
		t.Fatal("b's first scan was not admitted")
	}
	if got := <-aw[3]; got.ok || got.release != nil || !errors.Is(got.err, errEvicted) {
		t.Fatalf("a's newest waiter: %+v, want evicted", got)
	}
	waitCount(g, 2, 3)
	bw, cancelB := enterAsync(g, "b") // waits (b runs 1 of 1), evicts a's next newest
	defer cancelB()
	if got := <-aw[2]; !errors.Is(got.err, errEvicted) {
		t.Fatalf("a's next newest waiter: %+v, want evicted", got)
	}
	waitCount(g, 2, 3)
	// b is at its hold and the gate at lendUpTo: b's next is refused, and
	// a keeps the one place still lent (a does not lose its hold to b).
	if _, ok := enterNow(t, g, "b"); ok {
		t.Fatal("b held past its hold while the gate had no room to lend")
	}
	if r, w := g.counts(); r != 2 || w != 3 {
		t.Fatalf("running %d waiting %d, want 2 and 3", r, w)
	}
	// a's two oldest waiters and b's waiter are served as slots free.
	ra()
	rb()
	var releases []func()
	for _, ch := range []chan entered{aw[0], bw} {
		got := <-ch
		if !got.ok || got.err != nil {
			t.Fatalf("a waiter that was not evicted: %+v", got)
		}
		releases = append(releases, got.release)
	}
	for _, r := range releases {
		r()
	}
	got := <-aw[1]
	if !got.ok {
		t.Fatalf("a's second waiter: %+v", got)
	}
	got.release()
	if r, w := g.counts(); r != 0 || w != 0 || len(g.tenants) != 0 || len(g.ring) != 0 {
		t.Fatalf("after every release: running %d waiting %d tenants %v ring %v", r, w, g.tenants, g.ring)
	}
}

// TestGateLendsNothingByDefault: with lendUpTo 0 (a gate built without it,
// or MaxHeld equal to MaxInFlight) a tenant at its hold is refused.
func TestGateLendsNothingByDefault(t *testing.T) {
	g := newGate(2, 1, 2)
	if r, ok := enterNow(t, g, "a"); ok {
		r() // a is progressing: it is refused for want of room only
	}
	r, _ := enterNow(t, g, "a")
	ch, cancel := enterAsync(g, "a")
	defer cancel()
	waitCount(g, 1, 1)
	if _, ok := enterNow(t, g, "a"); ok {
		t.Fatal("a held past its hold with nothing to lend")
	}
	r()
	(<-ch).release()
}

// TestGateLendsNothingToAStuckTenant: a tenant none of whose scans
// finished within progressWindow, though its first came longer ago (a dead
// bucket), is lent nothing whatever room the gate has, and gives back what
// it was lent: each of its scans that comes evicts its newest lent one.
func TestGateLendsNothingToAStuckTenant(t *testing.T) {
	g := newGate(2, 1, 2)
	g.lendUpTo = 10
	r, _ := enterNow(t, g, "a")
	var aw []chan entered
	for i := range 3 { // its first scans came just now: it is lent two places
		ch, cancel := enterAsync(g, "a")
		defer cancel()
		aw = append(aw, ch)
		waitCount(g, 1, i+1)
	}
	g.mu.Lock()
	g.tenants["a"].since = time.Now().Add(-progressWindow)
	g.mu.Unlock()
	for i := 2; i >= 1; i-- { // two places were lent: each scan of it that comes gives one back
		if _, ok := enterNow(t, g, "a"); ok {
			t.Fatal("a stuck tenant was lent room")
		}
		if got := <-aw[i]; !errors.Is(got.err, errEvicted) {
			t.Fatalf("a stuck tenant's lent scan %d: %+v, want evicted", i, got)
		}
		waitCount(g, 1, i)
	}
	if _, ok := enterNow(t, g, "a"); ok {
		t.Fatal("a stuck tenant at its hold was admitted")
	}
	waitCount(g, 1, 1) // at its hold: nothing more to give back
	r()
	for _, ch := range aw[:1] {
		got := <-ch
		if !got.ok {
			t.Fatalf("a waiter within the hold: %+v", got)
		}
		got.release()
	}
}
