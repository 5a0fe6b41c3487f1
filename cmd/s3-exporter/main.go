// Command s3-exporter is the daemon: it exports Prowler scan results published
// on NATS JetStream to the S3 buckets of the tenants' integrations.
// Configuration comes from S3EXPORTER_* environment variables; run it with
// --help to list them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		switch a {
		case "-h", "--help", "-help", "help":
			fmt.Fprintln(stdout, "s3-exporter: exports Prowler scan results from NATS JetStream to Amazon S3.")
			fmt.Fprintln(stdout, "\nUsage: s3-exporter [--help] [--version] [--write-documentation]\n\nConfiguration (environment):")
			if err := config.Usage(stdout); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			return 0
		case "--write-documentation":
			// The configuration reference (docs/configuration.md), from the
			// same definitions as --help, as Prometheus writes its flags'
			// documentation: `go generate ./config` (make docs) runs this.
			if err := config.WriteReference(stdout); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			return 0
		case "-v", "--version", "version":
			b := metrics.CurrentBuild()
			fmt.Fprintf(stdout, "s3-exporter %s (%s)\n", b.Version, b.Revision)
			return 0
		default:
			fmt.Fprintf(stderr, "s3-exporter: unknown argument %q (it is configured from the environment; see --help)\n", a)
			return 2
		}
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(stderr, "s3-exporter: configuration: %v\n", err)
		return 2
	}
	log := NewLogger(cfg.ZapLevel(), stderr)
	defer func() { _ = log.Sync() }()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log.Info("starting", zap.String("version", metrics.CurrentBuild().Version), zap.Object("config", cfg))
	defer daemon.TuneGC(cfg, log)()
	if err := daemon.Run(ctx, cfg, log); err != nil {
		log.Error("exporter stopped with an error", zap.Error(err))
		return 1
	}
	log.Info("stopped")
	return 0
}

// NewLogger returns a JSON logger at level writing to w.
func NewLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.AddCaller())
}
