package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

// ChangeHandler reacts once to an integration change (err is the rejection
// of an invalid payload). Service is the exporter's.
type ChangeHandler interface {
	OnChange(ctx context.Context, ch integration.Change, err error)
}

// ChangeConsumer hands every new integration change to exactly one replica
// (a durable consumer they share), so that side effects such as the automatic
// connection test or a rejection status run once, not once per replica.
type ChangeConsumer struct {
	JS      jetstream.JetStream
	Topo    streams.Topology
	Durable string
	Parser  *integration.Parser
	Handler ChangeHandler
	// Base is the context handlers run under (the daemon's: canceled when
	// the shutdown grace runs out), each bounded by 90 s.
	Base context.Context
	Log  *zap.Logger

	mu       sync.Mutex
	stopped  bool
	handling sync.WaitGroup
}

// Run creates or updates the shared durable consumer (it starts at new
// messages when first created), says ready, and consumes until ctx ends.
// It then stops and waits for the change being handled, if any: its side
// effects (a test, a status) finish and its message is acknowledged, not
// redelivered to another replica to run them twice.
func (c *ChangeConsumer) Run(ctx context.Context, ready func()) error {
	cons, err := c.JS.CreateOrUpdateConsumer(ctx, c.Topo.IntegrationsStream(), jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   "s3-exporter: one reaction per integration change",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxDeliver:    3,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubject: c.Topo.Subject(event.IntegrationsChanged, ">"),
	})
	if err != nil {
		return fmt.Errorf("integration changes consumer %q: %w", c.Durable, err)
	}
	base := c.Base
	if base == nil {
		base = context.WithoutCancel(ctx)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		c.mu.Lock()
		if c.stopped {
			// Left unacknowledged: redelivered after AckWait, to a replica
			// that runs.
			c.mu.Unlock()
			return
		}
		c.handling.Add(1)
		c.mu.Unlock()
		defer c.handling.Done()
		ch, perr := c.Parser.ParseChange(msg.Subject(), msg.Data())
		hctx, cancel := context.WithTimeout(base, 90*time.Second)
		defer cancel()
		_ = msg.InProgress()
		c.Handler.OnChange(hctx, ch, perr)
		_ = msg.Ack()
	}, jetstream.PullMaxMessages(4), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			c.Log.Debug("integration changes consumer", zap.Error(err))
		}
	}))
	if err != nil {
		return fmt.Errorf("integration changes consumer %q: %w", c.Durable, err)
	}
	ready()
	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	cc.Stop()
	c.handling.Wait()
	return nil
}
