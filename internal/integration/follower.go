package integration

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/clock"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

// Follower keeps an integration cache in step with the integrations stream:
// it reads the last message of every subject from the start, then follows.
// Every replica runs its own (an ordered consumer: nothing is shared).
//
// Messages are parsed (JSON, Fernet, validation: most of the cost of a
// catch-up) on several goroutines and applied to the cache on one, in stream
// order.
type Follower struct {
	js     jetstream.JetStream
	topo   streams.Topology
	cache  *Cache
	parser *Parser
	log    *zap.Logger

	cc       jetstream.ConsumeContext
	order    chan *change // to the applier, in stream order
	work     chan *change // to the parsers
	stopped  chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	// live is set once the cache has caught up: each change is then logged
	// at info (during the catch-up, at debug: one line per integration of a
	// large stream would cost more than applying it).
	live atomic.Bool
}

// change is one message on its way through the parsers to the applier.
type change struct {
	subject string
	data    []byte
	seq     uint64
	ch      Change
	err     error
	parsed  chan struct{}
}

// NewFollower returns a follower that fills cache.
func NewFollower(js jetstream.JetStream, topo streams.Topology, cache *Cache, parser *Parser, log *zap.Logger) *Follower {
	return &Follower{js: js, topo: topo, cache: cache, parser: parser, log: log,
		order: make(chan *change, 1024), work: make(chan *change, 1024), stopped: make(chan struct{})}
}

// Run follows the integrations stream into the cache until ctx ends. It
// says ready once the cache has caught up with the stream as it was when
// Run was called.
func (f *Follower) Run(ctx context.Context, ready func()) error {
	defer f.stop()
	if err := f.catchUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	ready()
	<-ctx.Done()
	return nil
}

// catchUp begins following and returns once the cache has caught up with
// the stream as it was when it was called (or ctx ends).
func (f *Follower) catchUp(ctx context.Context) error {
	st, err := f.js.Stream(ctx, f.topo.IntegrationsStream())
	if err != nil {
		return fmt.Errorf("integrations stream: %w", err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.topo.Subject(event.IntegrationsChanged, ">")},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("integrations consumer: %w", err)
	}
	for range min(max(runtime.GOMAXPROCS(0), 1), 4) {
		f.wg.Add(1)
		go f.parse()
	}
	f.wg.Add(1)
	go f.applyInOrder()
	caughtUp := make(chan struct{})
	f.cc, err = cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		c := &change{subject: msg.Subject(), data: msg.Data(), seq: md.Sequence.Stream, parsed: make(chan struct{})}
		select {
		case f.order <- c:
		case <-f.stopped:
			return
		}
		select {
		case f.work <- c:
		case <-f.stopped:
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			f.log.Warn("integrations consumer", zap.Error(err))
		}
	}))
	if err != nil {
		return fmt.Errorf("following integrations: %w", err)
	}
	var target uint64
	f.wg.Add(1) // stop waits for it: it ends with ctx, or once caught up
	go func() {
		defer f.wg.Done()
		// The target is the last message that exists, asked again while
		// it is not reached: it may be purged meanwhile (an operator
		// cleaning up tombstones), and the ordered consumer never delivers
		// a purged one.
		for ctx.Err() == nil {
			t, err := f.lastExisting(ctx, st)
			if err != nil {
				f.log.Warn("finding the integrations stream's last message", zap.Error(err))
				clock.Sleep(ctx, time.Second)
				continue
			}
			if f.cache.WaitApplied(ctx, t, 10*time.Second) {
				target = t
				close(caughtUp)
				return
			}
		}
	}()
	select {
	case <-caughtUp:
		f.live.Store(true)
		f.log.Info("integration cache caught up", zap.Int("integrations", f.cache.Len()), zap.Uint64("sequence", target))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops following and waits for the parsers and the applier.
func (f *Follower) stop() {
	f.stopOnce.Do(func() {
		if f.cc != nil {
			f.cc.Stop()
		}
		close(f.stopped)
		f.wg.Wait()
	})
}

func (f *Follower) parse() {
	defer f.wg.Done()
	for {
		select {
		case c := <-f.work:
			c.ch, c.err = f.parser.ParseChange(c.subject, c.data)
			close(c.parsed)
		case <-f.stopped:
			return
		}
	}
}

func (f *Follower) applyInOrder() {
	defer f.wg.Done()
	for {
		select {
		case c := <-f.order:
			select {
			case <-c.parsed:
				f.apply(c.ch, c.err, c.seq)
			case <-f.stopped:
				return
			}
		case <-f.stopped:
			return
		}
	}
}

// apply updates the cache from one parsed message. Side effects of a change
// (connection tests, statuses) are not made here: every replica applies every
// change, so they belong to the shared ChangeConsumer.
func (f *Follower) apply(ch Change, err error, seq uint64) {
	defer f.cache.MarkApplied(seq)
	level := zap.DebugLevel
	if f.live.Load() {
		level = zap.InfoLevel
	}
	ids := func(fields ...zap.Field) []zap.Field {
		return append([]zap.Field{zap.String("tenant_id", ch.TenantID), zap.String("integration_id", ch.ID), zap.Uint64("sequence", seq)}, fields...)
	}
	switch {
	case err != nil:
		// A rejected state drops an earlier valid one.
		if ch.TenantID != "" {
			f.cache.Delete(ch.TenantID, ch.ID)
		}
		f.log.Warn("integration rejected", ids(zap.String("code", string(Code(err))), zap.Error(err))...)
	case ch.Ignored:
		f.cache.Delete(ch.TenantID, ch.ID)
		if ce := f.log.Check(zap.DebugLevel, "integration of another type ignored"); ce != nil {
			ce.Write(ids()...)
		}
	case ch.Action == event.ActionDelete:
		f.cache.Delete(ch.TenantID, ch.ID)
		if ce := f.log.Check(level, "integration deleted"); ce != nil {
			ce.Write(ids()...)
		}
	default:
		ch.Integration.Revision = seq
		f.cache.Put(ch.Integration)
		if ce := f.log.Check(level, "integration updated"); ce != nil {
			ce.Write(ids(zap.Bool("enabled", ch.Integration.Enabled), zap.Strings("providers", ch.Integration.Providers))...)
		}
	}
}

// lastExisting returns the sequence of the last integration change the
// stream holds (0 when none). Not the stream's LastSeq: that message may
// have been purged, and waiting for it would never end.
func (f *Follower) lastExisting(ctx context.Context, st jetstream.Stream) (uint64, error) {
	m, err := st.GetLastMsgForSubject(ctx, f.topo.Subject(event.IntegrationsChanged, ">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// CatchUp waits until the cache has applied everything the integrations
// stream holds now (read-your-writes for a scan, contract §3). It costs two
// requests: the stream and its last message.
func (f *Follower) CatchUp(ctx context.Context, timeout time.Duration) error {
	st, err := f.js.Stream(ctx, f.topo.IntegrationsStream())
	if err != nil {
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("integrations stream: %w", err))
	}
	target, err := f.lastExisting(ctx, st)
	if err != nil {
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("integrations stream's last message: %w", err))
	}
	if !f.cache.WaitApplied(ctx, target, timeout) {
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("integration cache at sequence %d, stream at %d", f.cache.Applied(), target))
	}
	return nil
}
