package integration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// TestAReplicaCatchesUpWhenTheLastChangeWasPurged: an operator removed the
// integrations stream's last message (nats stream rmm, or a subject purge).
// A follower started afterwards catches up with what exists — not with the
// stream's LastSeq, a message no longer there — and so does CatchUp.
func TestAReplicaCatchesUpWhenTheLastChangeWasPurged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delete []int // 1-based positions of the changes removed
		want   int
	}{
		{"last message removed", []int{3}, 2},
		{"last two removed", []int{2, 3}, 1},
		{"every message removed", []int{1, 2, 3}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFollowerEnv(t)
			for i := range 3 {
				e.publish("t1", fmt.Sprintf("i%d", i), "bucket", []string{"p"})
			}
			e.flush()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := e.js.Stream(ctx, e.topo.IntegrationsStream())
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.delete {
				if err := st.DeleteMsg(ctx, info.State.FirstSeq+uint64(p-1)); err != nil {
					t.Fatal(err)
				}
			}
			cache := integration.NewCache()
			f := e.start(cache, zaptest.NewLogger(t)) // fails the test if the cache never catches up
			if cache.Len() != tc.want {
				t.Fatalf("%d integrations, want %d", cache.Len(), tc.want)
			}
			if err := f.CatchUp(ctx, 5*time.Second); err != nil {
				t.Fatalf("CatchUp after the purge: %v", err)
			}
			// A new change after the purge is still waited for.
			e.publish("t1", "new", "bucket", []string{"p"})
			e.flush()
			if err := f.CatchUp(ctx, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if _, ok := cache.Get("t1", "new"); !ok {
				t.Fatal("the change published after the purge is not in the cache")
			}
		})
	}
}
