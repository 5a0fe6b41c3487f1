package gcfloor

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, floor uint64
		want        int
	}{
		{8 * mib, 64 * mib, 700},   // goal 64 MiB, not 16
		{32 * mib, 64 * mib, 100},  // twice the live heap reaches the floor
		{200 * mib, 64 * mib, 100}, // a large heap: as without the floor
		{16 * mib, 64 * mib, 300},
		{1024, 64 * mib, maxPercent},
		{0, 64 * mib, 100},
	} {
		if got := Percent(tc.live, tc.floor); got != tc.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", tc.live, tc.floor, got, tc.want)
		}
	}
}

// TestFloorFollowsTheLiveHeap runs real collections: with a small live heap
// the floor raises GOGC, with a live heap over half the floor it puts it
// back to 100, and Stop restores 100.
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	var (
		mu  sync.Mutex
		set []int
	)
	f := newFloor(64 << 20)
	f.applied = func(p int) {
		mu.Lock()
		set = append(set, p)
		mu.Unlock()
	}
	f.arm()
	defer f.Stop()
	latest := func() int {
		mu.Lock()
		defer mu.Unlock()
		if len(set) == 0 {
			return 0
		}
		return set[len(set)-1]
	}
	waitFor := func(what string, ok func(int) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
			if ok(latest()) {
				return
			}
		}
		t.Fatalf("%s: GOGC set to %v", what, set)
	}
	waitFor("small heap", func(p int) bool { return p > 200 })

	big := make([][]byte, 48)
	for i := range big {
		big[i] = make([]byte, 1<<20)
		big[i][0] = 1
	}
	waitFor("48 MiB live", func(p int) bool { return p == 100 })
	runtime.KeepAlive(big)

	f.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC %d after Stop, want 100", got)
	}
}
