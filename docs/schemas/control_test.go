package schemas

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/control"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

// The tenant, integration and scan the control examples name: those of
// integration-changed.1.json and scan-completed.1.json.
const (
	exampleTenant = "0b7e2f1c-3d4a-4b5c-8d9e-0f1a2b3c4d5e"
	otherTenant   = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
)

// replySchema is the schema of the reply of each control operation.
var replySchema = map[string]string{
	event.OpTest:   "control-test-reply",
	event.OpGet:    "control-get-reply",
	event.OpList:   "control-list-reply",
	event.OpReplay: "control-replay-reply",
}

// exampleCache is the control service's view of the integration cache: the
// integrations of the valid integration-changed examples, with a connection
// status for the first one only (so get and list replies carry both a status
// and a null one).
type exampleCache struct {
	igs    []*integration.Integration
	status event.ConnectionStatus
}

func (c *exampleCache) Get(tenant, id string) (*integration.Integration, bool) {
	for _, ig := range c.igs {
		if ig.TenantID == tenant && ig.ID == id {
			return ig, true
		}
	}
	return nil, false
}

func (c *exampleCache) List(tenant string) []*integration.Integration {
	var out []*integration.Integration
	for _, ig := range c.igs {
		if ig.TenantID == tenant {
			out = append(out, ig)
		}
	}
	slices.SortFunc(out, func(a, b *integration.Integration) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (c *exampleCache) Select(tenant, provider string) []*integration.Integration {
	var out []*integration.Integration
	for _, ig := range c.List(tenant) {
		if ig.Enabled && ig.HasProvider(provider) {
			out = append(out, ig)
		}
	}
	return out
}

func (c *exampleCache) Status(tenant, id string) (event.ConnectionStatus, bool) {
	if c.status.TenantID == tenant && c.status.IntegrationID == id {
		return c.status, true
	}
	return event.ConnectionStatus{}, false
}

type nopLedger struct{}

func (nopLedger) Delete(context.Context, string, string, string) error { return nil }
func (nopLedger) SwapFingerprint(context.Context, string, string, string) (bool, error) {
	return true, nil
}
func (nopLedger) ForgetFingerprint(context.Context, string, string) error { return nil }

// exampleScans holds scan-completed.1.json as the scans stream would.
type exampleScans struct {
	scan    *event.ScanCompleted
	payload []byte
}

func (s exampleScans) Find(_ context.Context, tenant, scan string) (string, []byte, error) {
	if tenant != s.scan.TenantID || scan != s.scan.ScanID {
		return "", nil, streams.ErrScanNotFound
	}
	return event.Subject(prefix, event.ScansCompleted, s.scan.TenantID, s.scan.Provider.ID), s.payload, nil
}

func (exampleScans) Republish(context.Context, string, []byte) error { return nil }

// controlService is the exporter's control service over the examples, with
// a connection test that always connects and records what it was run on.
func controlService(t *testing.T, tested *[]string) *control.Service {
	t.Helper()
	// The examples all describe one integration in different shapes (keys
	// and role, Fernet token, no credentials, keys only); the cache holds
	// each under its own id (the first one under the examples' id) so that a
	// list reply carries every shape.
	cache := &exampleCache{}
	for i, ex := range []string{"integration-changed.1.json", "integration-changed.2.json", "integration-changed.5.json", "integration-changed.6.json"} {
		ig := cachedIntegration(t, ex)
		if ig.TenantID != exampleTenant {
			t.Fatalf("%s: tenant %s, want %s", ex, ig.TenantID, exampleTenant)
		}
		if i > 0 {
			c := *ig
			c.ID += "-" + strconv.Itoa(i)
			ig = &c
		}
		cache.igs = append(cache.igs, ig)
	}
	cache.status = event.ConnectionStatus{TenantID: cache.igs[0].TenantID, IntegrationID: cache.igs[0].ID, Connected: true,
		LastCheckedAt: time.Now().UTC(), BucketRegion: "eu-west-1"}
	payload := readExample(t, "scan-completed.1.json")
	scan, err := decodeScanExample(t, payload)
	if err != nil {
		t.Fatal(err)
	}
	p := newParser(t)
	return control.New(control.Ports{
		Cache: cache, Ledger: nopLedger{}, Scans: exampleScans{scan: scan, payload: payload},
		Test: func(_ context.Context, ig *integration.Integration) control.TestResult {
			*tested = append(*tested, ig.TenantID+"/"+ig.ID)
			return control.TestResult{Region: "eu-west-1", CheckedAt: time.Now().UTC()}
		},
		Build:   p.Build,
		Publish: func(context.Context, event.ConnectionStatus) {},
		CatchUp: func(context.Context, time.Duration) error { return nil },
	}, control.Options{Prefix: prefix, Global: true}, zap.NewNop())
}

// scopeAndOp reads the tenant scope and operation of a control request
// schema from its subject (payloads), with the examples' tenant.
func scopeAndOp(t *testing.T, schema, tenant string) (string, string) {
	t.Helper()
	subject := strings.ReplaceAll(payloads[schema], "<tenant_id>", tenant)
	scope, op, err := event.ParseControlSubject(prefix, subject)
	if err != nil {
		t.Fatalf("%s: %v", schema, err)
	}
	return scope, op
}

// TestControlExamplesServe sends every control request example to the
// exporter's control service on its subject, tenant-less or tenant-scoped:
// a valid one is served, and the reply the code builds validates against the
// reply schema of the subject (a list reply made of real get replies among
// them); an invalid one is refused with InvalidRequest, or — an unsaved
// integration the exporter's validation rejects — answered connected false
// before any request to S3.
func TestControlExamplesServe(t *testing.T) {
	set := loadSchemas(t)
	var tested []string
	svc := controlService(t, &tested)
	n := 0
	for _, ex := range loadExamples(t) {
		if !strings.HasPrefix(ex.schema, "control-") || !strings.HasSuffix(ex.schema, "-request") {
			continue
		}
		n++
		scope, op := scopeAndOp(t, ex.schema, exampleTenant)
		tested = tested[:0]
		reply := svc.Handle(context.Background(), scope, op, ex.data)
		er, isErr := reply.(event.ErrorReply)
		switch {
		case !ex.invalid && isErr:
			t.Errorf("%s: refused on %s: %s", ex.file, payloads[ex.schema], er.Error.Message)
		case !ex.invalid:
			if err := set.validateValue(t, replySchema[op], reply); err != nil {
				t.Errorf("%s: the reply %T is refused by %s.json: %v", ex.file, reply, replySchema[op], err)
			}
		case isErr:
			if er.Error.Code != string(errcode.InvalidRequest) {
				t.Errorf("%s: refused with %s, want InvalidRequest", ex.file, er.Error.Code)
			}
			if err := set.validateValue(t, "control-error-reply", er); err != nil {
				t.Errorf("%s: error reply refused by its schema: %v", ex.file, err)
			}
		default:
			tr, ok := reply.(event.TestReply)
			switch {
			case !ok:
				t.Errorf("%s: served with %T, want a refusal", ex.file, reply)
			case tr.Connected || tr.Error == nil ||
				(tr.Error.Code != string(errcode.InvalidConfiguration) && tr.Error.Code != string(errcode.S3InvalidBucketName)):
				t.Errorf("%s: test reply %+v, want connected false with InvalidConfiguration or S3InvalidBucketName", ex.file, tr)
			case len(tested) != 0:
				t.Errorf("%s: a rejected integration reached the connection test (%v)", ex.file, tested)
			}
		}
	}
	if n == 0 {
		t.Fatal("no control request examples")
	}
}

// TestTenantScopedExamplesOnAnotherTenant: what the schemas of the
// tenant-scoped requests cannot check (README "What a schema cannot check"),
// the exporter does — a valid example that names its tenant is refused on
// another tenant's subject, and one that leaves it out acts on the subject's
// tenant only (which has no such integration or scan).
func TestTenantScopedExamplesOnAnotherTenant(t *testing.T) {
	var tested []string
	svc := controlService(t, &tested)
	n := 0
	for _, ex := range loadExamples(t) {
		if ex.invalid || ex.schema == "control-list-request" || !strings.HasPrefix(ex.schema, "control-tenant-") {
			continue
		}
		n++
		scope, op := scopeAndOp(t, ex.schema, otherTenant)
		tested = tested[:0]
		reply := svc.Handle(context.Background(), scope, op, ex.data)
		if _, ok := reply.(event.TestReply); ok {
			// An unsaved integration without tenant_id takes the subject's:
			// tested as the other tenant's, never as the example tenant's.
			if len(tested) != 1 || !strings.HasPrefix(tested[0], otherTenant+"/") {
				t.Errorf("%s on %s's subject: tested %v, want one integration of %s", ex.file, otherTenant, tested, otherTenant)
			}
			continue
		}
		er, ok := reply.(event.ErrorReply)
		if !ok || er.Error.Code != string(errcode.InvalidRequest) {
			t.Errorf("%s on %s's subject: reply %+v, want InvalidRequest", ex.file, otherTenant, reply)
			continue
		}
		// Named tenant: refused for naming it, not merely because the
		// other tenant has no such integration or scan.
		var m map[string]any
		_ = json.Unmarshal(ex.data, &m)
		if _, named := m["tenant_id"]; named && !strings.Contains(er.Error.Message, "subject's tenant") {
			t.Errorf("%s on %s's subject: refused with %q, want the tenant mismatch", ex.file, otherTenant, er.Error.Message)
		}
	}
	// The list, on another tenant's subject: that tenant's integrations
	// only (none), or a refusal when the payload names the example tenant.
	if r, ok := svc.Handle(context.Background(), otherTenant, event.OpList, []byte(`{}`)).(event.ListReply); !ok || len(r.Integrations) != 0 {
		t.Errorf("list on another tenant's subject: %+v", r)
	}
	if _, ok := svc.Handle(context.Background(), otherTenant, event.OpList, readExample(t, "control-list-request.2.json")).(event.ErrorReply); !ok {
		t.Error("control-list-request.2.json on another tenant's subject: served, want InvalidRequest")
	}
	if n == 0 {
		t.Fatal("no tenant-scoped request examples")
	}
}

// TestTenantRequestsFromCode validates the requests the project's client
// sends on the tenant-scoped subjects (client.Client, exporterctl: no
// tenant_id in the payload) against the tenant-scoped schemas, and shows why
// those are schemas of their own: the tenant-less schemas refuse the same
// payloads, as the exporter does on the tenant-less subjects.
func TestTenantRequestsFromCode(t *testing.T) {
	set := loadSchemas(t)
	const id, scan = "6f1c8a2b-9d3e-4f5a-8b6c-7d8e9f0a1b2c", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	for _, tc := range []struct {
		req               any
		scoped, tenantles string
	}{
		{event.TestRequest{IntegrationID: id}, "control-tenant-test-request", "control-test-request"},
		{event.GetRequest{IntegrationID: id}, "control-tenant-get-request", "control-get-request"},
		{event.ReplayRequest{ScanID: scan}, "control-tenant-replay-request", "control-replay-request"},
		{event.ReplayRequest{ScanID: scan, IntegrationID: id}, "control-tenant-replay-request", "control-replay-request"},
		{event.ListRequest{}, "control-list-request", ""},
	} {
		if err := set.validateValue(t, tc.scoped, tc.req); err != nil {
			t.Errorf("%T %+v: refused by %s.json: %v", tc.req, tc.req, tc.scoped, err)
		}
		if tc.tenantles == "" {
			continue
		}
		if err := set.validateValue(t, tc.tenantles, tc.req); err == nil {
			t.Errorf("%T %+v: accepted by %s.json, which requires tenant_id", tc.req, tc.req, tc.tenantles)
		}
	}
	// A list reply is never null, even for a tenant with no integration.
	b, err := json.Marshal(event.ListReply{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.validate(t, "control-list-reply", b); err == nil {
		t.Errorf("%s: accepted, want refused (integrations must be an array)", b)
	}
}
