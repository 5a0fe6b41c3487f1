package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// fixtureKey is the Fernet key of internal/fernet/testdata/prowler_fixture.json; the
// encrypted_credentials of examples/integration-changed.2.json is that
// fixture's token (made by Python's cryptography, as Prowler App does). A test
// key, not a secret.
const fixtureKey = "alc9xL6sbKxQAKS2mdokH4oVuam_boAquplunp5Nie0="

const prefix = "prowler"

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tokensOf reads two ids of a payload to build the subject it would be
// published on; a missing one becomes "unknown".
func tokensOf(t *testing.T, data []byte, first, second func(map[string]any) any) (string, string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	str := func(v any) string {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
		return "unknown"
	}
	return str(first(m)), str(second(m))
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func decodeScanExample(t *testing.T, data []byte) (*event.ScanCompleted, error) {
	t.Helper()
	tenant, provider := tokensOf(t, data,
		func(m map[string]any) any { return m["tenant_id"] },
		func(m map[string]any) any { return field(m, "provider", "id") })
	return event.DecodeScan(prefix, event.Subject(prefix, event.ScansCompleted, tenant, provider), data)
}

func newParser(t *testing.T) *integration.Parser {
	t.Helper()
	key, err := fernet.ParseKey(fixtureKey)
	if err != nil {
		t.Fatal(err)
	}
	// AllowAmbient: an example without credentials is valid on the wire;
	// whether the exporter's own identity may write for it is an operator
	// setting (S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS), tested in integration.
	return &integration.Parser{Prefix: prefix, Key: key, AllowPlaintext: true, AllowAmbient: true}
}

func parseChangeExample(t *testing.T, p *integration.Parser, data []byte) (integration.Change, error) {
	t.Helper()
	tenant, id := tokensOf(t, data,
		func(m map[string]any) any { return field(m, "integration", "tenant_id") },
		func(m map[string]any) any { return field(m, "integration", "id") })
	return p.ParseChange(event.Subject(prefix, event.IntegrationsChanged, tenant, id), data)
}

// TestScanExamplesDecode: what the schema accepts, event.DecodeScan accepts
// on the matching subject, and what it refuses, DecodeScan refuses as
// malformed (every rule of the scan-completed schema is one DecodeScan
// enforces).
func TestScanExamplesDecode(t *testing.T) {
	n := 0
	for _, ex := range loadExamples(t) {
		if ex.schema != "scan-completed" {
			continue
		}
		n++
		scan, err := decodeScanExample(t, ex.data)
		switch {
		case ex.invalid && err == nil:
			t.Errorf("%s: DecodeScan accepted it", ex.file)
		case ex.invalid && !isMalformed(err):
			t.Errorf("%s: DecodeScan error %v is not a MalformedError", ex.file, err)
		case !ex.invalid && err != nil:
			t.Errorf("%s: DecodeScan refused it: %v", ex.file, err)
		case !ex.invalid && (scan.ScanID == "" || len(scan.Artifacts) == 0):
			t.Errorf("%s: decoded %+v", ex.file, scan)
		}
	}
	if n == 0 {
		t.Fatal("no scan-completed examples")
	}
}

// schemaOnly lists the invalid integration-changed examples that the schema
// refuses but the exporter does not treat as an error, and why.
var schemaOnly = map[string]string{
	"integration-changed.invalid.10.json": "an upsert without type is ignored by the exporter (not amazon_s3); the schema requires type so that a forgotten one is caught",
}

// TestIntegrationExamplesParse: the valid integration-changed examples are
// accepted by the exporter's parser (upserts of amazon_s3 cached, other types
// ignored, deletes applied), the invalid ones rejected.
func TestIntegrationExamplesParse(t *testing.T) {
	p := newParser(t)
	n := 0
	for _, ex := range loadExamples(t) {
		if ex.schema != "integration-changed" {
			continue
		}
		n++
		name := filepath.Base(ex.file)
		ch, err := parseChangeExample(t, p, ex.data)
		why, exempt := schemaOnly[name]
		switch {
		case ex.invalid && exempt:
			if err != nil {
				t.Errorf("%s: the exporter now refuses it (%v): remove it from schemaOnly (%s)", ex.file, err, why)
			}
		case ex.invalid && err == nil:
			t.Errorf("%s: ParseChange accepted it", ex.file)
		case ex.invalid:
			if c := errcode.From(err).Code; c != errcode.InvalidConfiguration && c != errcode.S3InvalidBucketName {
				t.Errorf("%s: rejected with code %s, want InvalidConfiguration or S3InvalidBucketName", ex.file, c)
			}
		case err != nil:
			t.Errorf("%s: ParseChange refused it: %v", ex.file, err)
		case ch.Action == event.ActionUpsert && ch.Integration == nil && !ch.Ignored:
			t.Errorf("%s: upsert neither cached nor ignored", ex.file)
		}
	}
	if n == 0 {
		t.Fatal("no integration-changed examples")
	}
}

// cachedIntegration is an integration as the exporter caches it, parsed from
// an example.
func cachedIntegration(t *testing.T, example string) *integration.Integration {
	t.Helper()
	ch, err := parseChangeExample(t, newParser(t), readExample(t, example))
	if err != nil || ch.Integration == nil {
		t.Fatalf("%s: %v (integration %v)", example, err, ch.Integration)
	}
	return ch.Integration
}

// TestExportStatusFromCode builds export statuses the way consumer.Reporter
// does — keys from exporter.ObjectKey, errors from errcode — and validates
// what json.Marshal makes of them.
func TestExportStatusFromCode(t *testing.T) {
	set := loadSchemas(t)
	scan, err := decodeScanExample(t, readExample(t, "scan-completed.1.json"))
	if err != nil {
		t.Fatal(err)
	}
	ig := cachedIntegration(t, "integration-changed.1.json")
	started := time.Now().UTC()
	base := func(state string, attempt int) event.ExportStatus {
		return event.ExportStatus{
			TenantID: scan.TenantID, IntegrationID: ig.ID, ScanID: scan.ScanID, ProviderID: scan.Provider.ID,
			State: state, Attempt: attempt, Objects: []event.ObjectRecord{}, Errors: []event.ExportError{},
			StartedAt: started, FinishedAt: time.Now().UTC(),
		}
	}
	object := func(a event.Artifact) event.ObjectRecord {
		return event.ObjectRecord{Format: a.Format, Framework: a.Framework,
			Key: exporter.ObjectKey(ig.OutputDirectory, a, scan.Provider.UID, scan.StartedAt), Size: 2447165, ETag: "5d41402abc4b2a76b9719d911017c592"}
	}
	failure := func(a event.Artifact, e *errcode.Error) event.ExportError {
		return event.ExportError{Format: a.Format, Framework: a.Framework,
			Key:  exporter.ObjectKey(ig.OutputDirectory, a, scan.Provider.UID, scan.StartedAt),
			Code: string(e.Code), Message: e.Message(), Retryable: e.Retryable}
	}

	succeeded := base(event.StateSucceeded, 1)
	for _, a := range scan.Artifacts {
		succeeded.Objects = append(succeeded.Objects, object(a))
	}
	retrying := base(event.StateRetrying, 2)
	retrying.Objects = append(retrying.Objects, object(scan.Artifacts[0]))
	retrying.Errors = append(retrying.Errors,
		failure(scan.Artifacts[1], errcode.Retryable(errcode.S3ClientError, errors.New("connection reset"))),
		failure(scan.Artifacts[4], errcode.Permanent(errcode.ChecksumMismatch, errors.New("sha256 differs"))))
	failed := base(event.StateFailed, 5)
	for _, c := range errcode.All { // every code of §5 must be accepted
		failed.Errors = append(failed.Errors, failure(scan.Artifacts[4], errcode.Permanentf(c, "failed with %s", c)))
	}
	exhausted := base(event.StateFailed, 5)
	exhausted.Errors = append(exhausted.Errors, failure(scan.Artifacts[0], errcode.From(fmt.Errorf("uploading: %w", context.DeadlineExceeded))))

	for name, st := range map[string]event.ExportStatus{"succeeded": succeeded, "retrying": retrying, "failed": failed, "exhausted": exhausted} {
		if err := set.validateValue(t, "export-status", st); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	// What the schema must catch if the code changed.
	nilSlices := succeeded
	nilSlices.Objects, nilSlices.Errors = nil, nil // would marshal as null
	local := succeeded
	local.FinishedAt = local.FinishedAt.In(time.FixedZone("CEST", 2*3600)) // not UTC
	zeroAttempt := succeeded
	zeroAttempt.Attempt = 0
	badCode := retrying
	badCode.Errors = []event.ExportError{failure(scan.Artifacts[1], errcode.Retryable("SlowDown", nil))}
	for name, st := range map[string]event.ExportStatus{"nil slices": nilSlices, "local time": local, "attempt 0": zeroAttempt, "unknown code": badCode} {
		if err := set.validateValue(t, "export-status", st); err == nil {
			t.Errorf("%s: accepted, want refused", name)
		}
	}
}

// TestConnectionStatusFromCode builds connection statuses the way the
// reporter and the daemon do (connected, disconnected, rejected
// configuration) and validates them.
func TestConnectionStatusFromCode(t *testing.T) {
	set := loadSchemas(t)
	ig := cachedIntegration(t, "integration-changed.1.json")
	now := time.Now().UTC()
	connected := event.ConnectionStatus{TenantID: ig.TenantID, IntegrationID: ig.ID, Connected: true,
		LastCheckedAt: now, BucketRegion: "eu-west-1"}
	denied := errcode.Permanent(errcode.S3BucketAccessDenied, errors.New("writing the beacon failed"))
	disconnected := event.ConnectionStatus{TenantID: ig.TenantID, IntegrationID: ig.ID, Connected: false,
		LastCheckedAt: now, BucketRegion: "eu-west-1", Error: &event.ErrorBody{Code: string(denied.Code), Message: denied.Message()}}

	// A rejected configuration: the parser's error, as the daemon reports it.
	ch, err := parseChangeExample(t, newParser(t), readExample(t, "integration-changed.invalid.6.json"))
	if err == nil {
		t.Fatal("integration-changed.invalid.6.json was accepted")
	}
	e := errcode.From(err)
	rejected := event.ConnectionStatus{TenantID: ch.TenantID, IntegrationID: ch.ID, Connected: false,
		LastCheckedAt: now, Error: &event.ErrorBody{Code: string(e.Code), Message: e.Message()}}
	if e.Code != errcode.S3InvalidBucketName {
		t.Errorf("bad bucket name rejected with %s, want S3InvalidBucketName", e.Code)
	}

	// A destination's breaker opening and closing (the exporter's OnBreaker).
	breakerOpen := event.ConnectionStatus{TenantID: ch.TenantID, IntegrationID: ch.ID, Connected: false, LastCheckedAt: now,
		Error: &event.ErrorBody{Code: string(errcode.Timeout), Message: "no response from S3 within the response timeout"}, Breaker: event.BreakerOpen}
	breakerClosed := connected
	breakerClosed.Breaker = event.BreakerClosed

	for name, st := range map[string]event.ConnectionStatus{"connected": connected, "disconnected": disconnected, "rejected": rejected,
		"breaker open": breakerOpen, "breaker closed": breakerClosed} {
		if err := set.validateValue(t, "connection-status", st); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		reply := event.TestReply{Connected: st.Connected, BucketRegion: st.BucketRegion, CheckedAt: st.LastCheckedAt, Error: st.Error}
		if err := set.validateValue(t, "control-test-reply", reply); err != nil {
			t.Errorf("test reply %s: %v", name, err)
		}
	}

	badBreaker := breakerOpen
	badBreaker.Breaker = "ajar"
	if err := set.validateValue(t, "connection-status", badBreaker); err == nil {
		t.Error("breaker \"ajar\": accepted, want refused")
	}

	noError := disconnected
	noError.Error = nil
	if err := set.validateValue(t, "connection-status", noError); err == nil {
		t.Error("disconnected without an error: accepted, want refused")
	}
	if err := set.validateValue(t, "control-test-reply", event.TestReply{Connected: true, CheckedAt: now,
		Error: &event.ErrorBody{Code: string(errcode.Timeout), Message: "x"}}); err == nil {
		t.Error("connected with an error: accepted, want refused")
	}
}

// TestGetReplyFromCode builds get replies from cached integrations the way
// the daemon does (Integration.Redacted) and validates them: in particular,
// no secret gets through.
func TestGetReplyFromCode(t *testing.T) {
	set := loadSchemas(t)
	status := event.ConnectionStatus{TenantID: "t", IntegrationID: "i", Connected: true, LastCheckedAt: time.Now().UTC(), BucketRegion: "eu-west-1"}
	for _, ex := range []string{"integration-changed.1.json", "integration-changed.2.json", "integration-changed.5.json", "integration-changed.6.json"} {
		ig := cachedIntegration(t, ex)
		for _, st := range []*event.ConnectionStatus{nil, &status} {
			if err := set.validateValue(t, "control-get-reply", event.GetReply{Integration: ig.Redacted(), Status: st}); err != nil {
				t.Errorf("%s (status %v): %v", ex, st != nil, err)
			}
		}
		// The same payload with the secrets in clear must be refused.
		leaked := ig.Redacted()
		if c := ig.Credentials; c.SecretAccessKey != "" {
			wire, err := c.WireJSON()
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(event.GetReply{Integration: leaked})
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			var creds map[string]any
			_ = json.Unmarshal(wire, &creds)
			m["integration"].(map[string]any)["credentials"] = creds
			b, _ = json.Marshal(m)
			if err := set.validate(t, "control-get-reply", b); err == nil {
				t.Errorf("%s: a reply with clear credentials was accepted", ex)
			}
		}
	}
}

// TestControlRepliesFromCode validates the other replies the daemon sends.
func TestControlRepliesFromCode(t *testing.T) {
	set := loadSchemas(t)
	if err := set.validateValue(t, "control-replay-reply", event.ReplayReply{Accepted: true}); err != nil {
		t.Error(err)
	}
	if err := set.validateValue(t, "control-replay-reply", event.ReplayReply{}); err == nil {
		t.Error("accepted false: accepted, want refused")
	}
	bad := event.ErrorReply{Error: event.ErrorBody{Code: string(errcode.InvalidRequest), Message: "tenant_id and integration_id are required"}}
	if err := set.validateValue(t, "control-error-reply", bad); err != nil {
		t.Error(err)
	}
}

// TestExamplesRoundTripGoTypes decodes every valid example of an outgoing
// payload into its Go type and validates what json.Marshal makes of it: the
// Go types must carry every field the schemas require.
func TestExamplesRoundTripGoTypes(t *testing.T) {
	set := loadSchemas(t)
	types := map[string]func() any{
		"export-status":        func() any { return new(event.ExportStatus) },
		"connection-status":    func() any { return new(event.ConnectionStatus) },
		"control-test-reply":   func() any { return new(event.TestReply) },
		"control-get-reply":    func() any { return new(event.GetReply) },
		"control-replay-reply": func() any { return new(event.ReplayReply) },
		"control-error-reply":  func() any { return new(event.ErrorReply) },
		// Requests: the Go types must at least decode them.
		"control-test-request":   func() any { return new(event.TestRequest) },
		"control-get-request":    func() any { return new(event.GetRequest) },
		"control-replay-request": func() any { return new(event.ReplayRequest) },
		// Contract v1.1, tenant-scoped subjects: the same Go types.
		"control-list-reply":            func() any { return new(event.ListReply) },
		"control-list-request":          func() any { return new(event.ListRequest) },
		"control-tenant-test-request":   func() any { return new(event.TestRequest) },
		"control-tenant-get-request":    func() any { return new(event.GetRequest) },
		"control-tenant-replay-request": func() any { return new(event.ReplayRequest) },
	}
	outgoing := map[string]bool{"export-status": true, "connection-status": true, "control-test-reply": true,
		"control-get-reply": true, "control-replay-reply": true, "control-error-reply": true, "control-list-reply": true}
	// Every schema but the incoming events (decoded by TestScanExamplesDecode
	// and TestIntegrationExamplesParse) and the manifest (manifest_test.go)
	// must have its Go type here, so a new schema cannot skip this test.
	for name := range payloads {
		if _, ok := types[name]; !ok && name != "scan-completed" && name != "integration-changed" && name != "manifest" {
			t.Errorf("%s: no Go type in TestExamplesRoundTripGoTypes", name)
		}
	}
	for _, ex := range loadExamples(t) {
		mk, ok := types[ex.schema]
		if !ok || ex.invalid {
			continue
		}
		v := mk()
		if err := json.Unmarshal(ex.data, v); err != nil {
			t.Errorf("%s: does not decode into %T: %v", ex.file, v, err)
			continue
		}
		if !outgoing[ex.schema] {
			continue
		}
		if err := set.validateValue(t, ex.schema, v); err != nil {
			t.Errorf("%s: re-encoded from %T, refused: %v", ex.file, v, err)
		}
	}
}

func isMalformed(err error) bool {
	var m *event.MalformedError
	return errors.As(err, &m)
}
