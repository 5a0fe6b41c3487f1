package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/internal/natsconn"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// natsConn is the daemon's NATS connection. It never gives up: a server
// that cannot be reached at start, or later, is tried again with backoff
// (a pod must not crash-loop through a NATS restart), and Check tells
// /readyz why it is down.
type natsConn struct {
	nc        *nats.Conn
	log       *zap.Logger
	urls      string        // as configured, passwords included: never shown
	connected chan struct{} // closed at the first connection
	once      sync.Once
	closed    chan struct{} // closed when the connection is closed
	closing   atomic.Bool   // a graceful close: its disconnection is no news
	mu        sync.Mutex
	lastErr   error
}

// reconnectDelay is the wait before reconnect attempt n: exponential from
// 250 ms to 5 s. A restarting server is back within seconds; waiting longer
// would only delay the exports.
func reconnectDelay(attempts int) time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < attempts && d < 5*time.Second; i++ {
		d *= 2
	}
	return min(d, 5*time.Second)
}

func dialNATS(cfg *config.Config, m *metrics.Metrics, log *zap.Logger) (*natsConn, error) {
	c := &natsConn{log: log, urls: cfg.NATSURL, connected: make(chan struct{}), closed: make(chan struct{})}
	nc, err := natsconn.Connect(cfg.NATSURL, "s3-exporter", natsconn.Auth{
		Creds: cfg.NATSCreds, NKeySeed: cfg.NATSNKeySeed, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey, TLSCA: cfg.NATSTLSCA,
	},
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.ConnectHandler(func(nc *nats.Conn) {
			m.NATSConnected.Set(1)
			c.setErr(nil)
			c.once.Do(func() { close(c.connected) })
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			m.NATSConnected.Set(0)
			if c.closing.Load() {
				log.Debug("NATS connection closed")
				return
			}
			c.setErr(err)
			log.Warn("NATS disconnected", zap.String("error", c.redact(err)))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			m.NATSConnected.Set(1)
			c.setErr(nil)
			c.once.Do(func() { close(c.connected) })
			log.Info("NATS reconnected", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// Logged when the reason changes, not at every attempt.
			if c.setErr(err) {
				log.Warn("NATS not reachable; trying again", zap.String("error", c.redact(err)))
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", zap.Error(err))
		}),
	)
	if err != nil {
		return nil, err
	}
	c.nc = nc
	if nc.IsConnected() {
		m.NATSConnected.Set(1)
		c.once.Do(func() { close(c.connected) })
	}
	return c, nil
}

// setErr records why the connection is down and reports whether the reason
// changed.
func (c *natsConn) setErr(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := (err == nil) != (c.lastErr == nil) || (err != nil && err.Error() != c.lastErr.Error())
	c.lastErr = err
	return changed
}

// NotConnected says why the connection is down.
func (c *natsConn) NotConnected() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil {
		return fmt.Errorf("NATS not connected: %s", c.redactLocked(c.lastErr))
	}
	return errors.New("NATS not connected")
}

// redact returns err's message without the user and password of any
// configured server URL, should the client library quote one.
func (c *natsConn) redact(err error) string { return c.redactLocked(err) }

// redactLocked is redact; it reads no field under the mutex, so it may be
// called with it held.
func (c *natsConn) redactLocked(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, u := range strings.Split(c.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if r := config.RedactURLs(u); r != u {
				msg = strings.ReplaceAll(msg, u, r)
			}
		}
	}
	return msg
}

// gaveUp is the error of a connection the client library closed by itself:
// it does so when the servers refuse the credentials twice in a row, which
// no retry mends (the process exits; its supervisor restarts it).
func (c *natsConn) gaveUp() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil {
		return fmt.Errorf("the NATS connection was closed: %s", c.redactLocked(c.lastErr))
	}
	return errors.New("the NATS connection was closed")
}

// Run waits for the first connection and says ready, then holds the
// connection until ctx ends; it then drains it (pending publishes and
// replies go out) and closes it. A connection the client library closes by
// itself ends it with an error.
func (c *natsConn) Run(ctx context.Context, ready func()) error {
	select {
	case <-c.connected:
		ready()
		select {
		case <-ctx.Done():
		case <-c.closed:
			return c.gaveUp()
		}
	case <-c.closed:
		return c.gaveUp()
	case <-ctx.Done():
	}
	c.closing.Store(true)
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		c.nc.Close()
	}
	return nil
}

// Check says why the connection is down, if it is.
func (c *natsConn) Check() error {
	if !c.nc.IsConnected() {
		return c.NotConnected()
	}
	return nil
}
