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
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

func TestAccessDeniedFailsAtOnceAndMarksTheIntegrationDisconnected(t *testing.T) {
	t.Parallel() // a world of its own: NATS, bucket, a versitygw user of its own
	e := newEnv(t, nil)
	b := e.bucket("denied")
	// A real versitygw user whose bucket policy grants reading the bucket's
	// location but not s3:PutObject.
	access, secret := e.s3User("nowrite")
	e.s3.MustPutBucketPolicy(t, b, s3test.AllowPolicy(b, access, "s3:GetBucketLocation"))
	in := e.integration("tenant-a", "denied", b, "prov-1")
	in.Credentials = &event.Credentials{AccessKeyID: access, SecretAccessKey: secret}
	e.put(in)

	files, _ := prowlerFiles(21, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-denied", files)
	st := e.waitExport("scan-denied", "denied")
	if st.State != event.StateFailed || st.Attempt != 1 || len(st.Errors) != len(files) {
		t.Fatalf("want failed on attempt 1 with %d errors, got %s attempt %d %+v", len(files), st.State, st.Attempt, st.Errors)
	}
	for _, er := range st.Errors {
		if er.Code != string(errcode.S3BucketAccessDenied) || er.Retryable {
			t.Errorf("want a permanent S3BucketAccessDenied, got %+v", er)
		}
	}
	if _, ok := e.waitFor(30*time.Second, func(s client.Status) bool {
		return s.Connection != nil && s.Connection.IntegrationID == "denied" && !s.Connection.Connected &&
			s.Connection.Error != nil && s.Connection.Error.Code == string(errcode.S3BucketAccessDenied)
	}); !ok {
		t.Fatalf("no disconnected status: %s", e.dump())
	}
	// Not retried: a later scan's outcome comes, and still only one status for this one.
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-denied-2", files)
	e.waitExport("scan-denied-2", "denied")
	if n := len(e.exports("scan-denied", "denied")); n != 1 {
		t.Fatalf("%d export statuses for a permanently failed scan, want 1", n)
	}
	if got := e.objects(b); len(got) != 0 {
		t.Fatalf("objects landed without s3:PutObject: %v", keysOf(got))
	}
	if n := len(e.dlqAll()); n != 0 {
		t.Fatalf("a permanent failure was dead-lettered (%d)", n)
	}
}

// brokenBucketEnv runs an exporter behind a fault proxy that can break one
// bucket with 503 SlowDown answers while the others work. The AWS SDK still
// tries each request 3 times, but 50 ms apart instead of its 1 s and more
// after a SlowDown, which every test through a broken bucket would wait out.
func brokenBucketEnv(t *testing.T, mutate func(*config.Config)) (*env, *s3test.FaultProxy) {
	proxy := s3test.NewFaultProxy(t, s3Server(t).Endpoint())
	e := newEnv(t, func(c *config.Config) {
		c.S3Endpoint = proxy.URL()
		c.InProcessRetries = 0
		c.Backoff = []time.Duration{300 * time.Millisecond}
		c.S3RetryMaxBackoff = 50 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
	return e, proxy
}

func TestAHealthyIntegrationIsNotReuploadedWhenTheScanIsRetriedForABrokenOne(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for redeliveries")
	}
	t.Parallel() // a world of its own: NATS, proxy, buckets
	e, proxy := brokenBucketEnv(t, nil)
	good, broken := e.bucket("good"), e.bucket("broken")
	proxy.SetFaults(s3test.Faults{ErrorRate: 1, PathPrefix: "/" + broken})
	e.put(e.integration("tenant-a", "good", good, "prov-1"))
	e.put(e.integration("tenant-a", "broken", broken, "prov-1"))

	files, _ := prowlerFiles(22, "111122223333", frameworks[0])
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-iso", files)
	if st := e.waitExport("scan-iso", "good"); st.State != event.StateSucceeded {
		t.Fatalf("good integration: %s %v", st.State, st.Errors)
	}
	// Let the broken one be retried at least twice, then heal it.
	if _, ok := e.waitFor(30*time.Second, func(s client.Status) bool {
		return s.Export != nil && s.Export.IntegrationID == "broken" && s.Export.State == event.StateRetrying && s.Export.Attempt >= 2
	}); !ok {
		t.Fatalf("the broken integration was not retried: %s", e.dump())
	}
	proxy.SetFaults(s3test.Faults{})
	st := e.waitExport("scan-iso", "broken")
	if st.State != event.StateSucceeded || st.Attempt < 3 {
		t.Fatalf("broken integration after healing: %s attempt %d %v", st.State, st.Attempt, st.Errors)
	}
	if got := e.objects(broken); len(got) != len(files) {
		t.Fatalf("healed bucket holds %d objects, want %d", len(got), len(files))
	}
	// The good one was uploaded exactly once, and reported once.
	for k := range e.objects(good) {
		if n := e.s3.MustPutCount(t, good, k); n != 1 {
			t.Errorf("%s was PUT %d times, want 1", k, n)
		}
	}
	if n := len(e.exports("scan-iso", "good")); n != 1 {
		t.Errorf("%d statuses for the good integration, want exactly 1", n)
	}
}

func TestRetriesRunOutIntoFailedAndTheDeadLetterQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out every redelivery of a scan")
	}
	t.Parallel() // a world of its own: NATS, proxy, bucket, dead-letter stream
	e, proxy := brokenBucketEnv(t, func(c *config.Config) { c.MaxDeliver = 2 })
	b := e.bucket("hopeless")
	proxy.SetFaults(s3test.Faults{ErrorRate: 1, PathPrefix: "/" + b})
	e.put(e.integration("tenant-a", "hopeless", b, "prov-1"))
	files, _ := prowlerFiles(23, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-hopeless", files)
	st := e.waitExport("scan-hopeless", "hopeless")
	if st.State != event.StateFailed || st.Attempt != 2 {
		t.Fatalf("want failed at attempt 2, got %s attempt %d %v", st.State, st.Attempt, st.Errors)
	}
	if len(st.Errors) == 0 || !st.Errors[0].Retryable {
		t.Fatalf("want the retryable errors that ran out, got %+v", st.Errors)
	}
	checkDeadLetter(t, e.dlqMessages(t, 1)[0], "retries ran out after 2 deliveries")
	var retrying int
	for _, s := range e.exports("scan-hopeless", "hopeless") {
		if s.State == event.StateRetrying {
			retrying++
		}
	}
	if retrying != 1 {
		t.Errorf("%d retrying statuses before giving up, want 1", retrying)
	}
}

func TestADisabledIntegrationIsDroppedFromPendingRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for redeliveries")
	}
	t.Parallel() // a world of its own: NATS, proxy, bucket, dead-letter stream
	// Redelivered every 300 ms (brokenBucketEnv's backoff) until disabled.
	e, proxy := brokenBucketEnv(t, func(c *config.Config) { c.MaxDeliver = 50 })
	b := e.bucket("dropped")
	proxy.SetFaults(s3test.Faults{ErrorRate: 1, PathPrefix: "/" + b})
	in := e.integration("tenant-a", "dropped", b, "prov-1")
	e.put(in)
	files, _ := prowlerFiles(24, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-dropped", files)
	if _, ok := e.waitFor(20*time.Second, func(s client.Status) bool {
		return s.Export != nil && s.Export.ScanID == "scan-dropped" && s.Export.State == event.StateRetrying
	}); !ok {
		t.Fatalf("no retrying status: %s", e.dump())
	}
	off := false
	in.Enabled = &off
	e.put(in)
	// The next delivery finds no enabled integration and acks the scan.
	deadline := time.Now().Add(15 * time.Second)
	for {
		cons, err := e.cl.JS.Consumer(context.Background(), "PROWLER_SCANS", e.cfg.ConsumerName)
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 && ci.NumRedelivered == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scan is still pending after its only integration was disabled: %+v", ci)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n := len(e.exports("scan-dropped", "dropped"))
	time.Sleep(4 * e.cfg.Backoff[0]) // four redelivery delays: no further attempt
	if m := len(e.exports("scan-dropped", "dropped")); m != n {
		t.Fatalf("the disabled integration was still retried (%d -> %d statuses)", n, m)
	}
	if len(e.dlqAll()) != 0 {
		t.Fatal("the dropped scan was dead-lettered")
	}
}

// TestAScanWhoseEveryDeliveryDiesIsFailedAndDeadLettered: a scan taken by a
// replica that dies before deciding anything, MaxDeliver times over, is
// settled by the replica that gets its next delivery, from its own count of
// attempts (the durable consumer has no JetStream MaxDeliver, so the scan
// is always delivered again): a failed status for its integration and a
// dead letter with the event. The dying replicas are a client of the same
// durable consumer that fetches the scan and never answers, which is all
// JetStream sees of a replica killed mid-work. When the ledger shows that
// every file had landed (the replicas died before publishing the status),
// the export is succeeded and nothing is dead-lettered.
func TestAScanWhoseEveryDeliveryDiesIsFailedAndDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out every redelivery of a scan")
	}
	// Each case waits out two ack waits in a world of its own (NATS,
	// bucket, dead-letter stream): they run side by side.
	t.Parallel()
	t.Run("nothing landed", func(t *testing.T) { t.Parallel(); testDeliveriesAllDie(t, false) })
	t.Run("everything landed", func(t *testing.T) { t.Parallel(); testDeliveriesAllDie(t, true) })
}

func testDeliveriesAllDie(t *testing.T, landed bool) {
	e := newEnvFull(t, s3Server(t), func(c *config.Config) {
		c.MaxDeliver = 2
		c.AckWait = 3 * time.Second
	}, false)
	b := e.bucket("doomed")
	e.put(e.integration("tenant-a", "doomed", b, "prov-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	// The durable consumer as the exporter binds it (consumer.ScanConsumer
	// binds it in Run): no JetStream MaxDeliver, the exporter counts.
	cons, err := js.CreateOrUpdateConsumer(ctx, "PROWLER_SCANS", jetstream.ConsumerConfig{
		Durable: e.cfg.ConsumerName, Description: "s3-exporter replicas",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: e.cfg.AckWait, MaxDeliver: -1,
		FilterSubject: "prowler.scans.completed.>", DeliverPolicy: jetstream.DeliverAllPolicy, MaxAckPending: 10_000,
	})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := prowlerFiles(29, "111122223333")
	scan := e.publishScan("tenant-a", "prov-1", "111122223333", "scan-doomed", files)
	if landed {
		// What a replica leaves in the ledger when it dies between its
		// uploads and the status.
		kv, err := js.KeyValue(ctx, "PROWLER_EXPORTS")
		if err != nil {
			t.Fatal(err)
		}
		entry := ledger.Entry{State: event.StateRetrying, Attempt: 1, Objects: map[string]event.ObjectRecord{}, UpdatedAt: time.Now()}
		for _, a := range scan.Artifacts {
			entry.Objects[a.Name()] = event.ObjectRecord{Format: a.Format, Framework: a.Framework, Key: exporter.ObjectKey("output", a, scan.Provider.UID, scan.StartedAt), Size: 1}
		}
		if err := ledger.New(kv).Put(ctx, "tenant-a", "scan-doomed", "doomed", entry); err != nil {
			t.Fatal(err)
		}
	}
	beforeFetch := time.Now()
	for delivery := 1; delivery <= 2; delivery++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second)) // the second waits out the ack wait
		if err != nil {
			t.Fatal(err)
		}
		msg, ok := <-batch.Messages()
		if !ok {
			t.Fatalf("delivery %d never came: %v", delivery, batch.Error())
		}
		if md, err := msg.Metadata(); err != nil || int(md.NumDelivered) != delivery {
			t.Fatalf("delivery %d: metadata %+v, %v", delivery, md, err)
		}
		// ...and the replica that took it dies: no ack, nak or progress.
	}
	// The exporter starts while the last delivery is still held (its ack
	// wait runs out within 3 s); the third delivery goes to it, and it gives
	// the scan up without exporting.
	e.start()

	st := e.waitExport("scan-doomed", "doomed")
	// Settled from the exporter's own count: it took a third delivery.
	if ci, err := cons.Info(ctx); err != nil || ci.Delivered.Consumer < 3 || ci.Config.MaxDeliver != -1 {
		t.Fatalf("consumer %+v, %v: want a third delivery, to the exporter, and no JetStream MaxDeliver", ci, err)
	}
	// The export started, at the latest, when the event reached its stream.
	if st.StartedAt.IsZero() || st.StartedAt.After(beforeFetch) {
		t.Errorf("started_at %v, want the event's arrival on its stream (before %v)", st.StartedAt, beforeFetch)
	}
	if landed {
		if st.State != event.StateSucceeded || st.Attempt != 2 || len(st.Objects) != len(files) || len(st.Errors) != 0 {
			t.Fatalf("want succeeded at attempt 2 with the ledger's %d objects, got %s attempt %d, %d objects, errors %+v",
				len(files), st.State, st.Attempt, len(st.Objects), st.Errors)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(e.logText(), "ran out of deliveries after its exports had landed") {
			if time.Now().After(deadline) {
				t.Fatalf("the give-up was not logged:\n%s", e.logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := len(e.dlqAll()); n != 0 {
			t.Errorf("%d dead letters for a scan whose exports had all landed", n)
		}
		return
	}
	if st.State != event.StateFailed || st.Attempt != 2 || len(st.Objects) != 0 || len(st.Errors) != len(files) {
		t.Fatalf("want failed at attempt 2 with an error per file (%d), got %s attempt %d, %d objects, %d errors",
			len(files), st.State, st.Attempt, len(st.Objects), len(st.Errors))
	}
	if e0 := st.Errors[0]; e0.Code != string(errcode.Timeout) || !strings.Contains(e0.Message, "delivered 2 times and never acknowledged") || e0.Key == "" {
		t.Errorf("error %+v", e0)
	}
	dl := e.dlqMessages(t, 1)[0]
	checkDeadLetter(t, dl, "Timeout: delivered 2 times")
	var body event.ScanCompleted
	if err := json.Unmarshal(dl.Data, &body); err != nil || body.ScanID != "scan-doomed" {
		t.Errorf("dead letter body: scan %q, %v (want the original event)", body.ScanID, err)
	}
	if n := len(e.objects(b)); n != 0 {
		t.Errorf("%d objects in the bucket, want none: no delivery uploaded anything", n)
	}
}

// checkDeadLetter checks a dead letter of a tenant-a scan from provider
// prov-1: its subject, its original subject, and a reason that contains
// reason.
func checkDeadLetter(t *testing.T, m *nats.Msg, reason string) {
	t.Helper()
	if m.Subject != "prowler.dlq.scans.tenant-a" {
		t.Errorf("dead letter on %s", m.Subject)
	}
	if r := m.Header.Get(event.HeaderDLQReason); !strings.Contains(r, reason) {
		t.Errorf("dead-letter reason %q, want it to contain %q", r, reason)
	}
	if got := m.Header.Get(event.HeaderOriginalSubject); got != "prowler.scans.completed.tenant-a.prov-1" {
		t.Errorf("original subject %q", got)
	}
}
