package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

var frameworks = []string{"cis_5.0_aws", "aws_foundational_security_best_practices_aws"}

// wantKeys are the keys of contract §4 for uid 111122223333 started
// 2025-08-05T12:00:00Z under dir.
func wantKeys(dir string) map[string]string {
	p := "prowler-output-111122223333-20250805120000"
	return map[string]string{
		event.FormatCSV:          dir + "/csv/" + p + ".csv",
		event.FormatHTML:         dir + "/html/" + p + ".html",
		event.FormatOCSF:         dir + "/json-ocsf/" + p + ".ocsf.json",
		event.FormatASFF:         dir + "/json-asff/" + p + ".asff.json",
		"compliance/cis_5.0_aws": dir + "/compliance/" + p + "_cis_5.0_aws.csv",
		"compliance/aws_foundational_security_best_practices_aws": dir + "/compliance/" + p + "_aws_foundational_security_best_practices_aws.csv",
	}
}

var wantTypes = map[string]string{
	event.FormatCSV: "text/csv", event.FormatHTML: "text/html", event.FormatOCSF: "application/json",
	event.FormatASFF: "application/json", event.FormatCompliance: "text/csv",
}

func TestScanWithEveryFormatLandsByteForByte(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	bucket := e.bucket("every-format")
	in := e.integration("tenant-a", "integ-1", "s3://"+bucket, "prov-1")
	in.Configuration.OutputDirectory = "//test//a///"
	e.put(in)
	files, set := prowlerFiles(1, "111122223333", frameworks...)
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-1", files)

	st := e.waitExport("scan-1", "integ-1")
	if st.State != event.StateSucceeded || len(st.Errors) != 0 {
		t.Fatalf("export state %s, errors %v", st.State, st.Errors)
	}
	if len(st.Objects) != len(files) {
		t.Fatalf("status lists %d objects, want %d", len(st.Objects), len(files))
	}
	got := e.objects(bucket)
	want := wantKeys("test/a")
	if len(got) != len(want) {
		t.Fatalf("bucket holds %v, want %d objects", keysOf(got), len(want))
	}
	for name, key := range want {
		o, ok := got[key]
		if !ok {
			t.Errorf("missing %s at %s (bucket holds %v)", name, key, keysOf(got))
			continue
		}
		f := set[name]
		if !bytes.Equal(o.Body, f.Body) {
			t.Errorf("%s: %d bytes differ from the %d bytes of the artifact", key, len(o.Body), len(f.Body))
		}
		if o.ContentType != wantTypes[f.Format] {
			t.Errorf("%s: Content-Type %q, want %q", key, o.ContentType, wantTypes[f.Format])
		}
	}
	for _, rec := range st.Objects {
		if got[rec.Key].Key == "" || rec.Size != int64(len(got[rec.Key].Body)) || rec.ETag == "" {
			t.Errorf("status object %+v does not match what landed", rec)
		}
	}
	// The export marks the integration connected.
	if _, ok := e.waitFor(5*time.Second, func(s testutilStatus) bool {
		return s.Connection != nil && s.Connection.IntegrationID == "integ-1" && s.Connection.Connected
	}); !ok {
		t.Errorf("no connected status after a successful export: %s", e.dump())
	}
}

func TestOnlyMatchingIntegrationsReceiveTheScan(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	b1, b2 := e.bucket("match-one"), e.bucket("match-two")
	bOther, bTenant, bDisabled, bDeleted := e.bucket("other-provider"), e.bucket("other-tenant"), e.bucket("disabled"), e.bucket("deleted")
	e.put(e.integration("tenant-a", "one", b1, "prov-1"))
	e.put(e.integration("tenant-a", "two", b2, "prov-0", "prov-1"))
	e.put(e.integration("tenant-a", "other-provider", bOther, "prov-2"))
	e.put(e.integration("tenant-b", "other-tenant", bTenant, "prov-1"))
	disabled := e.integration("tenant-a", "disabled", bDisabled, "prov-1")
	off := false
	disabled.Enabled = &off
	e.put(disabled)
	e.put(e.integration("tenant-a", "deleted", bDeleted, "prov-1"))
	if err := e.cl.DeleteIntegration(context.Background(), "tenant-a", "deleted"); err != nil {
		t.Fatal(err)
	}

	files, _ := prowlerFiles(2, "111122223333", frameworks[0])
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-2", files)
	for _, id := range []string{"one", "two"} {
		if st := e.waitExport("scan-2", id); st.State != event.StateSucceeded {
			t.Fatalf("%s: %s %v", id, st.State, st.Errors)
		}
	}
	if n := len(e.objects(b1)); n != len(files) {
		t.Errorf("integration one: %d objects, want %d", n, len(files))
	}
	if n := len(e.objects(b2)); n != len(files) {
		t.Errorf("integration two: %d objects, want %d", n, len(files))
	}
	// The scan's message is acked only after every selected integration is
	// done, so a second scan finishing means the first one was fully handled.
	files2, _ := prowlerFiles(3, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-3", files2)
	e.waitExport("scan-3", "one")
	for _, b := range []string{bOther, bTenant, bDisabled, bDeleted} {
		if got := e.objects(b); len(got) != 0 {
			t.Errorf("bucket %s received %v", b, keysOf(got))
		}
	}
	for _, id := range []string{"other-provider", "other-tenant", "disabled", "deleted"} {
		if st := e.exports("scan-2", id); len(st) != 0 {
			t.Errorf("integration %s got export statuses %v", id, st)
		}
	}
}

func TestIntegrationChangesApplyToTheNextScanWithoutRestart(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	b1, b2 := e.bucket("before"), e.bucket("after")
	in := e.integration("tenant-a", "moving", b1, "prov-1")
	e.put(in)
	files, _ := prowlerFiles(4, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-4", files)
	e.waitExport("scan-4", "moving")

	// Read-your-writes: the change published right before the scan applies.
	in.Configuration.BucketName = b2
	in.Configuration.OutputDirectory = "moved"
	e.put(in)
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-5", files)
	e.waitExport("scan-5", "moving")
	// The new bucket is connection-tested too, and the beacon it writes
	// and deletes may be there while the bucket is read: wait for that
	// test's status (the first was for b1), published once it is done.
	e.waitConn("tenant-a", "moving", 1)
	if got := e.objects(b2); !slices.Contains(keysOf(got), "moved/csv/prowler-output-111122223333-20250805120000.csv") {
		t.Fatalf("second scan not in the new bucket/dir: %v", keysOf(got))
	}

	off := false
	in.Enabled = &off
	e.put(in)
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-6", files)
	e.put(e.integration("tenant-a", "marker", e.bucket("marker"), "prov-1"))
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-7", files)
	e.waitExport("scan-7", "marker")
	if st := e.exports("scan-6", "moving"); len(st) != 0 {
		t.Errorf("a disabled integration exported: %v", st)
	}
}

func TestRestartedExporterRebuildsItsCache(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	b := e.bucket("restart")
	e.put(e.integration("tenant-a", "survivor", b, "prov-1"))
	files, _ := prowlerFiles(5, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-8", files)
	e.waitExport("scan-8", "survivor")

	e.stop()
	e.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if l, err := e.cl.List(ctx, "tenant-a"); err != nil || len(l.Integrations) != 1 {
		t.Fatalf("cache after restart holds %+v (%v), want 1 integration", l, err)
	}
	e.publishScan("tenant-a", "prov-1", "222233334444", "scan-9", files)
	if st := e.waitExport("scan-9", "survivor"); st.State != event.StateSucceeded {
		t.Fatalf("after restart: %s %v", st.State, st.Errors)
	}
	if !slices.Contains(keysOf(e.objects(b)), "output/csv/prowler-output-222233334444-20250805120000.csv") {
		t.Fatalf("scan after restart not exported: %v", keysOf(e.objects(b)))
	}
}

func TestRefusedSourcesUploadNothing(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	root := t.TempDir()
	outside := t.TempDir()
	e := newEnv(t, func(c *config.Config) { c.FileSourceRoots = []string{root} })
	b := e.bucket("refused")
	// Its connection test's beacon over before the bucket is listed below.
	if st := e.putAndWaitConn(e.integration("tenant-a", "guarded", b, "prov-1")); !st.Connected {
		t.Fatalf("connection test: %+v", st.Error)
	}

	if err := os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	// v1.1 layout: <root>/<tenant>/<scan>/; the scan ids are refused-a, -b, ...
	if err := os.MkdirAll(filepath.Join(root, "tenant-a", "refused-b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(root, "tenant-a", "refused-b", "escape.csv")); err != nil {
		t.Fatal(err)
	}
	// Another tenant's object in the object store.
	otherFiles, _ := prowlerFiles(6, "999")
	other := e.publishScan("tenant-b", "prov-9", "999", "scan-b", otherFiles)

	cases := []struct {
		name   string
		source string
	}{
		{"file outside the roots", "file://" + filepath.Join(outside, "secret.csv")},
		{"symlink escaping the root", "file://" + filepath.Join(root, "tenant-a", "refused-b", "escape.csv")},
		{"dot-dot out of the root", "file://" + root + "/tenant-a/refused-c/../../../" + filepath.Base(outside) + "/secret.csv"},
		{"another tenant's object", other.Artifacts[0].Source},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scanID := "refused-" + string(rune('a'+i))
			e.publish(event.ScanCompleted{ScanID: scanID, TenantID: "tenant-a",
				Provider:  event.Provider{ID: "prov-1", UID: "111122223333"},
				StartedAt: time.Now().UTC(), Artifacts: []event.Artifact{{Format: "csv", Source: tc.source}}})
			st := e.waitExport(scanID, "guarded")
			if st.State != event.StateFailed || len(st.Errors) != 1 || st.Errors[0].Code != string(errcode.SourceRefused) || st.Errors[0].Retryable {
				t.Fatalf("want failed with a permanent SourceRefused, got %s %+v", st.State, st.Errors)
			}
			if strings.Contains(st.Errors[0].Message, "not yours") {
				t.Fatal("the refusal leaks file content")
			}
		})
	}
	if got := e.objects(b); len(got) != 0 {
		t.Fatalf("refused sources uploaded %v", keysOf(got))
	}
}

func TestChecksumMismatchLeavesNoObject(t *testing.T) {
	if testing.Short() && raceDetector {
		t.Skip("stores 24 MiB in the object store: its publish acks time out under -race (make race); runs in make test")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, func(c *config.Config) { c.PartSize = 5 << 20; c.MultipartThreshold = 5 << 20 })
	b := e.bucket("checksum")
	e.put(e.integration("tenant-a", "verified", b, "prov-1"))

	small, _ := prowlerFiles(7, "111122223333")
	bigBody := make([]byte, 12<<20) // multipart: three parts
	for i := range bigBody {
		bigBody[i] = byte(i * 7)
	}
	files := []fixtures.OutputFile{small[0], {Format: "json-ocsf", FileName: "out.ocsf.json", Body: bigBody}}
	scan := e.publishScan("tenant-a", "prov-1", "111122223333", "scan-sum", files)
	_ = scan
	e.waitExport("scan-sum", "verified") // the honest one lands

	// Same files announced with wrong digests and sizes.
	bad := scan
	bad.ScanID = "scan-bad-sum"
	arts, err := e.cl.PutArtifacts(context.Background(), "", "tenant-a", bad.ScanID, []clientFile{
		{Format: "csv", Name: "out.csv", Body: bytes.NewReader(small[0].Body)},
		{Format: "json-ocsf", Name: "out.ocsf.json", Body: bytes.NewReader(bigBody)},
	})
	if err != nil {
		t.Fatal(err)
	}
	arts[0].SHA256 = strings.Repeat("ab", 32)
	arts[1].SHA256 = strings.Repeat("cd", 32)
	bad.Artifacts = arts
	bad.Provider.UID = "555566667777"
	e.publish(bad)
	st := e.waitExport("scan-bad-sum", "verified")
	if st.State != event.StateFailed || len(st.Errors) != 2 {
		t.Fatalf("want failed with two errors, got %s %+v", st.State, st.Errors)
	}
	for _, er := range st.Errors {
		if er.Code != string(errcode.ChecksumMismatch) || er.Retryable {
			t.Errorf("want a permanent ChecksumMismatch, got %+v", er)
		}
	}
	for k := range e.objects(b) {
		if strings.Contains(k, "555566667777") {
			t.Errorf("a mismatched artifact landed at %s", k)
		}
	}
	if ups := e.multipartUploads(b); len(ups) != 0 {
		t.Errorf("multipart uploads left open: %v", ups)
	}
}
