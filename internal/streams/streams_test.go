package streams

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

func TestStatusAndDeadLetterStreamsAreBoundedInBytes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		status, dlq  int64
		wantS, wantD int64
	}{
		{"default", 0, 0, 1 << 30, 1 << 30},
		{"set", 64 << 20, 2 << 30, 64 << 20, 2 << 30},
		{"no limit", -1, -1, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := natstest.StartJetStream(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			topo := Topology{Prefix: "prowler", StatusMaxBytes: tc.status, DLQMaxBytes: tc.dlq}
			for range 2 { // the second finds everything in place
				if _, err := EnsureStreams(ctx, js, topo, true); err != nil {
					t.Fatal(err)
				}
			}
			for name, want := range map[string]int64{topo.StatusStream(): tc.wantS, topo.DLQStream(): tc.wantD} {
				st, err := js.Stream(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				cfg := st.CachedInfo().Config
				if cfg.MaxBytes != want || cfg.Discard != jetstream.DiscardOld {
					t.Errorf("%s: MaxBytes %d discard %v, want %d, old first", name, cfg.MaxBytes, cfg.Discard, want)
				}
			}
		})
	}
}

func TestEnsureStreamsWithoutManagingThem(t *testing.T) {
	js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := EnsureStreams(ctx, js, Topology{Prefix: "prowler"}, false); err == nil || !strings.Contains(err.Error(), "S3EXPORTER_MANAGE_STREAMS=false") {
		t.Fatalf("err %v", err)
	}
}
