package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// The manifest key of the scans these tests publish (uid 111122223333,
// started 2025-08-05T12:00:00Z) under "output".
const manifestKey = "output/manifests/prowler-output-111122223333-20250805120000.manifest.json"

func (e *env) manifestIntegration(tenant, id, bucket string, providers ...string) event.IntegrationPayload {
	in := e.integration(tenant, id, bucket, providers...)
	in.Configuration.WriteManifest = true
	return in
}

// checkManifest reads the manifest back and compares it with what landed
// in the bucket: every other object, with its size, ETag (HeadObject) and
// sha256 (of the bytes in the bucket, and the event's when it gave one),
// ordered by key. It returns the manifest's bytes.
func (e *env) checkManifest(t *testing.T, bucket string, scan event.ScanCompleted) []byte {
	t.Helper()
	ctx := context.Background()
	got := e.objects(bucket)
	mo, ok := got[manifestKey]
	if !ok {
		t.Fatalf("no manifest at %s; bucket holds %v", manifestKey, keysOf(got))
	}
	if mo.ContentType != "application/json" {
		t.Errorf("manifest Content-Type %q", mo.ContentType)
	}
	h, err := e.s3.RootClient().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(manifestKey)})
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata[exporter.MetaFormat] != exporter.FormatManifest || h.Metadata[exporter.MetaScanID] != scan.ScanID ||
		h.Metadata[exporter.MetaSHA256] != hexSum(mo.Body) {
		t.Errorf("manifest metadata %v", h.Metadata)
	}
	var m exporter.Manifest
	dec := json.NewDecoder(bytes.NewReader(mo.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest does not decode: %v\n%s", err, mo.Body)
	}
	if m.ManifestVersion != 1 || m.ScanID != scan.ScanID || m.TenantID != scan.TenantID ||
		m.Provider != (exporter.ManifestProvider{ID: scan.Provider.ID, Type: scan.Provider.Type, UID: scan.Provider.UID}) ||
		!m.StartedAt.Equal(scan.StartedAt) || (scan.CompletedAt != nil) != (m.CompletedAt != nil) {
		t.Errorf("manifest header %+v, scan %+v", m, scan)
	}
	if len(m.Objects) != len(got)-1 || len(m.Objects) != len(scan.Artifacts) {
		t.Fatalf("manifest lists %d objects; the bucket holds %d besides it, the scan has %d artifacts", len(m.Objects), len(got)-1, len(scan.Artifacts))
	}
	shas := map[string]string{}
	for _, a := range scan.Artifacts {
		shas[exporter.ObjectKey("output", a, scan.Provider.UID, scan.StartedAt)] = a.SHA256
	}
	for i, o := range m.Objects {
		if i > 0 && m.Objects[i-1].Key >= o.Key {
			t.Errorf("objects not ordered by key: %q then %q", m.Objects[i-1].Key, o.Key)
		}
		body, ok := got[o.Key]
		if !ok {
			t.Errorf("manifest lists %s, not in the bucket", o.Key)
			continue
		}
		h, err := e.s3.RootClient().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
		if err != nil {
			t.Fatal(err)
		}
		if o.Size != int64(len(body.Body)) || o.ETag != strings.Trim(aws.ToString(h.ETag), `"`) || o.ETag == "" {
			t.Errorf("%s: manifest says size %d etag %q; bucket has %d bytes, etag %s", o.Key, o.Size, o.ETag, len(body.Body), aws.ToString(h.ETag))
		}
		if o.SHA256 == nil || *o.SHA256 != hexSum(body.Body) || (shas[o.Key] != "" && *o.SHA256 != shas[o.Key]) {
			t.Errorf("%s: manifest sha256 %v, bytes hash to %s", o.Key, o.SHA256, hexSum(body.Body))
		}
		if o.Format != h.Metadata[exporter.MetaFormat] || o.Framework != h.Metadata[exporter.MetaFramework] {
			t.Errorf("%s: manifest format %q/%q, object metadata %v", o.Key, o.Format, o.Framework, h.Metadata)
		}
	}
	return mo.Body
}

// Contract v1.1 §4: with write_manifest, the manifest lists exactly what
// landed, is written after every other object (seen at a proxy: its PUT
// reaches S3 only after the slowest upload was let through), is listed
// last in the status, and a redelivery (replay) rewrites the same bytes.
func TestManifestListsWhatLandedAndComesLast(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, proxy := proxiedEnv(t, nil)
	b := e.bucket("manifest")
	e.putAndWaitConn(e.manifestIntegration("tenant-a", "with-manifest", b, "prov-1"))

	// Hold the csv's PUT for a moment; the order of events at the proxy
	// then shows whether the manifest waited for it.
	var (
		mu     sync.Mutex
		events []string
	)
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			return false
		}
		mu.Lock()
		events = append(events, "arrived "+r.URL.Path)
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, ".csv") && strings.Contains(r.URL.Path, "/output/csv/") {
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			events = append(events, "released "+r.URL.Path)
			mu.Unlock()
		}
		return false
	})
	files, _ := prowlerFiles(31, "111122223333", frameworks...)
	var cf []client.File
	for _, f := range files {
		cf = append(cf, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
	}
	arts, err := e.cl.PutArtifacts(context.Background(), "", "tenant-a", "scan-manifest", cf)
	if err != nil {
		t.Fatal(err)
	}
	// One artifact without sha256 in the event: the manifest has it anyway.
	arts[0].SHA256 = ""
	scan := event.ScanCompleted{ScanID: "scan-manifest", TenantID: "tenant-a",
		Provider:  event.Provider{ID: "prov-1", Type: "aws", UID: "111122223333"},
		StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC), Artifacts: arts}
	e.publish(scan)
	st := e.waitExport("scan-manifest", "with-manifest")
	if st.State != event.StateSucceeded || len(st.Objects) != len(files)+1 {
		t.Fatalf("export: %s, %d objects (want %d files and the manifest), errors %+v", st.State, len(st.Objects), len(files), st.Errors)
	}
	if last := st.Objects[len(st.Objects)-1]; last.Format != exporter.FormatManifest || last.Key != manifestKey {
		t.Errorf("status lists %+v last, want the manifest", last)
	}
	first := e.checkManifest(t, b, scan)

	mu.Lock()
	order := append([]string(nil), events...)
	mu.Unlock()
	manifestAt, releasedAt, lastObject := -1, -1, -1
	for i, ev := range order {
		switch {
		case strings.HasSuffix(ev, manifestKey):
			if manifestAt >= 0 {
				t.Errorf("manifest written twice in one export: %v", order)
			}
			manifestAt = i
		case strings.HasPrefix(ev, "released "):
			releasedAt = i
		default:
			lastObject = i
		}
	}
	if manifestAt < 0 || releasedAt < 0 || manifestAt < releasedAt || manifestAt < lastObject {
		t.Errorf("the manifest's PUT is not after every other request (manifest %d, slow csv released %d, last other %d): %v",
			manifestAt, releasedAt, lastObject, order)
	}

	// A redelivery rewrites it with the same bytes.
	proxy.Intercept(nil)
	if rep, err := e.cl.Replay(context.Background(), "tenant-a", "scan-manifest", "with-manifest"); err != nil || !rep.Accepted {
		t.Fatalf("replay: %+v %v", rep, err)
	}
	if second := e.waitExports("scan-manifest", "with-manifest", 2)[1]; second.State != event.StateSucceeded {
		t.Fatalf("replayed export: %s %v", second.State, second.Errors)
	}
	if n := e.s3.MustPutCount(t, b, manifestKey); n != 2 {
		t.Errorf("manifest written %d times after the replay, want 2", n)
	}
	if again := e.checkManifest(t, b, scan); !bytes.Equal(first, again) {
		t.Errorf("the redelivery wrote another manifest:\n%s\nthen\n%s", first, again)
	}
}

// No manifest for an export with a permanently failed artifact, nor for an
// integration without write_manifest (beside one with it, for the same scan).
func TestNoManifestForAFailedExportOrWhenNotAsked(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	with, without := e.bucket("manifest-on"), e.bucket("manifest-off")
	e.putAndWaitConn(e.manifestIntegration("tenant-a", "on", with, "prov-1"))
	e.putAndWaitConn(e.integration("tenant-a", "off", without, "prov-1"))

	// One artifact is missing from the object store: SourceNotFound, permanent.
	files, _ := prowlerFiles(32, "111122223333", frameworks[0])
	var cf []client.File
	for _, f := range files {
		cf = append(cf, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
	}
	arts, err := e.cl.PutArtifacts(context.Background(), "", "tenant-a", "scan-broken", cf)
	if err != nil {
		t.Fatal(err)
	}
	arts[1].Source += ".missing"
	arts[1].SHA256, arts[1].Size = "", nil
	e.publish(event.ScanCompleted{ScanID: "scan-broken", TenantID: "tenant-a",
		Provider:  event.Provider{ID: "prov-1", Type: "aws", UID: "111122223333"},
		StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC), Artifacts: arts})
	for _, id := range []string{"on", "off"} {
		st := e.waitExport("scan-broken", id)
		if st.State != event.StateFailed || len(st.Objects) != len(files)-1 || len(st.Errors) != 1 ||
			st.Errors[0].Code != string(errcode.SourceNotFound) {
			t.Fatalf("%s: export %s, %d objects, errors %+v", id, st.State, len(st.Objects), st.Errors)
		}
	}
	for _, bucket := range []string{with, without} {
		got := e.objects(bucket)
		if len(got) != len(files)-1 {
			t.Errorf("%s holds %v, want the %d artifacts that landed", bucket, keysOf(got), len(files)-1)
		}
		if _, ok := got[manifestKey]; ok {
			t.Errorf("%s: a manifest for a failed export", bucket)
		}
	}

	// A complete scan: a manifest only where it was asked for.
	files, _ = prowlerFiles(33, "111122223333", frameworks[0])
	scan := e.publishScan("tenant-a", "prov-1", "111122223333", "scan-whole", files)
	if st := e.waitExport("scan-whole", "off"); st.State != event.StateSucceeded || len(st.Objects) != len(files) {
		t.Fatalf("off: %s, %d objects %+v", st.State, len(st.Objects), st.Errors)
	}
	if st := e.waitExport("scan-whole", "on"); st.State != event.StateSucceeded || len(st.Objects) != len(files)+1 {
		t.Fatalf("on: %s, %d objects %+v", st.State, len(st.Objects), st.Errors)
	}
	for k := range e.objects(without) {
		if strings.Contains(k, "/manifests/") {
			t.Errorf("manifest %s written without write_manifest", k)
		}
	}
	e.checkManifest(t, with, scan)
}

// A manifest write that fails is a retryable failure of that export
// (status retrying, error format "manifest"), never succeeded; the
// redelivery writes the manifest without uploading the files again.
func TestManifestWriteFailureIsRetriedWithoutReuploading(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, proxy := proxiedEnv(t, func(c *config.Config) {
		c.InProcessRetries = 1
		c.Backoff = []time.Duration{time.Second}
	})
	b := e.bucket("manifest-retry")
	e.putAndWaitConn(e.manifestIntegration("tenant-a", "flaky", b, "prov-1"))
	var (
		mu     sync.Mutex
		refuse = true
	)
	// Every manifest PUT is throttled until the export has been reported
	// retrying (the SDK's and the in-process retries of the first delivery
	// all fail); then they go through.
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, manifestKey) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			s3test.WriteS3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
			return true
		}
		return false
	})
	files, _ := prowlerFiles(34, "111122223333", frameworks...)
	scan := e.publishScan("tenant-a", "prov-1", "111122223333", "scan-flaky", files)

	retrying, ok := e.waitFor(30*time.Second, func(s client.Status) bool {
		return s.Export != nil && s.Export.ScanID == "scan-flaky" && s.Export.State == event.StateRetrying
	})
	if !ok {
		t.Fatalf("no retrying status: %s", e.dump())
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	r := retrying.Export
	if len(r.Errors) != 1 || r.Errors[0].Format != exporter.FormatManifest || r.Errors[0].Key != manifestKey ||
		!r.Errors[0].Retryable || len(r.Objects) != len(files) {
		t.Errorf("retrying status: %d objects, errors %+v", len(r.Objects), r.Errors)
	}
	st := e.waitExport("scan-flaky", "flaky")
	if st.State != event.StateSucceeded || st.Attempt < 2 || len(st.Objects) != len(files)+1 {
		t.Fatalf("after the retry: %s attempt %d, %d objects, errors %+v", st.State, st.Attempt, len(st.Objects), st.Errors)
	}
	for _, o := range st.Objects {
		if o.Key == manifestKey {
			continue
		}
		if n := e.s3.MustPutCount(t, b, o.Key); n != 1 {
			t.Errorf("%s written %d times, want once: the redelivery uploaded it again", o.Key, n)
		}
	}
	if n := e.s3.MustPutCount(t, b, manifestKey); n != 1 {
		t.Errorf("manifest stored %d times, want 1 (the refused attempts never reached S3)", n)
	}
	e.checkManifest(t, b, scan)
	for _, s := range e.exports("scan-flaky", "flaky") {
		if s.State == event.StateSucceeded && s.Attempt == 1 {
			t.Errorf("first delivery reported succeeded without its manifest: %+v", s)
		}
	}
}

// A manifest the bucket refuses for good (AccessDenied on it alone) fails
// the export: state failed, the error names the manifest, the files stay,
// and no manifest is in the bucket for downstream jobs to trust.
func TestManifestRefusedForGoodFailsTheExport(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, proxy := proxiedEnv(t, nil)
	b := e.bucket("manifest-denied")
	e.putAndWaitConn(e.manifestIntegration("tenant-a", "denied", b, "prov-1"))
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, manifestKey) {
			s3test.WriteS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
			return true
		}
		return false
	})
	files, _ := prowlerFiles(35, "111122223333", frameworks[0])
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-denied", files)
	st := e.waitExport("scan-denied", "denied")
	if st.State != event.StateFailed || len(st.Objects) != len(files) || len(st.Errors) != 1 {
		t.Fatalf("export: %s, %d objects, errors %+v", st.State, len(st.Objects), st.Errors)
	}
	if er := st.Errors[0]; er.Format != exporter.FormatManifest || er.Key != manifestKey || er.Retryable ||
		er.Code != string(errcode.S3BucketAccessDenied) {
		t.Errorf("error %+v, want a permanent S3BucketAccessDenied of the manifest", er)
	}
	got := e.objects(b)
	if _, ok := got[manifestKey]; ok || len(got) != len(files) {
		t.Errorf("bucket holds %v, want the %d files and no manifest", keysOf(got), len(files))
	}
	for _, s := range e.exports("scan-denied", "denied") {
		if s.State != event.StateFailed {
			t.Errorf("status %s attempt %d: a permanent failure is not retried", s.State, s.Attempt)
		}
	}
}
