package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/integration"
)

// Follower keeps an integration cache in step with the integrations stream:
// it reads the last message of every subject from the start, then follows.
// Every replica runs its own (an ordered consumer: nothing is shared).
type Follower struct {
	js     jetstream.JetStream
	topo   Topology
	cache  *integration.Cache
	parser *integration.Parser
	log    *zap.Logger

	cc jetstream.ConsumeContext
}

// NewFollower returns a follower that fills cache.
func NewFollower(js jetstream.JetStream, topo Topology, cache *integration.Cache, parser *integration.Parser, log *zap.Logger) *Follower {
	return &Follower{js: js, topo: topo, cache: cache, parser: parser, log: log}
}

// Start begins following and returns once the cache has caught up with the
// stream as it was when Start was called (or ctx ends).
func (f *Follower) Start(ctx context.Context) error {
	st, err := f.js.Stream(ctx, f.topo.IntegrationsStream())
	if err != nil {
		return fmt.Errorf("integrations stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("integrations stream info: %w", err)
	}
	target := info.State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.topo.Subject(event.IntegrationsChanged, ">")},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("integrations consumer: %w", err)
	}
	caughtUp := make(chan struct{})
	f.cc, err = cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		f.apply(msg.Subject(), msg.Data(), md.Sequence.Stream)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			f.log.Warn("integrations consumer", zap.Error(err))
		}
	}))
	if err != nil {
		return fmt.Errorf("following integrations: %w", err)
	}
	go func() {
		if f.cache.WaitApplied(ctx, target, 24*time.Hour) {
			close(caughtUp)
		}
	}()
	select {
	case <-caughtUp:
		f.log.Info("integration cache caught up", zap.Int("integrations", f.cache.Len()), zap.Uint64("sequence", target))
		return nil
	case <-ctx.Done():
		f.cc.Stop()
		return ctx.Err()
	}
}

// Stop stops following.
func (f *Follower) Stop() {
	if f.cc != nil {
		f.cc.Stop()
	}
}

// apply updates the cache from one message. Side effects of a change
// (connection tests, statuses) are not made here: every replica applies every
// change, so they belong to the shared ChangeConsumer.
func (f *Follower) apply(subject string, data []byte, seq uint64) {
	defer f.cache.MarkApplied(seq)
	ch, err := f.parser.ParseChange(subject, data)
	log := f.log.With(zap.String("tenant_id", ch.TenantID), zap.String("integration_id", ch.ID), zap.Uint64("sequence", seq))
	switch {
	case err != nil:
		// A rejected state drops an earlier valid one.
		if ch.TenantID != "" {
			f.cache.Delete(ch.TenantID, ch.ID)
		}
		log.Warn("integration rejected", zap.String("code", string(integration.Code(err))), zap.Error(err))
	case ch.Ignored:
		log.Debug("integration of another type ignored")
		f.cache.Delete(ch.TenantID, ch.ID)
	case ch.Action == event.ActionDelete:
		f.cache.Delete(ch.TenantID, ch.ID)
		log.Info("integration deleted")
	default:
		ch.Integration.Revision = seq
		f.cache.Put(ch.Integration)
		log.Info("integration updated", zap.Bool("enabled", ch.Integration.Enabled), zap.Strings("providers", ch.Integration.Providers))
	}
}

// CatchUp waits until the cache has applied everything the integrations
// stream holds now (read-your-writes for a scan, contract §3).
func (f *Follower) CatchUp(ctx context.Context, timeout time.Duration) error {
	st, err := f.js.Stream(ctx, f.topo.IntegrationsStream())
	if err != nil {
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("integrations stream: %w", err))
	}
	info, err := st.Info(ctx)
	if err != nil {
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("integrations stream info: %w", err))
	}
	if !f.cache.WaitApplied(ctx, info.State.LastSeq, timeout) {
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("integration cache at sequence %d, stream at %d", f.cache.Applied(), info.State.LastSeq))
	}
	return nil
}
