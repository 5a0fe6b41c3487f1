package schemas

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

// TestManifestFromCode builds manifests the way the exporter does
// (exporter.BuildManifest, from the scan example and what landed) and
// validates their bytes; and every valid example decodes into
// exporter.Manifest with no field left over.
func TestManifestFromCode(t *testing.T) {
	set := loadSchemas(t)
	scan, err := decodeScanExample(t, readExample(t, "scan-completed.1.json"))
	if err != nil {
		t.Fatal(err)
	}
	ig := cachedIntegration(t, "integration-changed.1.json")
	landed := func(computed bool) []exporter.ArtifactResult {
		var out []exporter.ArtifactResult
		for _, a := range scan.Artifacts {
			key := exporter.ObjectKey(ig.OutputDirectory, a, scan.Provider.UID, scan.StartedAt)
			rec := &event.ObjectRecord{Format: a.Format, Framework: a.Framework, Key: key, Size: 10, ETag: "5d41402abc4b2a76b9719d911017c592"}
			if computed {
				rec.SHA256 = strings.Repeat("ab", 32)
			}
			out = append(out, exporter.ArtifactResult{Artifact: a, Key: key, Object: rec})
		}
		return out
	}
	for name, arts := range map[string][]exporter.ArtifactResult{"sha256 computed": landed(true), "as the event gave": landed(false)} {
		b, err := exporter.BuildManifest(scan, arts)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.validate(t, "manifest", b); err != nil {
			t.Errorf("%s: %v\n%s", name, err, b)
		}
	}
	scan.CompletedAt = nil
	b, err := exporter.BuildManifest(scan, landed(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := set.validate(t, "manifest", b); err != nil {
		t.Errorf("without completed_at: %v", err)
	}

	for _, ex := range loadExamples(t) {
		if ex.schema != "manifest" || ex.invalid {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(ex.data))
		dec.DisallowUnknownFields()
		var m exporter.Manifest
		if err := dec.Decode(&m); err != nil {
			t.Errorf("%s: does not decode into exporter.Manifest: %v", ex.file, err)
		}
	}
}
