package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// seenRequest is what a recording server saw of one request.
type seenRequest struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
}

// answeringS3 records every request and answers it with answer.
func answeringS3(t *testing.T, answer func(w http.ResponseWriter, n int64)) (*s3.Client, func() []seenRequest) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen []seenRequest
		n    atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, seenRequest{method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: b})
		mu.Unlock()
		answer(w, n.Add(1))
	}))
	t.Cleanup(srv.Close)
	cl := s3.New(s3.Options{
		Region: "eu-west-3", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), HTTPClient: srv.Client(),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	})
	return cl, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

func okAnswer(w http.ResponseWriter, _ int64) {
	w.Header().Set("ETag", `"etag"`)
}

// fullOptions sets every option putOptions has.
func fullOptions() putOptions {
	return putOptions{ContentType: "text/csv", SSE: "aws:kms", KMSKeyID: "arn:aws:kms:eu-west-3:111122223333:key/k",
		StorageClass: "STANDARD_IA", OwnerFullControl: true,
		Metadata: map[string]string{MetaScanID: "scan-1", MetaFormat: "csv", MetaSHA256: "ab"}}
}

// TestDirectPutSendsWhatTheSDKSends puts the same object both ways and
// compares the requests: method, escaped path and query, every header but
// those of the signature, the SDK's own bookkeeping and the checksum (the
// SDK's CRC32, the direct PUT's SHA-256), and the body.
func TestDirectPutSendsWhatTheSDKSends(t *testing.T) {
	cl, seen := answeringS3(t, okAnswer)
	body := []byte("a,b\n1,2\n")
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	key := "out put/compliance/prowler-output-1+2-20250805120000_cis_5.0 (aws)%é.csv"
	ctx := context.Background()
	po := fullOptions()

	in := &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key), ContentLength: aws.Int64(int64(len(body)))}
	po.applyPut(in)
	etag, handled, err := directPut(ctx, cl, in, [][]byte{body[:3], body[3:]}, strings.ToUpper(hexSum))
	if !handled || err != nil || etag != `"etag"` {
		t.Fatalf("direct put: handled %v, etag %q, %v", handled, etag, err)
	}
	sdkIn := &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key), ContentLength: aws.Int64(int64(len(body)))}
	if _, err := putChunks(ctx, cl, sdkIn, po, [][]byte{body}, withPayloadSHA256(hexSum)); err != nil {
		t.Fatal(err)
	}
	reqs := seen()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	direct, sdk := reqs[0], reqs[1]
	if direct.method != sdk.method || direct.path != sdk.path || direct.rawQuery != sdk.rawQuery {
		t.Errorf("direct %s %s?%s, SDK %s %s?%s", direct.method, direct.path, direct.rawQuery, sdk.method, sdk.path, sdk.rawQuery)
	}
	if !bytes.Equal(direct.body, body) || !bytes.Equal(sdk.body, body) {
		t.Errorf("bodies: direct %q, SDK %q", direct.body, sdk.body)
	}
	if got, want := direct.header.Get("X-Amz-Checksum-Sha256"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("x-amz-checksum-sha256 %q, want %q", got, want)
	}
	if !strings.Contains(direct.header.Get("Authorization"), "/eu-west-3/s3/aws4_request") {
		t.Errorf("not signed for s3 in the client's region: %q", direct.header.Get("Authorization"))
	}
	skip := map[string]bool{"Authorization": true, "X-Amz-Date": true, "User-Agent": true, "Amz-Sdk-Invocation-Id": true,
		"Amz-Sdk-Request": true, "X-Amz-Checksum-Sha256": true, "X-Amz-Checksum-Crc32": true, "X-Amz-Sdk-Checksum-Algorithm": true,
		"Accept-Encoding": true}
	for name := range merged(direct.header, sdk.header) {
		if skip[name] {
			continue
		}
		if d, s := direct.header.Values(name), sdk.header.Values(name); strings.Join(d, ",") != strings.Join(s, ",") {
			t.Errorf("header %s: direct %q, SDK %q", name, d, s)
		}
	}
	for _, name := range []string{"X-Amz-Meta-Prowler-Scan-Id", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "X-Amz-Storage-Class", "X-Amz-Acl", "Content-Type"} {
		if direct.header.Get(name) == "" {
			t.Errorf("direct put sent no %s", name)
		}
	}
}

func merged(hs ...http.Header) map[string]bool {
	out := map[string]bool{}
	for _, h := range hs {
		for k := range h {
			out[k] = true
		}
	}
	return out
}

// TestDirectPutLeavesEveryAnswerButSuccessToTheSDK: a refusal is sent
// again by the SDK, which makes of it the typed error the classification
// knows (here an access denial), rather than the direct PUT guessing it.
func TestDirectPutLeavesEveryAnswerButSuccessToTheSDK(t *testing.T) {
	cl, seen := answeringS3(t, func(w http.ResponseWriter, _ int64) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
	})
	body := []byte("x")
	sum := sha256.Sum256(body)
	a := event.Artifact{Format: event.FormatCSV, SHA256: hex.EncodeToString(sum[:])}
	_, err := putSmall(context.Background(), cl, "bkt", fullOptions(), a, "out/csv/x.csv", 1, bytes.NewReader(body))
	if err == nil || err.Code != errcode.S3BucketAccessDenied {
		t.Fatalf("error %v, want %s", err, errcode.S3BucketAccessDenied)
	}
	reqs := seen()
	if len(reqs) != 2 || reqs[0].header.Get("X-Amz-Checksum-Sha256") == "" || reqs[1].header.Get("Amz-Sdk-Invocation-Id") == "" {
		t.Fatalf("want the direct PUT then the SDK's (a denial is not retried by the SDK), got %d requests", len(reqs))
	}
}

// TestDirectPutDoesNotSendAgainWithoutAnAnswer: a bucket that never
// answers costs one response timeout, not one for the direct PUT and three
// more for the SDK's tries.
func TestDirectPutDoesNotSendAgainWithoutAnAnswer(t *testing.T) {
	var puts, direct atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		puts.Add(1)
		if r.Header.Get("X-Amz-Checksum-Sha256") != "" {
			direct.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	clients, err := NewClients(context.Background(), ClientOptions{Endpoint: srv.URL, PathStyle: true, ResponseTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ig := &integration.Integration{ID: "ig", TenantID: "t", Bucket: "bkt",
		Credentials: event.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}}
	cl := clients.client(ig, "us-east-1")
	body := []byte("x")
	sum := sha256.Sum256(body)
	a := event.Artifact{Format: event.FormatCSV, SHA256: hex.EncodeToString(sum[:])}
	start := time.Now()
	_, perr := putSmall(context.Background(), cl, "bkt", fullOptions(), a, "out/csv/x.csv", 1, bytes.NewReader(body))
	if perr == nil || perr.Code != errcode.Timeout || !perr.Retryable {
		t.Fatalf("error %v, want a retryable %s", perr, errcode.Timeout)
	}
	if n, d := puts.Load(), direct.Load(); n != 1 || d != 1 {
		t.Errorf("%d requests (%d direct) sent to a bucket that never answers, want the direct PUT alone (after %v)", n, d, time.Since(start))
	}
}

// TestDirectPutOnlyGetsWhatItSends: putSmall fills the direct PUT's input
// with putOptions.applyPut and Content-MD5 only; with every option set they
// set no field that directHeaders does not send, so an option added to
// putOptions one day fails here until directHeaders learns it.
func TestDirectPutOnlyGetsWhatItSends(t *testing.T) {
	in := &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), ContentLength: aws.Int64(1)}
	fullOptions().applyPut(in)
	in.ContentMD5 = aws.String(contentMD5([]byte{1}))
	if !directAllowed(in) {
		t.Fatal("the exporter's own options set a field the direct PUT does not send")
	}
	for name, set := range map[string]func(*s3.PutObjectInput){
		"Tagging":          func(in *s3.PutObjectInput) { in.Tagging = aws.String("a=b") },
		"ObjectLockMode":   func(in *s3.PutObjectInput) { in.ObjectLockMode = s3types.ObjectLockModeGovernance },
		"ChecksumCRC32":    func(in *s3.PutObjectInput) { in.ChecksumCRC32 = aws.String("AAAAAA==") },
		"BucketKeyEnabled": func(in *s3.PutObjectInput) { in.BucketKeyEnabled = aws.Bool(true) },
	} {
		c := *in
		set(&c)
		if directAllowed(&c) {
			t.Errorf("the guard misses %s", name)
		}
	}
	cl, seen := answeringS3(t, okAnswer)
	big := make([]byte, directPutMaxBytes+1)
	sum := sha256.Sum256(big)
	bin := &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), ContentLength: aws.Int64(int64(len(big)))}
	if _, handled, _ := directPut(context.Background(), cl, bin, [][]byte{big}, hex.EncodeToString(sum[:])); handled || len(seen()) != 0 {
		t.Error("a body over 2 MiB taken by the direct PUT (the SDK sends it with Expect: 100-continue)")
	}
	if _, handled, _ := directPut(context.Background(), cl, in, [][]byte{{1}}, "not hex"); handled {
		t.Error("a direct PUT without a SHA-256")
	}
}

// TestDirectPutIsAcceptedByASigV4Server puts through versitygw, which
// checks the signature, the payload hash and the checksum, then reads the
// object back: key, bytes, content type and metadata.
func TestDirectPutIsAcceptedByASigV4Server(t *testing.T) {
	if testing.Short() {
		t.Skip("runs versitygw")
	}
	s3srv := s3test.StartS3(t)
	s3srv.MustCreateBucket(t, "direct-put")
	clients, err := NewClients(context.Background(), ClientOptions{Endpoint: s3srv.Endpoint(), PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ig := &integration.Integration{ID: "ig", TenantID: "t", Bucket: "direct-put",
		Credentials: event.Credentials{AccessKeyID: s3srv.AccessKey, SecretAccessKey: s3srv.SecretKey}}
	cl := clients.client(ig, "us-east-1")
	body := bytes.Repeat([]byte("Provider,Check,Status\n"), 1000)
	sum := sha256.Sum256(body)
	key := "out put/compliance/prowler-output-1+2-20250805120000_cis_5.0 (aws)%é.csv"
	po := putOptions{ContentType: "text/csv", Metadata: map[string]string{MetaScanID: "scan-1", MetaSHA256: hex.EncodeToString(sum[:])}}
	in := &s3.PutObjectInput{Bucket: aws.String("direct-put"), Key: aws.String(key), ContentLength: aws.Int64(int64(len(body)))}
	po.applyPut(in)
	if _, handled, err := directPut(context.Background(), cl, in, [][]byte{body[:100], body[100:]}, hex.EncodeToString(sum[:])); !handled || err != nil {
		t.Fatalf("handled %v, %v (a refusal of the signature is an answer, left to the SDK)", handled, err)
	}
	got := s3srv.MustGetObject(t, "direct-put", key)
	if !bytes.Equal(got.Body, body) || got.ContentType != "text/csv" || got.Metadata[MetaScanID] != "scan-1" {
		t.Errorf("landed %d bytes (want %d), type %q, metadata %v", len(got.Body), len(body), got.ContentType, got.Metadata)
	}

	// A checksum that does not match the bytes is refused by the server.
	other := sha256.Sum256([]byte("something else"))
	in2 := &s3.PutObjectInput{Bucket: aws.String("direct-put"), Key: aws.String("out/bad.csv"), ContentLength: aws.Int64(int64(len(body)))}
	if _, handled, _ := directPut(context.Background(), cl, in2, [][]byte{body}, hex.EncodeToString(other[:])); handled {
		t.Error("a PUT whose SHA-256 is not its bytes' was accepted")
	}
}

// directFields are the PutObjectInput fields a direct PUT sends (Body is
// the chunks); directAllowed reports whether in sets no other.
var directFields = map[string]bool{
	"Bucket": true, "Key": true, "ContentLength": true, "Body": true, "ContentType": true, "ContentMD5": true,
	"Metadata": true, "ServerSideEncryption": true, "SSEKMSKeyId": true, "StorageClass": true, "ACL": true,
}

func directAllowed(in *s3.PutObjectInput) bool {
	if in.Bucket == nil || in.Key == nil || in.ContentLength == nil {
		return false
	}
	v := reflect.ValueOf(in).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && !directFields[f.Name] && !v.Field(i).IsZero() {
			return false
		}
	}
	return true
}

// TestDirectPutPausesOnAClockSkew: once S3 says this host's clock is off,
// the SDK (which corrects its signing time) sends the next small artifacts
// on its own, instead of each being refused first.
func TestDirectPutPausesOnAClockSkew(t *testing.T) {
	defer skewedUntil.Store(0)
	cl, seen := answeringS3(t, func(w http.ResponseWriter, n int64) {
		if n == 1 {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message></Error>`)
			return
		}
		okAnswer(w, n)
	})
	body := []byte("x")
	sum := sha256.Sum256(body)
	a := event.Artifact{Format: event.FormatCSV, SHA256: hex.EncodeToString(sum[:])}
	for range 3 {
		if _, err := putSmall(context.Background(), cl, "bkt", fullOptions(), a, "out/csv/x.csv", 1, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	direct := 0
	for _, r := range seen() {
		if r.header.Get("Amz-Sdk-Invocation-Id") == "" {
			direct++
		}
	}
	if n := len(seen()); n != 4 || direct != 1 {
		t.Errorf("%d requests, %d of them direct; want the refused direct PUT, then the SDK's three", n, direct)
	}
}

// TestDirectTargetsAreByClientAndBucket: the cached endpoint of one client
// and bucket never sends another client's PUT (another endpoint, other
// credentials) or another bucket's.
func TestDirectTargetsAreByClientAndBucket(t *testing.T) {
	cl1, seen1 := answeringS3(t, okAnswer)
	cl2, seen2 := answeringS3(t, okAnswer)
	body := []byte("x")
	sum := sha256.Sum256(body)
	a := event.Artifact{Format: event.FormatCSV, SHA256: hex.EncodeToString(sum[:])}
	for _, p := range []struct {
		cl     *s3.Client
		bucket string
	}{{cl1, "b1"}, {cl2, "b1"}, {cl1, "b2"}, {cl2, "b2"}, {cl1, "b1"}} {
		if _, err := putSmall(context.Background(), p.cl, p.bucket, fullOptions(), a, "k.csv", 1, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	paths := func(reqs []seenRequest) (out []string) {
		for _, r := range reqs {
			out = append(out, r.path)
		}
		return out
	}
	if got := strings.Join(paths(seen1()), " "); got != "/b1/k.csv /b2/k.csv /b1/k.csv" {
		t.Errorf("client 1's server saw %s", got)
	}
	if got := strings.Join(paths(seen2()), " "); got != "/b1/k.csv /b2/k.csv" {
		t.Errorf("client 2's server saw %s", got)
	}
}
