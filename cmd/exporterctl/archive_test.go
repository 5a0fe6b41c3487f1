package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// archiveIn copies Prowler App's zip of the real Prowler 5 folder (Python's
// zipfile) to <dir>/<tenant>/<scan>/out.zip and returns its path.
func archiveIn(t *testing.T, dir, tenant, scan string) string {
	t.Helper()
	b, err := os.ReadFile(fixtures.ZipFolder(t, fixtures.Prowler5Output(t)))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, tenant, scan, "out.zip")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// --archive --dry-run reads the member list (no NATS), lists the members
// the exporter would export with their keys, takes the scan id from the
// path and the uid and start from the names; an archive the exporter would
// refuse, or that lies outside the tenant's folder, is an error.
func TestScanPublishArchiveDryRun(t *testing.T) {
	p := archiveIn(t, t.TempDir(), "t1", "scan-9")
	r := ctl(context.Background(), nil, "", "-s", deadServer, "--json", "scan", "publish", "--tenant", "t1", "--provider-id", "p",
		"--archive", "file://"+p, "--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var plan struct {
		ScanID   string `json:"scan_id"`
		Provider struct{ UID string }
		Members  []struct{ Format, Framework, Member, Key string }
		Skipped  []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.ScanID != "scan-9" || plan.Provider.UID != "123456789012" || len(plan.Members) != 10 || len(plan.Skipped) != 2 {
		t.Fatalf("plan %+v", plan)
	}
	for _, m := range plan.Members {
		if filepath.Base(m.Key) != filepath.Base(m.Member) {
			t.Errorf("member %s would land at %s, not under its own name", m.Member, m.Key)
		}
	}
	if !strings.Contains(r.stderr, "skip member PROVENANCE.md") {
		t.Errorf("the skipped member is not said: %s", r.stderr)
	}

	for name, args := range map[string][]string{
		"another tenant":  {"--tenant", "t2", "--archive", "file://" + p},
		"another scan id": {"--tenant", "t1", "--scan-id", "scan-8", "--archive", "file://" + p},
		"a folder too":    {"--tenant", "t1", "--archive", "file://" + p, t.TempDir()},
		"an object store": {"--tenant", "t1", "--archive", "nats-os://B/t1/scan-9/out.zip"},
	} {
		r := ctl(context.Background(), nil, "", append([]string{"-s", deadServer, "scan", "publish", "--provider-id", "p", "--dry-run"}, args...)...)
		if r.code != exitUsage {
			t.Errorf("%s: exit %d, want %d: %s", name, r.code, exitUsage, r.stderr)
		}
	}
	// A zip the exporter would refuse.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range []string{"prowler-output-1-20250805120000.csv", "../x.csv"} {
		w, _ := zw.Create(n)
		w.Write([]byte("x"))
	}
	zw.Close()
	evil := filepath.Join(filepath.Dir(p), "evil.zip")
	if err := os.WriteFile(evil, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ctl(context.Background(), nil, "", "-s", deadServer, "scan", "publish", "--tenant", "t1", "--provider-id", "p", "--archive", "file://"+evil, "--dry-run")
	if r.code == 0 || !strings.Contains(r.stderr, "the exporter would refuse") || !strings.Contains(r.stderr, `holds ".."`) {
		t.Errorf("a hostile zip: exit %d: %s", r.code, r.stderr)
	}
}

// scan publish --archive s3://… --wait: the exporter reads Prowler App's zip
// from its output bucket and exports every member; exporterctl read the
// member list with the caller's AWS credentials at --s3-endpoint.
func TestScanPublishArchiveFromS3(t *testing.T) {
	// Not parallel: the AWS credentials come from the environment, for
	// exporterctl and for the exporter's own identity alike.
	outputs, dest := "prowler-app-outputs", "tenant-bucket"
	w := newWorldWith(t, func(c *config.Config, srv *s3test.S3Server) {
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_PROFILE", "")
		t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
		srv.MustCreateBucket(t, outputs)
		srv.MustCreateBucket(t, dest)
		c.S3SourceBuckets = []string{outputs}
	})
	zipped, err := os.ReadFile(archiveIn(t, t.TempDir(), "tenant-1", "scan-1"))
	if err != nil {
		t.Fatal(err)
	}
	key := "tenant-1/scan-1/prowler-output-123456789012-20261201085125.zip"
	if _, err := w.s3.RootClient().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(outputs), Key: aws.String(key), Body: bytes.NewReader(zipped)}); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(w.s3.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.must(0, "integration", "put", "--tenant", "tenant-1", "--id", "ig-1", "--bucket", dest, "--dir", "out",
		"--provider", "aws-1", "--access-key-id", w.s3.AccessKey, "--secret-access-key-file", secretFile)
	r := w.must(0, "scan", "publish", "--tenant", "tenant-1", "--provider-id", "aws-1",
		"--archive", "s3://"+outputs+"/"+key, "--s3-endpoint", w.s3.Endpoint(), "--s3-path-style", "--wait")
	if !strings.HasPrefix(r.stdout, "scan-1\n") || !strings.Contains(r.stdout, "integration ig-1: succeeded (attempt 1, 10 objects)") {
		t.Fatalf("scan publish --archive --wait:\n%s\n%s", r.stdout, r.stderr)
	}
	objs, err := w.s3.ListObjects(dest, "out/")
	if err != nil || len(objs) != 10 {
		t.Fatalf("%d objects landed (%v), want 10", len(objs), err)
	}
	got := w.s3.MustGetObject(t, dest, "out/compliance/prowler-output-123456789012-20261201085125_cmmc_2.0.ocsf.json")
	want, err := os.ReadFile(filepath.Join(fixtures.Prowler5Output(t), "compliance", "prowler-output-123456789012-20261201085125_cmmc_2.0.ocsf.json"))
	if err != nil || !bytes.Equal(got.Body, want) {
		t.Errorf("the compliance OCSF member landed with %d bytes, want %d", len(got.Body), len(want))
	}
}
