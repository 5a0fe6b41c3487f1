package daemon

import (
	"math"
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/internal/gcfloor"
)

// TuneGC starts the collector's heap floor (S3EXPORTER_GC_HEAP_FLOOR,
// package gcfloor) for the process and returns what stops it. It changes
// nothing when the floor is 0 or GOGC is set: the operator chose. With
// GOMEMLIMIT set, the floor is at most a quarter of it.
func TuneGC(cfg *config.Config, log *zap.Logger) (stop func()) {
	floor := HeapFloor(cfg.GCHeapFloor, os.Getenv("GOGC"), debug.SetMemoryLimit(-1))
	if floor == 0 {
		return func() {}
	}
	log.Debug("collector heap floor", zap.Int64("bytes", floor))
	return gcfloor.Start(uint64(floor)).Stop
}

// HeapFloor is the floor to keep: setting, unless GOGC is set, capped at a
// quarter of memLimit (GOMEMLIMIT; math.MaxInt64 when not set).
func HeapFloor(setting int64, gogc string, memLimit int64) int64 {
	if setting <= 0 || gogc != "" {
		return 0
	}
	if memLimit > 0 && memLimit < math.MaxInt64 {
		return min(setting, memLimit/4)
	}
	return setting
}
