package schemas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

// pointer reads the value at a path of object keys in a raw schema.
func pointer(t *testing.T, set *schemaSet, file string, path ...string) any {
	t.Helper()
	var v any = set.raw[file]
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s", file, strings.Join(path, "/"))
		}
		v = m[k]
	}
	return v
}

// TestV11LimitsMatchCode keeps the v1.1 additions of the schemas equal to
// the values the exporter uses: the artifact limit of a scan event, the
// manifest's pseudo-format in export statuses, write_manifest's default.
func TestV11LimitsMatchCode(t *testing.T) {
	set := loadSchemas(t)
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"scan-completed artifacts maxItems", pointer(t, set, "scan-completed.json", "properties", "artifacts", "maxItems"), float64(event.MaxScanArtifacts)},
		{"export-status object manifest format", pointer(t, set, "export-status.json", "$defs", "object", "properties", "format", "anyOf").([]any)[1].(map[string]any)["const"], exporter.FormatManifest},
		{"export-status error manifest format", pointer(t, set, "export-status.json", "$defs", "error", "properties", "format", "anyOf").([]any)[1].(map[string]any)["const"], exporter.FormatManifest},
		{"write_manifest default", pointer(t, set, "integration-changed.json", "$defs", "configuration", "properties", "write_manifest", "default"), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: schema says %v, the exporter uses %v", tc.what, tc.got, tc.want)
		}
	}
}

// TestManifestExportStatusFromCode builds the export statuses of an
// integration with write_manifest the way the exporter does — every object
// with its sha256, the manifest last under exporter.ManifestKey, or a
// failed manifest write — and validates them.
func TestManifestExportStatusFromCode(t *testing.T) {
	set := loadSchemas(t)
	scan, err := decodeScanExample(t, readExample(t, "scan-completed.4.json"))
	if err != nil {
		t.Fatal(err)
	}
	ig := cachedIntegration(t, "integration-changed.1.json")
	now := time.Now().UTC()
	st := event.ExportStatus{TenantID: scan.TenantID, IntegrationID: ig.ID, ScanID: scan.ScanID, ProviderID: scan.Provider.ID,
		State: event.StateSucceeded, Attempt: 1, Objects: []event.ObjectRecord{}, Errors: []event.ExportError{}, StartedAt: now, FinishedAt: now}
	for _, a := range scan.Artifacts {
		sum := sha256.Sum256([]byte(a.Name()))
		st.Objects = append(st.Objects, event.ObjectRecord{Format: a.Format, Framework: a.Framework,
			Key: exporter.ObjectKey(ig.OutputDirectory, a, scan.Provider.UID, scan.StartedAt), Size: 0, ETag: "d41d8cd98f00b204e9800998ecf8427e",
			SHA256: hex.EncodeToString(sum[:])})
	}
	manifestKey := exporter.ManifestKey(ig.OutputDirectory, scan.Provider.UID, scan.StartedAt)
	succeeded := st
	succeeded.Objects = append(append([]event.ObjectRecord{}, st.Objects...), event.ObjectRecord{Format: exporter.FormatManifest,
		Key: manifestKey, Size: 812, ETag: "0cc175b9c0f1b6a831c399e269772661", SHA256: strings.Repeat("ab", 32)})
	manifestFailed := st
	manifestFailed.State = event.StateRetrying
	e := errcode.From(context.DeadlineExceeded)
	manifestFailed.Errors = []event.ExportError{{Format: exporter.FormatManifest, Key: manifestKey, Code: string(e.Code), Message: e.Message(), Retryable: e.Retryable}}
	for name, s := range map[string]event.ExportStatus{"with manifest": succeeded, "manifest failed": manifestFailed} {
		if err := set.validateValue(t, "export-status", s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The schema asks for lower-case hex, as the exporter writes it.
	upper := succeeded
	upper.Objects = append([]event.ObjectRecord{}, succeeded.Objects...)
	upper.Objects[0].SHA256 = strings.ToUpper(upper.Objects[0].SHA256)
	if err := set.validateValue(t, "export-status", upper); err == nil {
		t.Error("an upper-case sha256: accepted, want refused")
	}
}
