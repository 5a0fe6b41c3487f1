package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// group runs the daemon's long-running components, each as Run(ctx) error
// with a context of its own, and stops them one at a time in the reverse
// order of their start: the scan consumer stops taking work and drains
// before the control plane, the caches and the connection they need go
// away. It is Prometheus's run group with an order: when a component ends
// early, failed says so and the daemon stops them all.
type group struct {
	log     *zap.Logger
	mu      sync.Mutex
	running []*component
	failed  chan struct{}
	fail    sync.Once
	errs    []error
}

type component struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	self   bool // ended before it was stopped (its error is in Err)
}

func newGroup(log *zap.Logger) *group {
	return &group{log: log, failed: make(chan struct{})}
}

// Go starts run. A component that returns before it is stopped, with or
// without an error, fails the group.
func (g *group) Go(name string, run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &component{name: name, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.running = append(g.running, c)
	g.mu.Unlock()
	go func() {
		defer close(c.done)
		c.err = run(ctx)
		if ctx.Err() == nil {
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
}

// Failed is closed when a component ended before it was stopped.
func (g *group) Failed() <-chan struct{} { return g.failed }

// Err returns the errors of the components that ended by themselves.
func (g *group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// Stop stops the components in the reverse order of their start, each
// before the next, and returns the errors they stopped with.
func (g *group) Stop() error {
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
