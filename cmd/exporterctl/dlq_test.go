package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

// TestDeadLettersAndNotFound, end to end on a running exporter: a malformed
// scan event the exporter dead-letters is listed with its reason and
// original subject, and is not replayed without --force; a dead-lettered
// valid scan event is republished byte for byte on its original subject, the
// exporter exports it (read back from the bucket) and --delete removes it
// from the DLQ; unknown integrations and dead letters exit 5.
func TestDeadLettersAndNotFound(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its S3 server, its exporter
	w := newWorld(t)
	const (
		tenant   = "tenant-dlq"
		provider = "aws-dlq"
		uid      = "444455556666"
		bucket   = "exporterctl-dlq"
	)
	w.s3.MustCreateBucket(t, bucket)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(w.s3.SecretKey), 0o600); err != nil {
		t.Fatal(err)
	}

	// Not found: exit 5, and a JSON error naming it under --json.
	r := w.must(exitNotFound, "integration", "get", "--tenant", tenant, "--id", "nope")
	if !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, "nope") {
		t.Errorf("get unknown: %v", r)
	}
	r = w.must(exitNotFound, "--json", "integration", "get", "--tenant", tenant, "--id", "nope")
	if j := decodeJSONError(t, r); j.Error.Code != integrationNotFoundCode {
		t.Errorf("get unknown --json: %+v", j.Error)
	}
	w.must(exitNotFound, "integration", "test", "--tenant", tenant, "--id", "nope")

	w.must(0, "integration", "put", "--tenant", tenant, "--id", "i1", "--bucket", bucket, "--dir", "dlq-out",
		"--provider", provider, "--access-key-id", w.s3.AccessKey, "--secret-access-key-file", secretFile)
	w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "i1")
	r = w.must(0, "dlq", "list", "--tenant", tenant)
	if strings.TrimSpace(r.stdout) != "no dead letters" {
		t.Errorf("empty DLQ: %q", r.stdout)
	}

	nc, err := nats.Connect(w.url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cl, err := client.New(nc, "prowler")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 1. A real dead letter: the exporter refuses a scan without provider.uid.
	scanSubject := event.Subject("prowler", event.ScansCompleted, tenant, provider)
	malformed := []byte(`{"scan_id":"bad-scan","tenant_id":"` + tenant + `","provider":{"id":"` + provider + `"},"started_at":"2026-01-01T00:00:00Z","artifacts":[]}`)
	if _, err := cl.JS.Publish(ctx, scanSubject, malformed); err != nil {
		t.Fatal(err)
	}

	// 2. A valid scan event, dead-lettered the way the exporter does when
	// retries run out (its artifacts are in the object store).
	files := fixtures.ProwlerOutputs(11, uid, 20, []string{"cis_5.0_aws"})
	var cf []client.File
	for _, f := range files {
		cf = append(cf, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
	}
	arts, err := cl.PutArtifacts(ctx, client.DefaultObjectStore, tenant, "good-scan", cf)
	if err != nil {
		t.Fatal(err)
	}
	start := fixtures.ScanStart(11)
	done := start.Add(time.Minute)
	good, err := json.Marshal(event.ScanCompleted{ScanID: "good-scan", TenantID: tenant,
		Provider: event.Provider{ID: provider, Type: "aws", UID: uid}, StartedAt: start, CompletedAt: &done, Artifacts: arts})
	if err != nil {
		t.Fatal(err)
	}
	dl := nats.NewMsg(event.Subject("prowler", event.DLQScans, tenant))
	dl.Data = good
	dl.Header.Set(event.HeaderDLQReason, "Timeout: retries ran out after 10 deliveries: upload timed out")
	dl.Header.Set(event.HeaderOriginalSubject, scanSubject)
	if _, err := cl.JS.PublishMsg(ctx, dl); err != nil {
		t.Fatal(err)
	}
	// 3. A forged dead letter whose "original subject" points elsewhere.
	forged := nats.NewMsg(event.Subject("prowler", event.DLQScans, tenant))
	forged.Data = good
	forged.Header.Set(event.HeaderDLQReason, "Timeout: retries ran out")
	forged.Header.Set(event.HeaderOriginalSubject, event.Subject("prowler", event.IntegrationsChanged, tenant, "i1"))
	if _, err := cl.JS.PublishMsg(ctx, forged); err != nil {
		t.Fatal(err)
	}

	// dlq list --json: all three, with reasons and original subjects.
	var letters []deadLetter
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = w.must(0, "--json", "dlq", "list", "--tenant", tenant)
		letters = nil
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var d deadLetter
			if err := json.Unmarshal([]byte(l), &d); err == nil {
				letters = append(letters, d)
			}
		}
		if len(letters) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(letters) != 3 {
		t.Fatalf("dlq list: %d dead letters, want 3:\n%s", len(letters), r.stdout)
	}
	byReason := map[string]deadLetter{}
	for _, d := range letters {
		if d.Tenant != tenant || d.Subject != "prowler.dlq.scans."+tenant || d.Seq == 0 || d.Time.IsZero() {
			t.Errorf("dead letter %+v", d)
		}
		byReason[strings.SplitN(d.Reason, ":", 2)[0]+":"+d.OriginalSubject] = d
	}
	bad, ok := byReason["MalformedEvent:"+scanSubject]
	if !ok || bad.Size != len(malformed) {
		t.Fatalf("no MalformedEvent dead letter of %s with the payload's size: %+v", scanSubject, letters)
	}
	valid := byReason["Timeout:"+scanSubject]
	fake := byReason["Timeout:"+event.Subject("prowler", event.IntegrationsChanged, tenant, "i1")]
	if valid.Seq == 0 || fake.Seq == 0 {
		t.Fatalf("dead letters %+v", letters)
	}
	r = w.must(0, "dlq", "list", "--limit", "1")
	if !strings.HasPrefix(r.stdout, strconv.FormatUint(letters[0].Seq, 10)+"  ") || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("dlq list --limit 1: %q", r.stdout)
	}

	// The malformed one and the forged one are skipped (exit 1, nothing
	// published); a missing one is not found (exit 5).
	r = w.must(exitError, "dlq", "replay", "--seq", strconv.FormatUint(bad.Seq, 10))
	if !strings.Contains(r.stdout, "skipped") || !strings.Contains(r.stdout, "--force") {
		t.Errorf("replay of a MalformedEvent: %v", r)
	}
	r = w.must(exitError, "dlq", "replay", "--seq", strconv.FormatUint(fake.Seq, 10))
	if !strings.Contains(r.stdout, "is not a prowler.scans.completed") {
		t.Errorf("replay of a forged original subject: %v", r)
	}
	w.must(exitNotFound, "dlq", "replay", "--seq", "999999")

	// The valid one: republished, exported, deleted from the DLQ.
	r = w.must(0, "--json", "dlq", "replay", "--seq", strconv.FormatUint(valid.Seq, 10), "--delete")
	var out replayOutcome
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !out.Published || !out.Deleted || out.OriginalSubject != scanSubject {
		t.Fatalf("replay: %q (%v)", r.stdout, err)
	}
	st, err := cl.JS.Stream(ctx, "PROWLER_SCANS")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(ctx, out.StreamSeq)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != scanSubject || !bytes.Equal(raw.Data, good) {
		t.Errorf("republished %s %q, want the original payload on %s", raw.Subject, raw.Data, scanSubject)
	}
	for _, f := range files {
		key := exporter.ObjectKey("dlq-out", event.Artifact{Format: f.Format, Framework: f.Framework}, uid, start)
		deadline := time.Now().Add(30 * time.Second)
		for {
			o, err := w.s3.GetObject(bucket, key)
			if err == nil {
				if !bytes.Equal(o.Body, f.Body) {
					t.Errorf("%s: bytes differ", key)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never landed after the replay: %v", key, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r = w.must(0, "--json", "dlq", "list", "--tenant", tenant)
	if strings.Count(r.stdout, "\n") != 2 || strings.Contains(r.stdout, `"seq":`+strconv.FormatUint(valid.Seq, 10)+",") {
		t.Errorf("after --delete the DLQ still lists the replayed one:\n%s", r.stdout)
	}
	// Deleted: replaying it again is not found.
	r = w.must(exitNotFound, "--json", "dlq", "replay", "--seq", strconv.FormatUint(valid.Seq, 10))
	if j := decodeJSONError(t, r); j.Error.Code != "DeadLetterNotFound" {
		t.Errorf("replay of a deleted dead letter: %+v", j.Error)
	}
}
