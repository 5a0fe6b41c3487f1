// Package daemon wires the exporter together: the NATS connection, the
// streams, the integration cache and its follower, the status publisher,
// the scan consumer, the S3 exporter, the control plane and the metrics
// server. It holds no decisions of its own: each long-running component has
// one shape, Run(ctx, ready) error (a Runnable), and runs in one group,
// started in order (each ready before the next) and stopped in the reverse
// order. The s3-exporter command, the dev stack and the tests all run it
// through this one path.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/consumer"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/control"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/internal/source"
	"github.com/prowler-cloud/s3-exporter/internal/status"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// Daemon is one running exporter replica.
type Daemon struct {
	cfg     *config.Config
	log     *zap.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	topo    streams.Topology
	g       *group

	http *metrics.Server
	// httpUp is closed once the metrics server listens.
	httpUp chan struct{}
	// checkEvery is how often the scans consumer is checked.
	checkEvery time.Duration

	// life is the context work runs under; kill cancels it when the
	// shutdown grace runs out.
	life context.Context
	kill context.CancelFunc
	// stop asks run to stop (Shutdown).
	stop     context.CancelFunc
	launched sync.Once
	ready    chan struct{}
	done     chan struct{}
	err      error
}

// New builds a daemon. reg receives its metrics (nil: a new registry).
func New(cfg *config.Config, log *zap.Logger, reg *prometheus.Registry) *Daemon {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	d := &Daemon{
		cfg: cfg, log: log, reg: reg,
		metrics: metrics.New(reg, metrics.CurrentBuild()),
		topo: streams.Topology{Prefix: cfg.SubjectPrefix, Replicas: cfg.StreamReplicas, ScanMaxAge: cfg.ScanMaxAge,
			StatusMaxBytes: cfg.StatusStreamBytes, DLQMaxBytes: cfg.DLQStreamBytes},
		g:          newGroup(log),
		httpUp:     make(chan struct{}),
		checkEvery: 10 * time.Second,
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	d.http = metrics.NewServer(cfg.MetricsAddr, reg, d.Ready, log)
	d.life, d.kill = context.WithCancel(context.Background())
	return d
}

// MetricsAddr returns the bound address of the metrics server ("" until it
// listens).
func (d *Daemon) MetricsAddr() string {
	select {
	case <-d.httpUp:
		return d.http.Addr()
	default:
		return ""
	}
}

// launch starts run once.
func (d *Daemon) launch() {
	d.launched.Do(func() {
		ctx, stop := context.WithCancel(d.life)
		d.stop = stop
		go func() {
			defer close(d.done)
			d.err = d.run(ctx)
		}()
	})
}

// Start starts the daemon and returns once the replica is ready, or with the
// error that stopped it. While NATS cannot be reached it keeps trying until
// ctx ends; the daemon is then shut down.
func (d *Daemon) Start(ctx context.Context) error {
	d.launch()
	select {
	case <-d.ready:
		return nil
	case <-d.done:
		return d.err
	case <-ctx.Done():
		reason := d.Ready()
		sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownGrace)
		defer cancel()
		_ = d.Shutdown(sctx)
		if reason != nil {
			return fmt.Errorf("not ready (%w): %w", reason, ctx.Err())
		}
		return ctx.Err()
	}
}

// Shutdown stops taking work, lets in-flight scans and requests finish
// within ctx (uploads still running when it ends are canceled and their
// messages returned), then closes the connection and the metrics server.
func (d *Daemon) Shutdown(ctx context.Context) error {
	// A daemon never started has nothing to stop.
	d.launched.Do(func() {
		d.stop = func() {}
		close(d.done)
	})
	d.stop()
	select {
	case <-d.done:
	case <-ctx.Done():
		d.kill()
		<-d.done
	}
	d.kill()
	return d.err
}

// Run runs a daemon until ctx ends, then shuts it down within the
// configured grace. It returns early with the error of a part that failed.
func Run(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	d := New(cfg, log, nil)
	d.launch()
	select {
	case <-d.done:
		return d.err
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("grace", cfg.ShutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	return d.Shutdown(sctx)
}

// run starts every component in order, waits for stop or for a component
// to fail, then stops them all in the reverse order. A failed start and a
// shutdown take the same path.
func (d *Daemon) run(stop context.Context) (err error) {
	defer func() { err = errors.Join(err, d.g.Err(), d.g.Stop()) }()
	nats, err := d.start(stop)
	if err != nil {
		if stop.Err() != nil || errors.Is(err, errEnded) {
			return nil // shut down while starting, or g.Err says why
		}
		return err
	}
	close(d.ready)
	d.log.Info("exporter ready", zap.String("nats", nats), zap.String("consumer", d.cfg.ConsumerName),
		zap.String("metrics_addr", d.http.Addr()))
	select {
	case <-stop.Done():
		return nil
	case <-d.g.Failed():
		return nil // g.Err says why
	}
}

// start starts the components in order, each ready before the next: the
// metrics server (/readyz says why the rest is not ready yet) and the NATS
// connection everything needs; then, once the streams exist, the rest
// (components). It returns the connected server's URL, redacted.
func (d *Daemon) start(ctx context.Context) (string, error) {
	cfg := d.cfg
	parser := &integration.Parser{Prefix: cfg.SubjectPrefix, AllowPlaintext: cfg.AllowPlaintextCredentials,
		RoleARNPattern: cfg.RoleARNPattern, AllowAmbient: cfg.AllowAmbientCredentials}
	if k := cfg.CredentialsKey.Reveal(); k != "" {
		key, err := fernet.ParseKeys(k)
		if err != nil {
			return "", fmt.Errorf("S3EXPORTER_CREDENTIALS_KEY: %w", err)
		}
		parser.Key = key
	}
	// Not reachable yet is not an error: the connection keeps trying, with
	// backoff, while /healthz says alive and /readyz says why not ready.
	conn, err := dialNATS(cfg, d.metrics, d.log)
	if err != nil {
		return "", err
	}
	srv, nc := d.g.Go("metrics server", d.http), d.g.Go("NATS connection", conn)
	if err := d.g.Wait(ctx, srv); err != nil {
		return "", err
	}
	close(d.httpUp)
	if err := d.g.Wait(ctx, nc); err != nil {
		return "", err
	}
	// In a JetStream domain (the hub's, seen from a leaf node) every API
	// request, and with it the object stores, the bucket and the consumers,
	// goes to $JS.<domain>.API.; source's raw requests follow js.
	var js jetstream.JetStream
	if cfg.NATSJSDomain != "" {
		js, err = jetstream.NewWithDomain(conn.nc, cfg.NATSJSDomain)
	} else {
		js, err = jetstream.New(conn.nc)
	}
	if err != nil {
		return "", fmt.Errorf("jetstream: %w", err)
	}
	kv, err := streams.EnsureStreams(ctx, js, d.topo, cfg.ManageStreams)
	if err != nil {
		return "", err
	}
	parts, err := d.components(ctx, conn.nc, js, kv, parser)
	if err != nil {
		return "", err
	}
	for _, p := range parts {
		if err := d.g.Start(ctx, p.name, p.r); err != nil {
			return "", err
		}
		if p.then != nil {
			p.then()
		}
	}
	return conn.nc.ConnectedUrlRedacted(), nil
}

// part is a component as the daemon starts it.
type part struct {
	name string
	r    Runnable
	then func() // once it is ready
}

// components builds the components that work on the streams, and returns
// them in start order: the status publisher, the integration cache (caught
// up before anything reads it), the connection statuses, the control
// plane, the integration change consumer and last the scan consumer, which
// takes work.
func (d *Daemon) components(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, kv jetstream.KeyValue, parser *integration.Parser) ([]part, error) {
	cfg := d.cfg
	cache := integration.NewCache()
	led := ledger.New(kv)
	statuses := status.NewPublisher(js, cfg.SubjectPrefix, cache, d.metrics, d.log)
	opts := []source.Option{source.WithArchiveMaxBytes(cfg.ArchiveMaxBytes)}
	if len(cfg.S3SourceBuckets) > 0 {
		// The exporter's own identity, in a reader of its own that can
		// only read (contract v1.2 §9): never one of the tenants' clients.
		s3r, err := source.NewS3Reader(ctx, source.S3Options{Buckets: cfg.S3SourceBuckets,
			Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3ForcePathStyle, DefaultRegion: cfg.DefaultRegion})
		if err != nil {
			return nil, fmt.Errorf("S3EXPORTER_S3_SOURCE_BUCKETS: %w", err)
		}
		opts = append(opts, source.WithS3(s3r))
	}
	opener, err := source.NewOpener(js, cfg.FileSourceRoots, opts...)
	if err != nil {
		return nil, fmt.Errorf("S3EXPORTER_FILE_SOURCE_ROOTS: %w", err)
	}
	clients, err := exporter.NewClients(ctx, exporter.ClientOptions{
		Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3ForcePathStyle, STSEndpoint: cfg.STSEndpoint, DefaultRegion: cfg.DefaultRegion,
		OnRetry:                func(c errcode.Code) { d.metrics.S3RequestRetries.WithLabelValues(string(c)).Inc() },
		ResponseTimeout:        cfg.ResponseTimeout,
		CredentialExpiryWindow: cfg.CredentialRefreshWindow,
		RetryMaxBackoff:        cfg.S3RetryMaxBackoff,
		IdleConnsPerHost:       cfg.Concurrency,
	})
	if err != nil {
		return nil, err
	}
	// GOMEMLIMIT, read without changing it (a negative limit only reads).
	budget := exporter.UploadMemory(cfg.UploadMemory, debug.SetMemoryLimit(-1))
	d.metrics.UploadMemoryBudget.Set(float64(budget))
	exp := exporter.New(clients, opener, exporter.Options{
		Concurrency: cfg.Concurrency, PartSize: cfg.PartSize, MultipartThreshold: cfg.MultipartThreshold,
		UploadTimeout: cfg.UploadTimeout, Retries: cfg.InProcessRetries, RetryBaseDelay: cfg.RetryBaseDelay,
		InFlight:     d.metrics.UploadsInFlight.Add,
		UploadMemory: budget, BreakerFailures: cfg.BreakerFailures, BreakerCooldown: cfg.BreakerCooldown,
		Observer: d.metrics.SchedObserver(),
		// On an upload's goroutine: Offer never waits for NATS.
		OnBreaker: func(ig *integration.Integration, open bool, cause *errcode.Error) {
			region, _ := clients.CachedRegion(ig)
			statuses.Offer(status.Breaker(ig.TenantID, ig.ID, time.Now(), region, open, cause))
		},
	}, d.log)
	follower := integration.NewFollower(js, d.topo, cache, parser, d.log)
	svc := control.New(control.Ports{
		Cache:  cache,
		Ledger: led,
		Scans:  streams.Scans{JS: js, Topo: d.topo},
		Test: func(ctx context.Context, ig *integration.Integration) control.TestResult {
			r := clients.TestConnection(ctx, ig)
			return control.TestResult{Region: r.Region, CheckedAt: r.CheckedAt, Err: r.Err}
		},
		Build:   parser.Build,
		Publish: statuses.Publish,
		CatchUp: follower.CatchUp,
		Changed: statuses.RefreshIntegrations,
		Tested: func(connected bool) {
			result := metrics.ConnectionDisconnected
			if connected {
				result = metrics.ConnectionConnected
			}
			d.metrics.ConnectionTests.WithLabelValues(result).Inc()
		},
	}, control.Options{Prefix: cfg.SubjectPrefix, TestTimeout: cfg.ConnectionTestTimeout, Global: cfg.GlobalControl}, d.log)

	// d.life is the context work runs under: it ends when the shutdown
	// grace runs out.
	return []part{
		{"status publisher", statuses, nil},
		{"integration cache", follower, func() { d.metrics.CacheReady.Set(1); statuses.RefreshIntegrations() }},
		// Every replica learns every connection status, whoever published
		// it, starting from the last stored one of each integration.
		{"connection statuses", &control.Statuses{
			NC: nc, Subject: d.topo.Subject(event.IntegrationsStatus, ">"),
			Load: func(ctx context.Context) ([]event.ConnectionStatus, error) {
				return control.LoadLast(ctx, js, d.topo.StatusStream(), d.topo.Subject(event.IntegrationsStatus, ">"))
			},
			Current: cache.Status, Set: cache.SetStatus, Loaded: statuses.RefreshIntegrations, Log: d.log,
		}, nil},
		{"control plane", &control.Server{NC: nc, Prefix: cfg.SubjectPrefix, Global: cfg.GlobalControl, Handler: svc,
			Base: d.life, Timeout: cfg.ConnectionTestTimeout + 5*time.Second, Log: d.log}, nil},
		{"integration changes consumer", &control.ChangeConsumer{JS: js, Topo: d.topo, Durable: cfg.ConsumerName + "-integrations",
			Parser: parser, Handler: svc, Base: d.life, Log: d.log}, nil},
		{"scans consumer", consumer.NewScanConsumer(js, d.topo, consumer.ScanOptions{
			Durable: cfg.ConsumerName, MaxInFlight: cfg.MaxInFlightScans, AckWait: cfg.AckWait,
			MaxDeliver: cfg.MaxDeliver, Backoff: cfg.BackoffFor,
			MaxHeld: cfg.MaxHeldScans, MaxTenantInFlight: cfg.MaxTenantScans,
			Base: d.life, CheckEvery: d.checkEvery,
		}, cache, follower, exp, led, consumer.NewReporter(js, d.topo, led, d.metrics, statuses, d.log), d.metrics, d.log), nil},
	}, nil
}

// Ready reports whether the replica can take work: every component
// started and ready (NATS connected, cache caught up, consumers bound), and
// none failing its check; when not, the error says why (/readyz shows it).
func (d *Daemon) Ready() error {
	if err := d.g.Ready(); err != nil {
		return err
	}
	select {
	case <-d.ready:
		return nil
	default:
		return errors.New("starting")
	}
}
