package source_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
	"github.com/prowler-cloud/s3-exporter/testutil"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// One versitygw for the package's s3 tests; each test has its own bucket.
var (
	s3Once sync.Once
	s3Srv  *s3test.S3Server
	s3Err  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if s3Srv != nil {
		s3Srv.Close()
	}
	os.Exit(code)
}

func sharedS3(t testing.TB) *s3test.S3Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts versitygw")
	}
	s3Once.Do(func() { s3Srv, s3Err = s3test.RunS3(s3test.S3Options{}) })
	if s3Err != nil {
		t.Fatalf("starting versitygw: %v", s3Err)
	}
	return s3Srv
}

// s3World is a source bucket on versitygw and an Opener reading it, through
// a fault proxy, with the exporter's own (here: root) identity.
type s3World struct {
	srv    *s3test.S3Server
	proxy  *s3test.FaultProxy
	bucket string
	opener *source.Opener
}

func newS3World(t *testing.T, opts ...source.Option) *s3World {
	t.Helper()
	srv := sharedS3(t)
	w := &s3World{srv: srv, proxy: s3test.NewFaultProxy(t, srv.Endpoint()), bucket: bucketName("src")}
	srv.MustCreateBucket(t, w.bucket)
	r, err := source.NewS3Reader(context.Background(), source.S3Options{
		Buckets: []string{w.bucket}, Endpoint: w.proxy.URL(), PathStyle: true, DefaultRegion: srv.Region(),
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.opener, err = source.NewOpener(nil, nil, append([]source.Option{source.WithS3(r)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

var bucketSeq atomic.Int64

// bucketName returns a bucket name of its own for one test.
func bucketName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, bucketSeq.Add(1))
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	r := testutil.Rand(t)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (w *s3World) put(t testing.TB, key string, body []byte) {
	t.Helper()
	_, err := w.srv.RootClient().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

func scanOf(tenant, scanID string) *event.ScanCompleted {
	return &event.ScanCompleted{ScanID: scanID, TenantID: tenant, Provider: event.Provider{ID: "p1", UID: "123456789012"}}
}

func TestS3SourceReadsAndResumesABrokenBody(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	body := randomBytes(t, 3<<20+17)
	w.put(t, "t1/s1/out.csv", body)
	// The first two GETs break after 1 MiB: the read goes on from there
	// with ranged GETs pinned to the object's ETag.
	w.proxy.BreakBodies("/"+w.bucket+"/t1/s1/out.csv", 1<<20, 2)
	op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"),
		event.Artifact{Format: "csv", Source: "s3://" + w.bucket + "/t1/s1/out.csv"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(op)
	op.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d of %d bytes, %v", len(got), len(body), err)
	}
	if op.Size != int64(len(body)) {
		t.Errorf("Size %d, want %d", op.Size, len(body))
	}
	var gets []s3test.ProxiedRequest
	for _, r := range w.proxy.Requests() {
		if r.Method == "GET" && r.Path == "/"+w.bucket+"/t1/s1/out.csv" {
			gets = append(gets, r)
		}
	}
	if w.proxy.Stats().Broken != 2 {
		t.Errorf("%d bodies broken, want 2", w.proxy.Stats().Broken)
	}
	if len(gets) != 3 {
		t.Fatalf("%d GETs, want 3 (one, then two resumes)", len(gets))
	}
	for i, r := range gets[1:] {
		want := []string{"bytes=1048576-", "bytes=2097152-"}[i]
		if got := r.Header.Get("Range"); got[:len(want)] != want {
			t.Errorf("resume %d: Range %q, want %s…", i+1, got, want)
		}
		if r.Header.Get("If-Match") == "" {
			t.Errorf("resume %d has no If-Match", i+1)
		}
	}
}

func TestS3SourceGivesUpAfterBoundedResumes(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	w.put(t, "t1/s1/out.csv", randomBytes(t, 1<<20))
	w.proxy.BreakBodies("/"+w.bucket+"/t1/s1/out.csv", 1000, 100)
	op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"),
		event.Artifact{Format: "csv", Source: "s3://" + w.bucket + "/t1/s1/out.csv"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	_, err = io.ReadAll(op)
	wantCode(t, "a body that always breaks", err, errcode.SourceNotFound, true)
}

func TestS3SourceChangedObjectIsNotSpliced(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	key := "t1/s1/out.csv"
	w.put(t, key, bytes.Repeat([]byte("a"), 2<<20))
	w.proxy.BreakBodies("/"+w.bucket+"/"+key, 512<<10, 1)
	op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "csv", Source: "s3://" + w.bucket + "/" + key})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if _, err := io.ReadFull(op, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	w.put(t, key, bytes.Repeat([]byte("b"), 2<<20)) // replaced mid-read
	got, err := io.ReadAll(op)
	if bytes.IndexByte(got, 'b') >= 0 {
		t.Fatal("bytes of the new object were spliced into the old one's")
	}
	wantCode(t, "the object changed mid-read", err, errcode.SourceNotFound, true)
}

func TestS3SourceRefusals(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	w.put(t, "t2/s1/out.csv", []byte("other tenant"))
	ctx := context.Background()
	for _, tc := range []struct {
		name, src string
		code      errcode.Code
		retryable bool
	}{
		{"another tenant's prefix", "s3://" + w.bucket + "/t2/s1/out.csv", errcode.SourceRefused, false},
		{"climbing out of the prefix", "s3://" + w.bucket + "/t1/s1/../../t2/s1/out.csv", errcode.SourceRefused, false},
		{"another scan's prefix", "s3://" + w.bucket + "/t1/s2/out.csv", errcode.SourceRefused, false},
		{"a bucket not listed", "s3://not-listed/t1/s1/out.csv", errcode.SourceRefused, false},
		{"a missing object", "s3://" + w.bucket + "/t1/s1/missing.csv", errcode.SourceNotFound, true},
	} {
		_, err := w.opener.Open(ctx, scanOf("t1", "s1"), event.Artifact{Format: "csv", Source: tc.src})
		wantCode(t, tc.name, err, tc.code, tc.retryable)
		_, err = w.opener.Expand(ctx, scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: tc.src})
		wantCode(t, tc.name+" (archive)", err, tc.code, tc.retryable)
	}
	for _, r := range w.proxy.Requests() {
		if r.Path == "/"+w.bucket+"/t2/s1/out.csv" || r.Path == "/not-listed/t1/s1/out.csv" {
			t.Errorf("a refused source was asked for: %s %s", r.Method, r.Path)
		}
	}
	// s3 sources off: no reader, or a reader with no bucket.
	off, err := source.NewOpener(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = off.Open(ctx, scanOf("t2", "s1"), event.Artifact{Format: "csv", Source: "s3://" + w.bucket + "/t2/s1/out.csv"})
	wantCode(t, "s3 sources off", err, errcode.SourceRefused, false)
}
