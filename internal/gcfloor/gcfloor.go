// Package gcfloor keeps the Go collector's heap goal from falling below a
// floor while the live heap is small.
//
// With GOGC at 100 the runtime collects each time the heap doubles. An
// exporter moving many small artifacts holds little (some megabytes live)
// and allocates every payload NATS delivers, so it collected several times
// a second and the collector took 11 to 13% of its CPU (docs/BENCHMARKS.md,
// workload 1). Raising GOGC for good would let a large live heap (a 1 GiB
// upload's parts, 100k integrations) grow by that factor too. Instead, after
// each collection, GOGC is set so that the next goal is the larger of twice
// the live heap (GOGC 100, as before) and the floor: the collector runs less
// often while the heap is small and exactly as before once it is not, the
// approach of Uber's GOGC tuner. GOMEMLIMIT, when set, still bounds the
// heap: the runtime collects as the limit nears whatever GOGC says.
package gcfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// maxPercent caps the GOGC the floor sets (a live heap of a few hundred
// kilobytes would otherwise ask for tens of thousands).
const maxPercent = 2000

// Percent is the GOGC that makes the next heap goal max(2 × live, floor).
func Percent(live, floor uint64) int {
	if live == 0 || floor <= 2*live {
		return 100
	}
	p := (float64(floor)/float64(live) - 1) * 100
	return int(math.Min(p, maxPercent))
}

// Floor is a running floor; Stop ends it and puts GOGC back to 100.
type Floor struct {
	floor   uint64
	stopped atomic.Bool
	last    int
	sample  []metrics.Sample
	// Applied, when set (tests), is told of each GOGC the floor sets.
	applied func(int)
}

// Start keeps the heap goal at or above floor bytes until Stop. It returns
// nil (and changes nothing) when floor is 0.
func Start(floor uint64) *Floor {
	if floor == 0 {
		return nil
	}
	f := newFloor(floor)
	f.arm()
	return f
}

func newFloor(floor uint64) *Floor {
	return &Floor{floor: floor, last: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
}

// arm sets a sentinel whose finalizer runs after the next collection.
func (f *Floor) arm() {
	s := new([16]byte)
	runtime.SetFinalizer(s, func(*[16]byte) { f.collected() })
}

// collected runs on the finalizer goroutine after a collection.
func (f *Floor) collected() {
	if f.stopped.Load() {
		return
	}
	metrics.Read(f.sample)
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		p := Percent(f.sample[0].Value.Uint64(), f.floor)
		// Within a tenth: not worth a change.
		if d := p - f.last; d*10 > f.last || -d*10 > f.last {
			debug.SetGCPercent(p)
			f.last = p
			if f.applied != nil {
				f.applied(p)
			}
		}
	}
	f.arm()
}

// Stop ends the floor and sets GOGC back to 100.
func (f *Floor) Stop() {
	if f == nil || f.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(100)
}
