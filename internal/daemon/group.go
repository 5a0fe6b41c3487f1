package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// A Runnable is one long-running component of the daemon, in the shape of
// controller-runtime's: Run does the component's start-up step (listen,
// connect, bind a consumer, catch a cache up), calls ready once the
// component serves, works until ctx ends, then stops (finishing or
// returning the work it holds) and returns why it ended. A component that
// returns before ctx ends has failed.
type Runnable interface {
	Run(ctx context.Context, ready func()) error
}

// A Checker is a component that can stop being able to work after it said
// ready (a connection that dropped, a consumer deleted under it); Check says
// why, and /readyz shows it.
type Checker interface {
	Check() error
}

// group runs the daemon's components, each with a context of its own,
// starting them one at a time in order (each is ready before the next
// starts) and stopping them one at a time in the reverse order: the scan
// consumer stops taking work and drains before the control plane, the
// caches and the connection they need go away. It is Prometheus's run group
// with an order: when a component ends early, Failed says so and the daemon
// stops them all.
type group struct {
	log      *zap.Logger
	mu       sync.Mutex
	running  []*component
	failed   chan struct{}
	fail     sync.Once
	errs     []error
	stopping atomic.Bool
}

type component struct {
	name   string
	r      Runnable
	cancel context.CancelFunc
	ready  chan struct{}
	done   chan struct{}
	err    error
	self   bool // ended before it was stopped (its error is in Err)
}

func newGroup(log *zap.Logger) *group {
	return &group{log: log, failed: make(chan struct{})}
}

// errEnded is Start's error for a component that ended before it was
// ready; Err says why.
var errEnded = errors.New("a component ended while starting")

// Start runs r and waits until it is ready (Go, then Wait).
func (g *group) Start(ctx context.Context, name string, r Runnable) error {
	return g.Wait(ctx, g.Go(name, r))
}

// Go runs r, without waiting for it. A component that returns before it is
// stopped, with or without an error, fails the group.
func (g *group) Go(name string, r Runnable) *component {
	cctx, cancel := context.WithCancel(context.Background())
	c := &component{name: name, r: r, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
	g.mu.Lock()
	g.running = append(g.running, c)
	g.mu.Unlock()
	var once sync.Once
	go func() {
		defer close(c.done)
		c.err = r.Run(cctx, func() { once.Do(func() { close(c.ready) }) })
		if cctx.Err() == nil {
			c.self = true
			if c.err == nil {
				c.err = errors.New("stopped by itself")
			}
			c.err = fmt.Errorf("%s: %w", name, c.err)
			g.mu.Lock()
			g.errs = append(g.errs, c.err)
			g.mu.Unlock()
			g.fail.Do(func() { close(g.failed) })
		}
	}()
	return c
}

// Wait waits until c is ready. It returns errEnded when c ends first, and
// ctx's error when ctx ends first (c keeps running until Stop).
func (g *group) Wait(ctx context.Context, c *component) error {
	select {
	case <-c.ready:
		g.log.Debug("ready", zap.String("component", c.name))
		return nil
	case <-c.done:
		return errEnded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Failed is closed when a component ended before it was stopped.
func (g *group) Failed() <-chan struct{} { return g.failed }

// Err returns the errors of the components that ended by themselves.
func (g *group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// Ready returns nil when every component started is ready and passes its
// check, else the first reason in start order. A component's check counts
// before it is ready too: the NATS connection says why it is not up yet.
func (g *group) Ready() error {
	if g.stopping.Load() {
		return errors.New("stopping")
	}
	g.mu.Lock()
	running := g.running
	g.mu.Unlock()
	for _, c := range running {
		if ch, ok := c.r.(Checker); ok {
			if err := ch.Check(); err != nil {
				return err
			}
		}
		select {
		case <-c.ready:
		default:
			return fmt.Errorf("%s: starting", c.name)
		}
	}
	return nil
}

// Stop stops the components in the reverse order of their start, each
// before the next, and returns the errors they stopped with.
func (g *group) Stop() error {
	g.stopping.Store(true)
	g.mu.Lock()
	running := g.running
	g.running = nil
	g.mu.Unlock()
	var errs []error
	for i := len(running) - 1; i >= 0; i-- {
		c := running[i]
		c.cancel()
		<-c.done
		if c.err != nil && !c.self {
			errs = append(errs, fmt.Errorf("stopping %s: %w", c.name, c.err))
		}
		g.log.Debug("stopped", zap.String("component", c.name))
	}
	return errors.Join(errs...)
}
