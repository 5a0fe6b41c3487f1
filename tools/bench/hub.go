package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/prowler-cloud/s3-exporter/event"
)

// statusHub receives the exporter's status events (a core NATS
// subscription, as a dashboard would) and hands them to the waiters.
type statusHub struct {
	subs []*nats.Subscription

	mu     sync.Mutex
	export map[string]*exportWaiter               // by integration id
	conn   map[string]chan event.ConnectionStatus // by integration id
}

// exportWaiter collects the export statuses of one integration until n
// scans succeeded.
type exportWaiter struct {
	n        int
	received map[string]receipt // by scan id
	ok       int
	failed   []string
	done     chan struct{}
}

type receipt struct {
	At     time.Time
	Status event.ExportStatus
}

func newStatusHub(nc *nats.Conn, prefix string) (*statusHub, error) {
	h := &statusHub{export: map[string]*exportWaiter{}, conn: map[string]chan event.ConnectionStatus{}}
	sub, err := nc.Subscribe(event.Subject(prefix, event.ExportsStatus, ">"), func(m *nats.Msg) {
		at := time.Now()
		var st event.ExportStatus
		if json.Unmarshal(m.Data, &st) != nil {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		w := h.export[st.IntegrationID]
		if w == nil {
			return
		}
		if _, seen := w.received[st.ScanID]; seen {
			return
		}
		switch st.State {
		case event.StateSucceeded:
			w.received[st.ScanID] = receipt{At: at, Status: st}
			w.ok++
		case event.StateFailed:
			w.received[st.ScanID] = receipt{At: at, Status: st}
			w.failed = append(w.failed, fmt.Sprintf("%s: %+v", st.ScanID, st.Errors))
		default:
			return // retrying: wait for the outcome
		}
		if len(w.received) == w.n {
			close(w.done)
		}
	})
	if err != nil {
		return nil, err
	}
	h.subs = append(h.subs, sub)
	sub, err = nc.Subscribe(event.Subject(prefix, event.IntegrationsStatus, ">"), func(m *nats.Msg) {
		var st event.ConnectionStatus
		if json.Unmarshal(m.Data, &st) != nil {
			return
		}
		h.mu.Lock()
		ch := h.conn[st.IntegrationID]
		delete(h.conn, st.IntegrationID)
		h.mu.Unlock()
		if ch != nil {
			ch <- st
		}
	})
	if err != nil {
		h.close()
		return nil, err
	}
	h.subs = append(h.subs, sub)
	return h, nc.Flush()
}

func (h *statusHub) close() {
	for _, s := range h.subs {
		_ = s.Unsubscribe()
	}
}

// expectExports registers a waiter for n scan outcomes of an integration.
func (h *statusHub) expectExports(integrationID string, n int) *exportWaiter {
	w := &exportWaiter{n: n, received: map[string]receipt{}, done: make(chan struct{})}
	h.mu.Lock()
	h.export[integrationID] = w
	h.mu.Unlock()
	return w
}

// expectConnection returns a channel that gets the next connection status
// of an integration.
func (h *statusHub) expectConnection(integrationID string) <-chan event.ConnectionStatus {
	ch := make(chan event.ConnectionStatus, 1)
	h.mu.Lock()
	h.conn[integrationID] = ch
	h.mu.Unlock()
	return ch
}

// wait blocks until every expected outcome arrived; it fails if any scan
// failed.
func (h *statusHub) wait(ctx context.Context, w *exportWaiter) error {
	select {
	case <-w.done:
	case <-ctx.Done():
		h.mu.Lock()
		got := len(w.received)
		h.mu.Unlock()
		return fmt.Errorf("%d of %d export statuses after the deadline: %w", got, w.n, ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(w.failed) > 0 {
		return fmt.Errorf("%d scans failed, first: %s", len(w.failed), w.failed[0])
	}
	return nil
}

// last returns the receipt time of the last outcome.
func (h *statusHub) last(w *exportWaiter) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var t time.Time
	for _, r := range w.received {
		if r.At.After(t) {
			t = r.At
		}
	}
	return t
}

// receipt returns the outcome of one scan.
func (h *statusHub) receipt(w *exportWaiter, scanID string) (receipt, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := w.received[scanID]
	return r, ok
}
