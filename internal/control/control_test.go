package control

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

// fakeCache is an integration cache held in maps.
type fakeCache struct {
	igs      map[string]*integration.Integration
	statuses map[string]event.ConnectionStatus
}

func k(tenant, id string) string { return tenant + "/" + id }

func newFakeCache(igs ...*integration.Integration) *fakeCache {
	c := &fakeCache{igs: map[string]*integration.Integration{}, statuses: map[string]event.ConnectionStatus{}}
	for _, ig := range igs {
		c.igs[k(ig.TenantID, ig.ID)] = ig
	}
	return c
}

func (c *fakeCache) Get(tenant, id string) (*integration.Integration, bool) {
	ig, ok := c.igs[k(tenant, id)]
	return ig, ok
}

func (c *fakeCache) List(tenant string) []*integration.Integration {
	var out []*integration.Integration
	for _, ig := range c.igs {
		if ig.TenantID == tenant {
			out = append(out, ig)
		}
	}
	slices.SortFunc(out, func(a, b *integration.Integration) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (c *fakeCache) Select(tenant, provider string) []*integration.Integration {
	var out []*integration.Integration
	for _, ig := range c.List(tenant) {
		if ig.Enabled && ig.HasProvider(provider) {
			out = append(out, ig)
		}
	}
	return out
}

func (c *fakeCache) Status(tenant, id string) (event.ConnectionStatus, bool) {
	st, ok := c.statuses[k(tenant, id)]
	return st, ok
}

// ledgerFuncs is a Ledger made of functions; a nil one fails the test.
type ledgerFuncs struct {
	t      *testing.T
	delete func(tenant, scan, id string) error
	swap   func(tenant, id, fp string) (bool, error)
	forget func(tenant, id string) error
}

func (l ledgerFuncs) Delete(_ context.Context, tenant, scan, id string) error {
	if l.delete == nil {
		l.t.Errorf("unexpected ledger delete of %s/%s/%s", tenant, scan, id)
		return nil
	}
	return l.delete(tenant, scan, id)
}

func (l ledgerFuncs) SwapFingerprint(_ context.Context, tenant, id, fp string) (bool, error) {
	if l.swap == nil {
		l.t.Errorf("unexpected fingerprint swap of %s/%s", tenant, id)
		return false, nil
	}
	return l.swap(tenant, id, fp)
}

func (l ledgerFuncs) ForgetFingerprint(_ context.Context, tenant, id string) error {
	if l.forget == nil {
		l.t.Errorf("unexpected fingerprint forget of %s/%s", tenant, id)
		return nil
	}
	return l.forget(tenant, id)
}

// scansFuncs is a Scans made of functions.
type scansFuncs struct {
	find      func(tenant, scan string) (string, []byte, error)
	republish func(subject string, payload []byte) error
}

func (s scansFuncs) Find(_ context.Context, tenant, scan string) (string, []byte, error) {
	return s.find(tenant, scan)
}

func (s scansFuncs) Republish(_ context.Context, subject string, payload []byte) error {
	return s.republish(subject, payload)
}

// world is a Service with recording fakes.
type world struct {
	t         *testing.T
	cache     *fakeCache
	ledger    ledgerFuncs
	scans     scansFuncs
	published []event.ConnectionStatus
	tested    []string // "<tenant>/<id>"
	counted   []bool
	changed   int
	catchUps  int
	result    TestResult
	opts      Options
}

func newWorld(t *testing.T, igs ...*integration.Integration) *world {
	return &world{t: t, cache: newFakeCache(igs...), ledger: ledgerFuncs{t: t},
		result: TestResult{Region: "eu-west-1", CheckedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
		opts:   Options{Global: true}}
}

func (w *world) service() *Service {
	return New(Ports{
		Cache: w.cache, Ledger: w.ledger, Scans: w.scans,
		Test: func(ctx context.Context, ig *integration.Integration) TestResult {
			if _, ok := ctx.Deadline(); !ok {
				w.t.Error("a connection test without a time limit")
			}
			w.tested = append(w.tested, k(ig.TenantID, ig.ID))
			return w.result
		},
		Build: (&integration.Parser{Prefix: "prowler", AllowPlaintext: true}).Build,
		Publish: func(_ context.Context, st event.ConnectionStatus) {
			w.published = append(w.published, st)
		},
		CatchUp: func(context.Context, time.Duration) error { w.catchUps++; return nil },
		Changed: func() { w.changed++ },
		Tested:  func(c bool) { w.counted = append(w.counted, c) },
	}, w.opts, zap.NewNop())
}

func saved(tenant, id, bucket string, providers ...string) *integration.Integration {
	return &integration.Integration{TenantID: tenant, ID: id, Bucket: bucket, OutputDirectory: "out", Enabled: true,
		Providers: providers, Credentials: event.Credentials{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret-value"}}
}

func js(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantError checks that reply is an error reply with code and a message
// holding each of parts.
func wantError(t *testing.T, reply any, code errcode.Code, parts ...string) {
	t.Helper()
	e, ok := reply.(event.ErrorReply)
	if !ok {
		t.Fatalf("reply %#v is not an error", reply)
	}
	if e.Error.Code != string(code) {
		t.Errorf("code %s, want %s (%s)", e.Error.Code, code, e.Error.Message)
	}
	for _, p := range parts {
		if !strings.Contains(e.Error.Message, p) {
			t.Errorf("message %q lacks %q", e.Error.Message, p)
		}
	}
}

func TestHandleRefusesWhatNoSubjectServes(t *testing.T) {
	w := newWorld(t, saved("t1", "i1", "b"))
	w.opts.Global = false
	s := w.service()
	wantError(t, s.Handle(t.Context(), "", event.OpGet, js(t, event.GetRequest{TenantID: "t1", IntegrationID: "i1"})),
		errcode.InvalidRequest, "S3EXPORTER_GLOBAL_CONTROL=false")
	wantError(t, s.Handle(t.Context(), "t*1", event.OpGet, []byte(`{}`)), errcode.InvalidRequest, "tenant token")
	wantError(t, s.Handle(t.Context(), "t1", "integrations.delete", []byte(`{}`)), errcode.InvalidRequest, "unknown control operation")
	w.opts.Global = true
	wantError(t, w.service().Handle(t.Context(), "", event.OpList, []byte(`{}`)), errcode.InvalidRequest, "tenant-scoped")
}

func TestTestOfASavedIntegrationPublishesItsStatus(t *testing.T) {
	for _, tc := range []struct {
		name, scope string
		req         event.TestRequest
	}{
		{"tenant-less", "", event.TestRequest{TenantID: "t1", IntegrationID: "i1"}},
		{"scoped", "t1", event.TestRequest{IntegrationID: "i1"}},
		{"scoped, tenant repeated", "t1", event.TestRequest{TenantID: "t1", IntegrationID: "i1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, saved("t1", "i1", "b"))
			rep, ok := w.service().Handle(t.Context(), tc.scope, event.OpTest, js(t, tc.req)).(event.TestReply)
			if !ok || !rep.Connected || rep.BucketRegion != "eu-west-1" || !rep.CheckedAt.Equal(w.result.CheckedAt) || rep.Error != nil {
				t.Fatalf("reply %+v", rep)
			}
			if len(w.published) != 1 || w.published[0].TenantID != "t1" || w.published[0].IntegrationID != "i1" || !w.published[0].Connected {
				t.Errorf("published %+v", w.published)
			}
			if !slices.Equal(w.counted, []bool{true}) {
				t.Errorf("counted %v", w.counted)
			}
		})
	}
}

func TestFailedTestSaysWhy(t *testing.T) {
	w := newWorld(t, saved("t1", "i1", "b"))
	w.result = TestResult{Err: errcode.Permanent(errcode.S3BucketAccessDenied, errors.New("access denied to bucket b"))}
	rep := w.service().Handle(t.Context(), "t1", event.OpTest, js(t, event.TestRequest{IntegrationID: "i1"})).(event.TestReply)
	if rep.Connected || rep.Error == nil || rep.Error.Code != string(errcode.S3BucketAccessDenied) || rep.CheckedAt.IsZero() {
		t.Fatalf("reply %+v", rep)
	}
	if len(w.published) != 1 || w.published[0].Connected || w.published[0].Error.Code != string(errcode.S3BucketAccessDenied) {
		t.Errorf("published %+v", w.published)
	}
	if !slices.Equal(w.counted, []bool{false}) {
		t.Errorf("counted %v", w.counted)
	}
}

func TestTestRequestsRefused(t *testing.T) {
	w := newWorld(t, saved("t1", "i1", "b"), saved("t2", "i2", "b"))
	s := w.service()
	for _, tc := range []struct {
		name, scope, body, want string
	}{
		{"bad JSON", "t1", `{`, "invalid JSON"},
		{"no id", "t1", `{}`, "integration_id"},
		{"no tenant", "", `{"integration_id":"i1"}`, "integration_id"},
		{"another tenant in the payload", "t1", `{"tenant_id":"t2","integration_id":"i2"}`, `not the subject's tenant "t1"`},
		{"another tenant's integration", "t1", `{"integration_id":"i2"}`, "not known"},
		{"unknown", "", `{"tenant_id":"t1","integration_id":"nope"}`, "not known"},
		{"unsaved of another tenant", "t1", `{"integration":{"tenant_id":"t2","id":"x","type":"amazon_s3"}}`, `not the subject's tenant "t1"`},
		{"unsaved without ids", "", `{"integration":{"type":"amazon_s3"}}`, "integration.tenant_id and integration.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, s.Handle(t.Context(), tc.scope, event.OpTest, []byte(tc.body)), errcode.InvalidRequest, tc.want)
		})
	}
	if len(w.tested) != 0 || len(w.published) != 0 {
		t.Errorf("a refused request tested %v, published %v", w.tested, w.published)
	}
}

// unsaved is an unsaved integration payload with plaintext credentials.
func unsaved(tenant, id, bucket string) map[string]any {
	in := map[string]any{
		"id": id, "type": "amazon_s3", "enabled": true, "providers": []string{"p1"},
		"configuration": map[string]any{"bucket_name": bucket, "output_directory": "out"},
		"credentials":   map[string]any{"aws_access_key_id": "AKIAOTHER", "aws_secret_access_key": "other-secret"},
	}
	if tenant != "" {
		in["tenant_id"] = tenant
	}
	return in
}

// TestUnsavedTestChangesNothingSaved is contract §7 (v1.1): testing an
// unsaved integration that shares a saved one's id answers the request
// and nothing else: no status, no cache or fingerprint change.
func TestUnsavedTestChangesNothingSaved(t *testing.T) {
	for _, tc := range []struct {
		name, scope, tenant string
	}{
		{"tenant-less", "", "t1"},
		{"scoped, tenant from the subject", "t1", ""},
		{"scoped, tenant repeated", "t1", "t1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			working := saved("t1", "i1", "working-bucket", "p1")
			w := newWorld(t, working)
			before := event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", Connected: true, BucketRegion: "us-east-1"}
			w.cache.statuses[k("t1", "i1")] = before
			w.result = TestResult{Err: errcode.Permanent(errcode.S3BucketNotFound, errors.New("no such bucket"))}
			body := js(t, map[string]any{"integration": unsaved(tc.tenant, "i1", "typo-bucket")})
			rep := w.service().Handle(t.Context(), tc.scope, event.OpTest, body).(event.TestReply)
			if rep.Connected || rep.Error == nil || rep.Error.Code != string(errcode.S3BucketNotFound) {
				t.Fatalf("reply %+v", rep)
			}
			if !slices.Equal(w.tested, []string{"t1/i1"}) {
				t.Errorf("tested %v", w.tested)
			}
			if len(w.published) != 0 {
				t.Errorf("an unsaved test published %+v", w.published)
			}
			if got, _ := w.cache.Get("t1", "i1"); got != working || got.Bucket != "working-bucket" {
				t.Errorf("the saved integration changed: %v", got)
			}
			if got := w.cache.statuses[k("t1", "i1")]; got != before {
				t.Errorf("the saved status changed: %+v", got)
			}
			if !slices.Equal(w.counted, []bool{false}) {
				t.Errorf("counted %v", w.counted)
			}
			// ledgerFuncs has no functions: a fingerprint read or write
			// would have failed the test.
		})
	}
}

func TestUnsavedTestRefusedByValidationNeverReachesS3(t *testing.T) {
	w := newWorld(t)
	in := unsaved("t1", "i1", "Not A Bucket")
	rep := w.service().Handle(t.Context(), "t1", event.OpTest, js(t, map[string]any{"integration": in})).(event.TestReply)
	if rep.Connected || rep.Error == nil || rep.Error.Code != string(errcode.S3InvalidBucketName) || rep.CheckedAt.IsZero() {
		t.Fatalf("reply %+v", rep)
	}
	if len(w.tested) != 0 || len(w.published) != 0 || len(w.counted) != 0 {
		t.Errorf("tested %v, published %v, counted %v", w.tested, w.published, w.counted)
	}
	if strings.Contains(string(js(t, rep)), "other-secret") {
		t.Error("the reply shows the secret key")
	}
}

func TestGetAndList(t *testing.T) {
	w := newWorld(t, saved("t1", "b", "bucket-b", "p1"), saved("t1", "a", "bucket-a", "p2"), saved("t2", "c", "bucket-c", "p1"))
	st := event.ConnectionStatus{TenantID: "t1", IntegrationID: "a", Connected: true, BucketRegion: "eu-west-1"}
	w.cache.statuses[k("t1", "a")] = st
	s := w.service()

	for _, tc := range []struct{ scope, body string }{
		{"t1", `{"integration_id":"a"}`},
		{"t1", `{"tenant_id":"t1","integration_id":"a"}`},
		{"", `{"tenant_id":"t1","integration_id":"a"}`},
	} {
		rep, ok := s.Handle(t.Context(), tc.scope, event.OpGet, []byte(tc.body)).(event.GetReply)
		if !ok || rep.Integration.ID != "a" || rep.Integration.Configuration.BucketName != "bucket-a" || rep.Status == nil || *rep.Status != st {
			t.Errorf("get %q on %q: %+v", tc.body, tc.scope, rep)
		}
		if strings.Contains(string(js(t, rep)), "secret-value") {
			t.Errorf("get shows the secret key: %s", js(t, rep))
		}
	}
	if rep := s.Handle(t.Context(), "t1", event.OpGet, []byte(`{"integration_id":"b"}`)).(event.GetReply); rep.Status != nil {
		t.Errorf("a status for an integration never tested: %+v", rep.Status)
	}
	wantError(t, s.Handle(t.Context(), "t1", event.OpGet, []byte(`{"integration_id":"c"}`)), errcode.InvalidRequest, "not known")
	wantError(t, s.Handle(t.Context(), "t1", event.OpGet, []byte(`{"tenant_id":"t2","integration_id":"c"}`)), errcode.InvalidRequest, "subject's tenant")
	wantError(t, s.Handle(t.Context(), "", event.OpGet, []byte(`{"integration_id":"c"}`)), errcode.InvalidRequest, "required")
	wantError(t, s.Handle(t.Context(), "t1", event.OpGet, []byte(`[`)), errcode.InvalidRequest, "invalid JSON")

	for _, body := range []string{``, `{}`, `{"tenant_id":"t1"}`} {
		l, ok := s.Handle(t.Context(), "t1", event.OpList, []byte(body)).(event.ListReply)
		if !ok || len(l.Integrations) != 2 || l.Integrations[0].Integration.ID != "a" || l.Integrations[1].Integration.ID != "b" {
			t.Fatalf("list %q: %+v", body, l)
		}
		if l.Integrations[0].Status == nil || l.Integrations[1].Status != nil {
			t.Errorf("list statuses: %+v", l)
		}
		if strings.Contains(string(js(t, l)), "secret-value") || strings.Contains(string(js(t, l)), "bucket-c") {
			t.Errorf("list shows a secret or another tenant: %s", js(t, l))
		}
	}
	wantError(t, s.Handle(t.Context(), "t1", event.OpList, []byte(`{"tenant_id":"t2"}`)), errcode.InvalidRequest, "subject's tenant")
	wantError(t, s.Handle(t.Context(), "t1", event.OpList, []byte(`{`)), errcode.InvalidRequest, "invalid JSON")
	empty := s.Handle(t.Context(), "t3", event.OpList, []byte(`{}`))
	if got := string(js(t, empty)); got != `{"integrations":[]}` {
		t.Errorf("list of a tenant without integrations = %s", got)
	}
}

const scanSubject = "prowler.scans.completed.t1.p1"

func storedScan(t *testing.T, tenant string) []byte {
	return js(t, map[string]any{
		"scan_id": "s1", "tenant_id": tenant,
		"provider":   map[string]any{"id": "p1", "type": "aws", "uid": "111122223333"},
		"started_at": "2025-08-05T12:00:00Z", "completed_at": "2025-08-05T12:41:07Z",
		"artifacts": []any{map[string]any{"format": "csv", "source": "nats-os://PROWLER_OUTPUTS/" + tenant + "/s1/out.csv"}},
	})
}

func TestReplayForgetsTheTargetsLedgerThenRepublishes(t *testing.T) {
	w := newWorld(t, saved("t1", "a", "b", "p1"), saved("t1", "b", "b", "p1"), saved("t1", "other", "b", "p2"))
	var calls []string
	payload := storedScan(t, "t1")
	w.ledger.delete = func(tenant, scan, id string) error {
		calls = append(calls, "delete "+tenant+"/"+scan+"/"+id)
		return nil
	}
	w.scans = scansFuncs{
		find: func(tenant, scan string) (string, []byte, error) {
			calls = append(calls, "find "+tenant+"/"+scan)
			return scanSubject, payload, nil
		},
		republish: func(subject string, p []byte) error {
			if string(p) != string(payload) {
				t.Error("republished other bytes")
			}
			calls = append(calls, "publish "+subject)
			return nil
		},
	}
	s := w.service()
	rep := s.Handle(t.Context(), "t1", event.OpReplay, []byte(`{"scan_id":"s1"}`))
	if rep != (event.ReplayReply{Accepted: true}) {
		t.Fatalf("reply %+v", rep)
	}
	want := []string{"find t1/s1", "delete t1/s1/a", "delete t1/s1/b", "publish " + scanSubject}
	if !slices.Equal(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
	calls = nil
	if rep := s.Handle(t.Context(), "", event.OpReplay, []byte(`{"tenant_id":"t1","scan_id":"s1","integration_id":"b"}`)); rep != (event.ReplayReply{Accepted: true}) {
		t.Fatalf("reply %+v", rep)
	}
	if want := []string{"find t1/s1", "delete t1/s1/b", "publish " + scanSubject}; !slices.Equal(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
}

func TestReplayRefusals(t *testing.T) {
	w := newWorld(t, saved("t1", "a", "b", "p1"), saved("t1", "other", "b", "p2"))
	found := func(tenant string, payload []byte) func(string, string) (string, []byte, error) {
		return func(string, string) (string, []byte, error) {
			return "prowler.scans.completed." + tenant + ".p1", payload, nil
		}
	}
	published := 0
	for _, tc := range []struct {
		name, scope, body string
		find              func(string, string) (string, []byte, error)
		del               func(string, string, string) error
		republish         error
		code              errcode.Code
		want              string
	}{
		{name: "bad JSON", scope: "t1", body: `nope`, code: errcode.InvalidRequest, want: "invalid JSON"},
		{name: "no scan", scope: "t1", body: `{}`, code: errcode.InvalidRequest, want: "scan_id"},
		{name: "no tenant", body: `{"scan_id":"s1"}`, code: errcode.InvalidRequest, want: "tenant_id"},
		{name: "bad scan id", scope: "t1", body: `{"scan_id":"s.1"}`, code: errcode.InvalidRequest, want: "scan_id"},
		{name: "another tenant", scope: "t1", body: `{"tenant_id":"t2","scan_id":"s1"}`, code: errcode.InvalidRequest, want: "subject's tenant"},
		{name: "not found", scope: "t1", body: `{"scan_id":"s1"}`, code: errcode.InvalidRequest, want: "not in the scans stream",
			find: func(string, string) (string, []byte, error) { return "", nil, streams.ErrScanNotFound }},
		{name: "stream error", scope: "t1", body: `{"scan_id":"s1"}`, code: errcode.InternalError, want: "stream down",
			find: func(string, string) (string, []byte, error) { return "", nil, errors.New("stream down") }},
		{name: "malformed", scope: "t1", body: `{"scan_id":"s1"}`, code: errcode.InvalidRequest, want: "malformed",
			find: found("t1", []byte(`{"scan_id":"s1"}`))},
		{name: "integration without the provider", scope: "t1", body: `{"scan_id":"s1","integration_id":"other"}`,
			code: errcode.InvalidRequest, want: "does not export provider p1", find: found("t1", storedScan(t, "t1"))},
		{name: "ledger error", scope: "t1", body: `{"scan_id":"s1"}`, code: errcode.InternalError, want: "clearing the ledger",
			find: found("t1", storedScan(t, "t1")), del: func(string, string, string) error { return errors.New("kv down") }},
		{name: "publish error", scope: "t1", body: `{"scan_id":"s1"}`, code: errcode.InternalError, want: "re-publishing",
			find: found("t1", storedScan(t, "t1")), del: func(string, string, string) error { return nil }, republish: errors.New("no ack")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.ledger = ledgerFuncs{t: t, delete: tc.del}
			w.scans = scansFuncs{find: tc.find, republish: func(string, []byte) error { published++; return tc.republish }}
			if tc.find == nil {
				w.scans.find = func(string, string) (string, []byte, error) {
					t.Error("the stream was read for a refused request")
					return "", nil, streams.ErrScanNotFound
				}
			}
			wantError(t, w.service().Handle(t.Context(), tc.scope, event.OpReplay, []byte(tc.body)), tc.code, tc.want)
		})
	}
	if published != 1 { // the publish error case only
		t.Errorf("%d republishes", published)
	}
}

func TestOnChange(t *testing.T) {
	ig := saved("t1", "i1", "b", "p1")
	fp := ig.Fingerprint()
	for _, tc := range []struct {
		name    string
		ch      integration.Change
		perr    error
		stored  string // the fingerprint held; "" none
		swapErr error
		tests   int
		status  string // code of the published status; "connected"; "" none
		forgets int
	}{
		{name: "new integration", ch: integration.Change{TenantID: "t1", ID: "i1", Action: event.ActionUpsert, Integration: ig},
			tests: 1, status: "connected"},
		{name: "unchanged bucket and credentials", ch: integration.Change{TenantID: "t1", ID: "i1", Action: event.ActionUpsert, Integration: ig},
			stored: fp},
		{name: "fingerprint unreadable: test anyway", ch: integration.Change{TenantID: "t1", ID: "i1", Action: event.ActionUpsert, Integration: ig},
			stored: fp, swapErr: errors.New("kv down"), tests: 1, status: "connected"},
		{name: "rejected", ch: integration.Change{TenantID: "t1", ID: "i1"}, perr: errcode.Permanent(errcode.S3InvalidBucketName, errors.New("bad name")),
			status: string(errcode.S3InvalidBucketName), forgets: 1},
		{name: "rejected without ids", ch: integration.Change{}, perr: errors.New("unreadable")},
		{name: "deleted", ch: integration.Change{TenantID: "t1", ID: "i1", Action: event.ActionDelete}, forgets: 1},
		{name: "another type", ch: integration.Change{TenantID: "t1", ID: "i1", Action: event.ActionUpsert, Ignored: true}, forgets: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			forgets := 0
			stored := tc.stored
			w.ledger = ledgerFuncs{t: t,
				swap: func(tenant, id, fp string) (bool, error) {
					if tc.swapErr != nil {
						return false, tc.swapErr
					}
					changed := fp != stored
					stored = fp
					return changed, nil
				},
				forget: func(string, string) error { forgets++; return errors.New("forgetting fails: logged only") },
			}
			w.service().OnChange(t.Context(), tc.ch, tc.perr)
			if len(w.tested) != tc.tests || w.catchUps != tc.tests {
				t.Errorf("%d tests, %d catch-ups, want %d", len(w.tested), w.catchUps, tc.tests)
			}
			switch {
			case tc.status == "" && len(w.published) != 0:
				t.Errorf("published %+v", w.published)
			case tc.status == "connected" && (len(w.published) != 1 || !w.published[0].Connected):
				t.Errorf("published %+v, want connected", w.published)
			case tc.status != "" && tc.status != "connected" && (len(w.published) != 1 || w.published[0].Connected ||
				w.published[0].Error == nil || w.published[0].Error.Code != tc.status || w.published[0].LastCheckedAt.IsZero()):
				t.Errorf("published %+v, want %s", w.published, tc.status)
			}
			if forgets != tc.forgets {
				t.Errorf("%d fingerprint forgets, want %d", forgets, tc.forgets)
			}
			if w.changed != 1 {
				t.Errorf("Changed told %d times", w.changed)
			}
		})
	}
}

func TestFingerprintFollowsWhatTheTestDependsOn(t *testing.T) {
	base := saved("t1", "i1", "b", "p1")
	same := *base
	same.Providers = []string{"p2"}
	same.OutputDirectory = "elsewhere"
	same.Enabled = false
	if base.Fingerprint() != same.Fingerprint() {
		t.Error("providers, directory or enabled changed the fingerprint")
	}
	for name, mutate := range map[string]func(*integration.Integration){
		"bucket":   func(ig *integration.Integration) { ig.Bucket = "other" },
		"key":      func(ig *integration.Integration) { ig.Credentials.AccessKeyID = "AKIAOTHER" },
		"secret":   func(ig *integration.Integration) { ig.Credentials.SecretAccessKey = "x" },
		"role":     func(ig *integration.Integration) { ig.Credentials.RoleARN = "arn:aws:iam::1:role/r" },
		"external": func(ig *integration.Integration) { ig.Credentials.ExternalID = "e" },
		"duration": func(ig *integration.Integration) { ig.Credentials.SessionDuration = 900 },
	} {
		c := *base
		mutate(&c)
		if base.Fingerprint() == c.Fingerprint() {
			t.Errorf("a changed %s keeps the fingerprint", name)
		}
	}
	if strings.Contains(base.Fingerprint(), "secret-value") {
		t.Error("the fingerprint holds the secret")
	}
}

// The Service is used from several request goroutines at once.
func TestServiceIsSafeForConcurrentRequests(t *testing.T) {
	w := newWorld(t, saved("t1", "i1", "b", "p1"))
	var mu sync.Mutex
	n := 0
	s := New(Ports{Cache: w.cache, Ledger: w.ledger, Scans: w.scans,
		Test:    func(context.Context, *integration.Integration) TestResult { return w.result },
		Build:   (&integration.Parser{AllowPlaintext: true}).Build,
		Publish: func(context.Context, event.ConnectionStatus) { mu.Lock(); n++; mu.Unlock() },
		CatchUp: func(context.Context, time.Duration) error { return nil },
	}, Options{}, zap.NewNop())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { s.Handle(t.Context(), "t1", event.OpTest, []byte(`{"integration_id":"i1"}`)) })
	}
	wg.Wait()
	if n != 8 {
		t.Errorf("%d statuses published, want 8", n)
	}
}
