package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// handOff is Prowler App's hand-off (contract v1.2 §3): its zip of a real
// Prowler 5 output folder (zipped by Python's zipfile) in a source bucket of
// the platform's own, and the scan-completed event naming it.
type handOff struct {
	files   map[string][]byte // the folder's files, by path relative to it
	zipped  []byte
	started time.Time
}

func prowlerAppZip(t *testing.T) handOff {
	t.Helper()
	dir := fixtures.Prowler5Output(t)
	zipped, err := os.ReadFile(fixtures.ZipFolder(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	h := handOff{files: map[string][]byte{}, zipped: zipped,
		// The names' timestamp, so that every key ends in the file's own name.
		started: time.Date(2026, 12, 1, 8, 51, 25, 0, time.UTC)}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "PROVENANCE.md" {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h handOff) event(tenant, provider, scanID, src string) event.ScanCompleted {
	sum := sha256.Sum256(h.zipped)
	size := int64(len(h.zipped))
	return event.ScanCompleted{ScanID: scanID, TenantID: tenant,
		Provider:  event.Provider{ID: provider, Type: "aws", UID: "123456789012"},
		StartedAt: h.started,
		Artifacts: []event.Artifact{{Format: "archive", Source: src, SHA256: hex.EncodeToString(sum[:]), Size: &size}}}
}

func putObject(t *testing.T, srv *s3test.S3Server, bucket, key string, body []byte) {
	t.Helper()
	_, err := srv.RootClient().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

// Prowler App's whole hand-off is one event naming its zip in its output
// bucket: every file of the real Prowler 5 folder lands in the tenant's
// bucket under its own name, byte for byte (the empty compliance CSV and
// the compliance OCSF file included), with its metadata; the status and
// the manifest list one object per member. The exporter reads the zip with
// its own identity (the default chain), and GETs that break midway are
// resumed.
func TestProwlerAppHandOffExportsEveryMemberOfItsZip(t *testing.T) {
	// Not parallel: t.Setenv gives the exporter its own identity (the
	// default chain reads the environment); see TestNoCredentialsMeansTheDefaultChain.
	srv := s3Server(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	outputs := fmt.Sprintf("prowler-app-outputs-%d", time.Now().UnixNano()%1_000_000)
	srv.MustCreateBucket(t, outputs)
	e := newEnv(t, func(c *config.Config) {
		c.S3SourceBuckets = []string{outputs}
		c.S3Endpoint = proxy.URL()
	})
	h := prowlerAppZip(t)
	zipKey := "tenant-a/scan-app/prowler-output-123456789012-20261201085125.zip"
	putObject(t, srv, outputs, zipKey, h.zipped)
	// The first GETs of the zip break after 200 KiB.
	proxy.BreakBodies("/"+outputs+"/"+zipKey, 200<<10, 3)

	b := e.bucket("handoff")
	in := e.integration("tenant-a", "app-s3", b, "prov-1")
	in.Configuration.WriteManifest = true
	e.put(in)
	e.publish(h.event("tenant-a", "prov-1", "scan-app", "s3://"+outputs+"/"+zipKey))
	st := e.waitExport("scan-app", "app-s3")
	if st.State != event.StateSucceeded {
		t.Fatalf("%s %+v\n%s", st.State, st.Errors, e.logText())
	}
	// The broken reads were resumed within the first delivery, not redelivered.
	if st.Attempt != 1 {
		t.Errorf("succeeded on attempt %d, want 1: the broken GETs were not resumed", st.Attempt)
	}
	got := e.objects(b)
	manifestKey := "output/manifests/prowler-output-123456789012-20261201085125.manifest.json"
	if len(got) != len(h.files)+1 {
		t.Fatalf("%d objects, want %d files and the manifest: %v", len(got), len(h.files), keysOf(got))
	}
	byName := map[string]object{}
	for k, o := range got {
		if k != manifestKey {
			byName[path.Base(k)] = o
		}
	}
	for rel, body := range h.files {
		o, ok := byName[path.Base(rel)]
		if !ok {
			t.Errorf("%s did not land under its own name (keys: %v)", rel, keysOf(got))
			continue
		}
		if !bytes.Equal(o.Body, body) {
			t.Errorf("%s: %d bytes landed, want %d", rel, len(o.Body), len(body))
		}
		if strings.HasPrefix(rel, "compliance/") != strings.HasPrefix(o.Key, "output/compliance/") {
			t.Errorf("%s landed at %s", rel, o.Key)
		}
	}
	// One status line and one manifest line per member.
	if len(st.Objects) != len(h.files)+1 {
		t.Errorf("the status lists %d objects, want %d members and the manifest", len(st.Objects), len(h.files))
	}
	var m struct {
		Objects []event.ObjectRecord `json:"objects"`
	}
	if err := json.Unmarshal(got[manifestKey].Body, &m); err != nil || len(m.Objects) != len(h.files) {
		t.Errorf("the manifest lists %d objects (%v), want %d", len(m.Objects), err, len(h.files))
	}
	o := srv.MustGetObject(t, b, "output/compliance/prowler-output-123456789012-20261201085125_cmmc_2.0.ocsf.json")
	if o.Metadata["prowler-format"] != "compliance-ocsf" || o.Metadata["prowler-framework"] != "cmmc_2.0" || o.Metadata["prowler-scan-id"] != "scan-app" {
		t.Errorf("metadata %v", o.Metadata)
	}
	// The zip was read with the exporter's own identity, by ranged GETs,
	// and the broken ones were resumed; nothing was written to it.
	resumed := 0
	for _, r := range proxy.Requests() {
		if !strings.HasPrefix(r.Path, "/"+outputs) {
			continue
		}
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("%s %s: the source bucket is only read", r.Method, r.Path)
		}
		if r.Path == "/"+outputs+"/"+zipKey && r.Method == "GET" && r.Header.Get("Range") != "" && !strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") {
			resumed++
		}
	}
	if resumed == 0 || proxy.Stats().Broken == 0 {
		t.Errorf("%d ranged GETs of the zip, %d broken: want both", resumed, proxy.Stats().Broken)
	}

	// A hostile zip (a member climbing out, next to genuine outputs) is
	// refused as a whole: nothing of that scan lands.
	evil := zipWith(t, map[string]string{"prowler-output-123456789012-20261201085126.csv": "a,b\n",
		"../../tenant-b/scan-x/prowler-output-123456789012-20261201085126.html": "<p>"})
	evilKey := "tenant-a/scan-evil/prowler-output.zip"
	putObject(t, srv, outputs, evilKey, evil)
	ev := h.event("tenant-a", "prov-1", "scan-evil", "s3://"+outputs+"/"+evilKey)
	ev.Artifacts[0].SHA256, ev.Artifacts[0].Size = "", nil
	ev.StartedAt = h.started.Add(time.Second)
	e.publish(ev)
	st = e.waitExport("scan-evil", "app-s3")
	if st.State != event.StateFailed || len(st.Errors) != 1 || st.Errors[0].Code != string(errcode.SourceRefused) ||
		!strings.Contains(st.Errors[0].Message, `holds ".."`) {
		t.Errorf("a hostile zip: %s %+v", st.State, st.Errors)
	}
	if after := e.objects(b); len(after) != len(got) {
		t.Errorf("a hostile zip left objects: %d, was %d", len(after), len(got))
	}
}

// zipWith is a zip of the given members, written by Go's writer.
func zipWith(t *testing.T, members map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(members)) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, members[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A refused archive source fails the export as a whole, permanently, with
// nothing in the bucket: another tenant's prefix, a bucket not listed, an
// object-store archive. Nothing is read for any of them. (A hostile zip is
// refused on its member list: TestProwlerAppHandOffExportsEveryMemberOfItsZip.)
func TestRefusedArchivesExportNothing(t *testing.T) {
	t.Parallel()
	outputs := fmt.Sprintf("prowler-app-outputs-%d", time.Now().UnixNano()%1_000_000)
	e := newEnv(t, func(c *config.Config) { c.S3SourceBuckets = []string{outputs} })
	h := prowlerAppZip(t)
	b := e.bucket("refused-archive")
	// The connection test its creation starts has written and deleted its
	// beacon before the bucket is listed: refused archives touch no bucket
	// and can be over before it ends.
	if st := e.putAndWaitConn(e.integration("tenant-a", "refused", b, "prov-1")); !st.Connected {
		t.Fatalf("connection test: %+v", st.Error)
	}
	for i, src := range []string{
		"s3://" + outputs + "/tenant-b/scan-1/prowler-output.zip",      // another tenant's prefix
		"s3://not-listed-bucket/tenant-a/scan-2/prowler-output.zip",    // a bucket not listed
		"nats-os://PROWLER_OUTPUTS/tenant-a/scan-3/prowler-output.zip", // no random access
	} {
		scanID := fmt.Sprintf("scan-%d", i+1)
		e.publish(h.event("tenant-a", "prov-1", scanID, src))
		st := e.waitExport(scanID, "refused")
		if st.State != event.StateFailed || len(st.Errors) != 1 || st.Errors[0].Code != string(errcode.SourceRefused) ||
			st.Errors[0].Retryable || st.Errors[0].Format != "archive" {
			t.Errorf("%s: %s %+v, want failed with one permanent SourceRefused of the archive", src, st.State, st.Errors)
		}
	}
	if got := e.objects(b); len(got) != 0 {
		t.Errorf("a refused archive left %v", keysOf(got))
	}
}
