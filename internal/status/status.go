// Package status builds and publishes the connection status of an
// integration (contract §5): what the last look at its bucket found, be it a
// connection test, an export, a rejected change or its destination's
// circuit breaker. Every status is built here (Connection, Breaker) and
// published by one Publisher, which keeps it with the cached integration.
//
// An upload goroutine never waits for a publish: a breaker's change is
// handed over with Offer, which never blocks; the publisher's own goroutine
// (Run) publishes the latest status of each integration.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// Connection is the status of integration id of tenant after a look at its
// bucket at at: connected when err is nil, else disconnected with err's code
// and message. region is the bucket's, "" when unknown.
func Connection(tenant, id string, at time.Time, region string, err *errcode.Error) event.ConnectionStatus {
	st := event.ConnectionStatus{TenantID: tenant, IntegrationID: id, Connected: err == nil, LastCheckedAt: at.UTC(),
		BucketRegion: region}
	if err != nil {
		st.Error = &event.ErrorBody{Code: string(err.Code), Message: err.Message()}
	}
	return st
}

// Breaker is the status of an integration whose destination's circuit
// breaker opened (disconnected, with cause, the failure that opened it) or
// closed again (connected: a probe got through).
func Breaker(tenant, id string, at time.Time, region string, open bool, cause *errcode.Error) event.ConnectionStatus {
	if !open {
		st := Connection(tenant, id, at, region, nil)
		st.Breaker = event.BreakerClosed
		return st
	}
	if cause == nil {
		cause = errcode.Retryable(errcode.Timeout, errors.New("uploads fail fast after repeated failures"))
	}
	st := Connection(tenant, id, at, region, cause)
	st.Breaker = event.BreakerOpen
	return st
}

// JetStream stores statuses on the status stream (jetstream.JetStream is one).
type JetStream interface {
	Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Cache keeps the last status of each integration (*integration.Cache is one).
type Cache interface {
	SetStatus(st event.ConnectionStatus)
	// Counts counts the integrations by enabled ("true"/"false") and
	// connected ("true"/"false"/"unknown").
	Counts() map[[2]string]int
}

// Publisher publishes connection statuses and keeps each with its cached
// integration.
type Publisher struct {
	js      JetStream
	prefix  string
	cache   Cache
	metrics *metrics.Metrics
	log     *zap.Logger

	mu     sync.Mutex
	queued map[string]event.ConnectionStatus // by tenant/integration
	order  []string                          // the keys of queued, oldest first
	wake   chan struct{}                     // a status was queued
}

// NewPublisher returns a publisher of statuses under the subject prefix.
func NewPublisher(js JetStream, prefix string, cache Cache, m *metrics.Metrics, log *zap.Logger) *Publisher {
	return &Publisher{js: js, prefix: prefix, cache: cache, metrics: m, log: log,
		queued: map[string]event.ConnectionStatus{}, wake: make(chan struct{}, 1)}
}

// Publish keeps st with its integration and publishes it, bounded by 10 s
// (ctx's cancellation does not cut it short: a status is worth finishing).
// A status that cannot be published is logged; the next one replaces it.
func (p *Publisher) Publish(ctx context.Context, st event.ConnectionStatus) {
	p.publish(context.WithoutCancel(ctx), st)
}

// publish is Publish bounded by ctx too.
func (p *Publisher) publish(ctx context.Context, st event.ConnectionStatus) {
	p.cache.SetStatus(st)
	p.RefreshIntegrations()
	subject := event.Subject(p.prefix, event.IntegrationsStatus, st.TenantID, st.IntegrationID)
	b, err := json.Marshal(st)
	if err != nil {
		p.log.Error("encoding status", zap.String("subject", subject), zap.Error(err))
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.js.Publish(pctx, subject, b); err != nil {
		p.log.Error("publishing status", zap.String("subject", subject), zap.Error(err))
	}
}

// Offer hands st to Run to publish, and returns at once: it never waits for
// NATS, so an upload goroutine can call it. A status of the same
// integration still queued is replaced (only the latest matters), keeping
// its place in line.
func (p *Publisher) Offer(st event.ConnectionStatus) {
	k := st.TenantID + "/" + st.IntegrationID
	p.mu.Lock()
	if _, ok := p.queued[k]; !ok {
		p.order = append(p.order, k)
	}
	p.queued[k] = st
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // already woken
	}
}

// take removes and returns the queued statuses, oldest first.
func (p *Publisher) take() []event.ConnectionStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]event.ConnectionStatus, 0, len(p.order))
	for _, k := range p.order {
		out = append(out, p.queued[k])
		delete(p.queued, k)
	}
	p.order = p.order[:0]
	return out
}

// Run says ready and publishes what Offer queues until ctx ends, then
// publishes what is still queued, within 5 s (NATS may be gone: the
// shutdown must not wait 10 s per status).
func (p *Publisher) Run(ctx context.Context, ready func()) error {
	ready()
	for {
		select {
		case <-p.wake:
			for _, st := range p.take() {
				p.publish(context.WithoutCancel(ctx), st)
			}
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, st := range p.take() {
				p.publish(dctx, st)
			}
			return nil
		}
	}
}

// RefreshIntegrations sets the integrations gauge from the cache.
func (p *Publisher) RefreshIntegrations() {
	counts := map[metrics.IntegrationState]int{}
	for k, n := range p.cache.Counts() {
		counts[metrics.IntegrationState{Enabled: k[0] == "true", Connected: k[1]}] = n
	}
	p.metrics.SetIntegrations(counts)
}
