package exporter

import (
	"math"
	"testing"
)

// TestMemoryBound pins the numbers of docs/operations.md "Memory": the
// formula there and the code here must agree.
func TestMemoryBound(t *testing.T) {
	const MiB = 1 << 20
	def := Options{}.withDefaults()
	for _, tc := range []struct {
		name string
		size int64
		want int64
	}{
		{"small file: its buffer and as much read ahead", 100 << 10, 200 << 10},
		{"just under the threshold", 16*MiB - 1, 32*MiB - 2},
		{"multipart, size known: 4 parts of 8 MiB + 16 MiB window", 1 << 30, 48 * MiB},
		{"size unknown: threshold + 4 parts + window", -1, 64 * MiB},
	} {
		if got := def.uploadBytes(tc.size); got != tc.want {
			t.Errorf("%s: %d bytes, want %d", tc.name, got, tc.want)
		}
	}
	// The worst case of a replica with the defaults: the budget, 256 MiB.
	if got := def.MemoryBound(); got != 256*MiB {
		t.Errorf("bound with the defaults: %d MiB, want 256", got/MiB)
	}
	// A budget smaller than one upload of unknown size: that upload, alone.
	if got := (Options{UploadMemory: 32 * MiB}).withDefaults().MemoryBound(); got != 64*MiB {
		t.Errorf("bound with a 32 MiB budget: %d MiB, want 64", got/MiB)
	}
	// Larger parts: 16 + (3+1)*16 + 16 = 96 MiB for one upload.
	if got := (Options{UploadMemory: 1, PartSize: 16 * MiB, MultipartThreshold: 16 * MiB}).withDefaults().MemoryBound(); got != 96*MiB {
		t.Errorf("bound with 16 MiB parts: %d MiB, want 96", got/MiB)
	}

	for _, tc := range []struct {
		setting, memLimit, want int64
	}{
		{0, math.MaxInt64, DefaultUploadMemory}, // neither set
		{0, 1 << 30, 512 * MiB},                 // GOMEMLIMIT=1GiB: half
		{100 * MiB, 1 << 30, 100 * MiB},         // the setting wins
	} {
		if got := UploadMemory(tc.setting, tc.memLimit); got != tc.want {
			t.Errorf("UploadMemory(%d, %d) = %d, want %d", tc.setting, tc.memLimit, got, tc.want)
		}
	}
}
