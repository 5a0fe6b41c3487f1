package daemon

import (
	"math"
	"testing"
)

func TestHeapFloor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		setting  int64
		gogc     string
		memLimit int64
		want     int64
	}{
		{64 * mib, "", math.MaxInt64, 64 * mib},
		{64 * mib, "200", math.MaxInt64, 0}, // the operator chose GOGC
		{0, "", math.MaxInt64, 0},
		{64 * mib, "", 1024 * mib, 64 * mib},
		{64 * mib, "", 128 * mib, 32 * mib}, // a quarter of GOMEMLIMIT
	} {
		if got := HeapFloor(tc.setting, tc.gogc, tc.memLimit); got != tc.want {
			t.Errorf("HeapFloor(%d, %q, %d) = %d, want %d", tc.setting, tc.gogc, tc.memLimit, got, tc.want)
		}
	}
}
