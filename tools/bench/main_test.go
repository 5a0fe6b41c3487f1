package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (s3 exp (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 9 0 100 1000000 500 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2870 * time.Millisecond; got != want {
		t.Errorf("cpu = %v, want %v (utime 250 + stime 37 ticks)", got, want)
	}
	if _, err := parseStatCPU("4242 (short) S 1 2"); err == nil {
		t.Error("a truncated stat line parsed")
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\ts3-exporter\nVmPeak:\t  900000 kB\nVmHWM:\t  131072 kB\nVmRSS:\t   65536 kB\nThreads:\t9\n"
	rss, hwm := parseStatusMem(status)
	if rss != 64<<20 || hwm != 128<<20 {
		t.Errorf("rss %d, hwm %d; want 64 MiB and 128 MiB", rss, hwm)
	}
}

func TestParseProcStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total := parseProcStat("cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 1 2 3\n")
	if busy != 1500*time.Millisecond || total != 10*time.Second {
		t.Errorf("busy %v total %v; want 1.5s of 10s (guest time is inside user)", busy, total)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	xs := make([]float64, 200)
	for i := range xs {
		xs[i] = float64(200 - i) // 200 … 1
	}
	for _, tc := range []struct{ p, want float64 }{{50, 100}, {99, 198}, {100, 200}, {0.1, 1}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if xs[0] != 200 {
		t.Error("percentile sorted its input in place")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	if median(nil) != 0 || percentile(nil, 50) != 0 {
		t.Error("empty inputs")
	}
}

func TestRatiosPairRounds(t *testing.T) {
	e := []runStat{{Objects: 100, Wall: time.Second}, {Objects: 100, Wall: 2 * time.Second}}
	b := []runStat{{Objects: 100, Wall: 2 * time.Second}, {Objects: 0, Wall: time.Second}, {Objects: 1, Wall: time.Second}}
	got := ratios(e, b, runStat.rate)
	if len(got) != 1 || got[0] != 2 {
		t.Errorf("ratios = %v, want [2] (round 2's baseline is 0, round 3 has no exporter)", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "128MiB": 128 << 20, "4096": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1MiB", "1TB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestParseOptionsQuick(t *testing.T) {
	o, err := parseOptions([]string{"-quick", "-scans", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if o.scans != 7 || o.largeSize != 128<<20 || o.integrations != 10_000 || o.rounds != 1 {
		t.Errorf("quick defaults or an explicit flag lost: %+v", o)
	}
	o, err = parseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.scans != 200 || o.largeSize != 1<<30 || o.integrations != 100_000 || o.tenants != 10_000 || o.latencyScans != 200 {
		t.Errorf("full defaults: %+v", o)
	}
	if _, err := parseOptions([]string{"-tenants", "5", "-integrations", "4"}); err == nil {
		t.Error("more tenants than integrations accepted")
	}
	if o, err := parseOptions([]string{"-exporter-env", "GOGC=50, GODEBUG=x=1"}); err != nil || o.exporterEnv["GOGC"] != "50" || o.exporterEnv["GODEBUG"] != "x=1" {
		t.Errorf("exporter env: %v, %v", o.exporterEnv, err)
	}
}

const benchOutput = `goos: linux
goarch: amd64
pkg: github.com/prowler-cloud/s3-exporter/integration
cpu: Intel(R) Xeon(R) Processor
BenchmarkCacheSelect100k-2           	  182299	      1256 ns/op	      32 B/op	       1 allocs/op
BenchmarkCacheSelect100k-2           	  182299	      1000 ns/op	      32 B/op	       1 allocs/op
BenchmarkCacheSelect100k-2           	  182299	      1100 ns/op	      32 B/op	       1 allocs/op
BenchmarkParseChange-2               	   14329	     16170 ns/op	  29.38 MB/s	    5035 B/op	      53 allocs/op
PASS
ok  	github.com/prowler-cloud/s3-exporter/integration	3.710s
pkg: github.com/prowler-cloud/s3-exporter/exporter
BenchmarkObjectKey/compliance-arn-uid-2         	  197250	      1264 ns/op	     496 B/op	       5 allocs/op
`

func TestParseBench(t *testing.T) {
	ms := parseBench(benchOutput)
	if len(ms) != 3 {
		t.Fatalf("%d results: %+v", len(ms), ms)
	}
	sel, ok := findMicro(ms, "BenchmarkCacheSelect100k")
	if !ok || sel.Pkg != "integration" || sel.ns() != 1100 || sel.BPerOp != 32 || sel.Allocs != 1 {
		t.Errorf("select: %+v (median %v)", sel, sel.ns())
	}
	pc, _ := findMicro(ms, "BenchmarkParseChange")
	if pc.MBps != 29.38 || pc.Allocs != 53 {
		t.Errorf("parse change: %+v", pc)
	}
	if k, ok := findMicro(ms, "BenchmarkObjectKey/compliance-arn-uid"); !ok || k.Pkg != "exporter" || k.ns() != 1264 {
		t.Errorf("sub-benchmark: %+v", k)
	}
}

const traces = `File: bench
Type: cpu
Duration: 1.79s, Total samples = 1.18s (66.05%)
-----------+-------------------------------------------------------
      60ms   crypto/internal/fips140/sha256.blockSHANI
             crypto/sha256.(*Digest).Write
             github.com/prowler-cloud/s3-exporter/internal/source.(*verifier).Read
             io.ReadAll
-----------+-------------------------------------------------------
      30ms   crypto/internal/fips140/sha256.blockSHANI
             github.com/aws/aws-sdk-go-v2/aws/signer/v4.computePayloadSHA256
-----------+-------------------------------------------------------
      10ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      20ms   internal/runtime/syscall/linux.Syscall6 (inline)
             net/http.(*persistConn).writeLoop
-----------+-------------------------------------------------------
      40ms   runtime.memmove
             github.com/nats-io/nats%2ego.(*Conn).readLoop
-----------+-------------------------------------------------------
`

func TestProfileSummary(t *testing.T) {
	samples := parseTraces(traces)
	if len(samples) != 5 || samples[0].Dur != 60*time.Millisecond || len(samples[0].Frames) != 4 || samples[3].Frames[0] != "internal/runtime/syscall/linux.Syscall6" {
		t.Fatalf("parsed %+v", samples)
	}
	p := summarize(samples, uploadCategories)
	if p.Total != 160*time.Millisecond {
		t.Errorf("total %v", p.Total)
	}
	got := map[string]time.Duration{}
	for _, s := range p.Shares {
		got[s.Name] = s.Dur
	}
	find := func(prefix string) time.Duration {
		for name, d := range got {
			if strings.HasPrefix(name, prefix) {
				return d
			}
		}
		return -1
	}
	for prefix, want := range map[string]time.Duration{
		"SHA-256 of artifacts":         60 * time.Millisecond,
		"SHA-256 of request payloads":  30 * time.Millisecond,
		"garbage collector":            10 * time.Millisecond,
		"S3 requests: SDK middleware,": 20 * time.Millisecond,
		"NATS client:":                 40 * time.Millisecond, // the core package's frames are escaped: nats%2ego
	} {
		if d := find(prefix); d != want {
			t.Errorf("%s: %v, want %v (shares %v)", prefix, d, want, got)
		}
	}
	if p.Shares[0].Dur != 60*time.Millisecond || p.Shares[0].Pct != 37.5 {
		t.Errorf("largest share first: %+v", p.Shares[0])
	}
	if p.Syscalls != 12.5 {
		t.Errorf("syscalls %.1f%%, want 12.5%%", p.Syscalls)
	}
}

func TestParseTop(t *testing.T) {
	top := parseTop(`Showing top 3 nodes out of 424
      flat  flat%   sum%        cum   cum%
     0.16s 13.56% 13.56%      0.16s 13.56%  internal/runtime/syscall/linux.Syscall6
     220ms  5.67%  5.67%      390ms 10.05%  runtime.tryDeferToSpanScan
         0     0% 27.65%      0.18s  6.14%  syscall.RawSyscall6
`, 2)
	if len(top) != 2 || top[0].Dur != 160*time.Millisecond || top[0].Pct != 13.56 || top[1].Name != "runtime.tryDeferToSpanScan" {
		t.Errorf("top = %+v", top)
	}
}

func TestReportMarksMissedTargets(t *testing.T) {
	r := &report{opts: options{rounds: 1, concurrency: 16, benchCount: 1, benchTime: "1s"}, machine: "test",
		started: time.Unix(0, 0), finished: time.Unix(60, 0),
		small: &smallResult{Scans: 1, ObjectsPerScan: 43, BScans: 1,
			Exporter: []runStat{{Objects: 80, Wall: time.Second}},
			A:        []runStat{{Objects: 100, Wall: time.Second}},
			B:        []runStat{{Objects: 10, Wall: time.Second}}},
		latency: &latencyResult{Scans: 2, Exporter: []float64{0.010, 0.050}, Direct: []float64{0.010, 0.020},
			Queue: []float64{0, 0}, Work: []float64{0, 0}, Report: []float64{0, 0}},
	}
	md := r.markdown()
	for _, want := range []string{
		"| 1. many small scans | objects/s vs A (plain SDK program, same concurrency) | 0.80× | ≥ 0.85× | **missed** |",
		"| objects/s vs B (one file at a time, as Prowler App) | 8.0× | ≥ 5× | **met** |",
		"| p99, publish to `succeeded` | 2.50× direct | ≤ 2× | **missed** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
