package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prowler-cloud/s3-exporter/event"
)

const (
	prefix      = "prowler"
	scanSubject = "prowler.scans.completed.t1.p1"
	sha         = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
)

// validScan returns a valid scan-completed payload for scanSubject, as a
// generic map so that a test can remove or change any field.
func validScan() map[string]any {
	return map[string]any{
		"scan_id":   "s1",
		"tenant_id": "t1",
		"provider": map[string]any{
			"id": "p1", "type": "aws", "uid": "111122223333",
		},
		"started_at":   "2025-08-05T12:00:00Z",
		"completed_at": "2025-08-05T12:41:07Z",
		"artifacts": []any{
			map[string]any{"format": "csv", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/out.csv", "sha256": sha, "size": 2447165},
			map[string]any{"format": "html", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/out.html"},
			map[string]any{"format": "json-ocsf", "source": "file:///var/lib/prowler/out/s1/out.ocsf.json"},
			map[string]any{"format": "json-asff", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/out.asff.json"},
			map[string]any{"format": "compliance", "framework": "cis_5.0_aws", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/cis.csv"},
			map[string]any{"format": "compliance", "framework": "iso27001_2013_aws", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/iso.csv"},
		},
	}
}

func artifact(m map[string]any, i int) map[string]any {
	return m["artifacts"].([]any)[i].(map[string]any)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeScanValid(t *testing.T) {
	t.Parallel()
	s, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, validScan()))
	if err != nil {
		t.Fatalf("DecodeScan: %v", err)
	}
	if s.ScanID != "s1" || s.TenantID != "t1" || s.Provider.ID != "p1" || s.Provider.UID != "111122223333" || s.Provider.Type != "aws" {
		t.Errorf("decoded %+v", s)
	}
	if want := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC); !s.StartedAt.Equal(want) {
		t.Errorf("started_at = %v", s.StartedAt)
	}
	if s.CompletedAt == nil || !s.CompletedAt.Equal(time.Date(2025, 8, 5, 12, 41, 7, 0, time.UTC)) {
		t.Errorf("completed_at = %v", s.CompletedAt)
	}
	if len(s.Artifacts) != 6 {
		t.Fatalf("%d artifacts", len(s.Artifacts))
	}
	a := s.Artifacts[0]
	if a.Format != event.FormatCSV || a.SHA256 != sha || a.Size == nil || *a.Size != 2447165 {
		t.Errorf("artifact 0 = %+v", a)
	}
	if s.Artifacts[1].Size != nil || s.Artifacts[1].SHA256 != "" {
		t.Errorf("artifact 1 has a size or sha256: %+v", s.Artifacts[1])
	}
	if got := s.Artifacts[4].Name(); got != "compliance/cis_5.0_aws" {
		t.Errorf("Name() = %q", got)
	}
	if got := s.Artifacts[2].Name(); got != "json-ocsf" {
		t.Errorf("Name() = %q", got)
	}
}

func TestDecodeScanOptionalFields(t *testing.T) {
	t.Parallel()
	m := validScan()
	delete(m, "completed_at")
	delete(m["provider"].(map[string]any), "type")
	m["artifacts"] = []any{map[string]any{"format": "csv", "source": "nats-os://B/t1/s1/x"}}
	s, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
	if err != nil {
		t.Fatalf("DecodeScan: %v", err)
	}
	if s.CompletedAt != nil || s.Provider.Type != "" {
		t.Errorf("decoded %+v", s)
	}
	// Size 0 is a real size (an empty file), not a missing one.
	m["artifacts"] = []any{map[string]any{"format": "csv", "source": "nats-os://B/t1/s1/x", "size": 0}}
	s, err = event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
	if err != nil {
		t.Fatalf("DecodeScan: %v", err)
	}
	if s.Artifacts[0].Size == nil || *s.Artifacts[0].Size != 0 {
		t.Errorf("size 0 decoded as %v", s.Artifacts[0].Size)
	}
}

func TestDecodeScanUnknownFieldsIgnored(t *testing.T) {
	t.Parallel()
	m := validScan()
	m["engine_version"] = "5.10.0"
	m["provider"].(map[string]any)["alias"] = "prod"
	artifact(m, 0)["compression"] = "none"
	artifact(m, 0)["extra"] = map[string]any{"nested": []int{1, 2}}
	if _, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m)); err != nil {
		t.Fatalf("unknown fields were not ignored: %v", err)
	}
}

func TestDecodeScanNonUTCStart(t *testing.T) {
	t.Parallel()
	m := validScan()
	m["started_at"] = "2025-08-05T14:00:00+02:00"
	s, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !s.StartedAt.Equal(time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("started_at = %v", s.StartedAt)
	}
}

func TestDecodeScanMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
		reason string // a part of the MalformedError's reason
	}{
		{"missing scan_id", func(m map[string]any) { delete(m, "scan_id") }, "missing scan_id"},
		{"empty scan_id", func(m map[string]any) { m["scan_id"] = "" }, "missing scan_id"},
		{"missing tenant_id", func(m map[string]any) { delete(m, "tenant_id") }, "missing tenant_id"},
		{"missing provider", func(m map[string]any) { delete(m, "provider") }, "missing provider.id"},
		{"missing provider.id", func(m map[string]any) { delete(m["provider"].(map[string]any), "id") }, "missing provider.id"},
		{"missing provider.uid", func(m map[string]any) { delete(m["provider"].(map[string]any), "uid") }, "missing provider.uid"},
		{"missing started_at", func(m map[string]any) { delete(m, "started_at") }, "missing started_at"},
		{"zero started_at", func(m map[string]any) { m["started_at"] = "0001-01-01T00:00:00Z" }, "missing started_at"},
		{"bad started_at", func(m map[string]any) { m["started_at"] = "yesterday" }, "invalid JSON"},
		{"started_at not RFC 3339", func(m map[string]any) { m["started_at"] = "2025-08-05 12:00:00" }, "invalid JSON"},
		{"missing artifacts", func(m map[string]any) { delete(m, "artifacts") }, "at least one artifact"},
		{"empty artifacts", func(m map[string]any) { m["artifacts"] = []any{} }, "at least one artifact"},
		{"missing format", func(m map[string]any) { delete(artifact(m, 1), "format") }, "artifacts[1]: missing format"},
		{"missing source", func(m map[string]any) { delete(artifact(m, 2), "source") }, "artifacts[2]: missing source"},
		{"tenant differs from subject", func(m map[string]any) { m["tenant_id"] = "t2" }, `tenant_id "t2" differs from the subject's tenant "t1"`},
		{"provider differs from subject", func(m map[string]any) { m["provider"].(map[string]any)["id"] = "p2" }, `provider.id "p2" differs`},
		{"scan_id with a dot", func(m map[string]any) { m["scan_id"] = "s.1" }, "scan_id"},
		{"scan_id with a slash", func(m map[string]any) { m["scan_id"] = "../s1" }, "scan_id"},
		{"scan_id with a wildcard", func(m map[string]any) { m["scan_id"] = "*" }, "scan_id"},
		{"scan_id too long", func(m map[string]any) { m["scan_id"] = strings.Repeat("a", 129) }, "scan_id"},
		{"unknown format", func(m map[string]any) { artifact(m, 0)["format"] = "xlsx" }, `unknown format "xlsx"`},
		{"format in upper case", func(m map[string]any) { artifact(m, 0)["format"] = "CSV" }, `unknown format "CSV"`},
		{"compliance without framework", func(m map[string]any) { delete(artifact(m, 4), "framework") }, "missing framework"},
		{"framework with a slash", func(m map[string]any) { artifact(m, 4)["framework"] = "cis/5.0" }, "must match"},
		{"framework with a space", func(m map[string]any) { artifact(m, 4)["framework"] = "cis 5.0" }, "must match"},
		{"framework dot-dot", func(m map[string]any) { artifact(m, 4)["framework"] = ".." }, "must match"},
		{"framework dot", func(m map[string]any) { artifact(m, 4)["framework"] = "." }, "must match"},
		{"framework on csv", func(m map[string]any) { artifact(m, 0)["framework"] = "cis_5.0_aws" }, "only allowed for the compliance format"},
		{"duplicate framework", func(m map[string]any) { artifact(m, 5)["framework"] = "cis_5.0_aws" }, "compliance/cis_5.0_aws appears more than once"},
		{"duplicate format", func(m map[string]any) { artifact(m, 1)["format"] = "csv" }, "csv appears more than once"},
		{"sha256 not hex", func(m map[string]any) { artifact(m, 0)["sha256"] = strings.Repeat("z", 64) }, "sha256"},
		{"sha256 too short", func(m map[string]any) { artifact(m, 0)["sha256"] = sha[:62] }, "sha256"},
		{"sha256 too long", func(m map[string]any) { artifact(m, 0)["sha256"] = sha + "00" }, "sha256"},
		{"negative size", func(m map[string]any) { artifact(m, 0)["size"] = -1 }, "size must not be negative"},
		{"size not a number", func(m map[string]any) { artifact(m, 0)["size"] = "12" }, "invalid JSON"},
		{"source without scheme", func(m map[string]any) { artifact(m, 0)["source"] = "/var/lib/x.csv" }, "artifacts[0]"},
		{"source s3 without key", func(m map[string]any) { artifact(m, 0)["source"] = "s3://bucket" }, "want s3://<bucket>/<key>"},
		{"source unknown scheme", func(m map[string]any) { artifact(m, 0)["source"] = "gs://bucket/x.csv" }, "unknown scheme"},
		{"archive with framework", func(m map[string]any) {
			artifact(m, 0)["format"] = "archive"
			artifact(m, 0)["framework"] = "cis"
		}, "framework is not allowed for an archive"},
		{"source http scheme", func(m map[string]any) { artifact(m, 0)["source"] = "https://example.com/x.csv" }, "unknown scheme"},
		{"relative file source", func(m map[string]any) { artifact(m, 2)["source"] = "file://var/x.csv" }, "absolute path"},
		{"nats-os without object", func(m map[string]any) { artifact(m, 1)["source"] = "nats-os://BUCKET" }, "nats-os://"},
		{"source with a newline", func(m map[string]any) { artifact(m, 1)["source"] = "nats-os://B/t1/s1/a\nb" }, "control characters"},
		{"artifact not an object", func(m map[string]any) { m["artifacts"] = []any{"csv"} }, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validScan()
			tc.change(m)
			s, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
			checkMalformed(t, s, err, tc.reason)
		})
	}
}

func checkMalformed(t *testing.T, s *event.ScanCompleted, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted: %+v", s)
	}
	var m *event.MalformedError
	if !errors.As(err, &m) {
		t.Fatalf("error %v (%T) is not a *MalformedError", err, err)
	}
	if !isMalformed(err) {
		t.Error("not a *MalformedError")
	}
	if !strings.Contains(m.Reason, reason) {
		t.Errorf("reason %q does not say %q", m.Reason, reason)
	}
	if !strings.HasPrefix(err.Error(), "malformed event: ") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestDecodeScanBadJSON(t *testing.T) {
	t.Parallel()
	valid := string(mustJSON(t, validScan()))
	for _, tc := range []struct{ name, data, reason string }{
		{"empty", "", "invalid JSON"},
		{"not JSON", "scan done", "invalid JSON"},
		{"array", "[]", "invalid JSON"},
		{"truncated", valid[:len(valid)-1], "invalid JSON"},
		{"trailing object", valid + `{}`, "trailing data"},
		{"trailing word", valid + ` x`, "trailing data"},
		{"second copy", valid + "\n" + valid, "trailing data"},
		{"trailing brace", valid + `}`, "trailing data"},
		{"trailing bracket", valid + `]`, "trailing data"},
		{"null", "null", "missing scan_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := event.DecodeScan(prefix, scanSubject, []byte(tc.data))
			checkMalformed(t, s, err, tc.reason)
		})
	}
	// Trailing white space is fine.
	if _, err := event.DecodeScan(prefix, scanSubject, []byte(valid+" \n\t")); err != nil {
		t.Errorf("trailing white space: %v", err)
	}
}

func TestDecodeScanSubject(t *testing.T) {
	t.Parallel()
	data := mustJSON(t, validScan())
	for _, subj := range []string{
		"prowler.scans.completed.t1",
		"prowler.scans.completed.t1.p1.extra",
		"prowler.scans.completed.t1.",
		"prowler.scans.completed..p1",
		"other.scans.completed.t1.p1",
		"prowler.integrations.changed.t1.p1",
		"prowler.scans.completedx.t1.p1",
		"",
	} {
		t.Run(subj, func(t *testing.T) {
			s, err := event.DecodeScan(prefix, subj, data)
			checkMalformed(t, s, err, "subject")
		})
	}
	// Another prefix works when it is configured.
	if _, err := event.DecodeScan("acme", "acme.scans.completed.t1.p1", data); err != nil {
		t.Errorf("prefix acme: %v", err)
	}
	// The subject's tokens are authoritative: a payload for t1/p1 on t2/p1 is refused.
	s, err := event.DecodeScan(prefix, "prowler.scans.completed.t2.p1", data)
	checkMalformed(t, s, err, "differs from the subject")
}

func TestDecodeScanSHA256UpperCase(t *testing.T) {
	t.Parallel()
	m := validScan()
	artifact(m, 0)["sha256"] = strings.ToUpper(sha)
	if _, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m)); err != nil {
		t.Errorf("upper-case hex refused: %v", err)
	}
}

func TestDecodeScanReasonIsBounded(t *testing.T) {
	t.Parallel()
	// A reason quotes values from the event; a huge value must not make a
	// huge reason (it travels in a dead letter's header).
	for name, change := range map[string]func(m map[string]any){
		"scan_id":   func(m map[string]any) { m["scan_id"] = strings.Repeat("é", 400000) },
		"source":    func(m map[string]any) { artifact(m, 0)["source"] = "nats-os://B/" + strings.Repeat("x", 800000) + "\n" },
		"format":    func(m map[string]any) { artifact(m, 0)["format"] = strings.Repeat("f", 800000) },
		"framework": func(m map[string]any) { artifact(m, 4)["framework"] = strings.Repeat("/", 800000) },
	} {
		m := validScan()
		change(m)
		_, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
		var me *event.MalformedError
		if !errors.As(err, &me) {
			t.Fatalf("%s: %T %.200v", name, err, err)
		}
		if len(me.Reason) > 1100 || !utf8.ValidString(me.Reason) {
			t.Errorf("%s: reason of %d bytes (valid UTF-8: %v)", name, len(me.Reason), utf8.ValidString(me.Reason))
		}
	}
}

// withArtifacts returns a valid payload with n compliance artifacts.
func withArtifacts(n int) map[string]any {
	m := validScan()
	arts := make([]any, n)
	for i := range arts {
		fw := fmt.Sprintf("fw_%d", i)
		arts[i] = map[string]any{"format": "compliance", "framework": fw, "source": "nats-os://PROWLER_OUTPUTS/t1/s1/" + fw + ".csv"}
	}
	m["artifacts"] = arts
	return m
}

// Contract v1.1 §3: at most 256 artifacts and 1 MiB per event.
func TestDecodeScanLimits(t *testing.T) {
	t.Parallel()
	if _, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, withArtifacts(event.MaxScanArtifacts))); err != nil {
		t.Fatalf("%d artifacts: %v", event.MaxScanArtifacts, err)
	}
	_, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, withArtifacts(event.MaxScanArtifacts+1)))
	if !isMalformed(err) || !strings.Contains(err.Error(), "257 artifacts") {
		t.Fatalf("%d artifacts: %v, want malformed", event.MaxScanArtifacts+1, err)
	}

	// A payload of exactly 1 MiB (padded with white space after the object,
	// which JSON allows) is accepted; one byte more is not, and is refused
	// before it is parsed: the bytes past the limit are not even JSON.
	ok := mustJSON(t, validScan())
	ok = append(ok, bytes.Repeat([]byte(" "), event.MaxScanBytes-len(ok))...)
	if _, err := event.DecodeScan(prefix, scanSubject, ok); err != nil {
		t.Fatalf("1 MiB: %v", err)
	}
	over := append(mustJSON(t, validScan()), bytes.Repeat([]byte("x"), event.MaxScanBytes)...)
	_, err = event.DecodeScan(prefix, scanSubject, over[:event.MaxScanBytes+1])
	if !isMalformed(err) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("1 MiB + 1: %v, want malformed for its size", err)
	}
}

// Contract v1.1 §3: compliance-ocsf, with a framework required and unique
// within its format (the same framework may come as CSV and as OCSF).
func TestDecodeScanComplianceOCSF(t *testing.T) {
	t.Parallel()
	m := validScan()
	arts := m["artifacts"].([]any)
	m["artifacts"] = append(arts,
		map[string]any{"format": "compliance-ocsf", "framework": "cis_5.0_aws", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/cis.ocsf.json"},
		map[string]any{"format": "compliance-ocsf", "framework": "cis_controls_8.1", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/ctl.ocsf.json"})
	s, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Artifacts[6].Name(); got != "compliance-ocsf/cis_5.0_aws" {
		t.Errorf("Name() = %q", got)
	}
	for _, tc := range []struct {
		name   string
		art    map[string]any
		reason string
	}{
		{"no framework", map[string]any{"format": "compliance-ocsf", "source": "nats-os://B/t1/s1/x"}, "missing framework (required for compliance-ocsf)"},
		{"bad framework", map[string]any{"format": "compliance-ocsf", "framework": "a/b", "source": "nats-os://B/t1/s1/x"}, "must match"},
		{"twice", map[string]any{"format": "compliance-ocsf", "framework": "cis_controls_8.1", "source": "nats-os://B/t1/s1/x"}, "compliance-ocsf/cis_controls_8.1 appears more than once"},
	} {
		m := validScan()
		m["artifacts"] = append(m["artifacts"].([]any),
			map[string]any{"format": "compliance-ocsf", "framework": "cis_controls_8.1", "source": "nats-os://PROWLER_OUTPUTS/t1/s1/ctl.ocsf.json"}, tc.art)
		_, err := event.DecodeScan(prefix, scanSubject, mustJSON(t, m))
		if !isMalformed(err) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: %v, want malformed saying %q", tc.name, err, tc.reason)
		}
	}
}

// isMalformed reports whether err is a *MalformedError, as the consumer
// tells a malformed event (dead-lettered at once) from a failure.
func isMalformed(err error) bool {
	var m *event.MalformedError
	return errors.As(err, &m)
}
