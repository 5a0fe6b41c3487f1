package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/miniotest"
)

// Issue 19: MinIO, an S3 server nobody here wrote, as a second world. It
// enforces what AWS enforces where versitygw does not: SSE-KMS with a named
// key (and refuses a key it does not have), IAM users whose policies have
// conditions, Object Lock with default retention. One MinIO process serves
// the test binary; each test has its own buckets, users and exporter.

var (
	sharedMinIOOnce sync.Once
	sharedMinIO     *miniotest.Server
	sharedMinIOErr  error
)

// minioServer is the shared MinIO process (started on first use; TestMain
// stops it). The first call of a fresh machine installs MinIO (minutes).
func minioServer(t testing.TB) *miniotest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts a MinIO process")
	}
	sharedMinIOOnce.Do(func() { sharedMinIO, sharedMinIOErr = miniotest.Run() })
	if sharedMinIOErr != nil {
		t.Fatalf("starting minio: %v", sharedMinIOErr)
	}
	return sharedMinIO
}

// minioWorld is a test's world on MinIO: the env's NATS and exporter, with
// MinIO as the S3 endpoint.
type minioWorld struct {
	*env
	m *miniotest.Server
}

func newMinIOWorld(t *testing.T, mutate func(*config.Config)) *minioWorld {
	t.Helper()
	m := minioServer(t)
	e := newEnv(t, func(c *config.Config) {
		c.S3Endpoint = m.Endpoint()
		if mutate != nil {
			mutate(c)
		}
	})
	return &minioWorld{env: e, m: m}
}

// bucketOpts say what a new MinIO bucket has.
type bucketOpts struct {
	versioned bool
	// retainDays > 0 makes an Object Lock bucket whose default retention
	// (GOVERNANCE) keeps every new object version that many days.
	retainDays int32
}

// mbucket creates a fresh MinIO bucket.
func (w *minioWorld) mbucket(name string, o bucketOpts) string {
	w.t.Helper()
	name = uniq(name)
	ctx := context.Background()
	root := w.m.RootClient()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if o.retainDays > 0 {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := root.CreateBucket(ctx, in); err != nil {
		w.t.Fatalf("creating bucket %s: %v", name, err)
	}
	if o.versioned {
		if _, err := root.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			w.t.Fatal(err)
		}
	}
	if o.retainDays > 0 {
		if _, err := root.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(name),
			ObjectLockConfiguration: &s3types.ObjectLockConfiguration{
				ObjectLockEnabled: s3types.ObjectLockEnabledEnabled,
				Rule: &s3types.ObjectLockRule{DefaultRetention: &s3types.DefaultRetention{
					Mode: s3types.ObjectLockRetentionModeGovernance, Days: aws.Int32(o.retainDays)}},
			}}); err != nil {
			w.t.Fatal(err)
		}
	}
	return name
}

// integration is an integration of bucket with the given keys (root's when
// empty).
func (w *minioWorld) mintegration(tenant, id, bucket, access, secret string) event.IntegrationPayload {
	if access == "" {
		access, secret = miniotest.AccessKey, miniotest.SecretKey
	}
	return event.IntegrationPayload{
		ID: id, TenantID: tenant, Type: event.TypeAmazonS3, Providers: []string{"prov-1"},
		Configuration: event.Configuration{BucketName: bucket, OutputDirectory: "output"},
		Credentials:   &event.Credentials{AccessKeyID: access, SecretAccessKey: secret},
	}
}

// muser creates a MinIO IAM user holding exactly policy.
func (w *minioWorld) muser(prefix, policy string) (access, secret string) {
	w.t.Helper()
	access, secret = uniq(prefix), uniq(prefix+"-secret-key")
	w.m.MustUser(w.t, access, secret, policy)
	return access, secret
}

// documentedUserPolicy is the documented policy
// (deploy/aws/bucket-policy.json) as an IAM user's policy: the same
// statements without their principals (MinIO applies bucket policies to
// anonymous requests only, so a user's grants go in its own policy).
func documentedUserPolicy(t testing.TB, bucket string, withDelete bool) string {
	t.Helper()
	var pol struct {
		Version   string
		Statement []map[string]any
	}
	if err := json.Unmarshal([]byte(documentedPolicy(t, bucket, withDelete, "x")), &pol); err != nil {
		t.Fatal(err)
	}
	for _, st := range pol.Statement {
		delete(st, "Principal")
	}
	b, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkLanded checks that every artifact of set is in objs under the key
// the export status gives, with its exact bytes.
func checkLanded(t *testing.T, ex event.ExportStatus, objs map[string]object, set fileSet) {
	t.Helper()
	if len(ex.Objects) != len(set) {
		t.Errorf("export lists %d objects, the scan had %d", len(ex.Objects), len(set))
	}
	for _, o := range ex.Objects {
		f, ok := set[event.Artifact{Format: o.Format, Framework: o.Framework}.Name()]
		got, there := objs[o.Key]
		switch {
		case !ok:
			t.Errorf("object %s is no artifact of the scan", o.Key)
		case !there:
			t.Errorf("object %s is not in the bucket", o.Key)
		case !bytes.Equal(got.Body, f.Body):
			t.Errorf("object %s: %d bytes differ from the artifact's %d", o.Key, len(got.Body), len(f.Body))
		}
	}
}

// bigFile is an artifact above the multipart threshold of these tests.
func bigFile(size int) fixtures.OutputFile {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*131 + i>>9)
	}
	return fixtures.OutputFile{Format: "json-ocsf", FileName: "big.ocsf.json", Body: b}
}

// withBig keeps three artifacts of a scan besides its json-ocsf and adds
// an 11 MiB json-ocsf one (multipart: three parts with multipartConfig).
func withBig(files []fixtures.OutputFile, _ fileSet) ([]fixtures.OutputFile, fileSet) {
	var out []fixtures.OutputFile
	for _, f := range files {
		if f.Format != "json-ocsf" && len(out) < 3 {
			out = append(out, f)
		}
	}
	out = append(out, bigFile(11<<20))
	set := fileSet{}
	for _, f := range out {
		set[event.Artifact{Format: f.Format, Framework: f.Framework}.Name()] = f
	}
	return out, set
}

// multipartConfig makes 5 MiB parts from 5 MiB on.
func multipartConfig(c *config.Config) { c.PartSize, c.MultipartThreshold = 5<<20, 5<<20 }

// Object Lock with default retention, with the SDK's checksum defaults and
// with AWS_REQUEST_CHECKSUM_CALCULATION=when_required, a multipart artifact
// included: the connection test passes, the export lands byte for byte, and
// every object is under the bucket's retention.
func TestMinIOObjectLockDefaultRetention(t *testing.T) {
	// Not parallel: t.Setenv changes what every exporter of this binary
	// reads.
	for _, setting := range []string{"when_supported", "when_required"} {
		t.Run(setting, func(t *testing.T) {
			t.Setenv("AWS_REQUEST_CHECKSUM_CALCULATION", setting)
			w := newMinIOWorld(t, multipartConfig)
			b := w.mbucket("locked", bucketOpts{retainDays: 1})
			if st := w.putAndWaitConn(w.mintegration("tenant-lock", "lock", b, "", "")); !st.Connected {
				t.Fatalf("connection test: %+v", st.Error)
			}
			files, set := withBig(prowlerFiles(191, "111122223333"))
			w.publishScan("tenant-lock", "prov-1", "111122223333", "scan-lock", files)
			ex := w.waitExport("scan-lock", "lock")
			if ex.State != event.StateSucceeded {
				t.Fatalf("export %s %+v", ex.State, ex.Errors)
			}
			checkLanded(t, ex, w.objectsOn(w.m.RootClient(), b), set)
			for _, o := range ex.Objects {
				h, err := w.m.RootClient().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(o.Key)})
				if err != nil {
					t.Fatal(err)
				}
				if h.ObjectLockMode != s3types.ObjectLockModeGovernance || h.ObjectLockRetainUntilDate == nil || h.ObjectLockRetainUntilDate.Before(time.Now()) {
					t.Errorf("%s: lock mode %q until %v, want the bucket's default retention", o.Key, h.ObjectLockMode, h.ObjectLockRetainUntilDate)
				}
			}
		})
	}
}

// SSE-KMS with a named key: the beacon and every object (multipart too)
// are encrypted with it, as HeadObject shows.
func TestMinIOSSEKMSNamedKey(t *testing.T) {
	t.Parallel()
	w := newMinIOWorld(t, multipartConfig)
	b := w.mbucket("kms", bucketOpts{})
	in := w.mintegration("tenant-kms", "kms", b, "", "")
	in.Configuration.SSE, in.Configuration.KMSKeyID = "aws:kms", miniotest.KeyName
	if st := w.putAndWaitConn(in); !st.Connected {
		t.Fatalf("connection test: %+v", st.Error)
	}
	files, set := withBig(prowlerFiles(192, "111122223333"))
	w.publishScan("tenant-kms", "prov-1", "111122223333", "scan-kms", files)
	ex := w.waitExport("scan-kms", "kms")
	if ex.State != event.StateSucceeded {
		t.Fatalf("export %s %+v", ex.State, ex.Errors)
	}
	checkLanded(t, ex, w.objectsOn(w.m.RootClient(), b), set)
	for _, o := range ex.Objects {
		h, err := w.m.RootClient().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(o.Key)})
		if err != nil {
			t.Fatal(err)
		}
		if h.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || !strings.HasSuffix(aws.ToString(h.SSEKMSKeyId), miniotest.KeyName) {
			t.Errorf("%s: sse %q key %q, want aws:kms with %s", o.Key, h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId), miniotest.KeyName)
		}
	}
}

// A KMS key that does not exist: the connection test says so
// (S3EncryptionKeyError, not S3BucketNotFound although MinIO answers 404),
// and an export (a multipart artifact included) fails at once, without
// retries, leaving the integration disconnected with the same code.
func TestMinIOUnknownKMSKey(t *testing.T) {
	t.Parallel()
	w := newMinIOWorld(t, multipartConfig)
	b := w.mbucket("nokey", bucketOpts{})
	in := w.mintegration("tenant-nokey", "nokey", b, "", "")
	in.Configuration.SSE, in.Configuration.KMSKeyID = "aws:kms", "no-such-key"
	st := w.putAndWaitConn(in)
	checkStatus(t, "connection test", st.Connected, st.Error, string(errcode.S3EncryptionKeyError), "kms:GenerateDataKey")
	rep, st2 := w.testSaved("tenant-nokey", "nokey")
	checkConn(t, "test on request", rep, st2, string(errcode.S3EncryptionKeyError))

	files, _ := withBig(prowlerFiles(193, "111122223333"))
	w.publishScan("tenant-nokey", "prov-1", "111122223333", "scan-nokey", files)
	ex := w.waitExport("scan-nokey", "nokey")
	if ex.State != event.StateFailed || ex.Attempt != 1 {
		t.Fatalf("export %s on delivery %d, want failed on the first", ex.State, ex.Attempt)
	}
	if len(ex.Errors) != len(files) {
		t.Errorf("%d errors for %d artifacts", len(ex.Errors), len(files))
	}
	for _, e := range ex.Errors {
		if e.Code != string(errcode.S3EncryptionKeyError) || e.Retryable {
			t.Errorf("%s: %s retryable %v, want S3EncryptionKeyError, not retryable (%s)", e.Key, e.Code, e.Retryable, e.Message)
		}
	}
	for _, s := range w.exports("scan-nokey", "nokey") {
		if s.State == event.StateRetrying {
			t.Errorf("a retrying status was published: %+v", s)
		}
	}
	if n := sumMetric(t, w.reg, "s3exporter_upload_retries_total") + sumMetric(t, w.reg, "s3exporter_s3_request_retries_total"); n != 0 {
		t.Errorf("%v retries (in process or by the SDK), want none", n)
	}
	conns := w.connStatuses("tenant-nokey", "nokey")
	last := conns[len(conns)-1]
	checkStatus(t, "after the export", last.Connected, last.Error, string(errcode.S3EncryptionKeyError))
	if objs := w.objectsOn(w.m.RootClient(), b); len(objs) != 0 {
		t.Errorf("objects in the bucket: %v", keysOf(objs))
	}
	ups, err := w.m.RootClient().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(b)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind", len(ups.Uploads))
	}
}

// A user allowed to write only SSE-KMS objects (its IAM policy allows
// s3:PutObject only with s3:x-amz-server-side-encryption = aws:kms): the
// connection test and the export pass with sse set, and both fail without.
// Small artifacts only: MinIO refuses UploadPart under such a policy (a
// part carries no encryption header), whatever the integration sets; see
// docs/tenant-buckets.md.
func TestMinIOPolicyRequiresSSEKMS(t *testing.T) {
	t.Parallel()
	w := newMinIOWorld(t, nil)
	b := w.mbucket("ssepolicy", bucketOpts{})
	access, secret := w.muser("kmsonly", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::`+b+`/*"],
		 "Condition":{"StringEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}},
		{"Effect":"Allow","Action":["s3:DeleteObject"],"Resource":["arn:aws:s3:::`+b+`/*`+exporter.BeaconKey+`"]},
		{"Effect":"Allow","Action":["s3:GetBucketLocation"],"Resource":["arn:aws:s3:::`+b+`"]}]}`)
	files, set := prowlerFiles(194, "111122223333")
	files = files[:3]
	for name := range set {
		keep := false
		for _, f := range files {
			keep = keep || event.Artifact{Format: f.Format, Framework: f.Framework}.Name() == name
		}
		if !keep {
			delete(set, name)
		}
	}

	with := w.mintegration("tenant-sse", "with-sse", b, access, secret)
	with.Configuration.SSE = "aws:kms"
	if st := w.putAndWaitConn(with); !st.Connected {
		t.Fatalf("with sse: connection test %+v", st.Error)
	}
	without := w.mintegration("tenant-sse", "without-sse", b, access, secret)
	without.Configuration.OutputDirectory = "plain"
	st := w.putAndWaitConn(without)
	checkStatus(t, "without sse: connection test", st.Connected, st.Error, string(errcode.S3BucketAccessDenied), "s3:PutObject")

	w.publishScan("tenant-sse", "prov-1", "111122223333", "scan-sse", files)
	if ex := w.waitExport("scan-sse", "with-sse"); ex.State != event.StateSucceeded {
		t.Errorf("with sse: export %s %+v", ex.State, ex.Errors)
	} else {
		checkLanded(t, ex, w.objectsOn(w.m.RootClient(), b), set)
	}
	ex := w.waitExport("scan-sse", "without-sse")
	if ex.State != event.StateFailed || len(ex.Objects) != 0 {
		t.Errorf("without sse: export %s with %d objects, want failed with none", ex.State, len(ex.Objects))
	}
	for _, e := range ex.Errors {
		if e.Code != string(errcode.S3BucketAccessDenied) {
			t.Errorf("without sse: %s %s, want S3BucketAccessDenied", e.Key, e.Code)
		}
	}
}

// An IAM user holding exactly the documented policy: the connection test
// and the export pass. Without its s3:DeleteObject statement the test fails
// with S3BucketAccessDenied, naming what to add.
func TestMinIODocumentedPolicy(t *testing.T) {
	t.Parallel()
	w := newMinIOWorld(t, nil)
	b := w.mbucket("documented", bucketOpts{})
	access, secret := w.muser("documented", documentedUserPolicy(t, b, true))
	noDel, noDelSecret := w.muser("nodelete", documentedUserPolicy(t, b, false))

	if st := w.putAndWaitConn(w.mintegration("tenant-doc", "doc", b, access, secret)); !st.Connected {
		t.Fatalf("documented policy: connection test %+v", st.Error)
	}

	files, set := prowlerFiles(195, "111122223333")
	w.publishScan("tenant-doc", "prov-1", "111122223333", "scan-doc", files)
	ex := w.waitExport("scan-doc", "doc")
	if ex.State != event.StateSucceeded {
		t.Fatalf("export %s %+v", ex.State, ex.Errors)
	}
	objs := w.objectsOn(w.m.RootClient(), b)
	checkLanded(t, ex, objs, set)
	if _, ok := objs[exporter.BeaconKey]; ok {
		t.Error("the beacon was left in the bucket")
	}

	// Without the statement that lets it delete the beacon (which then
	// stays: a PUT the policy allowed).
	st := w.putAndWaitConn(w.mintegration("tenant-doc", "nodel", b, noDel, noDelSecret))
	checkStatus(t, "without s3:DeleteObject", st.Connected, st.Error, string(errcode.S3BucketAccessDenied), "s3:DeleteObject", exporter.BeaconKey)
}

// A versioned bucket and a replay: the replay writes new versions of the
// same keys with the same bytes; the beacon leaves only a noncurrent
// version behind a delete marker (what docs/tenant-buckets.md says).
func TestMinIOVersionedBucketReplay(t *testing.T) {
	t.Parallel()
	w := newMinIOWorld(t, nil)
	b := w.mbucket("versioned", bucketOpts{versioned: true})
	if st := w.putAndWaitConn(w.mintegration("tenant-ver", "ver", b, "", "")); !st.Connected {
		t.Fatalf("connection test: %+v", st.Error)
	}
	files, set := prowlerFiles(196, "111122223333")
	files = files[:4]
	for name := range set {
		keep := false
		for _, f := range files {
			keep = keep || event.Artifact{Format: f.Format, Framework: f.Framework}.Name() == name
		}
		if !keep {
			delete(set, name)
		}
	}
	w.publishScan("tenant-ver", "prov-1", "111122223333", "scan-ver", files)
	first := w.waitExport("scan-ver", "ver")
	if first.State != event.StateSucceeded {
		t.Fatalf("export %s %+v", first.State, first.Errors)
	}
	if rep, err := w.cl.Replay(context.Background(), "tenant-ver", "scan-ver", "ver"); err != nil || !rep.Accepted {
		t.Fatalf("replay: %+v %v", rep, err)
	}
	second := w.waitExports("scan-ver", "ver", 2)[1]
	if second.State != event.StateSucceeded {
		t.Fatalf("replay: export %s %+v", second.State, second.Errors)
	}
	checkLanded(t, second, w.objectsOn(w.m.RootClient(), b), set)

	vs, err := w.m.RootClient().ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(b)})
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string][]s3types.ObjectVersion{}
	for _, v := range vs.Versions {
		versions[aws.ToString(v.Key)] = append(versions[aws.ToString(v.Key)], v)
	}
	for _, o := range first.Objects {
		got := versions[o.Key]
		if len(got) != 2 {
			t.Errorf("%s: %d versions, want 2 (the export and the replay)", o.Key, len(got))
			continue
		}
		if aws.ToString(got[0].ETag) != aws.ToString(got[1].ETag) || aws.ToString(got[0].VersionId) == aws.ToString(got[1].VersionId) {
			t.Errorf("%s: versions %s/%s with ETags %s/%s, want two versions of the same bytes", o.Key,
				aws.ToString(got[0].VersionId), aws.ToString(got[1].VersionId), aws.ToString(got[0].ETag), aws.ToString(got[1].ETag))
		}
	}
	beacon := versions[exporter.BeaconKey]
	markers := 0
	for _, m := range vs.DeleteMarkers {
		if aws.ToString(m.Key) == exporter.BeaconKey && aws.ToBool(m.IsLatest) {
			markers++
		}
	}
	if len(beacon) == 0 || markers != 1 {
		t.Errorf("beacon: %d noncurrent versions and %d current delete markers, want at least 1 and 1", len(beacon), markers)
	}
}

// storage_class: a name that is no S3 storage class is refused when the
// integration is saved; a real class the server does not offer (MinIO has
// STANDARD and REDUCED_REDUNDANCY only) fails the connection test as it
// fails the exports (the beacon is written in that class); one it offers
// lands in it.
func TestMinIOStorageClass(t *testing.T) {
	t.Parallel()
	w := newMinIOWorld(t, nil)
	b := w.mbucket("classes", bucketOpts{})

	typo := w.mintegration("tenant-class", "typo", b, "", "")
	typo.Configuration.StorageClass = "GLACIER_FLEXIBLE"
	st := w.putAndWaitConn(typo)
	checkStatus(t, "a typo", st.Connected, st.Error, string(errcode.InvalidConfiguration), "storage_class", "GLACIER_FLEXIBLE")

	unoffered := w.mintegration("tenant-class", "unoffered", b, "", "")
	unoffered.Configuration.StorageClass, unoffered.Configuration.OutputDirectory = "GLACIER_IR", "glacier"
	st = w.putAndWaitConn(unoffered)
	checkStatus(t, "a class MinIO does not offer", st.Connected, st.Error, string(errcode.InvalidConfiguration), "InvalidStorageClass")

	rrs := w.mintegration("tenant-class", "rrs", b, "", "")
	rrs.Configuration.StorageClass, rrs.Configuration.OutputDirectory = "REDUCED_REDUNDANCY", "rrs"
	if st := w.putAndWaitConn(rrs); !st.Connected {
		t.Fatalf("REDUCED_REDUNDANCY: connection test %+v", st.Error)
	}

	files, _ := prowlerFiles(198, "111122223333")
	w.publishScan("tenant-class", "prov-1", "111122223333", "scan-class", files[:2])
	ex := w.waitExport("scan-class", "unoffered")
	if ex.State != event.StateFailed || ex.Attempt != 1 || len(ex.Errors) == 0 {
		t.Errorf("GLACIER_IR: export %s on delivery %d, want failed on the first", ex.State, ex.Attempt)
	}
	for _, e := range ex.Errors {
		if e.Code != string(errcode.InvalidConfiguration) || e.Retryable {
			t.Errorf("GLACIER_IR: %s %s retryable %v, want InvalidConfiguration, not retryable", e.Key, e.Code, e.Retryable)
		}
	}
	ex = w.waitExport("scan-class", "rrs")
	if ex.State != event.StateSucceeded {
		t.Fatalf("REDUCED_REDUNDANCY: export %s %+v", ex.State, ex.Errors)
	}
	for _, o := range ex.Objects {
		h, err := w.m.RootClient().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(o.Key)})
		if err != nil {
			t.Fatal(err)
		}
		if h.StorageClass != s3types.StorageClassReducedRedundancy {
			t.Errorf("%s: storage class %q, want REDUCED_REDUNDANCY", o.Key, h.StorageClass)
		}
	}
	if _, ok := w.objectsOn(w.m.RootClient(), b)[exporter.BeaconKey]; ok {
		t.Error("a beacon was left in the bucket")
	}
}
