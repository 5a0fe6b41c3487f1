package streams

import (
	"context"
	"errors"
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

// TestScansFindAndRepublish: Find returns the last event of the tenant with
// that scan_id (a later one of the same scan replaces an earlier one, other
// tenants' never match), ErrScanNotFound when there is none, and
// Republish stores the event again.
func TestScansFindAndRepublish(t *testing.T) {
	js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topo := Topology{Prefix: "prowler"}
	if _, err := EnsureStreams(ctx, js, topo, true); err != nil {
		t.Fatal(err)
	}
	s := Scans{JS: js, Topo: topo}
	if _, _, err := s.Find(ctx, "t1", "s1"); !errors.Is(err, ErrScanNotFound) {
		t.Fatalf("Find in an empty stream = %v, want ErrScanNotFound", err)
	}
	for _, m := range []struct{ subject, data string }{
		{"prowler.scans.completed.t1.p1", `{"scan_id":"s1","n":1}`},
		{"prowler.scans.completed.t2.p1", `{"scan_id":"s1","n":2}`},
		{"prowler.scans.completed.t1.p2", `{"scan_id":"s1","n":3}`},
		{"prowler.scans.completed.t1.p1", `{"scan_id":"s2","n":4}`},
		{"prowler.scans.completed.t1.p1", `not json`},
	} {
		if err := s.Republish(ctx, m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	subject, data, err := s.Find(ctx, "t1", "s1")
	if err != nil || subject != "prowler.scans.completed.t1.p2" || string(data) != `{"scan_id":"s1","n":3}` {
		t.Errorf("Find = %s %s %v, want t1's last event of s1", subject, data, err)
	}
	if _, _, err := s.Find(ctx, "t2", "s2"); !errors.Is(err, ErrScanNotFound) {
		t.Errorf("Find of another tenant's scan = %v, want ErrScanNotFound", err)
	}
}
