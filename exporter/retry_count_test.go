package exporter

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// The SDK's own retries (here of a 503 SlowDown, then a 500) are reported
// through ClientOptions.OnRetry, one call per retry, with the failure's
// code; the request then succeeds.
func TestSDKRetriesAreReported(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>`))
		default:
			w.Header().Set("ETag", `"etag"`)
		}
	}))
	defer srv.Close()
	var (
		mu  sync.Mutex
		got []errcode.Code
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := NewClients(ctx, ClientOptions{OnRetry: func(code errcode.Code) {
		mu.Lock()
		got = append(got, code)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	cl := s3.NewFromConfig(c.base, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
		o.Credentials = credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")
	})
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatalf("after two retries the request should succeed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || calls.Load() != 3 {
		t.Fatalf("%d requests, retries reported %v; want 3 requests and 2 retries", calls.Load(), got)
	}
	for _, code := range got {
		if code == "" {
			t.Errorf("a retry reported without a code: %v", got)
		}
	}
}
