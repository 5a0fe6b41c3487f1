// Command bench measures the exporter against baselines on the same machine
// in the same run and writes the table to docs/BENCHMARKS.md (`make bench`;
// `make bench-quick` is a smaller sanity run that prints the table).
//
// nats-server and versitygw run as their own processes, and so do the
// exporter (the s3-exporter binary, built here) and every baseline (this
// program run again with a subcommand), so that each one's CPU time and
// memory, read from /proc, are its own. Rounds interleave baselines and
// exporter, and the table gives medians of the per-round ratios: the machine
// is shared and noisy, so figures are ratios against a baseline measured
// moments apart, never bare times.
//
// Subcommands (used by the harness itself): natsd, put, tm, follow, exporter,
// delayproxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		var err error
		switch args[0] {
		case "natsd":
			err = runNATSD(args[1:])
		case "put":
			err = runPut()
		case "tm":
			err = runTM()
		case "follow":
			err = runFollow()
		case "exporter":
			err = runProfiledExporter(args[1:])
		case "delayproxy":
			err = runDelayProxy(args[1:])
		default:
			err = fmt.Errorf("unknown subcommand %q", args[0])
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", args[0], err)
			return 1
		}
		return 0
	}
	o, err := parseOptions(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := bench(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// options are the harness's flags.
type options struct {
	out          string
	quick        bool
	rounds       int
	scans        int
	bScans       int
	concurrency  int
	largeSize    int64
	integrations int
	tenants      int
	latencyScans int
	benchCount   int
	benchTime    string
	workloads    map[string]bool
	profile      bool
	delay        time.Duration
	delayScans   int
	delayBScans  int
	workDir      string
	keep         bool
	exporterEnv  map[string]string
	reruns       int
	networkScans int
	noisyAScans  int
	noisyBScans  int
	noisyEnv     map[string]string
	s3KeepAlive  bool
	handoffScans int
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "", "write the report (markdown) here; empty: standard output only")
	fs.BoolVar(&o.quick, "quick", false, "a small sanity run: 20 scans, 128 MiB, 10k integrations, 50 latency scans, 1 round")
	fs.IntVar(&o.reruns, "reruns", 1, "times a round is run again when other work on the machine disturbed it")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds of each throughput workload (exporter and baselines interleaved); medians are reported")
	fs.IntVar(&o.scans, "scans", 200, "workload 1: scans (43 files each)")
	fs.IntVar(&o.bScans, "b-scans", 50, "workload 1: scans uploaded one file at a time by baseline B (its rate does not depend on the count)")
	fs.IntVar(&o.concurrency, "concurrency", 16, "S3EXPORTER_CONCURRENCY of the exporter, and baseline A's workers")
	size := fs.String("large-size", "1GiB", "workload 2: size of the large artifact (MiB or GiB suffix)")
	fs.IntVar(&o.integrations, "integrations", 100_000, "workload 3: integrations in the stream")
	fs.IntVar(&o.tenants, "tenants", 10_000, "workload 3: tenants they belong to")
	fs.IntVar(&o.latencyScans, "latency-scans", 200, "workload 4: sequential scans")
	fs.IntVar(&o.benchCount, "bench-count", 5, "go test -count of the micro-benchmarks (medians are reported)")
	fs.StringVar(&o.benchTime, "bench-time", "300ms", "go test -benchtime of the micro-benchmarks")
	wl := fs.String("workloads", "small,large,cache,latency,micro,network,noisy,handoff", "workloads to run, comma-separated (handoff: workload 7)")
	fs.IntVar(&o.handoffScans, "handoff-scans", 200, "workload 7: scans (43 files each) handed off as zips")
	fs.IntVar(&o.networkScans, "network-scans", 200, "workload 5: scans (43 files each) exported through each delay")
	fs.IntVar(&o.noisyAScans, "noisy-a-scans", 30, "workload 6: scans (43 files each) of the tenant with the bad bucket")
	fs.IntVar(&o.noisyBScans, "noisy-b-scans", 20, "workload 6: scans (5 small files each) of the other tenant")
	noisyEnv := fs.String("noisy-env", "S3EXPORTER_MAX_INFLIGHT_SCANS=64", "workload 6: exporter environment, K=V,K=V (the default lets a replica hold both tenants' scans until the consumer caps scans per tenant)")
	fs.DurationVar(&o.delay, "delay", 20*time.Millisecond, "workload 1: also run the exporter and baseline B with this much added to every S3 request (0: skip)")
	fs.IntVar(&o.delayScans, "delay-scans", 50, "workload 1 with delay: scans the exporter exports")
	fs.IntVar(&o.delayBScans, "delay-b-scans", 5, "workload 1 with delay: scans baseline B uploads")
	fs.BoolVar(&o.s3KeepAlive, "s3-keep-alive", false, "run versitygw with --keep-alive, as S3 endpoints serve (by default it closes every connection after one request, as in every earlier run of this harness)")
	fs.BoolVar(&o.profile, "profile", true, "profile the exporter's CPU in an extra workload-1 round")
	fs.StringVar(&o.workDir, "workdir", "", "directory for servers' data and logs (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	envList := fs.String("exporter-env", "", "extra environment of every exporter process, K=V,K=V (for experiments; the report names it)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { o.rounds = 1 })
		def("scans", func() { o.scans = 20 })
		def("b-scans", func() { o.bScans = 10 })
		def("large-size", func() { *size = "128MiB" })
		def("integrations", func() { o.integrations = 10_000 })
		def("tenants", func() { o.tenants = 1_000 })
		def("latency-scans", func() { o.latencyScans = 50 })
		def("bench-count", func() { o.benchCount = 1 })
		def("bench-time", func() { o.benchTime = "100ms" })
		def("delay-scans", func() { o.delayScans = 10 })
		def("delay-b-scans", func() { o.delayBScans = 2 })
		def("network-scans", func() { o.networkScans = 8 })
		def("noisy-a-scans", func() { o.noisyAScans = 10 })
		def("noisy-b-scans", func() { o.noisyBScans = 8 })
		def("handoff-scans", func() { o.handoffScans = 20 })
	}
	var err error
	if o.largeSize, err = parseSize(*size); err != nil {
		return o, fmt.Errorf("-large-size: %w", err)
	}
	if o.exporterEnv, err = parseEnvList(*envList); err != nil {
		return o, fmt.Errorf("-exporter-env: %w", err)
	}
	if o.noisyEnv, err = parseEnvList(*noisyEnv); err != nil {
		return o, fmt.Errorf("-noisy-env: %w", err)
	}
	o.workloads = map[string]bool{}
	for _, w := range strings.Split(*wl, ",") {
		if w = strings.TrimSpace(w); w != "" {
			o.workloads[w] = true
		}
	}
	if o.reruns < 0 || o.rounds < 1 || o.scans < 1 || o.bScans < 1 || o.concurrency < 1 || o.integrations < 1 || o.tenants < 1 ||
		o.tenants > o.integrations || o.latencyScans < 1 || o.benchCount < 1 || o.networkScans < 1 || o.noisyAScans < 1 || o.noisyBScans < 1 || o.handoffScans < 1 {
		return o, fmt.Errorf("bench: counts must be positive (and tenants <= integrations)")
	}
	return o, nil
}

// parseEnvList reads K=V,K=V.
func parseEnvList(list string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(list, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not K=V", kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseSize reads "1GiB", "128MiB" or a number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "GiB"):
		mult, s = 1<<30, strings.TrimSuffix(s, "GiB")
	case strings.HasSuffix(s, "MiB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MiB")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func bench(o options) error {
	started := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	if o.workloads["small"] {
		// Before anything runs: workload 1 compares the exporter with rclone.
		if _, err := rcloneBinary(); err != nil {
			return fmt.Errorf("workload 1: %w", err)
		}
	}
	work := o.workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "s3-exporter-bench-"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(work, "logs"), 0o755); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	} else {
		logf("work directory: %s", work)
	}
	rep := &report{opts: o, machine: describeMachine(), started: started}

	// Ctrl-C or SIGTERM ends the run early, still stopping the servers and
	// removing the work directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.workloads["micro"] {
		// First, before any server runs: the micro-benchmarks want a quiet machine.
		logf("micro-benchmarks (go test -bench, count %d)", o.benchCount)
		var err error
		if rep.micro, err = runMicro(o.benchCount, o.benchTime); err != nil {
			return err
		}
	}
	needStack := o.workloads["small"] || o.workloads["large"] || o.workloads["cache"] || o.workloads["latency"] ||
		o.workloads["network"] || o.workloads["noisy"] || o.workloads["handoff"]
	if needStack {
		s, err := newStack(work, o.s3KeepAlive, logf)
		if err != nil {
			return err
		}
		s.extraEnv = o.exporterEnv
		defer s.close()
		rep.loadStart = sampleMachine().Load1
		if o.workloads["latency"] {
			// On an idle system: first, while nothing else of ours has run.
			if rep.latency, err = runLatency(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 4: %w", err)
			}
		}
		if o.workloads["small"] {
			if rep.small, err = runSmall(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 1: %w", err)
			}
		}
		if o.workloads["large"] {
			if rep.large, err = runLarge(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 2: %w", err)
			}
		}
		if o.workloads["cache"] {
			if rep.cache, err = runCache(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 3: %w", err)
			}
		}
		if o.workloads["network"] {
			if rep.network, err = runNetwork(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 5: %w", err)
			}
		}
		if o.workloads["noisy"] {
			if rep.noisy, err = runNoisy(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 6: %w", err)
			}
		}
		if o.workloads["handoff"] {
			if rep.handoff, err = runHandoff(ctx, s, o, logf); err != nil {
				return fmt.Errorf("workload 7: %w", err)
			}
		}
	}
	rep.finished = time.Now()
	rep.loadEnd = sampleMachine().Load1
	text := rep.markdown()
	fmt.Print(text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	logf("done in %v", time.Since(started).Round(time.Second))
	return nil
}
