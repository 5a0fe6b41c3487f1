package consumer

import (
	"context"
	"errors"
	"sync"
	"time"
)

// gate admits the scans a replica holds to export, fairly between tenants:
// at most total export at once, at most perTenant of one tenant, and a
// tenant holds at most hold scans (exporting or waiting) — enter refuses
// the next one, which the consumer defers, so that one tenant's backlog
// cannot fill the replica's held messages either. A freed slot goes to the
// waiting tenants in turn (round robin), each tenant's scans first come,
// first served.
//
// Room no one else uses is lent: while the gate holds fewer than lendUpTo
// scans in all, a tenant at its hold whose scans are moving (tenantSlots.
// moving) may hold more (they wait like the others). A tenant whose scans
// are stuck (a dead bucket) is lent nothing, and gives back what it was
// lent: its lent scans would only wait, while the held slots it leaves free
// keep the replica fetching through its backlog to the other tenants'
// scans behind it. A scan of another tenant, within its own hold, that
// finds the gate at lendUpTo takes one lent place back: the newest waiting
// scan of the tenant furthest past its hold is evicted (enter returns
// errEvicted, and the consumer defers it). So a tenant alone is not deferred while the
// replica has room, and under contention every tenant still gets its hold.
// (A single tenant's backlog of 200 scans was deferred 478 times, each a
// redelivery, a ledger read and write and a nak: a tenth of the CPU of an
// export, docs/BENCHMARKS.md.)
type gate struct {
	total, perTenant, hold int
	// lendUpTo: held scans (running and waiting, every tenant) up to which
	// a tenant at its hold may hold more; 0 lends nothing.
	lendUpTo int

	mu      sync.Mutex
	running int
	waiting int
	tenants map[string]*tenantSlots
	// gone keeps when a scan of a tenant forgotten (nothing running or
	// waiting) last left its slot, so that the tenant still counts as
	// progressing when its next scans come (progressing).
	gone map[string]time.Time
	ring []string // tenants with waiters, in turn order
	next int      // ring position served first
	// onChange, when set, is told the counts after every change (under the
	// lock: it must not call the gate).
	onChange func(running, waiting int)
}

type tenantSlots struct {
	running int
	waiters []*waiting
	// finished is when a scan of the tenant last left its slot.
	finished time.Time
	// since is when the tenant last came to hold scans after holding none.
	since time.Time
}

// moving reports whether t's scans may be lent room: one finished within
// progressWindow, or its first ones came less than progressWindow ago
// (none could have finished yet). A tenant whose bucket hangs stops moving
// a progress window after its scans came, and gives its lent room back.
func (t *tenantSlots) moving(now time.Time) bool {
	return now.Sub(t.finished) < progressWindow || now.Sub(t.since) < progressWindow
}

// waiting is a scan waiting for an export slot: admit is closed when it gets
// one, or when it is evicted (evicted is set first, under the gate's lock).
type waiting struct {
	admit   chan struct{}
	evicted bool
}

// errEvicted: the waiting scan gave its lent place back to another tenant's.
var errEvicted = errors.New("evicted: its tenant held more than its share, lent while the replica had room, and another tenant needed it")

func newGate(total, perTenant, hold int) *gate {
	total = max(total, 1)
	perTenant = min(max(perTenant, 1), total)
	return &gate{total: total, perTenant: perTenant, hold: max(hold, perTenant), tenants: map[string]*tenantSlots{}, gone: map[string]time.Time{}}
}

// enter waits for an export slot for tenant. It returns ok false at once
// when the tenant already holds its limit and the gate has no room to lend
// it (or its scans are not moving), errEvicted when a lent place is taken
// back while the scan waits, and ctx's error when ctx ends first. Call
// release once when the export is done.
func (g *gate) enter(ctx context.Context, tenant string) (release func(), ok bool, err error) {
	g.mu.Lock()
	t := g.tenants[tenant]
	if t == nil {
		t = &tenantSlots{finished: g.gone[tenant], since: time.Now()}
		delete(g.gone, tenant)
		g.tenants[tenant] = t
	}
	held := g.running + g.waiting
	switch past := t.running + len(t.waiters) - g.hold; {
	case past >= 0 && !t.moving(time.Now()):
		// Stuck: no new lent place, and those it has go back, one per scan
		// of it that comes (the slots they free keep the replica fetching).
		if past > 0 {
			g.evict(tenant, t)
		}
		g.mu.Unlock()
		return nil, false, nil
	case past >= 0 && held >= g.lendUpTo:
		g.mu.Unlock()
		return nil, false, nil
	case past < 0 && g.lendUpTo > 0 && held >= g.lendUpTo:
		g.evictOne() // this scan takes a lent place back, if one is lent
	}
	release = func() { g.leave(tenant) }
	if len(t.waiters) == 0 && t.running < g.perTenant && g.running < g.total {
		t.running++
		g.running++
		g.changed()
		g.mu.Unlock()
		return release, true, nil
	}
	w := &waiting{admit: make(chan struct{})}
	if len(t.waiters) == 0 {
		g.ring = append(g.ring, tenant)
	}
	t.waiters = append(t.waiters, w)
	g.waiting++
	g.changed()
	g.mu.Unlock()

	select {
	case <-w.admit:
		if w.evicted {
			return nil, false, errEvicted
		}
		return release, true, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	select {
	case <-w.admit: // admitted or evicted meanwhile
		g.mu.Unlock()
		if !w.evicted {
			release() // give the slot back
		}
		return nil, false, ctx.Err()
	default:
	}
	for i, x := range t.waiters {
		if x == w {
			t.waiters = append(t.waiters[:i], t.waiters[i+1:]...)
			break
		}
	}
	g.waiting--
	if len(t.waiters) == 0 {
		g.dropFromRing(tenant)
	}
	g.forget(tenant, t)
	g.changed()
	g.mu.Unlock()
	return nil, false, ctx.Err()
}

func (g *gate) leave(tenant string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tenants[tenant]
	t.running--
	t.finished = time.Now()
	g.running--
	g.dispatch()
	g.forget(tenant, t)
	g.changed()
}

func (g *gate) changed() {
	if g.onChange != nil {
		g.onChange(g.running, g.waiting)
	}
}

// dispatch hands free slots to waiting tenants in turn. It leaves no
// waiter that could run while a slot is free, which is what lets enter
// admit a newcomer without looking at the others.
func (g *gate) dispatch() {
	for g.running < g.total && len(g.ring) > 0 {
		served := false
		for range len(g.ring) {
			if g.running >= g.total {
				return
			}
			g.next %= len(g.ring)
			name := g.ring[g.next]
			t := g.tenants[name]
			if t.running >= g.perTenant {
				g.next++
				continue
			}
			w := t.waiters[0]
			t.waiters = t.waiters[1:]
			t.running++
			g.running++
			g.waiting--
			close(w.admit)
			served = true
			if len(t.waiters) == 0 {
				g.ring = append(g.ring[:g.next], g.ring[g.next+1:]...)
			} else {
				g.next++
			}
			if len(g.ring) == 0 {
				return
			}
		}
		if !served {
			return // every waiting tenant is at its own limit
		}
	}
}

// evictOne evicts the newest waiting scan of the tenant furthest past its
// hold, if any tenant is past it (under the lock).
func (g *gate) evictOne() {
	var name string
	var most *tenantSlots
	for n, t := range g.tenants {
		past := t.running + len(t.waiters) - g.hold
		if past > 0 && len(t.waiters) > 0 && (most == nil || past > most.running+len(most.waiters)-g.hold) {
			name, most = n, t
		}
	}
	if most != nil {
		g.evict(name, most)
	}
}

// evict evicts the newest waiting scan of tenant t (under the lock).
func (g *gate) evict(name string, t *tenantSlots) {
	if len(t.waiters) == 0 {
		return
	}
	w := t.waiters[len(t.waiters)-1]
	t.waiters = t.waiters[:len(t.waiters)-1]
	g.waiting--
	w.evicted = true
	close(w.admit)
	if len(t.waiters) == 0 {
		g.dropFromRing(name)
	}
	g.forget(name, t)
	g.changed()
}

func (g *gate) dropFromRing(tenant string) {
	for i, name := range g.ring {
		if name == tenant {
			g.ring = append(g.ring[:i], g.ring[i+1:]...)
			if g.next > i {
				g.next--
			}
			return
		}
	}
}

func (g *gate) forget(tenant string, t *tenantSlots) {
	if t.running == 0 && len(t.waiters) == 0 {
		delete(g.tenants, tenant)
		if !t.finished.IsZero() {
			g.gone[tenant] = t.finished
			g.pruneGone(t.finished)
		}
	}
}

// goneKept bounds how long a forgotten tenant's last finish is kept: far
// longer than any progress window (progressWindow).
const goneKept = time.Minute

// pruneGone drops the finishes older than goneKept, when there are many.
func (g *gate) pruneGone(now time.Time) {
	if len(g.gone) < 1024 {
		return
	}
	for name, at := range g.gone {
		if now.Sub(at) > goneKept {
			delete(g.gone, name)
		}
	}
}

// progressing reports whether a scan of tenant left its slot within the
// last window: its held scans are moving, so one refused now will find room
// soon and should come back soon. A tenant whose scans are stuck (a dead
// bucket) makes no progress, and its refused scans can wait longer.
//
// The tenant's entry is forgotten whenever nothing of it runs or waits,
// which happens between two of its scans as soon as exports are fast: its
// last finish is kept (gate.gone) so that a tenant whose every scan just
// finished is progressing, not stuck. (Forgetting it made every scan of a
// backlog that was refused right after such a moment wait 30 s, and a
// 9-second export of 200 scans take 37: docs/BENCHMARKS.md, workload 1.)
func (g *gate) progressing(tenant string, window time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	finished := g.gone[tenant]
	if t := g.tenants[tenant]; t != nil {
		finished = t.finished
	}
	return !finished.IsZero() && time.Since(finished) < window
}
