package exporter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

func manifestScan() *event.ScanCompleted {
	// A start time outside UTC: the manifest and the key say it in UTC.
	started := time.Date(2026, 11, 27, 13, 0, 5, 0, time.FixedZone("CET", 3600))
	completed := started.Add(41*time.Minute + 7*time.Second)
	return &event.ScanCompleted{
		ScanID: "scan-1", TenantID: "tenant-1",
		Provider:  event.Provider{ID: "prov-1", Type: "aws", UID: "1111:2222"},
		StartedAt: started, CompletedAt: &completed,
		Artifacts: []event.Artifact{
			{Format: event.FormatOCSF, Source: "nats-os://o/tenant-1/scan-1/a.ocsf.json"},
			{Format: event.FormatCSV, Source: "nats-os://o/tenant-1/scan-1/a.csv", SHA256: "ABCDEF0123"},
			{Format: event.FormatCompliance, Framework: "cis_5.0_aws", Source: "nats-os://o/tenant-1/scan-1/c.csv"},
		},
	}
}

// landedResults is every artifact of scan in the bucket, in the event's
// order, as one delivery's uploads would leave them.
func landedResults(scan *event.ScanCompleted, dir string) []ArtifactResult {
	var out []ArtifactResult
	for i, a := range scan.Artifacts {
		key := ObjectKey(dir, a, scan.Provider.UID, scan.StartedAt)
		out = append(out, ArtifactResult{Artifact: a, Key: key, Object: &event.ObjectRecord{
			Format: a.Format, Framework: a.Framework, Key: key, Size: int64(100 * (i + 1)), ETag: "etag-" + a.Name()}})
	}
	// The ocsf's event gave no sha256: the upload computed it.
	out[0].Object.SHA256 = "0123abcd"
	return out
}

func TestManifestKey(t *testing.T) {
	scan := manifestScan()
	got := ManifestKey("out/dir", scan.Provider.UID, scan.StartedAt)
	if want := "out/dir/manifests/prowler-output-1111-2222-20261127120005.manifest.json"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	// Named like the objects it lists: the same {uid}-{ts} as their keys.
	csv := ObjectKey("out/dir", scan.Artifacts[1], scan.Provider.UID, scan.StartedAt)
	if !strings.HasSuffix(csv, "/prowler-output-1111-2222-20261127120005.csv") {
		t.Errorf("csv key %q does not share the manifest's name", csv)
	}
}

// The exact bytes: the format downstream jobs parse, pinned.
func TestBuildManifestContent(t *testing.T) {
	scan := manifestScan()
	b, err := BuildManifest(scan, landedResults(scan, "out"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "manifest_version": 1,
  "scan_id": "scan-1",
  "tenant_id": "tenant-1",
  "provider": {
    "id": "prov-1",
    "type": "aws",
    "uid": "1111:2222"
  },
  "started_at": "2026-11-27T12:00:05Z",
  "completed_at": "2026-11-27T12:41:12Z",
  "objects": [
    {
      "key": "out/compliance/prowler-output-1111-2222-20261127120005_cis_5.0_aws.csv",
      "format": "compliance",
      "framework": "cis_5.0_aws",
      "size": 300,
      "sha256": null,
      "etag": "etag-compliance/cis_5.0_aws"
    },
    {
      "key": "out/csv/prowler-output-1111-2222-20261127120005.csv",
      "format": "csv",
      "framework": "",
      "size": 200,
      "sha256": "abcdef0123",
      "etag": "etag-csv"
    },
    {
      "key": "out/json-ocsf/prowler-output-1111-2222-20261127120005.ocsf.json",
      "format": "json-ocsf",
      "framework": "",
      "size": 100,
      "sha256": "0123abcd",
      "etag": "etag-json-ocsf"
    }
  ]
}
`
	if string(b) != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", b, want)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest does not decode: %v", err)
	}
}

// Deterministic: the same objects in another order (another event order,
// uploads ending in another order, some from the ledger) give the same bytes.
func TestBuildManifestDeterministic(t *testing.T) {
	scan := manifestScan()
	first, err := BuildManifest(scan, landedResults(scan, "out"))
	if err != nil {
		t.Fatal(err)
	}
	rev := landedResults(scan, "out")
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	rev[0].Skipped = true // from the ledger: the same record
	again, err := BuildManifest(scan, rev)
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(again) {
		t.Errorf("manifest depends on the order of results:\n%s\n%s", first, again)
	}
	var m Manifest
	if err := json.Unmarshal(first, &m); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(m.Objects); i++ {
		if m.Objects[i-1].Key >= m.Objects[i].Key {
			t.Errorf("objects not ordered by key: %q before %q", m.Objects[i-1].Key, m.Objects[i].Key)
		}
	}

	// Without completed_at (optional in the event): null, not a zero time.
	scan.CompletedAt = nil
	b, err := BuildManifest(scan, landedResults(scan, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"completed_at": null`) {
		t.Errorf("completed_at without one in the event: %s", b)
	}
}

func TestBuildManifestRefusesPartial(t *testing.T) {
	scan := manifestScan()
	ars := landedResults(scan, "out")
	ars[1].Object, ars[1].Err = nil, errcode.Permanentf(errcode.SourceNotFound, "gone")
	if _, err := BuildManifest(scan, ars); err == nil || !strings.Contains(err.Error(), "csv") {
		t.Errorf("manifest of a partial export: err = %v", err)
	}
}

func TestWantsManifest(t *testing.T) {
	scan := manifestScan()
	on := &integration.Integration{ID: "i", TenantID: "tenant-1", OutputDirectory: "out", WriteManifest: true}
	off := &integration.Integration{ID: "i", TenantID: "tenant-1", OutputDirectory: "out"}
	all := Result{Artifacts: landedResults(scan, "out")}
	partial := Result{Artifacts: landedResults(scan, "out")}
	partial.Artifacts[2].Object, partial.Artifacts[2].Err = nil, errcode.Retryable(errcode.Timeout, nil)
	for _, tc := range []struct {
		name string
		ig   *integration.Integration
		r    Result
		want bool
	}{
		{"asked, all landed", on, all, true},
		{"not asked", off, all, false},
		{"asked, one failed", on, partial, false},
		{"asked, no artifacts", on, Result{}, false},
	} {
		if got := wantsManifest(Job{Integration: tc.ig}, tc.r); got != tc.want {
			t.Errorf("%s: wantsManifest = %t, want %t", tc.name, got, tc.want)
		}
	}
}

func TestLedgerManifest(t *testing.T) {
	scan := manifestScan()
	ig := &integration.Integration{ID: "i", TenantID: "tenant-1", OutputDirectory: "out", WriteManifest: true}
	key := ManifestKey("out", scan.Provider.UID, scan.StartedAt)
	job := Job{Integration: ig, Done: map[string]event.ObjectRecord{
		FormatManifest: {Format: FormatManifest, Key: key, Size: 10, ETag: "e"}}}
	if rec := LedgerManifest(scan, job); rec == nil || rec.ETag != "e" {
		t.Errorf("ledger manifest = %+v", rec)
	}
	// Written under another directory (the integration changed since):
	// not this manifest.
	job.Integration = &integration.Integration{ID: "i", TenantID: "tenant-1", OutputDirectory: "other", WriteManifest: true}
	if rec := LedgerManifest(scan, job); rec != nil {
		t.Errorf("manifest under another key taken: %+v", rec)
	}
	if rec := LedgerManifest(scan, Job{Integration: ig}); rec != nil {
		t.Errorf("manifest from an empty ledger: %+v", rec)
	}
}

// The sha256 a manifest lists: the event's when it gave one (the source
// verifies it), else computed from the bytes the upload read; nothing at
// all (no hashing) for an integration without write_manifest.
func TestManifestDigest(t *testing.T) {
	body := "PROVIDER;STATUS\naws;FAIL\n"
	sum := sha256.Sum256([]byte(body))
	open := func() *source.Opened {
		return &source.Opened{ReadCloser: io.NopCloser(strings.NewReader(body)), Size: int64(len(body))}
	}
	rec := func() *event.ObjectRecord { return &event.ObjectRecord{Key: "k"} }
	on := &integration.Integration{WriteManifest: true}

	src := open()
	orig := src.ReadCloser
	if d := manifestDigest(&integration.Integration{}, event.Artifact{}, src); d != nil || src.ReadCloser != orig {
		t.Error("an integration without write_manifest hashes its uploads")
	} else if r := d.record(rec()); r.SHA256 != "" {
		t.Errorf("sha256 %q recorded without write_manifest", r.SHA256)
	}

	src = open()
	d := manifestDigest(on, event.Artifact{SHA256: "ABC123"}, src)
	if r := d.record(rec()); r.SHA256 != "abc123" {
		t.Errorf("event's sha256: recorded %q", r.SHA256)
	}

	src = open()
	d = manifestDigest(on, event.Artifact{}, src)
	if _, err := io.Copy(io.Discard, src); err != nil {
		t.Fatal(err)
	}
	if r := d.record(rec()); r.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("computed sha256 %q, want %x", r.SHA256, sum)
	}
	if d.record(nil) != nil {
		t.Error("a failed upload got a record")
	}
}

// A delivery that uploads nothing (every file in the ledger) takes what the
// ledger says of the manifest: written (not written again) or failed for
// good (reported, not tried again). The Exporter here has no clients: any
// S3 request would panic.
func TestWriteManifestsFromTheLedger(t *testing.T) {
	scan := manifestScan()
	ig := &integration.Integration{ID: "i", TenantID: "tenant-1", OutputDirectory: "out", WriteManifest: true}
	key := ManifestKey("out", scan.Provider.UID, scan.StartedAt)
	done := map[string]event.ObjectRecord{}
	for _, a := range landedResults(scan, "out") {
		done[a.Artifact.Name()] = *a.Object
	}
	withManifest := map[string]event.ObjectRecord{FormatManifest: {Format: FormatManifest, Key: key, Size: 9, ETag: "m"}}
	for k, v := range done {
		withManifest[k] = v
	}
	e := &Exporter{}
	for _, tc := range []struct {
		name    string
		job     Job
		wantErr errcode.Code
	}{
		{"written before", Job{Integration: ig, Done: withManifest}, ""},
		{"failed for good before", Job{Integration: ig, Done: done, Failed: map[string]event.ExportError{
			FormatManifest: {Format: FormatManifest, Key: key, Code: string(errcode.S3BucketAccessDenied), Message: "denied"}}},
			errcode.S3BucketAccessDenied},
	} {
		results := []Result{{Integration: ig, Artifacts: Plan(scan, tc.job)}}
		e.writeManifests(context.Background(), scan, []Job{tc.job}, results)
		arts := results[0].Artifacts
		if len(arts) != len(scan.Artifacts)+1 {
			t.Fatalf("%s: %d results", tc.name, len(arts))
		}
		m := arts[len(arts)-1]
		switch {
		case !m.Skipped || m.Key != key || m.Artifact.Format != FormatManifest:
			t.Errorf("%s: manifest result %+v", tc.name, m)
		case tc.wantErr == "" && (m.Object == nil || m.Object.ETag != "m" || m.Err != nil):
			t.Errorf("%s: manifest result %+v", tc.name, m)
		case tc.wantErr != "" && (m.Object != nil || m.Err == nil || m.Err.Code != tc.wantErr || m.Err.Retryable):
			t.Errorf("%s: manifest result %+v", tc.name, m)
		}
	}
}
