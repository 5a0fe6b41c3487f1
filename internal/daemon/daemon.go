// Package daemon wires the exporter together: the NATS connection, the
// streams, the integration cache and its follower, the scan consumer, the S3
// exporter, the control plane and the metrics server. It holds no decisions
// of its own: each part runs as Run(ctx) error in one run group, started in
// order and stopped in the reverse order. The s3-exporter command, the dev
// stack and the tests all run it through this one path.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

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
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// Daemon is one running exporter replica.
type Daemon struct {
	cfg     *config.Config
	log     *zap.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	topo    consumer.Topology

	http *metrics.Server
	conn atomic.Pointer[natsConn]
	// httpUp is closed once the metrics server listens.
	httpUp chan struct{}

	cacheReady    atomic.Bool
	statusesReady atomic.Bool
	bound         atomic.Bool
	// scansHealth is why the scans consumer looks broken (nil: it does not).
	scansHealth atomic.Pointer[error]
	// watchEvery is how often the scans consumer is checked.
	watchEvery time.Duration

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
		topo: consumer.Topology{Prefix: cfg.SubjectPrefix, Replicas: cfg.StreamReplicas, ScanMaxAge: cfg.ScanMaxAge,
			StatusMaxBytes: cfg.StatusStreamBytes, DLQMaxBytes: cfg.DLQStreamBytes},
		httpUp:     make(chan struct{}),
		watchEvery: 10 * time.Second,
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
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

// run starts every part in order, waits for stop or for a part to fail,
// then stops them all in the reverse order. A failed start and a shutdown
// take the same path.
func (d *Daemon) run(stop context.Context) (err error) {
	g := newGroup(d.log)
	defer func() {
		d.bound.Store(false)
		err = errors.Join(err, g.Err(), g.Stop())
	}()
	if err := d.start(stop, g); err != nil {
		if stop.Err() != nil {
			return nil // shut down while starting
		}
		return err
	}
	close(d.ready)
	d.log.Info("exporter ready", zap.String("nats", d.conn.Load().nc.ConnectedUrlRedacted()), zap.String("consumer", d.cfg.ConsumerName),
		zap.String("metrics_addr", d.http.Addr()))
	select {
	case <-stop.Done():
		return nil
	case <-g.Failed():
		return nil // g.Err says why
	}
}

func (d *Daemon) start(ctx context.Context, g *group) error {
	cfg := d.cfg
	parser := &integration.Parser{Prefix: cfg.SubjectPrefix, AllowPlaintext: cfg.AllowPlaintextCredentials,
		RoleARNPattern: cfg.RoleARNPattern, AllowAmbient: cfg.AllowAmbientCredentials}
	if k := cfg.CredentialsKey.Reveal(); k != "" {
		key, err := fernet.ParseKeys(k)
		if err != nil {
			return fmt.Errorf("S3EXPORTER_CREDENTIALS_KEY: %w", err)
		}
		parser.Key = key
	}

	d.http = metrics.NewServer(cfg.MetricsAddr, d.reg, d.Ready, d.log)
	if err := d.http.Start(); err != nil {
		return fmt.Errorf("metrics server on %s: %w", cfg.MetricsAddr, err)
	}
	close(d.httpUp)
	g.Go("metrics server", func(ctx context.Context) error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return d.http.Shutdown(sctx)
	})

	// Not reachable yet is not an error: the connection keeps trying, with
	// backoff, while /healthz says alive and /readyz says why not ready.
	conn, err := dialNATS(cfg, d.metrics, d.log)
	if err != nil {
		return err
	}
	d.conn.Store(conn)
	g.Go("NATS connection", conn.Run)
	if err := conn.WaitConnected(ctx); err != nil {
		return err
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
		return fmt.Errorf("jetstream: %w", err)
	}

	kv, err := consumer.EnsureStreams(ctx, js, d.topo, cfg.ManageStreams)
	if err != nil {
		return err
	}
	cache := integration.NewCache()
	led := ledger.New(kv)
	reporter := consumer.NewReporter(js, d.topo, led, d.metrics, cache, d.log)

	opts := []source.Option{source.WithArchiveMaxBytes(cfg.ArchiveMaxBytes)}
	if len(cfg.S3SourceBuckets) > 0 {
		// The exporter's own identity, in a reader of its own that can
		// only read (contract v1.2 §9): never one of the tenants' clients.
		s3r, err := source.NewS3Reader(ctx, source.S3Options{Buckets: cfg.S3SourceBuckets,
			Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3ForcePathStyle, DefaultRegion: cfg.DefaultRegion})
		if err != nil {
			return fmt.Errorf("S3EXPORTER_S3_SOURCE_BUCKETS: %w", err)
		}
		opts = append(opts, source.WithS3(s3r))
	}
	opener, err := source.NewOpener(js, cfg.FileSourceRoots, opts...)
	if err != nil {
		return fmt.Errorf("S3EXPORTER_FILE_SOURCE_ROOTS: %w", err)
	}
	copts := exporter.ClientOptions{
		Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3ForcePathStyle, STSEndpoint: cfg.STSEndpoint, DefaultRegion: cfg.DefaultRegion,
		OnRetry:                func(c errcode.Code) { d.metrics.S3RequestRetries.WithLabelValues(string(c)).Inc() },
		ResponseTimeout:        cfg.ResponseTimeout,
		CredentialExpiryWindow: cfg.CredentialRefreshWindow,
		RetryMaxBackoff:        cfg.S3RetryMaxBackoff,
	}
	clients, err := exporter.NewClients(ctx, copts)
	if err != nil {
		return err
	}
	// GOMEMLIMIT, read without changing it (a negative limit only reads).
	budget := exporter.UploadMemory(cfg.UploadMemory, debug.SetMemoryLimit(-1))
	d.metrics.UploadMemoryBudget.Set(float64(budget))
	exp := exporter.New(clients, opener, exporter.Options{
		Concurrency: cfg.Concurrency, PartSize: cfg.PartSize, MultipartThreshold: cfg.MultipartThreshold,
		UploadTimeout: cfg.UploadTimeout, Retries: cfg.InProcessRetries, RetryBaseDelay: cfg.RetryBaseDelay,
		InFlight:     d.metrics.UploadsInFlight.Add,
		UploadMemory: budget, BreakerFailures: cfg.BreakerFailures, BreakerCooldown: cfg.BreakerCooldown,
		Observer: d.metrics.SchedObserver(), OnBreaker: breakerStatus(clients, reporter),
	}, d.log)

	follower := consumer.NewFollower(js, d.topo, cache, parser, d.log)
	if err := follower.Start(ctx); err != nil {
		return err
	}
	g.Go("integration follower", func(ctx context.Context) error {
		<-ctx.Done()
		follower.Stop()
		return nil
	})
	d.cacheReady.Store(true)
	d.metrics.CacheReady.Set(1)
	reporter.RefreshIntegrations()

	svc := control.New(control.Ports{
		Cache:  cache,
		Ledger: led,
		Scans:  scanStore{js: js, topo: d.topo},
		Test: func(ctx context.Context, ig *integration.Integration) control.TestResult {
			return testResult(clients.TestConnection(ctx, ig))
		},
		Build:   parser.Build,
		Publish: reporter.Connection,
		CatchUp: follower.CatchUp,
		Changed: reporter.RefreshIntegrations,
		Tested: func(connected bool) {
			result := metrics.ConnectionDisconnected
			if connected {
				result = metrics.ConnectionConnected
			}
			d.metrics.ConnectionTests.WithLabelValues(result).Inc()
		},
	}, control.Options{Prefix: cfg.SubjectPrefix, TestTimeout: cfg.ConnectionTestTimeout, Global: cfg.GlobalControl}, d.log)

	// Every replica learns every connection status, whoever published it,
	// starting from the last stored one of each integration.
	statuses := &control.Statuses{
		NC: conn.nc, Subject: d.topo.Subject(event.IntegrationsStatus, ">"),
		Load: func(ctx context.Context) ([]event.ConnectionStatus, error) {
			return control.LoadLast(ctx, js, d.topo.StatusStream(), d.topo.Subject(event.IntegrationsStatus, ">"))
		},
		Current: cache.Status, Set: cache.SetStatus, Loaded: reporter.RefreshIntegrations, Log: d.log,
	}
	if err := statuses.Start(ctx); err != nil {
		return err
	}
	d.statusesReady.Store(true)
	g.Go("connection statuses", statuses.Run)

	server := &control.Server{NC: conn.nc, Prefix: cfg.SubjectPrefix, Global: cfg.GlobalControl, Handler: svc,
		Base: d.life, Timeout: cfg.ConnectionTestTimeout + 5*time.Second, Log: d.log}
	g.Go("control", server.Run)

	changes := &consumer.ChangeConsumer{JS: js, Topo: d.topo, Durable: cfg.ConsumerName + "-integrations",
		Parser: parser, Handler: svc, Base: d.life, Log: d.log}
	if err := changes.Bind(ctx); err != nil {
		return err
	}
	g.Go("integration changes", changes.Run)

	scans := consumer.NewScanConsumer(js, d.topo, consumer.ScanOptions{
		Durable: cfg.ConsumerName, MaxInFlight: cfg.MaxInFlightScans, AckWait: cfg.AckWait,
		MaxDeliver: cfg.MaxDeliver, Backoff: cfg.BackoffFor,
		MaxHeld: cfg.MaxHeldScans, MaxTenantInFlight: cfg.MaxTenantScans,
	}, cache, follower, exp, led, reporter, d.metrics, d.log)
	if err := scans.Bind(ctx); err != nil {
		return fmt.Errorf("binding the scans consumer %q: %w", cfg.ConsumerName, err)
	}
	stopGiveUps, err := scans.WatchGiveUps()
	if err != nil {
		return err
	}
	g.Go("give-ups", func(ctx context.Context) error {
		<-ctx.Done()
		stopGiveUps()
		return nil
	})
	d.bound.Store(true)
	g.Go("scans", func(ctx context.Context) error {
		scans.Run(ctx)
		d.bound.Store(false)
		// The grace is the daemon's: d.life ends when it runs out.
		if err := scans.Shutdown(d.life); err != nil {
			// Expected when uploads outlast the grace: they were aborted and
			// their scans returned to the stream, nothing is lost.
			d.log.Warn("shutdown grace ran out", zap.Error(err))
		}
		return nil
	})
	g.Go("scans consumer watch", func(ctx context.Context) error {
		d.watchConsumer(ctx, scans.Consumer())
		return nil
	})
	return nil
}

// breakerStatus publishes a connection status when the breaker of an
// integration's destination opens (connected false, the failure that opened
// it) or closes again (connected true: a probe got through).
func breakerStatus(clients *exporter.Clients, reporter *consumer.Reporter) func(*integration.Integration, bool, *errcode.Error) {
	return func(ig *integration.Integration, open bool, cause *errcode.Error) {
		st := event.ConnectionStatus{TenantID: ig.TenantID, IntegrationID: ig.ID, LastCheckedAt: time.Now().UTC(),
			Connected: !open, Breaker: event.BreakerClosed}
		if r, ok := clients.CachedRegion(ig); ok {
			st.BucketRegion = r
		}
		if open {
			st.Breaker = event.BreakerOpen
			st.Error = &event.ErrorBody{Code: string(errcode.Timeout), Message: "uploads fail fast after repeated failures"}
			if cause != nil {
				st.Error = &event.ErrorBody{Code: string(cause.Code), Message: cause.Message()}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		reporter.Connection(ctx, st)
	}
}

// watchConsumer keeps the consumer gauges current, and readiness honest:
// a scans consumer deleted under a running replica leaves its fetch loop
// failing forever, which must show on /readyz.
func (d *Daemon) watchConsumer(ctx context.Context, c jetstream.Consumer) {
	t := time.NewTicker(d.watchEvery)
	defer t.Stop()
	failures := 0
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := c.Info(ictx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failures = 0
			if d.scansHealth.Swap(nil) != nil {
				d.log.Info("the scans consumer is usable again")
			}
			d.metrics.ConsumerPending.Set(float64(info.NumPending))
			d.metrics.ConsumerAckPending.Set(float64(info.NumAckPending))
		default:
			failures++
			// Gone is gone; anything else (a slow or restarting JetStream)
			// gets a few chances before the replica says it cannot work.
			if errors.Is(err, jetstream.ErrConsumerNotFound) || failures >= 3 {
				err = fmt.Errorf("scans consumer %q: %w", d.cfg.ConsumerName, err)
				if d.scansHealth.Swap(&err) == nil {
					d.log.Error("the scans consumer is not usable", zap.Error(err))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ready reports whether the replica can take work: NATS connected, cache
// caught up, consumer bound; when not, the error says why (/readyz shows it).
func (d *Daemon) Ready() error {
	conn := d.conn.Load()
	switch {
	case conn == nil:
		return errors.New("NATS not connected yet")
	case !conn.Connected():
		return conn.NotConnected()
	case !d.cacheReady.Load():
		return errors.New("integration cache catching up")
	case !d.statusesReady.Load():
		return errors.New("loading the last connection statuses")
	case !d.bound.Load():
		return errors.New("scans consumer not bound")
	}
	if err := d.scansHealth.Load(); err != nil {
		return *err
	}
	return nil
}
