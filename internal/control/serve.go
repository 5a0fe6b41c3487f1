package control

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Queue is the queue group of the control subscriptions: one replica answers
// each request.
const Queue = "s3-exporter"

// Handler answers one control request (Service is one).
type Handler interface {
	Handle(ctx context.Context, scope, op string, data []byte) any
}

// Server serves the control subjects over core NATS request-reply.
type Server struct {
	NC     *nats.Conn
	Prefix string
	// Global subscribes the tenant-less subjects too.
	Global  bool
	Handler Handler
	// Base is the context requests run under (the daemon's: canceled when
	// the shutdown grace runs out), each bounded by Timeout.
	Base    context.Context
	Timeout time.Duration
	// MaxInFlight bounds requests served at once (8 if zero).
	MaxInFlight int
	// MaxPerTenant bounds the requests of one tenant-scoped subject's tenant
	// served at once (a quarter of MaxInFlight, at least 1, if zero), so
	// that one tenant flooding its control plane with connection tests
	// cannot take every slot from the others. A request past it is answered
	// at once, not queued. The tenant-less subjects (a trusted backend,
	// acting for every tenant) have no such bound.
	MaxPerTenant int
	Log          *zap.Logger

	mu       sync.Mutex
	stopped  bool
	running  sync.WaitGroup
	inFlight map[string]int // by tenant of a tenant-scoped subject
}

// Subjects returns the subjects the server subscribes.
func (s *Server) Subjects() []string {
	var out []string
	for _, op := range event.ControlOps {
		out = append(out, event.ControlSubject(s.Prefix, "*", op))
		if s.Global && op != event.OpList {
			out = append(out, event.ControlSubject(s.Prefix, "", op))
		}
	}
	return out
}

// Run subscribes, says ready, and serves until ctx ends; it then stops
// taking requests, answers those already received and waits for them.
func (s *Server) Run(ctx context.Context, ready func()) error {
	base := s.Base
	if base == nil {
		base = context.WithoutCancel(ctx)
	}
	n := s.MaxInFlight
	if n <= 0 {
		n = 8
	}
	sem := make(chan struct{}, n)
	var subs []*nats.Subscription
	defer func() { s.drain(base, subs) }()
	for _, subj := range s.Subjects() {
		sub, err := s.NC.QueueSubscribe(subj, Queue, func(m *nats.Msg) { s.serve(base, sem, m) })
		if err != nil {
			return fmt.Errorf("subscribing %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	ready()
	<-ctx.Done()
	return nil
}

// drain stops the subscriptions, letting the requests NATS already handed
// over be served, then waits for every request being served (all bounded by
// base: when the daemon's grace runs out, the requests are canceled).
func (s *Server) drain(base context.Context, subs []*nats.Subscription) {
	var closed []<-chan nats.SubStatus
	for _, sub := range subs {
		// A drain needs the server (the UNSUB and a flush); with NATS down
		// it would hold the shutdown for its whole grace, and no reply could
		// reach a requester anyway. Requests already being served are still
		// waited for below.
		if !s.NC.IsConnected() {
			s.Log.Info("NATS is not connected: control subscription closed without a drain", zap.String("subject", sub.Subject))
			_ = sub.Unsubscribe()
			continue
		}
		ch := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil {
			_ = sub.Unsubscribe()
			continue
		}
		closed = append(closed, ch)
	}
	for _, ch := range closed {
		select {
		case <-ch:
		case <-base.Done():
		}
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.running.Wait()
}

func (s *Server) serve(base context.Context, sem chan struct{}, m *nats.Msg) {
	scope, op, perr := event.ParseControlSubject(s.Prefix, m.Subject)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if perr == nil && scope != "" {
		if s.inFlight[scope] >= s.perTenant() {
			s.mu.Unlock()
			s.respond(m, internalError("tenant %s has %d control requests in flight, the most one tenant gets; try again when they are answered", scope, s.perTenant()))
			return
		}
		if s.inFlight == nil {
			s.inFlight = map[string]int{}
		}
		s.inFlight[scope]++
	}
	s.running.Add(1)
	s.mu.Unlock()
	// Blocking here holds the subscription's delivery: past MaxInFlight,
	// requests wait in NATS's buffer instead of piling up goroutines.
	sem <- struct{}{}
	go func() {
		defer s.running.Done()
		defer func() {
			<-sem
			if perr == nil && scope != "" {
				s.mu.Lock()
				if s.inFlight[scope]--; s.inFlight[scope] == 0 {
					delete(s.inFlight, scope)
				}
				s.mu.Unlock()
			}
		}()
		ctx, cancel := context.WithTimeout(base, s.timeout())
		defer cancel()
		var reply any
		if perr != nil {
			reply = badRequest("%v", perr)
		} else {
			reply = s.Handler.Handle(ctx, scope, op, m.Data)
		}
		s.respond(m, reply)
	}()
}

// respond answers m with reply as JSON.
func (s *Server) respond(m *nats.Msg, reply any) {
	b, err := json.Marshal(reply)
	if err != nil {
		b, _ = json.Marshal(internalError("encoding the reply: %v", err))
	}
	if limit := s.NC.MaxPayload(); limit > 0 && int64(len(b)) > limit {
		// NATS would refuse it and the requester would wait in vain:
		// say so instead (a list of thousands of integrations).
		b, _ = json.Marshal(internalError("the reply (%d bytes) exceeds the NATS max_payload (%d bytes)", len(b), limit))
	}
	if m.Reply == "" {
		return
	}
	if err := m.Respond(b); err != nil && s.Log != nil {
		s.Log.Debug("answering a control request", zap.String("subject", m.Subject), zap.Error(err))
	}
}

func (s *Server) perTenant() int {
	if s.MaxPerTenant > 0 {
		return s.MaxPerTenant
	}
	n := s.MaxInFlight
	if n <= 0 {
		n = 8
	}
	return max(n/4, 1)
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 30 * time.Second
}
