package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
	"github.com/prowler-cloud/s3-exporter/testutil/ststest"
)

// Issue 15 part 2: real AWS answers that versitygw does not give, made by a
// proxy in front of it (s3test.FaultProxy with an Intercept hook, which
// also records every request), with ststest.STS (a small AssumeRole stub)
// handing out versitygw accounts' keys.

// proxiedEnv is an exporter whose S3 endpoint is a proxy to versitygw.
func proxiedEnv(t *testing.T, mutate func(*config.Config)) (*env, *s3test.FaultProxy) {
	t.Helper()
	proxy := s3test.NewFaultProxy(t, s3Server(t).Endpoint())
	e := newEnv(t, func(c *config.Config) {
		c.S3Endpoint = proxy.URL()
		if mutate != nil {
			mutate(c)
		}
	})
	return e, proxy
}

// countReqs counts the recorded requests that match.
func countReqs(reqs []s3test.ProxiedRequest, match func(s3test.ProxiedRequest) bool) int {
	n := 0
	for _, r := range reqs {
		if match(r) {
			n++
		}
	}
	return n
}

func isGetBucketLocation(bucket string) func(s3test.ProxiedRequest) bool {
	return func(r s3test.ProxiedRequest) bool {
		return r.Method == http.MethodGet && r.Path == "/"+bucket && r.Query.Has("location")
	}
}

func isHeadBucket(bucket string) func(s3test.ProxiedRequest) bool {
	return func(r s3test.ProxiedRequest) bool {
		return r.Method == http.MethodHead && strings.TrimSuffix(r.Path, "/") == "/"+bucket
	}
}

func isListMultipartUploads(r s3test.ProxiedRequest) bool {
	return r.Method == http.MethodGet && r.Query.Has("uploads")
}

// S3 answering ExpiredToken to an assumed role's session: the exporter
// drops it, assumes the role again (once, however many uploads were
// refused) and the export succeeds on its first delivery, written by the
// new session. An expired token in static keys is permanent.
func TestExpiredTokenReassumesTheRole(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	sts := ststest.NewSTS(t, ststest.STSCredentials{})
	e, proxy := proxiedEnv(t, func(c *config.Config) { c.STSEndpoint = sts.URL() })
	b := e.bucket("expired")
	first, firstSecret := e.s3User("sess1")
	second, secondSecret := e.s3User("sess2")
	e.s3.MustPutBucketPolicy(t, b, documentedPolicy(t, b, true, first, second))
	sts.Expect(roleExport, "")
	sts.SetRotation([]ststest.STSCredentials{{AccessKeyID: first, SecretAccessKey: firstSecret}, {AccessKeyID: second, SecretAccessKey: secondSecret}})

	const tenant = "tenant-expiry"
	in := e.integration(tenant, "role", b, "prov-1")
	in.Credentials = &event.Credentials{AccessKeyID: "source-key-id", SecretAccessKey: "source-secret", RoleARN: roleExport}
	if st := e.putAndWaitConn(in); !st.Connected {
		t.Fatalf("connection test with the first session: %+v", st.Error)
	}
	if n := len(sts.Calls()); n != 1 {
		t.Fatalf("%d AssumeRole calls before any expiry, want 1", n)
	}
	// From now on S3 says the first session has expired (clock skew, or
	// a revoked session), although its expiry time is an hour away.
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if testutil.SignedBy(r.Header) != first {
			return false
		}
		s3test.WriteS3Error(w, http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
		return true
	})
	logged := e.accessLogLen()
	files, _ := prowlerFiles(121, "111122223333")
	e.publishScan(tenant, "prov-1", "111122223333", "scan-expired", files)
	ex := e.waitExport("scan-expired", "role")
	if ex.State != event.StateSucceeded || ex.Attempt != 1 {
		t.Fatalf("export %s on delivery %d %v; want succeeded on the first", ex.State, ex.Attempt, ex.Errors)
	}
	if n := len(sts.Calls()); n != 2 {
		t.Errorf("%d AssumeRole calls, want 2 (the first session, then one renewal): %+v", n, sts.Calls())
	}
	refused := countReqs(proxy.Requests(), func(r s3test.ProxiedRequest) bool { return r.SignedBy() == first })
	if refused == 0 {
		t.Fatal("no request was refused as expired: the test proves nothing")
	}
	entries, err := e.s3.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	puts := 0
	for _, en := range entries[logged:] {
		if en.Bucket == b && en.Operation == "s3_PutObject" {
			puts++
			if en.Requester != second {
				t.Errorf("%s written by %s, want the renewed session %s", en.Key, en.Requester, second)
			}
		}
	}
	if puts != len(files) {
		t.Errorf("%d objects written, want %d", puts, len(files))
	}

	// Static keys whose session token S3 calls expired: nothing can renew
	// them; permanent AWSInvalidCredentials, no redelivery, no STS call.
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("X-Amz-Security-Token") != "static-session-token" {
			return false
		}
		s3test.WriteS3Error(w, http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
		return true
	})
	static := e.integration(tenant, "static", b, "prov-2")
	static.Credentials.SessionToken = "static-session-token"
	st := e.putAndWaitConn(static)
	checkStatus(t, "expired static token", st.Connected, st.Error, string(errcode.AWSInvalidCredentials), "aws_session_token")
	calls := len(sts.Calls())
	e.publishScan(tenant, "prov-2", "111122223333", "scan-static-expired", files[:1])
	ex = e.waitExport("scan-static-expired", "static")
	if ex.State != event.StateFailed || ex.Attempt != 1 || len(ex.Errors) == 0 || ex.Errors[0].Code != string(errcode.AWSInvalidCredentials) || ex.Errors[0].Retryable {
		t.Fatalf("export %s on delivery %d %+v; want failed at once with a permanent AWSInvalidCredentials", ex.State, ex.Attempt, ex.Errors)
	}
	if len(sts.Calls()) != calls {
		t.Error("an expired static token made an AssumeRole call")
	}
}

// Both GetBucketLocation and HeadBucket denied: the default region is used,
// remembered (a 5-file scan asks once, not once per artifact), and the
// connection test reports it as unknown. A refused HeadBucket that carries
// x-amz-bucket-region (as AWS sends it) gives the region.
func TestBucketRegionWhenDiscoveryIsDenied(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, proxy := proxiedEnv(t, nil)
	denied, hinted := e.bucket("denied"), e.bucket("hinted")
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		for _, b := range []string{denied, hinted} {
			if r.URL.Path == "/"+b && r.Method == http.MethodGet && r.URL.Query().Has("location") {
				s3test.WriteS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
				return true
			}
			if strings.TrimSuffix(r.URL.Path, "/") == "/"+b && r.Method == http.MethodHead {
				if b == hinted {
					w.Header().Set("X-Amz-Bucket-Region", "us-east-1")
				}
				w.WriteHeader(http.StatusForbidden)
				return true
			}
		}
		return false
	})
	st := e.putAndWaitConn(e.integration("tenant-a", "denied", denied, "prov-1"))
	if !st.Connected || st.BucketRegion != "" {
		t.Fatalf("denied discovery: connected %v, bucket_region %q; want connected with the region unknown", st.Connected, st.BucketRegion)
	}
	st = e.putAndWaitConn(e.integration("tenant-a", "hinted", hinted, "prov-1"))
	if !st.Connected || st.BucketRegion != "us-east-1" {
		t.Fatalf("refused HeadBucket with x-amz-bucket-region: connected %v, bucket_region %q; want us-east-1 (found)", st.Connected, st.BucketRegion)
	}

	before := proxy.Requests()
	files, _ := prowlerFiles(122, "111122223333", "cis_2.0_aws")
	if len(files) < 5 {
		t.Fatalf("%d files, want at least 5", len(files))
	}
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-denied", files)
	if ex := e.waitExport("scan-denied", "denied"); ex.State != event.StateSucceeded {
		t.Fatalf("export: %s %v", ex.State, ex.Errors)
	}
	e.waitExport("scan-denied", "hinted")
	during := proxy.Requests()[len(before):]
	if n, h := countReqs(during, isGetBucketLocation(denied)), countReqs(during, isHeadBucket(denied)); n != 1 || h != 1 {
		t.Errorf("%d GetBucketLocation and %d HeadBucket for a %d-file scan; want 1 and 1 (remembered)", n, h, len(files))
	}
	if got := e.objects(denied); len(got) != len(files) {
		t.Errorf("%d objects, want %d", len(got), len(files))
	}
}

// Stale multipart uploads are looked for only on a retry: a first attempt
// sends no ListMultipartUploads (which the documented policy refuses); a
// retry does, and an abort that S3 refuses is logged as a warning.
func TestListMultipartUploadsOnlyOnRetries(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, proxy := proxiedEnv(t, func(c *config.Config) { c.PartSize, c.MultipartThreshold = 5<<20, 5<<20 })
	b := e.bucket("mpu")
	e.put(e.integration("tenant-a", "mpu", b, "prov-1"))
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i * 13)
	}
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-mpu-1",
		[]fixtures.OutputFile{{Format: "json-ocsf", FileName: "out.ocsf.json", Body: big}})
	if ex := e.waitExport("scan-mpu-1", "mpu"); ex.State != event.StateSucceeded || ex.Attempt != 1 {
		t.Fatalf("first export: %s on delivery %d %v", ex.State, ex.Attempt, ex.Errors)
	}
	reqs := proxy.Requests()
	if n := countReqs(reqs, func(r s3test.ProxiedRequest) bool { return r.Method == http.MethodPost && r.Query.Has("uploads") }); n == 0 {
		t.Fatal("no multipart upload: the test proves nothing")
	}
	if n := countReqs(reqs, isListMultipartUploads); n != 0 {
		t.Errorf("%d ListMultipartUploads on a first attempt, want 0", n)
	}

	// A stale upload of the next scan's key, whose abort S3 refuses, and a
	// first CreateMultipartUpload that fails (three times: the SDK's own
	// tries), so that the exporter's retry looks for stale uploads.
	key := "output/json-ocsf/prowler-output-222233334444-20250805120000.ocsf.json"
	if _, err := e.s3.RootClient().CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(b), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	creates := 0
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodPost && r.URL.Query().Has("uploads") && creates < 3:
			creates++
			s3test.WriteS3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
			return true
		case r.Method == http.MethodDelete && r.URL.Query().Has("uploadId"):
			s3test.WriteS3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
			return true
		}
		return false
	})
	n0 := len(proxy.Requests())
	e.publishScan("tenant-a", "prov-1", "222233334444", "scan-mpu-2",
		[]fixtures.OutputFile{{Format: "json-ocsf", FileName: "out.ocsf.json", Body: big}})
	if ex := e.waitExport("scan-mpu-2", "mpu"); ex.State != event.StateSucceeded {
		t.Fatalf("second export: %s %v", ex.State, ex.Errors)
	}
	if n := countReqs(proxy.Requests()[n0:], isListMultipartUploads); n != 1 {
		t.Errorf("%d ListMultipartUploads for one retried upload, want 1", n)
	}
	warned := false
	for _, l := range e.logs.FilterMessageSnippet("could not abort a multipart upload").All() {
		warned = warned || l.Level.String() == "warn"
	}
	if !warned {
		t.Errorf("a refused abort was not logged as a warning; log:\n%s", e.logText())
	}
}

// AWS_REQUEST_CHECKSUM_CALCULATION=when_required reaches every upload path:
// no flexible checksum on a small PutObject nor on a multipart upload (the
// transfer manager's default would add CRC32 to every part). Without the
// setting the same uploads carry them, so the check can fail.
func TestChecksumCalculationWhenRequired(t *testing.T) {
	// Not parallel: t.Setenv changes the process's environment, which
	// every exporter of this test binary reads (the SDK reads the setting
	// from there only).
	checksumHeaders := func(r s3test.ProxiedRequest) []string {
		var out []string
		for k, v := range r.Header {
			lk := strings.ToLower(k)
			if strings.HasPrefix(lk, "x-amz-checksum-") || lk == "x-amz-sdk-checksum-algorithm" ||
				(lk == "x-amz-trailer" && strings.Contains(strings.ToLower(strings.Join(v, ",")), "checksum")) {
				out = append(out, k)
			}
		}
		return out
	}
	run := func(setting string) (small, multipart []string, sawParts bool) {
		t.Setenv("AWS_REQUEST_CHECKSUM_CALCULATION", setting)
		e, proxy := proxiedEnv(t, func(c *config.Config) { c.PartSize, c.MultipartThreshold = 5<<20, 5<<20 })
		b := e.bucket("checksum-" + strings.ReplaceAll(setting, "_", "-"))
		e.put(e.integration("tenant-a", "sums", b, "prov-1"))
		big := make([]byte, 11<<20)
		for i := range big {
			big[i] = byte(i * 31)
		}
		small1, _ := prowlerFiles(123, "111122223333")
		e.publishScan("tenant-a", "prov-1", "111122223333", "scan-sums",
			[]fixtures.OutputFile{small1[0], {Format: "json-ocsf", FileName: "out.ocsf.json", Body: big}})
		if ex := e.waitExport("scan-sums", "sums"); ex.State != event.StateSucceeded {
			t.Fatalf("%s: export %s %v", setting, ex.State, ex.Errors)
		}
		for _, r := range proxy.Requests() {
			if !strings.HasPrefix(r.Path, "/"+b+"/") {
				continue
			}
			switch {
			case r.Method == http.MethodPut && r.Query.Has("uploadId"):
				sawParts = true
				multipart = append(multipart, checksumHeaders(r)...)
			case r.Method == http.MethodPost && r.Query.Has("uploads"):
				multipart = append(multipart, checksumHeaders(r)...)
			case r.Method == http.MethodPut && !strings.HasSuffix(r.Path, "/test-prowler-connection.txt"):
				small = append(small, checksumHeaders(r)...)
			}
		}
		return small, multipart, sawParts
	}
	small, multipart, parts := run("when_supported")
	if !parts || len(multipart) == 0 || len(small) == 0 {
		t.Fatalf("when_supported: parts %v, checksum headers small %v multipart %v; want them on both (else this test proves nothing)", parts, small, multipart)
	}
	small, multipart, parts = run("when_required")
	if !parts {
		t.Fatal("when_required: no multipart upload")
	}
	if len(small) != 0 || len(multipart) != 0 {
		t.Errorf("when_required: checksum headers on the small upload %v and the multipart upload %v; want none", small, multipart)
	}
}
