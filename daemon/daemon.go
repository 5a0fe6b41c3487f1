// Package daemon wires the exporter together: the NATS connection, the
// streams, the integration cache and its follower, the scan consumer, the S3
// exporter, the control handlers and the metrics server. The s3-exporter
// command, the dev stack and the tests all run it through this one path.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/consumer"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/fernet"
	"github.com/prowler-cloud/s3-exporter/integration"
	"github.com/prowler-cloud/s3-exporter/ledger"
	"github.com/prowler-cloud/s3-exporter/metrics"
	"github.com/prowler-cloud/s3-exporter/natsconn"
	"github.com/prowler-cloud/s3-exporter/source"
)

// Daemon is one running exporter replica.
type Daemon struct {
	// TuneClients, when set before Start, adjusts the options the S3 and
	// STS clients are built with (tests shorten the credential expiry
	// window, which has no setting of its own).
	TuneClients func(*exporter.ClientOptions)

	cfg     *config.Config
	log     *zap.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	nc       *nats.Conn
	js       jetstream.JetStream
	topo     consumer.Topology
	cache    *integration.Cache
	parser   *integration.Parser
	follower *consumer.Follower
	scans    *consumer.ScanConsumer
	reporter *consumer.Reporter
	exporter *exporter.Exporter
	ledger   *ledger.Ledger
	http     *metrics.Server
	control  []*nats.Subscription
	changes  *consumer.ChangeConsumer

	cacheReady atomic.Bool
	bound      atomic.Bool
	stop       context.CancelFunc
	giveUps    func() // stops settling the scans that ran out of deliveries
	runDone    chan struct{}
	bg         sync.WaitGroup
}

// New builds a daemon. reg receives its metrics (nil: a new registry).
func New(cfg *config.Config, log *zap.Logger, reg *prometheus.Registry) *Daemon {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return &Daemon{
		cfg: cfg, log: log, reg: reg,
		metrics: metrics.New(reg, metrics.BuildInfo{Version: metrics.Version, Revision: metrics.Revision}),
		topo: consumer.Topology{Prefix: cfg.SubjectPrefix, Replicas: cfg.StreamReplicas, ScanMaxAge: cfg.ScanMaxAge,
			StatusMaxBytes: cfg.StatusStreamBytes, DLQMaxBytes: cfg.DLQStreamBytes},
		cache:   integration.NewCache(),
		runDone: make(chan struct{}),
	}
}

// Registry returns the daemon's metrics registry.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Cache returns the integration cache.
func (d *Daemon) Cache() *integration.Cache { return d.cache }

// MetricsAddr returns the bound address of the metrics server.
func (d *Daemon) MetricsAddr() string {
	if d.http == nil {
		return ""
	}
	return d.http.Addr()
}

// Start connects, prepares the streams, catches the cache up and starts
// consuming. It returns once the replica is ready, or with the first error.
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.start(ctx); err != nil {
		if d.follower != nil {
			d.follower.Stop()
		}
		d.changes.Stop()
		d.closeAll()
		if d.http != nil {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = d.http.Shutdown(sctx)
		}
		return err
	}
	return nil
}

func (d *Daemon) start(ctx context.Context) error {
	cfg := d.cfg
	d.parser = &integration.Parser{Prefix: cfg.SubjectPrefix, AllowPlaintext: cfg.AllowPlaintextCredentials, RoleARNPattern: cfg.RoleARNPattern}
	if k := cfg.CredentialsKey.Reveal(); k != "" {
		key, err := fernet.ParseKey(k)
		if err != nil {
			return fmt.Errorf("S3EXPORTER_CREDENTIALS_KEY: %w", err)
		}
		d.parser.Key = key
	}

	d.http = metrics.NewServer(cfg.MetricsAddr, d.reg, d.Ready, d.log)
	if err := d.http.Start(); err != nil {
		return fmt.Errorf("metrics server on %s: %w", cfg.MetricsAddr, err)
	}

	nc, err := d.connect()
	if err != nil {
		return err
	}
	d.nc = nc
	d.metrics.NATSConnected.Set(1)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	d.js = js

	kv, err := consumer.EnsureStreams(ctx, js, d.topo, cfg.ManageStreams)
	if err != nil {
		return err
	}
	d.ledger = ledger.New(kv)
	d.reporter = consumer.NewReporter(js, d.topo, d.ledger, d.metrics, d.cache, d.log)

	opener, err := source.NewOpener(js, cfg.FileSourceRoots)
	if err != nil {
		return fmt.Errorf("S3EXPORTER_FILE_SOURCE_ROOTS: %w", err)
	}
	copts := exporter.ClientOptions{
		Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3ForcePathStyle, STSEndpoint: cfg.STSEndpoint, DefaultRegion: cfg.DefaultRegion,
		OnRetry: func(c errcode.Code) { d.metrics.S3RequestRetries.WithLabelValues(string(c)).Inc() },
	}
	if d.TuneClients != nil {
		d.TuneClients(&copts)
	}
	clients, err := exporter.NewClients(ctx, copts)
	if err != nil {
		return err
	}
	d.exporter = exporter.New(clients, opener, exporter.Options{
		Concurrency: cfg.Concurrency, PartSize: cfg.PartSize, MultipartThreshold: cfg.MultipartThreshold,
		UploadTimeout: cfg.UploadTimeout, Retries: cfg.InProcessRetries, RetryBaseDelay: cfg.RetryBaseDelay,
		InFlight: d.metrics.UploadsInFlight.Add,
	}, d.log)

	d.follower = consumer.NewFollower(js, d.topo, d.cache, d.parser, d.log)
	if err := d.follower.Start(ctx); err != nil {
		return err
	}
	d.cacheReady.Store(true)
	d.metrics.CacheReady.Set(1)
	d.reporter.RefreshIntegrations()

	if err := d.startControl(ctx); err != nil {
		return err
	}

	d.scans = consumer.NewScanConsumer(js, d.topo, consumer.ScanOptions{
		Durable: cfg.ConsumerName, MaxInFlight: cfg.MaxInFlightScans, AckWait: cfg.AckWait,
		MaxDeliver: cfg.MaxDeliver, Backoff: cfg.BackoffFor,
		MaxHeld: cfg.MaxHeldScans, MaxTenantInFlight: cfg.MaxTenantScans,
	}, d.cache, d.follower, d.exporter, d.ledger, d.reporter, d.metrics, d.log)
	if err := d.scans.Bind(ctx); err != nil {
		return fmt.Errorf("binding the scans consumer %q: %w", cfg.ConsumerName, err)
	}
	if d.giveUps, err = d.scans.WatchGiveUps(); err != nil {
		return err
	}
	d.bound.Store(true)

	runCtx, stop := context.WithCancel(context.Background())
	d.stop = stop
	go func() {
		defer close(d.runDone)
		d.scans.Run(runCtx)
	}()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.watchConsumer(runCtx)
	}()
	d.log.Info("exporter ready", zap.String("nats", nc.ConnectedUrlRedacted()), zap.String("consumer", cfg.ConsumerName),
		zap.Int("integrations", d.cache.Len()), zap.String("metrics_addr", d.http.Addr()))
	return nil
}

func (d *Daemon) connect() (*nats.Conn, error) {
	cfg := d.cfg
	return natsconn.Connect(cfg.NATSURL, "s3-exporter", natsconn.Auth{
		Creds: cfg.NATSCreds, NKeySeed: cfg.NATSNKeySeed, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey, TLSCA: cfg.NATSTLSCA,
	},
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			d.metrics.NATSConnected.Set(0)
			d.log.Warn("NATS disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			d.metrics.NATSConnected.Set(1)
			d.log.Info("NATS reconnected", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			d.log.Warn("NATS error", zap.Error(err))
		}),
	)
}

// watchConsumer keeps the consumer gauges current.
func (d *Daemon) watchConsumer(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if c := d.scans.Consumer(); c != nil {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if info, err := c.Info(ictx); err == nil {
				d.metrics.ConsumerPending.Set(float64(info.NumPending))
				d.metrics.ConsumerAckPending.Set(float64(info.NumAckPending))
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ready reports whether the replica can take work: NATS connected, cache
// caught up, consumer bound.
func (d *Daemon) Ready() error {
	switch {
	case d.nc == nil || !d.nc.IsConnected():
		return errors.New("NATS not connected")
	case !d.cacheReady.Load():
		return errors.New("integration cache catching up")
	case !d.bound.Load():
		return errors.New("scans consumer not bound")
	}
	return nil
}

// Shutdown stops taking work, lets in-flight scans finish within ctx (their
// uploads are canceled and their messages returned when it ends), then closes
// the connection and the metrics server.
func (d *Daemon) Shutdown(ctx context.Context) error {
	var errs []error
	d.bound.Store(false)
	if d.stop != nil {
		d.stop()
		<-d.runDone
	}
	for _, s := range d.control {
		_ = s.Drain()
	}
	if d.scans != nil {
		if err := d.scans.Shutdown(ctx); err != nil {
			// Expected when uploads outlast the grace: they were aborted and
			// their scans returned to the stream, nothing is lost.
			d.log.Warn("shutdown grace ran out", zap.Error(err))
		}
	}
	if d.giveUps != nil {
		d.giveUps()
	}
	d.bg.Wait()
	if d.follower != nil {
		d.follower.Stop()
	}
	d.changes.Stop()
	d.closeAll()
	if d.http != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.http.Shutdown(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Daemon) closeAll() {
	if d.nc != nil && !d.nc.IsClosed() {
		if err := d.nc.Drain(); err != nil {
			d.nc.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for !d.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		d.nc.Close()
	}
}

// Run starts the daemon, waits for ctx to end, then shuts down within the
// configured grace.
func Run(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	d := New(cfg, log, nil)
	if err := d.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", zap.Duration("grace", cfg.ShutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	return d.Shutdown(sctx)
}
