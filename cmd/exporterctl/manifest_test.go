package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

// integration put --write-manifest sets configuration.write_manifest (and
// only then), integration get shows it, and scan publish --wait then lands
// the files and, last, the manifest listing them.
func TestIntegrationPutWriteManifest(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its S3 server, its exporter
	w := newWorld(t)
	const (
		tenant = "tenant-m"
		uid    = "444455556666"
	)
	bucket := "exporterctl-manifest"
	if err := w.s3.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	w.env["AWS_SECRET_ACCESS_KEY"] = w.s3.SecretKey
	w.must(0, "integration", "put", "--tenant", tenant, "--id", "without", "--bucket", bucket, "--dir", "no-manifest",
		"--provider", "aws-m", "--access-key-id", w.s3.AccessKey)
	if wire := w.lastChange(tenant, "without"); bytes.Contains(wire, []byte("write_manifest")) {
		t.Errorf("write_manifest sent without --write-manifest: %s", wire)
	}
	w.must(0, "integration", "put", "--tenant", tenant, "--id", "with", "--bucket", bucket, "--dir", "with-manifest",
		"--provider", "aws-m", "--access-key-id", w.s3.AccessKey, "--write-manifest")
	if wire := w.lastChange(tenant, "with"); !bytes.Contains(wire, []byte(`"write_manifest":true`)) {
		t.Errorf("--write-manifest not on the wire: %s", wire)
	}
	r := w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "with")
	var got event.GetReply
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !got.Integration.Configuration.WriteManifest {
		t.Fatalf("integration get: %v\n%s", err, r.stdout)
	}
	w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "without")

	folder, files, start := writeScanFolder(t, 61, uid, "cis_5.0_aws")
	r = w.must(0, "scan", "publish", folder, "--tenant", tenant, "--provider-id", "aws-m", "--provider-uid", uid,
		"--started-at", start.Format(time.RFC3339), "--wait")
	if want := fmt.Sprintf("integration with: succeeded (attempt 1, %d objects", len(files)+1); !strings.Contains(r.stdout, want) {
		t.Errorf("scan publish --wait: no %q:\n%s", want, r.stdout)
	}
	if want := fmt.Sprintf("integration without: succeeded (attempt 1, %d objects", len(files)); !strings.Contains(r.stdout, want) {
		t.Errorf("scan publish --wait: no %q:\n%s", want, r.stdout)
	}
	if objs, err := w.s3.ListObjects(bucket, "no-manifest/manifests/"); err != nil || len(objs) != 0 {
		t.Errorf("manifest without write_manifest: %v %v", objs, err)
	}
	o, err := w.s3.GetObject(bucket, exporter.ManifestKey("with-manifest", uid, start))
	if err != nil {
		t.Fatalf("no manifest: %v", err)
	}
	var m exporter.Manifest
	if err := json.Unmarshal(o.Body, &m); err != nil || m.TenantID != tenant || m.Provider.UID != uid || len(m.Objects) != len(files) {
		t.Errorf("manifest (%v):\n%s", err, o.Body)
	}
}
