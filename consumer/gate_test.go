package consumer

import (
	"context"
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
