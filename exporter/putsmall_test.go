package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// seenPut is what a recording server saw of one PutObject.
type seenPut struct {
	contentSHA256 string
	body          []byte
}

// recordingS3 answers every request with 200 and records the PUTs. It does
// not check signatures: it only shows what the SDK sent (versitygw, which
// checks them, is in the end-to-end tests).
func recordingS3(t *testing.T, tls bool) (*s3.Client, <-chan seenPut) {
	t.Helper()
	seen := make(chan seenPut, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPut {
			seen <- seenPut{contentSHA256: r.Header.Get("X-Amz-Content-Sha256"), body: b}
		}
		w.Header().Set("ETag", `"etag"`)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		HTTPClient:   srv.Client(),
		// As the exporter's clients have it (the SDK's default, which
		// config.LoadDefaultConfig sets and s3.New alone does not).
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	})
	return cl, seen
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Over plain HTTP the payload is signed: the hash given is the one signed,
// and the SDK does not compute one of its own. The hash given here is
// deliberately not the body's, to tell the two apart.
func TestWithPayloadSHA256IsSigned(t *testing.T) {
	cl, seen := recordingS3(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := []byte("the artifact's bytes")
	given := strings.Repeat("ab", 32)
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader(body)},
		withPayloadSHA256(strings.ToUpper(given))); err != nil {
		t.Fatal(err)
	}
	if got := (<-seen).contentSHA256; got != given {
		t.Errorf("x-amz-content-sha256 %q, want the given %q", got, given)
	}
	// Without it, the SDK hashes the body itself.
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	if got := (<-seen).contentSHA256; got != hexSHA256(body) {
		t.Errorf("without the option: x-amz-content-sha256 %q, want the body's %q", got, hexSHA256(body))
	}
}

// Over HTTPS the SDK streams a trailing checksum with an unsigned payload,
// whatever hash is given.
func TestWithPayloadSHA256OverTLS(t *testing.T) {
	cl, seen := recordingS3(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))},
		withPayloadSHA256(strings.Repeat("ab", 32))); err != nil {
		t.Fatal(err)
	}
	if got := (<-seen).contentSHA256; !strings.HasPrefix(got, "STREAMING-UNSIGNED-PAYLOAD") {
		t.Errorf("x-amz-content-sha256 %q, want a streaming unsigned payload", got)
	}
}

// putSmall signs with the artifact's sha256 from the event, which the
// source has verified by the time the request is sent, and sends the bytes.
func TestPutSmallSignsWithTheArtifactSHA256(t *testing.T) {
	cl, seen := recordingS3(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := []byte("name,status\nfinding,FAIL\n")
	a := event.Artifact{Format: "csv", Source: "nats-os://b/t/s/out.csv", SHA256: strings.ToUpper(hexSHA256(body))}
	if _, e := putSmall(ctx, cl, "b", putOptions{ContentType: "text/csv"}, a, "out/csv/x.csv", int64(len(body)), bytes.NewReader(body)); e != nil {
		t.Fatal(e)
	}
	got := <-seen
	if got.contentSHA256 != hexSHA256(body) || !bytes.Equal(got.body, body) {
		t.Errorf("sent %q signed %q; want %q signed %q", got.body, got.contentSHA256, body, hexSHA256(body))
	}
}

// wholeBody is a source that holds its bytes (as source.Opened does for an
// object of one chunk), or declines and is read.
type wholeBody struct {
	*bytes.Reader
	b     []byte
	ok    bool
	err   error
	asked int
}

func (w *wholeBody) Whole() ([][]byte, bool, error) {
	w.asked++
	if w.b == nil {
		return nil, w.ok, w.err
	}
	// In two chunks, as an object of several comes.
	return [][]byte{w.b[:len(w.b)/2], w.b[len(w.b)/2:]}, w.ok, w.err
}

// A source that holds its bytes hands them to the PUT as they are; one
// whose checks fail fails the upload with its own error, and one that holds
// a wrong length is a mismatch; one that declines is read.
func TestPutSmallTakesAWholeSource(t *testing.T) {
	cl, seen := recordingS3(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := []byte("name,status\nfinding,FAIL\n")
	a := event.Artifact{Format: "csv", Source: "nats-os://b/t/s/out.csv", SHA256: hexSHA256(body)}
	put := func(w *wholeBody) *errcode.Error {
		_, e := putSmall(ctx, cl, "b", putOptions{ContentType: "text/csv"}, a, "out/csv/x.csv", int64(len(body)), w)
		return e
	}

	w := &wholeBody{Reader: bytes.NewReader(nil), b: body, ok: true}
	if e := put(w); e != nil || w.asked != 1 {
		t.Fatalf("whole: %v (asked %d)", e, w.asked)
	}
	if got := <-seen; !bytes.Equal(got.body, body) {
		t.Errorf("sent %q, want %q", got.body, body)
	}

	mismatch := errcode.Permanentf(errcode.ChecksumMismatch, "source x: sha256 differs")
	if e := put(&wholeBody{Reader: bytes.NewReader(nil), ok: true, err: mismatch}); e == nil || e.Code != errcode.ChecksumMismatch || e.Retryable {
		t.Errorf("a failed check: %v; want the source's permanent ChecksumMismatch", e)
	}
	if e := put(&wholeBody{Reader: bytes.NewReader(nil), b: body[1:], ok: true}); e == nil || e.Code != errcode.ChecksumMismatch {
		t.Errorf("a short whole body: %v; want ChecksumMismatch", e)
	}
	if len(seen) != 0 {
		t.Errorf("%d PUTs sent for sources that failed", len(seen))
	}

	if e := put(&wholeBody{Reader: bytes.NewReader(body)}); e != nil {
		t.Fatalf("declined, read: %v", e)
	}
	if got := <-seen; !bytes.Equal(got.body, body) {
		t.Errorf("sent %q, want %q", got.body, body)
	}
}

// A PutObject refused for want of a checksum (AWS S3 on an Object Lock
// bucket, checksums when_required) goes again with the body's Content-MD5,
// and the destination is remembered as wanting one.
func TestPutBufferedSendsContentMD5WhenRequired(t *testing.T) {
	var md5s []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		md5s = append(md5s, r.Header.Get("Content-Md5"))
		if r.Header.Get("Content-Md5") == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `<Error><Code>InvalidRequest</Code><Message>Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters</Message></Error>`)
			return
		}
		w.Header().Set("ETag", `"etag"`)
	}))
	t.Cleanup(srv.Close)
	cl := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired})
	told := 0
	po := putOptions{ContentType: "text/csv", ChecksumNeeded: func() { told++ }}
	body := []byte("a,b\n1,2\n")
	in := &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), ContentLength: aws.Int64(int64(len(body)))}
	if _, err := putBuffered(context.Background(), cl, in, po, body); err != nil {
		t.Fatal(err)
	}
	if want := contentMD5(body); len(md5s) != 2 || md5s[0] != "" || md5s[1] != want || told != 1 {
		t.Errorf("Content-MD5 of the PUTs %q, told %d; want none then %q, told once", md5s, told, want)
	}
}
