package exporter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// blackHole accepts requests and never answers; it counts them.
func blackHole(t *testing.T, readBody bool) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if readBody {
			_, _ = bytes.NewBuffer(nil).ReadFrom(r.Body)
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, &n
}

func stallClient(t *testing.T, url string, timeout time.Duration) *s3.Client {
	t.Helper()
	c, err := NewClients(context.Background(), ClientOptions{ResponseTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(c.base, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(url)
		o.UsePathStyle = true
		o.Credentials = credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	})
}

// A request that gets no response headers fails after the response timeout
// (not UploadTimeout), once (the SDK does not try it twice more), as a
// retryable Timeout marked ErrNoResponse.
func TestNoResponseHeadersIsARetryableTimeoutNotRetriedBySDK(t *testing.T) {
	srv, n := blackHole(t, true)
	cl := stallClient(t, srv.URL, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))})
	if err == nil {
		t.Fatal("a black hole answered")
	}
	ce := classify("PutObject", err)
	if ce.Code != errcode.Timeout || !ce.Retryable || !errors.Is(ce, ErrNoResponse) {
		t.Fatalf("classified %v (retryable %v), want a retryable Timeout with ErrNoResponse", ce, ce.Retryable)
	}
	if ctx.Err() != nil {
		t.Fatal("it waited for the context, not the response timeout")
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("%d requests reached the black hole, want 1 (no SDK retry)", got)
	}
}

// A part body the server stops reading fails too: ResponseHeaderTimeout
// only starts once the body is sent.
func TestStalledBodyIsARetryableTimeout(t *testing.T) {
	srv, _ := blackHole(t, false)
	cl := stallClient(t, srv.URL, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := make([]byte, 64<<20) // far more than socket buffers hold
	_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader(body)})
	if err == nil {
		t.Fatal("a stalled body succeeded")
	}
	ce := classify("PutObject", err)
	if ce.Code != errcode.Timeout || !ce.Retryable || !errors.Is(ce, ErrNoResponse) {
		t.Fatalf("classified %v, want a retryable Timeout with ErrNoResponse", ce)
	}
	if ctx.Err() != nil {
		t.Fatal("it waited for the context, not the response timeout")
	}
}

// Request bodies reach the connection through stallConn.ReadFrom (net/http
// copies a body behind an io.LimitedReader): every byte, in order, through
// the pooled buffer, with no buffer of its own per body.
func TestStallConnReadFromCopiesTheBody(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := &stallConn{Conn: client, timeout: 10 * time.Second}
	body := make([]byte, 200<<10+7)
	for i := range body {
		body[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	n, err := io.Copy(c, io.LimitReader(bytes.NewReader(body), int64(len(body))))
	client.Close()
	if err != nil || n != int64(len(body)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, body) {
		t.Fatalf("the connection got %d bytes, not the body's %d", len(b), len(body))
	}
	// What io.Copy would allocate without ReadFrom: 32 KiB per body.
	if raceDetector {
		return // sync.Pool drops buffers at random under the race detector
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 20
	for range runs {
		p1, p2 := net.Pipe()
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, p2); p2.Close(); close(done) }()
		_, _ = io.Copy(&stallConn{Conn: p1, timeout: 10 * time.Second}, io.LimitReader(bytes.NewReader(body), int64(len(body))))
		p1.Close()
		<-done
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 16<<10 {
		t.Errorf("%d bytes allocated per body copied; want no copy buffer of its own", per)
	}
}
