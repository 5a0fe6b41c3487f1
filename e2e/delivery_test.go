package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// dlqMessages reads every dead letter of the prefix "prowler".
func (e *env) dlqMessages(t *testing.T, want int) []*nats.Msg {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "PROWLER_DLQ", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for len(out) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("got %d dead letters, want %d: %v", len(out), want, err)
		}
		out = append(out, &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	}
	return out
}

func TestMalformedEventsAreDeadLetteredAndTheConsumerGoesOn(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	b := e.bucket("dlq")
	e.put(e.integration("tenant-a", "after", b, "prov-1"))
	good := func(id string) map[string]any {
		return map[string]any{"scan_id": id, "tenant_id": "tenant-a",
			"provider":   map[string]any{"id": "prov-1", "uid": "111122223333"},
			"started_at": "2025-08-05T12:00:00Z",
			"artifacts":  []any{map[string]any{"format": "csv", "source": "nats-os://PROWLER_OUTPUTS/tenant-a/" + id + "/out.csv"}}}
	}
	mutate := func(f func(m map[string]any)) []byte {
		m := good("bad")
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name, subject string
		data          []byte
		reason        string
	}{
		{"bad JSON", "prowler.scans.completed.tenant-a.prov-1", []byte(`{"scan_id": `), "invalid JSON"},
		{"missing scan_id", "prowler.scans.completed.tenant-a.prov-1", mutate(func(m map[string]any) { delete(m, "scan_id") }), "missing scan_id"},
		{"missing provider uid", "prowler.scans.completed.tenant-a.prov-1", mutate(func(m map[string]any) { m["provider"] = map[string]any{"id": "prov-1"} }), "missing provider.uid"},
		{"missing started_at", "prowler.scans.completed.tenant-a.prov-1", mutate(func(m map[string]any) { delete(m, "started_at") }), "missing started_at"},
		{"tenant mismatch", "prowler.scans.completed.tenant-z.prov-1", mutate(func(map[string]any) {}), "differs from the subject"},
		{"provider mismatch", "prowler.scans.completed.tenant-a.prov-2", mutate(func(map[string]any) {}), "differs from the subject"},
		{"unknown format", "prowler.scans.completed.tenant-a.prov-1", mutate(func(m map[string]any) {
			m["artifacts"] = []any{map[string]any{"format": "pdf", "source": "nats-os://B/tenant-a/bad/x"}}
		}), "unknown format"},
		{"compliance without framework", "prowler.scans.completed.tenant-a.prov-1", mutate(func(m map[string]any) {
			m["artifacts"] = []any{map[string]any{"format": "compliance", "source": "nats-os://B/tenant-a/bad/x"}}
		}), "missing framework"},
		{"artifact without source", "prowler.scans.completed.tenant-a.prov-1", mutate(func(m map[string]any) {
			m["artifacts"] = []any{map[string]any{"format": "csv"}}
		}), "missing source"},
	}
	for _, c := range cases {
		if _, err := e.cl.JS.Publish(context.Background(), c.subject, c.data); err != nil {
			t.Fatal(err)
		}
	}
	// The consumer keeps going: a good scan after them is exported.
	files, _ := prowlerFiles(11, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "after-dlq", files)
	if st := e.waitExport("after-dlq", "after"); st.State != event.StateSucceeded {
		t.Fatalf("good scan after malformed ones: %s %v", st.State, st.Errors)
	}

	// Scans are processed concurrently, so dead letters may come in any order.
	byOrigin := map[string]*nats.Msg{}
	for _, m := range e.dlqMessages(t, len(cases)) {
		byOrigin[m.Header.Get(event.HeaderOriginalSubject)+"|"+string(m.Data)] = m
	}
	for _, c := range cases {
		m, ok := byOrigin[c.subject+"|"+string(c.data)]
		if !ok {
			t.Errorf("%s: no dead letter", c.name)
			continue
		}
		wantSubject := "prowler.dlq.scans." + strings.Split(c.subject, ".")[3]
		if m.Subject != wantSubject {
			t.Errorf("%s: dead letter on %s, want %s", c.name, m.Subject, wantSubject)
		}
		if got := m.Header.Get(event.HeaderOriginalSubject); got != c.subject {
			t.Errorf("%s: original subject header %q", c.name, got)
		}
		if r := m.Header.Get(event.HeaderDLQReason); !strings.Contains(r, c.reason) || !strings.HasPrefix(r, "MalformedEvent") {
			t.Errorf("%s: reason %q does not say %q", c.name, r, c.reason)
		}
		if string(m.Data) != string(c.data) {
			t.Errorf("%s: the dead letter's body is not the original payload", c.name)
		}
	}
	// Terminated on its stream: nothing is pending or redelivered. The
	// server counts acks and terms asynchronously (and the good scan's ack
	// follows its status), so give it a moment.
	info, err := e.cl.JS.Consumer(context.Background(), "PROWLER_SCANS", e.cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ci, err := info.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("consumer still has %d pending, %d ack-pending", ci.NumPending, ci.NumAckPending)
			break
		}
	}
}

func TestS3OutageIsRetriedUntilEverythingLands(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: stops and restarts an S3 server of its own")
	}
	t.Parallel() // a world of its own: its NATS server, its S3 server (which it stops)
	own, err := s3test.RunS3(s3test.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Close() })
	e := newEnvWithS3(t, own, func(c *config.Config) {
		c.Backoff = []time.Duration{300 * time.Millisecond}
		c.MaxDeliver = 100
		c.InProcessRetries = 1
	})
	b := e.bucket("outage")
	e.put(e.integration("tenant-a", "patient", b, "prov-1"))
	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	files, _ := prowlerFiles(12, "111122223333", frameworks...)
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-outage", files)
	if _, ok := e.waitFor(20*time.Second, func(s client.Status) bool {
		return s.Export != nil && s.Export.ScanID == "scan-outage" && s.Export.State == event.StateRetrying
	}); !ok {
		t.Fatalf("no retrying status while S3 was down: %s", e.dump())
	}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	st := e.waitExport("scan-outage", "patient")
	if st.State != event.StateSucceeded || st.Attempt < 2 {
		t.Fatalf("after the outage: %s attempt %d %v", st.State, st.Attempt, st.Errors)
	}
	if got := e.objects(b); len(got) != len(files) {
		t.Fatalf("%d objects landed, want %d: %v", len(got), len(files), keysOf(got))
	}
	if n := len(e.dlqAll()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// dlqAll returns how many dead letters there are now.
func (e *env) dlqAll() []string {
	js, _ := jetstream.New(e.nc)
	s, err := js.Stream(context.Background(), "PROWLER_DLQ")
	if err != nil {
		return nil
	}
	info, err := s.Info(context.Background())
	if err != nil {
		return nil
	}
	return make([]string, info.State.Msgs)
}
