package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
)

func TestGroupStopsInTheReverseOrderOfStart(t *testing.T) {
	g := newGroup(zap.NewNop())
	var mu sync.Mutex
	var order []string
	for _, name := range []string{"connection", "cache", "consumer"} {
		err := g.Start(context.Background(), name, RunFunc(func(ctx context.Context, ready func()) error {
			ready()
			<-ctx.Done()
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			if name == "cache" {
				return errors.New("flush failed")
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
	err := g.Stop()
	if want := []string{"consumer", "cache", "connection"}; !slices.Equal(order, want) {
		t.Errorf("stopped %v, want %v", order, want)
	}
	if err == nil || !strings.Contains(err.Error(), "stopping cache: flush failed") {
		t.Errorf("Stop = %v", err)
	}
	if g.Err() != nil {
		t.Errorf("Err = %v for components that were stopped", g.Err())
	}
	if err := g.Ready(); err == nil || err.Error() != "stopping" {
		t.Errorf("Ready = %v once stopped", err)
	}
	select {
	case <-g.Failed():
		t.Error("failed after an orderly stop")
	default:
	}
}

func TestGroupFailsWhenAComponentEndsByItself(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"with an error", errors.New("fetch loop died"), "scans: fetch loop died"},
		{"without one", nil, "scans: stopped by itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroup(zap.NewNop())
			stopped := false
			_ = g.Start(context.Background(), "connection", RunFunc(func(ctx context.Context, ready func()) error {
				ready()
				<-ctx.Done()
				stopped = true
				return nil
			}))
			if err := g.Start(context.Background(), "scans", RunFunc(func(context.Context, func()) error { return tc.err })); err != errEnded {
				t.Errorf("Start = %v, want errEnded", err)
			}
			<-g.Failed()
			if err := g.Err(); err == nil || err.Error() != tc.want {
				t.Errorf("Err = %v, want %s", err, tc.want)
			}
			if err := g.Stop(); err != nil {
				t.Errorf("Stop = %v (the failure is Err's, not repeated)", err)
			}
			if !stopped {
				t.Error("the other component was not stopped")
			}
		})
	}
}

// TestGroupReadyInStartOrder: Ready names the first component not ready,
// after its check; Start gives up with its context, the component running
// until Stop.
func TestGroupReadyInStartOrder(t *testing.T) {
	g := newGroup(zap.NewNop())
	t.Cleanup(func() { _ = g.Stop() })
	if err := g.Start(context.Background(), "connection", checked{errors.New("NATS not connected")}); err != nil {
		t.Fatal(err)
	}
	if err := g.Ready(); err == nil || err.Error() != "NATS not connected" {
		t.Errorf("Ready = %v, want the connection's check", err)
	}
	g2 := newGroup(zap.NewNop())
	t.Cleanup(func() { _ = g2.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	never := RunFunc(func(ctx context.Context, _ func()) error { <-ctx.Done(); return nil })
	if err := g2.Start(ctx, "cache", never); !errors.Is(err, context.Canceled) {
		t.Errorf("Start = %v, want its context's error", err)
	}
	if err := g2.Ready(); err == nil || err.Error() != "cache: starting" {
		t.Errorf("Ready = %v", err)
	}
}

// checked is a ready component whose check fails with err.
type checked struct{ err error }

func (c checked) Run(ctx context.Context, ready func()) error { ready(); <-ctx.Done(); return nil }
func (c checked) Check() error                                { return c.err }

func TestReconnectDelayBacksOffTo5s(t *testing.T) {
	var got []string
	for _, n := range []int{0, 1, 2, 3, 5, 50} {
		got = append(got, reconnectDelay(n).String())
	}
	if want := []string{"250ms", "250ms", "500ms", "1s", "4s", "5s"}; !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
}

func TestNATSErrorsNeverShowAURLPassword(t *testing.T) {
	c := &natsConn{urls: "nats://exporter:s3cr3t-pw@nats-1:4222, nats://nats-2:4222"}
	c.setErr(errors.New("dial nats://exporter:s3cr3t-pw@nats-1:4222: connection refused"))
	err := c.NotConnected()
	if strings.Contains(err.Error(), "s3cr3t-pw") || !strings.Contains(err.Error(), "nats-1:4222: connection refused") {
		t.Errorf("NotConnected = %v", err)
	}
	if c.redact(nil) != "" {
		t.Error("redact(nil)")
	}
}

func TestSetErrReportsAChangeOfReason(t *testing.T) {
	c := &natsConn{}
	for i, tc := range []struct {
		err     error
		changed bool
	}{
		{errors.New("refused"), true}, {errors.New("refused"), false}, {errors.New("timeout"), true}, {nil, true}, {nil, false},
	} {
		if got := c.setErr(tc.err); got != tc.changed {
			t.Errorf("#%d setErr(%v) = %t, want %t", i, tc.err, got, tc.changed)
		}
	}
}

// RunFunc is a Runnable made of a function.
type RunFunc func(ctx context.Context, ready func()) error

// Run calls f.
func (f RunFunc) Run(ctx context.Context, ready func()) error { return f(ctx, ready) }
