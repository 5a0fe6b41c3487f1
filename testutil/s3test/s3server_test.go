package s3test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3Code returns the S3 error code and HTTP status of err ("", 0 if none).
func s3Code(err error) (string, int) {
	var code string
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return code, re.HTTPStatusCode()
	}
	return code, 0
}

func wantS3Code(t *testing.T, what string, err error, code string, status int) {
	t.Helper()
	gotCode, gotStatus := s3Code(err)
	if gotCode != code || gotStatus != status {
		t.Fatalf("%s: got %q HTTP %d (%v), want %q HTTP %d", what, gotCode, gotStatus, err, code, status)
	}
	t.Logf("%s: %s HTTP %d", what, gotCode, gotStatus)
}

func putObject(ctx context.Context, c *s3.Client, bucket, key, contentType string, body []byte) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		ContentType: aws.String(contentType),
	})
	return err
}

func TestS3ServerObjectsAndRestart(t *testing.T) {
	s := StartS3(t)
	if !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") || s.Region() != "us-east-1" {
		t.Fatalf("endpoint %q region %q", s.Endpoint(), s.Region())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.MustCreateBucket(t, "reports")

	body := []byte("AUTH_METHOD;TIMESTAMP\nprofile;2025-01-01\n")
	key := "tenant-1/scan 1/out.csv" // a space, to exercise key decoding in the access log
	c := s.RootClient()
	if err := putObject(ctx, c, "reports", key, "text/csv", body); err != nil {
		t.Fatal(err)
	}
	if err := putObject(ctx, c, "reports", "tenant-1/other.json", "application/json", []byte("[]")); err != nil {
		t.Fatal(err)
	}
	o := s.MustGetObject(t, "reports", key)
	sum := md5.Sum(body)
	if !bytes.Equal(o.Body, body) || o.Size != int64(len(body)) || o.ContentType != "text/csv" || o.ETag != hex.EncodeToString(sum[:]) {
		t.Fatalf("object = %+v", o)
	}
	if o.LastModified.IsZero() {
		t.Fatal("no LastModified")
	}
	objs := s.MustListObjects(t, "reports", "tenant-1/")
	if len(objs) != 2 || objs[0].Key != "tenant-1/other.json" || objs[1].Key != key || objs[1].Size != int64(len(body)) {
		t.Fatalf("list = %+v", objs)
	}
	if objs := s.MustListObjects(t, "reports", "tenant-2/"); len(objs) != 0 {
		t.Fatalf("list of another prefix = %+v", objs)
	}
	sha, n, err := s.ObjectSHA256("reports", key)
	want := sha256.Sum256(body)
	if err != nil || sha != hex.EncodeToString(want[:]) || n != int64(len(body)) {
		t.Fatalf("ObjectSHA256 = %s, %d, %v", sha, n, err)
	}
	if _, err := s.GetObject("reports", "missing"); err == nil {
		t.Fatal("GetObject of a missing key succeeded")
	}

	// Server-side PUT counting.
	if got := s.MustPutCount(t, "reports", key); got != 1 {
		t.Fatalf("PutCount = %d, want 1", got)
	}
	if err := putObject(ctx, c, "reports", key, "text/csv", body); err != nil {
		t.Fatal(err)
	}
	if got := s.MustPutCount(t, "reports", key); got != 2 {
		t.Fatalf("PutCount after overwrite = %d, want 2", got)
	}
	if got := s.MustPutCount(t, "reports", "tenant-1/other.json"); got != 1 {
		t.Fatalf("PutCount of other key = %d, want 1", got)
	}

	// Multipart uploads in progress are listed, and counted once completed.
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("reports"), Key: aws.String("big.json")})
	if err != nil {
		t.Fatal(err)
	}
	uploads, err := s.ListMultipartUploads("reports")
	if err != nil || !slices.Equal(uploads, []string{"big.json"}) {
		t.Fatalf("uploads = %v, %v", uploads, err)
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String("reports"), Key: aws.String("big.json"), UploadId: mp.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte(`{"a":1}`)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("reports"), Key: aws.String("big.json"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1), ChecksumCRC32: part.ChecksumCRC32}}},
	}); err != nil {
		t.Fatal(err)
	}
	if uploads, err := s.ListMultipartUploads("reports"); err != nil || len(uploads) != 0 {
		t.Fatalf("uploads after complete = %v, %v", uploads, err)
	}
	if got := s.MustPutCount(t, "reports", "big.json"); got != 1 {
		t.Fatalf("PutCount of multipart object = %d, want 1", got)
	}
	entries, err := s.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, e := range entries {
		ops[e.Operation]++
	}
	if ops["s3_UploadPart"] != 1 || ops["s3_CreateMultipartUpload"] != 1 || ops["s3_CreateBucket"] != 1 {
		t.Fatalf("access log operations = %v", ops)
	}

	// Outage: stopped, the endpoint refuses; started again, same port and data.
	endpoint := s.Endpoint()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	down := s.Client(s.AccessKey, s.SecretKey, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	if _, err := down.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("reports")}); err == nil {
		t.Fatal("request succeeded while the server was stopped")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Endpoint() != endpoint {
		t.Fatalf("restarted at %s, want %s", s.Endpoint(), endpoint)
	}
	if o := s.MustGetObject(t, "reports", key); !bytes.Equal(o.Body, body) {
		t.Fatal("object changed across restart")
	}
	if got := s.MustPutCount(t, "reports", key); got != 2 {
		t.Fatalf("PutCount after restart = %d, want 2", got)
	}
	// A crash loses nothing acknowledged either.
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if objs := s.MustListObjects(t, "reports", ""); len(objs) != 3 {
		t.Fatalf("objects after kill and start = %+v", objs)
	}
}

// TestS3AccessControl proves that versitygw enforces users and bucket
// policies, and records the error codes it answers with, which the
// exporter's error classification relies on.
func TestS3AccessControl(t *testing.T) {
	t.Parallel()
	s := StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s.MustCreateUser(t, "writer", "writer-secret", RoleUser)
	s.MustCreateUser(t, "nobody", "nobody-secret", RoleUser)
	users, err := s.Users()
	if err != nil || users["writer"] != RoleUser || users["nobody"] != RoleUser {
		t.Fatalf("users = %v, %v", users, err)
	}
	if err := s.CreateUser("writer", "x", RoleUser); err == nil {
		t.Fatal("creating an existing user succeeded")
	}

	s.MustCreateBucket(t, "exports")
	s.MustPutBucketPolicy(t, "exports", AllowPolicy("exports", "writer", "s3:PutObject"))

	writer := s.Client("writer", "writer-secret")
	nobody := s.Client("nobody", "nobody-secret")

	// Granted s3:PutObject on exports/*: can put.
	if err := putObject(ctx, writer, "exports", "t/out.csv", "text/csv", []byte("a;b\n")); err != nil {
		t.Fatalf("put with s3:PutObject granted: %v", err)
	}
	if got := s.MustGetObject(t, "exports", "t/out.csv"); string(got.Body) != "a;b\n" {
		t.Fatalf("stored %q", got.Body)
	}
	// ... but not delete, read, or list.
	_, err = writer.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("exports"), Key: aws.String("t/out.csv")})
	wantS3Code(t, "granted user, DeleteObject", err, "AccessDenied", 403)
	_, err = writer.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("exports"), Key: aws.String("t/out.csv")})
	wantS3Code(t, "granted user, GetObject", err, "AccessDenied", 403)
	if objs := s.MustListObjects(t, "exports", ""); len(objs) != 1 {
		t.Fatalf("object was deleted: %+v", objs)
	}
	// Multipart uploads need only s3:PutObject too.
	if _, err := writer.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("exports"), Key: aws.String("t/big")}); err != nil {
		t.Fatalf("multipart with s3:PutObject granted: %v", err)
	}

	// No grant at all.
	err = putObject(ctx, nobody, "exports", "t/x.csv", "text/csv", []byte("x"))
	wantS3Code(t, "user without grant, PutObject", err, "AccessDenied", 403)

	// Bad credentials.
	wrongSecret := s.Client("writer", "not-the-secret")
	err = putObject(ctx, wrongSecret, "exports", "t/y.csv", "text/csv", []byte("y"))
	wantS3Code(t, "wrong secret, PutObject", err, "SignatureDoesNotMatch", 403)
	unknown := s.Client("no-such-key", "whatever")
	err = putObject(ctx, unknown, "exports", "t/y.csv", "text/csv", []byte("y"))
	wantS3Code(t, "unknown access key, PutObject", err, "InvalidAccessKeyId", 403)

	// Missing bucket: root sees NoSuchBucket; so does a plain user.
	err = putObject(ctx, s.RootClient(), "no-such-bucket", "k", "text/csv", []byte("y"))
	wantS3Code(t, "root, PutObject to missing bucket", err, "NoSuchBucket", 404)
	err = putObject(ctx, writer, "no-such-bucket", "k", "text/csv", []byte("y"))
	wantS3Code(t, "user, PutObject to missing bucket", err, "NoSuchBucket", 404)

	// Invalid bucket name.
	err = putObject(ctx, s.RootClient(), "ab", "k", "text/csv", []byte("y"))
	wantS3Code(t, "PutObject to invalid bucket name", err, "InvalidBucketName", 400)

	// Signed for the wrong region: 400 AuthorizationHeaderMalformed.
	otherRegion := s.Client(s.AccessKey, s.SecretKey, func(o *s3.Options) { o.Region = "eu-west-1" })
	err = putObject(ctx, otherRegion, "exports", "t/z.csv", "text/csv", []byte("z"))
	wantS3Code(t, "wrong signing region, PutObject", err, "AuthorizationHeaderMalformed", 400)
}

// TestS3BucketRegionDiscovery records what GetBucketLocation and HeadBucket
// answer, for the exporter's region discovery.
func TestS3BucketRegionDiscovery(t *testing.T) {
	t.Parallel()
	s := StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.MustCreateUser(t, "locator", "locator-secret", RoleUser)
	s.MustCreateUser(t, "nobody", "nobody-secret", RoleUser)
	s.MustCreateBucket(t, "exports")
	s.MustPutBucketPolicy(t, "exports", AllowPolicy("exports", "locator", "s3:GetBucketLocation", "s3:PutObject"))

	// GetBucketLocation answers an empty LocationConstraint for us-east-1, as AWS does.
	loc, err := s.RootClient().GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("exports")})
	if err != nil {
		t.Fatal(err)
	}
	if loc.LocationConstraint != "" {
		t.Fatalf("LocationConstraint = %q, want empty (us-east-1)", loc.LocationConstraint)
	}
	if _, err := s.Client("locator", "locator-secret").GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("exports")}); err != nil {
		t.Fatalf("GetBucketLocation with s3:GetBucketLocation granted: %v", err)
	}
	_, err = s.Client("nobody", "nobody-secret").GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("exports")})
	wantS3Code(t, "GetBucketLocation without grant", err, "AccessDenied", 403)
	_, err = s.RootClient().GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("missing-bucket")})
	wantS3Code(t, "GetBucketLocation of missing bucket", err, "NoSuchBucket", 404)

	// HeadBucket sets x-amz-bucket-region on success and on 403, not on 404.
	head, err := s.RootClient().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("exports")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.BucketRegion) != "us-east-1" {
		t.Fatalf("HeadBucket region = %q", aws.ToString(head.BucketRegion))
	}
	_, err = s.Client("nobody", "nobody-secret").HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("exports")})
	if got := headerOf(err, "X-Amz-Bucket-Region"); got != "us-east-1" {
		t.Fatalf("HeadBucket 403 x-amz-bucket-region = %q (%v)", got, err)
	}
	_, status := s3Code(err)
	if status != 403 {
		t.Fatalf("HeadBucket without grant: HTTP %d (%v)", status, err)
	}
	_, err = s.RootClient().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("missing-bucket")})
	if _, status := s3Code(err); status != 404 || headerOf(err, "X-Amz-Bucket-Region") != "" {
		t.Fatalf("HeadBucket of missing bucket: HTTP %d, region %q", status, headerOf(err, "X-Amz-Bucket-Region"))
	}
	// Signed for the wrong region: 400, and the header is not set either.
	_, err = s.Client(s.AccessKey, s.SecretKey, func(o *s3.Options) { o.Region = "eu-west-1" }).
		HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("exports")})
	if _, status := s3Code(err); status != 400 {
		t.Fatalf("HeadBucket signed for eu-west-1: HTTP %d (%v)", status, err)
	}
	t.Logf("HeadBucket signed for the wrong region: HTTP 400, x-amz-bucket-region %q", headerOf(err, "X-Amz-Bucket-Region"))

	// The 400's body names the right region, as AWS's does.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/exports?location", nil)
	emptySum := sha256.Sum256(nil)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(emptySum[:]))
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey},
		req, hex.EncodeToString(emptySum[:]), "s3", "eu-west-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !bytes.Contains(raw, []byte("<Code>AuthorizationHeaderMalformed</Code>")) ||
		!bytes.Contains(raw, []byte("<Region>us-east-1</Region>")) {
		t.Fatalf("wrong-region GetBucketLocation: HTTP %d %s", resp.StatusCode, raw)
	}
}

func headerOf(err error, name string) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get(name)
	}
	return ""
}

func TestS3BucketOwnership(t *testing.T) {
	t.Parallel()
	s := StartS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.MustCreateUser(t, "owner1", "owner1-secret", RoleUser)
	s.MustCreateUser(t, "owner2", "owner2-secret", RoleUser)

	// Created for a user: the user owns it and has full access.
	s.MustCreateBucket(t, "owned-by-one", "owner1")
	// Created by root, then handed over.
	s.MustCreateBucket(t, "handed-over")
	if err := s.ChangeBucketOwner("handed-over", "owner2"); err != nil {
		t.Fatal(err)
	}
	owners, err := s.BucketOwners()
	if err != nil {
		t.Fatal(err)
	}
	if owners["owned-by-one"] != "owner1" || owners["handed-over"] != "owner2" {
		t.Fatalf("owners = %v", owners)
	}

	c1 := s.Client("owner1", "owner1-secret")
	if err := putObject(ctx, c1, "owned-by-one", "k", "text/plain", []byte("v")); err != nil {
		t.Fatalf("owner put: %v", err)
	}
	if _, err := c1.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("owned-by-one"), Key: aws.String("k")}); err != nil {
		t.Fatalf("owner delete: %v", err)
	}
	err = putObject(ctx, c1, "handed-over", "k", "text/plain", []byte("v"))
	wantS3Code(t, "PutObject to another user's bucket", err, "AccessDenied", 403)
	if err := putObject(ctx, s.Client("owner2", "owner2-secret"), "handed-over", "k", "text/plain", []byte("v")); err != nil {
		t.Fatalf("new owner put: %v", err)
	}
}

// The admin API checks the root signature.
func TestS3AdminRejectsBadCredentials(t *testing.T) {
	t.Parallel()
	s := StartS3(t)
	bad := &S3Server{AccessKey: s.AccessKey, SecretKey: "wrong", region: s.region, port: s.port}
	err := bad.CreateUser("mallory", "mallory-secret", RoleAdmin)
	var ae *AdminError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden {
		t.Fatalf("create user with a wrong root secret: %v", err)
	}
	if users, err := s.Users(); err != nil || len(users) != 0 {
		t.Fatalf("users = %v, %v", users, err)
	}
}

// A streamed multipart upload of a sized fixture through transfermanager
// lands byte for byte, is counted once, and leaves no upload behind.
func TestS3MultipartSizedUpload(t *testing.T) {
	t.Parallel()
	s := StartS3(t)
	s.MustCreateBucket(t, "big")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 40<<20 + 3 // several 8 MiB parts and a short last one
	tm := transfermanager.New(s.RootClient(), func(o *transfermanager.Options) { o.PartSizeBytes = 8 << 20 })
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      aws.String("big"),
		Key:         aws.String("scan/out.ocsf.json"),
		Body:        fixtures.SizedReader(fixtures.FormatOCSF, size, 5),
		ContentType: aws.String("application/json"),
	}); err != nil {
		t.Fatal(err)
	}
	want, err := fixtures.SizedSHA256(fixtures.FormatOCSF, size, 5)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := s.ObjectSHA256("big", "scan/out.ocsf.json")
	if err != nil || got != want || n != size {
		t.Fatalf("stored %d bytes with sha256 %s (%v), want %d and %s", n, got, err, size, want)
	}
	if c := s.MustPutCount(t, "big", "scan/out.ocsf.json"); c != 1 {
		t.Fatalf("PutCount = %d", c)
	}
	if ups, err := s.ListMultipartUploads("big"); err != nil || len(ups) != 0 {
		t.Fatalf("uploads left: %v, %v", ups, err)
	}
}
