package exporter_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

func TestSanitizeUID(t *testing.T) {
	for in, want := range map[string]string{
		"111122223333":                         "111122223333",
		"arn:aws:iam::123456789012:root":       "arn-aws-iam--123456789012-root",
		"my project":                           "my-project",
		"a.b.c":                                "a-b-c",
		"sub/scription":                        "sub-scription",
		"../../etc":                            "------etc",
		"00000000-0000-0000-0000-000000000000": "00000000-0000-0000-0000-000000000000",
		"under_score":                          "under_score",
		"ünïcode":                              "-n-code",
		"日本":                                   "--",
		"emoji🙂":                               "emoji-",
		"tab\tnew\nline":                       "tab-new-line",
		"gke_proj_zone_cluster":                "gke_proj_zone_cluster",
		"https://dev.azure.com/org":            "https---dev-azure-com-org",
		"":                                     "",
		"\xff\xfe":                             "--", // each invalid byte is one character
	} {
		if got := exporter.SanitizeUID(in); got != want {
			t.Errorf("SanitizeUID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestObjectKey(t *testing.T) {
	start := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)
	const uid = "111122223333"
	for _, tc := range []struct {
		a          event.Artifact
		key, ctype string
	}{
		{event.Artifact{Format: "csv"}, "output/csv/prowler-output-111122223333-20250805120000.csv", "text/csv"},
		{event.Artifact{Format: "html"}, "output/html/prowler-output-111122223333-20250805120000.html", "text/html"},
		{event.Artifact{Format: "json-ocsf"}, "output/json-ocsf/prowler-output-111122223333-20250805120000.ocsf.json", "application/json"},
		{event.Artifact{Format: "json-asff"}, "output/json-asff/prowler-output-111122223333-20250805120000.asff.json", "application/json"},
		{event.Artifact{Format: "compliance", Framework: "cis_5.0_aws"}, "output/compliance/prowler-output-111122223333-20250805120000_cis_5.0_aws.csv", "text/csv"},
		{event.Artifact{Format: "compliance", Framework: "mitre_attack_aws"}, "output/compliance/prowler-output-111122223333-20250805120000_mitre_attack_aws.csv", "text/csv"},
		// v1.1: beside the CSVs, in the folder Prowler writes both to.
		{event.Artifact{Format: "compliance-ocsf", Framework: "cis_controls_8.1"}, "output/compliance/prowler-output-111122223333-20250805120000_cis_controls_8.1.ocsf.json", "application/json"},
		{event.Artifact{Format: "compliance-ocsf", Framework: "cis_5.0_aws"}, "output/compliance/prowler-output-111122223333-20250805120000_cis_5.0_aws.ocsf.json", "application/json"},
	} {
		if got := exporter.ObjectKey("output", tc.a, uid, start); got != tc.key {
			t.Errorf("ObjectKey(%s) = %q, want %q", tc.a.Name(), got, tc.key)
		}
		if got := exporter.ContentType(tc.a.Format); got != tc.ctype {
			t.Errorf("ContentType(%s) = %q, want %q", tc.a.Format, got, tc.ctype)
		}
	}
	for _, f := range event.Formats {
		if exporter.ContentType(f) == "" {
			t.Errorf("format %s has no content type", f)
		}
	}
	if got := exporter.ContentType("xlsx"); got != "" {
		t.Errorf("ContentType(xlsx) = %q", got)
	}
}

func TestObjectKeyDirectoryAndUID(t *testing.T) {
	start := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)
	got := exporter.ObjectKey("prowler-findings/aws", event.Artifact{Format: "csv"}, "arn:aws:iam::123456789012:root", start)
	want := "prowler-findings/aws/csv/prowler-output-arn-aws-iam--123456789012-root-20250805120000.csv"
	if got != want {
		t.Errorf("ObjectKey = %q, want %q", got, want)
	}
	got = exporter.ObjectKey("output", event.Artifact{Format: "html"}, "../../x y", start)
	if want := "output/html/prowler-output-------x-y-20250805120000.html"; got != want {
		t.Errorf("ObjectKey = %q, want %q", got, want)
	}
}

func TestObjectKeyUTC(t *testing.T) {
	want := "output/csv/prowler-output-1-20250805120000.csv"
	for _, zone := range []*time.Location{
		time.FixedZone("CEST", 2*3600),
		time.FixedZone("NST", -(3*3600 + 30*60)),
		time.FixedZone("LINT", 14*3600),
	} {
		start := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC).In(zone)
		if got := exporter.ObjectKey("output", event.Artifact{Format: "csv"}, "1", start); got != want {
			t.Errorf("started_at %v: key %q, want %q", start, got, want)
		}
	}
	// A start in a non-UTC zone that crosses midnight converts the date too.
	start := time.Date(2025, 8, 6, 1, 30, 0, 0, time.FixedZone("", 2*3600))
	if got := exporter.ObjectKey("output", event.Artifact{Format: "csv"}, "1", start); got != "output/csv/prowler-output-1-20250805233000.csv" {
		t.Errorf("key %q", got)
	}
	// Sub-second precision is dropped, as in Prowler's names.
	start = time.Date(2025, 8, 5, 12, 0, 0, 999_999_999, time.UTC)
	if got := exporter.ObjectKey("output", event.Artifact{Format: "csv"}, "1", start); got != want {
		t.Errorf("key %q", got)
	}
	// Through the wire: a started_at with an offset decodes to the same key.
	data := []byte(`{"scan_id":"s","tenant_id":"t","provider":{"id":"p","uid":"1"},"started_at":"2025-08-05T14:00:00+02:00",` +
		`"artifacts":[{"format":"csv","source":"nats-os://B/t/s/x"}]}`)
	s, err := event.DecodeScan("prowler", "prowler.scans.completed.t.p", data)
	if err != nil {
		t.Fatal(err)
	}
	if got := exporter.ObjectKey("output", s.Artifacts[0], s.Provider.UID, s.StartedAt); got != want {
		t.Errorf("decoded key %q, want %q", got, want)
	}
}

var (
	uidChars = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)
	suffix   = map[string]string{"csv": ".csv", "html": ".html", "json-ocsf": ".ocsf.json", "json-asff": ".asff.json", "compliance": ".csv"}
)

// FuzzObjectKey builds keys from anything a scan event and an integration can
// carry once validated, and checks they stay inside the directory with the
// contract's name.
func FuzzObjectKey(f *testing.F) {
	f.Add("output", "csv", "", "111122223333", int64(1754395200), int32(0))
	f.Add("//test//a///", "compliance", "cis_5.0_aws", "arn:aws:iam::123:root", int64(1754395200), int32(120))
	f.Add("a/ /", "compliance", "..", "../../x", int64(0), int32(-600))
	f.Add("x", "json-ocsf", "", "ünï cödé/🙂", int64(253402300799), int32(-1439))
	f.Add("x", "html", "", "\xff", int64(-62135596800), int32(1439))
	f.Fuzz(func(t *testing.T, rawDir, format, framework, uid string, sec int64, offsetMin int32) {
		dir, err := integration.NormalizeOutputDirectory(rawDir)
		if err != nil {
			return
		}
		// Through the real validation, so the property covers what the
		// exporter actually receives.
		zone := time.FixedZone("", int(offsetMin%(24*60))*60)
		started := time.Unix(sec%253402300800, 0).In(zone)
		art := map[string]any{"format": format, "source": "nats-os://B/t/s/x"}
		if framework != "" {
			art["framework"] = framework
		}
		data, err := json.Marshal(map[string]any{
			"scan_id": "s", "tenant_id": "t", "provider": map[string]any{"id": "p", "uid": uid},
			"started_at": started, "artifacts": []any{art},
		})
		if err != nil {
			return // a time json can't write
		}
		s, err := event.DecodeScan("prowler", "prowler.scans.completed.t.p", data)
		if err != nil {
			return
		}
		a := s.Artifacts[0]
		key := exporter.ObjectKey(dir, a, s.Provider.UID, s.StartedAt)

		prefix := dir + "/" + a.Format + "/"
		if !strings.HasPrefix(key, prefix) {
			t.Fatalf("key %q is not under %q", key, prefix)
		}
		name := strings.TrimPrefix(key, prefix)
		if strings.Contains(name, "/") {
			t.Fatalf("file name %q holds a '/'", name)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("key %q has a %q segment", key, seg)
			}
		}
		san := exporter.SanitizeUID(s.Provider.UID)
		if !uidChars.MatchString(san) || utf8.RuneCountInString(san) != utf8.RuneCountInString(s.Provider.UID) {
			t.Fatalf("SanitizeUID(%q) = %q", s.Provider.UID, san)
		}
		want := "prowler-output-" + san + "-" + s.StartedAt.UTC().Format(exporter.TimestampLayout)
		if a.Format == event.FormatCompliance {
			want += "_" + a.Framework
		}
		want += suffix[a.Format]
		if name != want {
			t.Fatalf("file name %q, want %q", name, want)
		}
		// The same instant in another zone gives the same key.
		if other := exporter.ObjectKey(dir, a, s.Provider.UID, s.StartedAt.UTC()); other != key {
			t.Fatalf("key depends on the zone: %q vs %q", key, other)
		}
		if exporter.ContentType(a.Format) == "" {
			t.Fatalf("no content type for %q", a.Format)
		}
	})
}
