package main

import (
	"math"
	"os"
	"sort"
	"time"
)

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) by the nearest-rank
// method: the smallest value that at least p% of the values do not exceed.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// runStat is one timed run of the exporter or a baseline.
type runStat struct {
	Objects int
	Bytes   int64
	Wall    time.Duration
	CPU     time.Duration // of the process measured (exporter or baseline)
	S3CPU   time.Duration // versitygw during the run
	NATSCPU time.Duration // nats-server during the run
	Harness time.Duration // this program during the run
	// Machine is the whole machine's busy CPU during the run (every process,
	// other workers' included).
	Machine time.Duration
	PeakRSS int64
	Load1   float64 // load average at the end
}

func (r runStat) rate() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Objects) / r.Wall.Seconds()
}

func (r runStat) mbps() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Wall.Seconds()
}

// perObject returns a duration per object in milliseconds.
func (r runStat) perObject(d time.Duration) float64 {
	if r.Objects == 0 {
		return 0
	}
	return float64(d.Microseconds()) / 1000 / float64(r.Objects)
}

// others is the machine's busy time not spent in the measured process, the
// two servers or the harness: whatever else runs on the machine.
func (r runStat) others() time.Duration {
	return max(r.Machine-r.CPU-r.S3CPU-r.NATSCPU-r.Harness, 0)
}

// otherCores is the CPU that others() took, as cores busy on average.
func (r runStat) otherCores() float64 { return cores(r.others(), r.Wall) }

// maxOtherCores is how much CPU work outside the measured processes, the
// servers and the harness may take during a run before the run counts as
// disturbed (the machine is shared with other work); -reruns says how many
// times a disturbed round is run again.
const maxOtherCores = 0.3

// disturbed reports whether any of the runs had other work beside it.
func disturbed(runs ...runStat) bool {
	for _, r := range runs {
		if r.otherCores() > maxOtherCores {
			return true
		}
	}
	return false
}

// medianOf applies f to every run and returns the median.
func medianOf(runs []runStat, f func(runStat) float64) float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	return median(xs)
}

// ratios returns a[i]/b[i] for each round (rounds interleave, so round i of
// both ran under the same conditions).
func ratios(a, b []runStat, f func(runStat) float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if d := f(b[i]); d > 0 {
			out = append(out, f(a[i])/d)
		}
	}
	return out
}

// meter samples the servers, the machine and (when pid > 0) one process
// around a run.
type meter struct {
	s       *stack
	pid     int
	start   time.Time
	p0      procSample
	s30     procSample
	n0      procSample
	h0      procSample
	machine machineSample
}

func (s *stack) meter(pid int) *meter {
	m := &meter{s: s, pid: pid, start: time.Now()}
	if pid > 0 {
		m.p0, _ = sampleProc(pid)
	}
	m.s30, _ = sampleProc(s.s3PID)
	m.n0, _ = sampleProc(s.nats.pid())
	m.h0, _ = sampleProc(os.Getpid())
	m.machine = sampleMachine()
	return m
}

// stop fills in a runStat's CPU figures for the process (if any), servers
// and machine since the meter started.
func (m *meter) stop(r *runStat) {
	if m.pid > 0 {
		if p1, err := sampleProc(m.pid); err == nil {
			r.CPU = p1.CPU - m.p0.CPU
			r.PeakRSS = p1.HWM
		}
	}
	if s1, err := sampleProc(m.s.s3PID); err == nil {
		r.S3CPU = s1.CPU - m.s30.CPU
	}
	if n1, err := sampleProc(m.s.nats.pid()); err == nil {
		r.NATSCPU = n1.CPU - m.n0.CPU
	}
	if h1, err := sampleProc(os.Getpid()); err == nil {
		r.Harness = h1.CPU - m.h0.CPU
	}
	ma := sampleMachine()
	r.Machine = ma.Busy - m.machine.Busy
	r.Load1 = ma.Load1
}
