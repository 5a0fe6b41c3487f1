package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// scoped sends a request on tenant's control subject and returns the raw
// reply.
func (e *env) scoped(tenant, op, body string) []byte {
	e.t.Helper()
	m, err := e.nc.Request(event.ControlSubject(e.cfg.SubjectPrefix, tenant, op), []byte(body), 25*time.Second)
	if err != nil {
		e.t.Fatalf("%s on %s: %v", op, tenant, err)
	}
	return m.Data
}

func replyCode(raw []byte) string {
	var r struct {
		Error *event.ErrorBody `json:"error"`
	}
	if json.Unmarshal(raw, &r) != nil || r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// TestTenantScopedControlActsOnItsTenantOnly asks a tenant's control
// subjects, as a hostile tenant would, for another tenant's integrations,
// scans and tests: every request is refused, and the tenant's own work.
func TestTenantScopedControlActsOnItsTenantOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	ba, bb := e.bucket("scoped-a"), e.bucket("scoped-b")
	// The same integration id in both tenants.
	e.putAndWaitConn(e.integration("tenant-a", "same-id", ba, "prov-1"))
	e.putAndWaitConn(e.integration("tenant-b", "same-id", bb, "prov-1"))
	e.putAndWaitConn(e.integration("tenant-b", "only-b", bb, "prov-1"))
	files, _ := prowlerFiles(71, "111122223333")
	before := len(e.connStatuses("tenant-b", "only-b"))
	e.publishScan("tenant-b", "prov-1", "111122223333", "scan-of-b", files[:2])
	e.waitExport("scan-of-b", "only-b")
	// The export says the integration is reachable with a connection
	// status published after its export status: waited for, so that it is
	// not counted below as one caused by tenant-a's requests.
	e.waitConn("tenant-b", "only-b", before)

	// The tenant's own: get, list, test, all through its subject.
	var got event.GetReply
	if err := json.Unmarshal(e.scoped("tenant-a", event.OpGet, `{"integration_id":"same-id"}`), &got); err != nil ||
		got.Integration.TenantID != "tenant-a" || got.Integration.Configuration.BucketName != ba || got.Status == nil || !got.Status.Connected {
		t.Errorf("tenant-a's get: %+v %v", got, err)
	}
	var list event.ListReply
	if err := json.Unmarshal(e.scoped("tenant-b", event.OpList, `{}`), &list); err != nil || len(list.Integrations) != 2 ||
		list.Integrations[0].Integration.ID != "only-b" || list.Integrations[1].Integration.ID != "same-id" {
		t.Errorf("tenant-b's list: %+v %v", list, err)
	}
	if err := json.Unmarshal(e.scoped("tenant-a", event.OpList, `{"tenant_id":"tenant-a"}`), &list); err != nil || len(list.Integrations) != 1 ||
		list.Integrations[0].Integration.Configuration.BucketName != ba {
		t.Errorf("tenant-a's list: %+v %v", list, err)
	}

	// Another tenant's, through tenant-a's subjects: refused, and nothing
	// of tenant-b is reached.
	logged := e.accessLogLen()
	statuses := len(e.connStatuses("tenant-b", "same-id")) + len(e.connStatuses("tenant-b", "only-b"))
	unsavedB := e.integration("tenant-b", "same-id", bb, "prov-1")
	unsavedWire, err := json.Marshal(map[string]any{"integration": map[string]any{
		"id": "same-id", "tenant_id": "tenant-b", "type": "amazon_s3", "providers": []string{"prov-1"},
		"configuration": map[string]any{"bucket_name": bb},
		"credentials":   map[string]any{"aws_access_key_id": unsavedB.Credentials.AccessKeyID, "aws_secret_access_key": unsavedB.Credentials.SecretAccessKey},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ op, body, want string }{
		{event.OpGet, `{"tenant_id":"tenant-b","integration_id":"same-id"}`, "not the subject's tenant"},
		{event.OpGet, `{"integration_id":"only-b"}`, "not known"},
		{event.OpList, `{"tenant_id":"tenant-b"}`, "not the subject's tenant"},
		{event.OpTest, `{"tenant_id":"tenant-b","integration_id":"only-b"}`, "not the subject's tenant"},
		{event.OpTest, `{"integration_id":"only-b"}`, "not known"},
		{event.OpTest, string(unsavedWire), "not the subject's tenant"},
		{event.OpReplay, `{"tenant_id":"tenant-b","scan_id":"scan-of-b"}`, "not the subject's tenant"},
		{event.OpReplay, `{"scan_id":"scan-of-b"}`, "not in the scans stream"},
		{event.OpReplay, `{"scan_id":"scan-of-b","integration_id":"only-b"}`, "not in the scans stream"},
	} {
		raw := e.scoped("tenant-a", tc.op, tc.body)
		if replyCode(raw) != string(errcode.InvalidRequest) || !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s %s on tenant-a's subject: %s, want InvalidRequest (%s)", tc.op, tc.body, raw, tc.want)
		}
		if strings.Contains(string(raw), bb) {
			t.Errorf("%s %s on tenant-a's subject shows tenant-b's bucket: %s", tc.op, tc.body, raw)
		}
	}
	// A marker: a status of tenant-a published after every request above.
	e.testSaved("tenant-a", "same-id")
	if n := len(e.connStatuses("tenant-b", "same-id")) + len(e.connStatuses("tenant-b", "only-b")); n != statuses {
		t.Errorf("tenant-b got %d new connection statuses from tenant-a's requests", n-statuses)
	}
	if exports := e.exports("scan-of-b", "only-b"); len(exports) != 1 {
		t.Errorf("tenant-b's scan exported %d times, want once (no replay)", len(exports))
	}
	// The explicit test of tenant-a's integration made requests; none of
	// them to tenant-b's bucket.
	entries, err := e.s3.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries[logged:] {
		if en.Bucket == bb {
			t.Errorf("a request reached tenant-b's bucket: %+v", en)
		}
	}
}

// TestUnsavedTestChangesNothingSaved tries a new, wrong bucket for an
// integration that works (contract §7, v1.1): the reply says what is wrong;
// the saved integration keeps its status, no status is published, and its
// tested-configuration fingerprint is the same (a later change that keeps
// the bucket and credentials is not tested again).
func TestUnsavedTestChangesNothingSaved(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	b := e.bucket("unsaved")
	working := e.integration("tenant-u", "working", b, "prov-1")
	before := e.putAndWaitConn(working)
	if !before.Connected {
		t.Fatalf("the working integration: %+v", before)
	}

	draft := working
	draft.Configuration.BucketName = "no-such-bucket-for-the-draft"
	for _, scope := range []string{"tenant-u", ""} {
		var rep event.TestReply
		var err error
		if scope == "" {
			rep, err = e.testUnsavedTenantless(draft)
		} else {
			rep, err = e.cl.TestUnsaved(context.Background(), draft)
		}
		if err != nil || rep.Connected || rep.Error == nil || rep.Error.Code != string(errcode.S3BucketNotFound) {
			t.Fatalf("the draft's test (%q): %+v %v", scope, rep, err)
		}
	}

	// Unchanged bucket and credentials (providers changed): no automatic
	// test, so the fingerprint is still the working one's.
	working.Providers = []string{"prov-1", "prov-2"}
	e.put(working)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got, err := e.cl.Get(context.Background(), "tenant-u", "working"); err == nil && len(got.Integration.Providers) == 2 {
			if got.Status == nil || !got.Status.Connected || !got.Status.LastCheckedAt.Equal(before.LastCheckedAt) {
				t.Fatalf("the saved status changed: %+v", got.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the provider change never applied")
		}
	}
	// A marker after everything above: another integration's test.
	e.putAndWaitConn(e.integration("tenant-u", "marker", b, "prov-1"))
	if sts := e.connStatuses("tenant-u", "working"); len(sts) != 1 {
		t.Errorf("%d connection statuses of the working integration, want its first only: %+v", len(sts), sts)
	}
}

func (e *env) testUnsavedTenantless(in event.IntegrationPayload) (event.TestReply, error) {
	wire, err := json.Marshal(map[string]any{"integration": map[string]any{
		"id": in.ID, "tenant_id": in.TenantID, "type": "amazon_s3", "providers": in.Providers,
		"configuration": map[string]any{"bucket_name": in.Configuration.BucketName, "output_directory": in.Configuration.OutputDirectory},
		"credentials":   map[string]any{"aws_access_key_id": in.Credentials.AccessKeyID, "aws_secret_access_key": in.Credentials.SecretAccessKey},
	}})
	if err != nil {
		return event.TestReply{}, err
	}
	var rep event.TestReply
	err = json.Unmarshal(e.rawControl(event.ControlTest, wire), &rep)
	return rep, err
}

// TestGlobalControlOff: with S3EXPORTER_GLOBAL_CONTROL=false nothing answers
// the tenant-less subjects, and the tenant-scoped ones still do.
func TestGlobalControlOff(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, func(c *config.Config) { c.GlobalControl = false })
	e.putAndWaitConn(e.integration("tenant-g", "i1", e.bucket("global-off"), "prov-1"))
	for _, kind := range []string{event.ControlTest, event.ControlGet, event.ControlReplay} {
		_, err := e.nc.Request(event.Subject(e.cfg.SubjectPrefix, kind), []byte(`{"tenant_id":"tenant-g","integration_id":"i1"}`), 5*time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("%s: %v, want no responders", kind, err)
		}
	}
	if got, err := e.cl.Get(context.Background(), "tenant-g", "i1"); err != nil || got.Integration.ID != "i1" {
		t.Errorf("the tenant-scoped get: %+v %v", got, err)
	}
}
