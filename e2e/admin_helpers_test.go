package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// Helpers of the admin-plane tests (connection test, get, replay, secrets).

var uniqSeq struct {
	sync.Mutex
	n int
}

// uniq returns a name no other test of this binary uses: versitygw accounts
// are global to the shared S3 server.
func uniq(prefix string) string {
	uniqSeq.Lock()
	defer uniqSeq.Unlock()
	uniqSeq.n++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, uniqSeq.n)
}

// s3User creates a versitygw account of role "user": it can reach only
// what bucket policies grant it.
func (e *env) s3User(prefix string) (access, secret string) {
	e.t.Helper()
	access, secret = uniq(prefix), uniq(prefix+"-secret")
	e.s3.MustCreateUser(e.t, access, secret, s3test.RoleUser)
	return access, secret
}

// documentedPolicy is the bucket policy the project documents
// (deploy/aws/bucket-policy.json) for bucket, granted to principals
// (versitygw access keys). Without withDelete, the statement allowing the
// beacon's deletion is left out.
func documentedPolicy(t testing.TB, bucket string, withDelete bool, principals ...string) string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/aws/bucket-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.ReplaceAll(string(raw), "my-security-findings-bucket", bucket))
	var pol struct {
		Version   string
		Statement []map[string]any
	}
	if err := json.Unmarshal(raw, &pol); err != nil {
		t.Fatalf("deploy/aws/bucket-policy.json: %v", err)
	}
	var kept []map[string]any
	for _, st := range pol.Statement {
		if !withDelete && st["Action"] == "s3:DeleteObject" {
			continue
		}
		st["Principal"] = map[string]any{"AWS": principals}
		kept = append(kept, st)
	}
	if len(kept) != 2 && !withDelete || len(kept) != 3 && withDelete {
		t.Fatalf("the documented policy changed shape: %s", raw)
	}
	pol.Statement = kept
	b, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// connStatuses returns the connection statuses recorded for an integration,
// oldest first.
func (e *env) connStatuses(tenant, id string) []event.ConnectionStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event.ConnectionStatus
	for _, s := range e.statuses {
		if c := s.Connection; c != nil && c.TenantID == tenant && c.IntegrationID == id {
			out = append(out, *c)
		}
	}
	return out
}

// waitConn waits until an integration has more than n connection statuses
// and returns status number n (0-based).
func (e *env) waitConn(tenant, id string, n int) event.ConnectionStatus {
	e.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		if got := e.connStatuses(tenant, id); len(got) > n {
			return got[n]
		}
		select {
		case <-ch:
		case <-deadline:
			e.t.Fatalf("integration %s/%s: no connection status #%d; statuses: %s\nexporter log:\n%s", tenant, id, n+1, e.dump(), e.logText())
		}
	}
}

// checkConn checks a connection test's reply and the status event it
// published: same outcome, the wanted code, a message naming each of
// mentions.
func checkConn(t testing.TB, what string, reply event.TestReply, st event.ConnectionStatus, wantCode string, mentions ...string) {
	t.Helper()
	if st.Connected != reply.Connected || !st.LastCheckedAt.Equal(reply.CheckedAt) || st.BucketRegion != reply.BucketRegion ||
		(st.Error == nil) != (reply.Error == nil) || (st.Error != nil && *st.Error != *reply.Error) {
		t.Errorf("%s: the status event %+v (error %v) differs from the reply %+v (error %v)", what, st, st.Error, reply, reply.Error)
	}
	checkStatus(t, what+": reply", reply.Connected, reply.Error, wantCode, mentions...)
	checkStatus(t, what+": status event", st.Connected, st.Error, wantCode, mentions...)
	if reply.CheckedAt.IsZero() || time.Since(reply.CheckedAt) > time.Minute {
		t.Errorf("%s: checked_at %v", what, reply.CheckedAt)
	}
}

// checkStatus checks one connection outcome: connected when wantCode is
// empty, else not connected with that code and a message naming mentions.
func checkStatus(t testing.TB, what string, connected bool, e *event.ErrorBody, wantCode string, mentions ...string) {
	t.Helper()
	if wantCode == "" {
		if !connected || e != nil {
			t.Errorf("%s: want connected, got connected=%v error=%+v", what, connected, e)
		}
		return
	}
	if connected || e == nil || e.Code != wantCode {
		t.Errorf("%s: want disconnected with %s, got connected=%v error=%+v", what, wantCode, connected, e)
		return
	}
	for _, m := range mentions {
		if !strings.Contains(e.Message, m) {
			t.Errorf("%s: the message %q does not mention %q", what, e.Message, m)
		}
	}
}

// testUnsaved runs the connection test of an unsaved integration and
// returns the reply and the status event it published.
func (e *env) testUnsaved(in event.IntegrationPayload) (event.TestReply, event.ConnectionStatus) {
	e.t.Helper()
	rep, err := e.cl.TestUnsaved(context.Background(), in)
	if err != nil {
		e.t.Fatalf("testing unsaved %s: %v", in.ID, err)
	}
	// Contract v1.1 §7: an unsaved test answers the request only, so the
	// status to check is the reply's (noUnsavedStatus checks none came).
	return rep, event.ConnectionStatus{TenantID: in.TenantID, IntegrationID: in.ID, Connected: rep.Connected,
		LastCheckedAt: rep.CheckedAt, BucketRegion: rep.BucketRegion, Error: rep.Error}
}

// noUnsavedStatus checks that no connection status was published for the
// unsaved integrations ids. Call it after waiting for a later status: the
// statuses are read in stream order, so one published by an earlier unsaved
// test would have been seen.
func (e *env) noUnsavedStatus(tenant string, ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if sts := e.connStatuses(tenant, id); len(sts) != 0 {
			e.t.Errorf("testing unsaved %s published %d connection statuses: %+v", id, len(sts), sts)
		}
	}
}

// testSaved runs the connection test of a cached integration and returns
// the reply and the status event it published.
func (e *env) testSaved(tenant, id string) (event.TestReply, event.ConnectionStatus) {
	e.t.Helper()
	n := len(e.connStatuses(tenant, id))
	rep, err := e.cl.TestConnection(context.Background(), tenant, id)
	if err != nil {
		e.t.Fatalf("testing %s: %v", id, err)
	}
	return rep, e.waitConn(tenant, id, n)
}

// putAndWaitConn publishes an integration and returns the connection
// status its automatic test published.
func (e *env) putAndWaitConn(in event.IntegrationPayload) event.ConnectionStatus {
	e.t.Helper()
	n := len(e.connStatuses(in.TenantID, in.ID))
	e.put(in)
	return e.waitConn(in.TenantID, in.ID, n)
}

// rawControl sends a control request as raw bytes and returns the raw reply.
func (e *env) rawControl(kind string, payload []byte) []byte {
	e.t.Helper()
	m, err := e.nc.Request(event.Subject(e.cfg.SubjectPrefix, kind), payload, 25*time.Second)
	if err != nil {
		e.t.Fatalf("%s %s: %v", kind, payload, err)
	}
	return m.Data
}

// accessLogLen is how many requests the S3 server has logged, for every
// test that shares it: use it as an index into AccessLog's entries, and
// look there at the test's own buckets or access keys only.
func (e *env) accessLogLen() int {
	e.t.Helper()
	entries, err := e.s3.AccessLog()
	if err != nil {
		e.t.Fatal(err)
	}
	return len(entries)
}

// statusStream reads every message of the status stream, as published.
func (e *env) statusStream() []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.cl.JS.Stream(ctx, strings.ToUpper(e.cfg.SubjectPrefix)+"_STATUS")
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatalf("reading status #%d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// waitExports waits until a scan has at least n export statuses for an
// integration in a final state (succeeded or failed), and returns those.
func (e *env) waitExports(scanID, integrationID string, n int) []event.ExportStatus {
	e.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		all := e.exports(scanID, integrationID)
		var final []event.ExportStatus
		for _, st := range all {
			if st.State != event.StateRetrying {
				final = append(final, st)
			}
		}
		if len(final) >= n {
			return final
		}
		select {
		case <-ch:
		case <-deadline:
			e.t.Fatalf("scan %s integration %s: %d final export statuses, want %d: %s\nexporter log:\n%s", scanID, integrationID, len(final), n, e.dump(), e.logText())
		}
	}
}

// requestsTo is how many requests to bucket the S3 server has logged.
func (e *env) requestsTo(bucket string) int {
	e.t.Helper()
	entries, err := e.s3.AccessLog()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Bucket == bucket {
			n++
		}
	}
	return n
}
