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
	started := make(chan struct{}, 3)
	for _, name := range []string{"connection", "cache", "consumer"} {
		g.Go(name, func(ctx context.Context) error {
			started <- struct{}{}
			<-ctx.Done()
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			if name == "cache" {
				return errors.New("flush failed")
			}
			return nil
		})
	}
	for range 3 {
		<-started
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
			g.Go("connection", func(ctx context.Context) error { <-ctx.Done(); stopped = true; return nil })
			g.Go("scans", func(context.Context) error { return tc.err })
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
