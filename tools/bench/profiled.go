package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
)

// runProfiledExporter is the exporter subcommand: the s3-exporter daemon as
// cmd/s3-exporter runs it (same configuration from the environment, same
// JSON logger on stderr), with a CPU profile written to -cpuprofile between
// SIGUSR1 and SIGUSR2. Only the profiling round of workload 1 uses it;
// every measured round runs the real s3-exporter binary.
func runProfiledExporter(args []string) error {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	out := fs.String("cpuprofile", "", "write a CPU profile here")
	fromStart := fs.Bool("from-start", false, "start the profile at once rather than on SIGUSR1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("exporter: -cpuprofile is required")
	}
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(os.Stderr)), cfg.ZapLevel()), zap.AddCaller())
	defer func() { _ = log.Sync() }()

	// SIGUSR1 starts the profile and SIGUSR2 ends it, so that it covers the
	// timed window only. A profile still running at exit is ended then, with
	// the allocation profile beside it.
	stop, err := profileOnSignals(*out, *fromStart, true, func(err error) { log.Error("cpu profile", zap.Error(err)) })
	if err != nil {
		return err
	}
	defer stop()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log.Info("starting", zap.String("version", "bench-profiled"))
	defer daemon.TuneGC(cfg, log)()
	return daemon.Run(ctx, cfg, log)
}

// profileOnSignals writes a CPU profile of this process to path between
// SIGUSR1 and SIGUSR2 (a SIGUSR1 while one runs changes nothing), or from
// now when fromStart; with allocs, each profile's end also writes the
// process's (sampled) allocation profile to path+".allocs", for go tool
// pprof -sample_index=alloc_space. The returned function stops the profile,
// if one runs, and the watching.
func profileOnSignals(path string, fromStart, allocs bool, report func(error)) (stop func(), err error) {
	var (
		mu  sync.Mutex
		cur *os.File
	)
	end := func() {
		mu.Lock()
		defer mu.Unlock()
		if cur != nil {
			pprof.StopCPUProfile()
			_ = cur.Close()
			cur = nil
			if allocs {
				if f, err := os.Create(path + ".allocs"); err == nil {
					_ = pprof.Lookup("allocs").WriteTo(f, 0)
					_ = f.Close()
				}
			}
		}
	}
	begin := func() error {
		mu.Lock()
		defer mu.Unlock()
		if cur != nil {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return err
		}
		cur = f
		return nil
	}
	if fromStart {
		if err := begin(); err != nil {
			return nil, err
		}
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range sigs {
			if s == syscall.SIGUSR2 {
				end()
			} else if err := begin(); err != nil {
				report(err)
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(sigs)
		<-done
		end()
	}, nil
}
