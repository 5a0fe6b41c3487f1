package exporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// flakyBucket is an S3 endpoint for one bucket whose PUTs and DELETEs of the
// beacon fail with 503 SlowDown as told, and which records what it holds.
type flakyBucket struct {
	mu         sync.Mutex
	putFails   int // PUTs still to fail (after storing the object)
	delFails   int // DELETEs still to fail
	puts, dels int
	stored     bool
}

func (b *flakyBucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	slowDown := func() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Has("location"):
		_, _ = w.Write([]byte(`<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-1</LocationConstraint>`))
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/"+BeaconKey):
		b.puts++
		b.stored = true // stored, whatever the answer says
		if b.putFails > 0 {
			b.putFails--
			slowDown()
			return
		}
		w.Header().Set("ETag", `"etag"`)
	case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/"+BeaconKey):
		b.dels++
		if b.delFails > 0 {
			b.delFails--
			slowDown()
			return
		}
		b.stored = false
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func flakyClients(t *testing.T, b *flakyBucket) (*Clients, *integration.Integration) {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClients(ctx, ClientOptions{Endpoint: srv.URL, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return c, &integration.Integration{TenantID: "t", ID: "i", Bucket: "findings",
		Credentials: event.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}}
}

// A beacon DELETE that S3 throttles more times than the SDK retries is
// called again: the test ends connected and the beacon gone.
func TestConnectionTestDeletesTheBeaconThroughThrottling(t *testing.T) {
	b := &flakyBucket{delFails: 4} // the SDK's 3 tries fail, then 1 more
	c, ig := flakyClients(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := c.TestConnection(ctx, ig)
	if !res.Connected || res.Err != nil {
		t.Fatalf("not connected: %v", res.Err)
	}
	if b.stored || b.dels != 5 {
		t.Errorf("beacon left: %v, after %d DELETEs; want gone after 5", b.stored, b.dels)
	}
}

// A beacon PUT whose answers all fail may still have stored the beacon: the
// test fails, and deletes it anyway.
func TestAFailedBeaconPutIsCleanedUp(t *testing.T) {
	b := &flakyBucket{putFails: 3}
	c, ig := flakyClients(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := c.TestConnection(ctx, ig)
	if res.Connected || res.Err == nil {
		t.Fatal("connected although every PUT failed")
	}
	if b.stored || b.dels == 0 {
		t.Errorf("beacon left: %v, after %d DELETEs", b.stored, b.dels)
	}
}

// putHeaders records the S3 headers of the PUTs an endpoint receives.
type putHeaders struct {
	mu   sync.Mutex
	puts []http.Header
}

func (p *putHeaders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		_, _ = w.Write([]byte(`<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">eu-west-1</LocationConstraint>`))
	case http.MethodPut:
		p.mu.Lock()
		p.puts = append(p.puts, r.Header.Clone())
		p.mu.Unlock()
		w.Header().Set("ETag", `"etag"`)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	}
}

// Contract v1.2 §5: the beacon is written as exports write, with the
// integration's encryption, KMS key, storage class and ACL; only its
// content type and metadata differ.
func TestBeaconIsWrittenAsExportsWrite(t *testing.T) {
	rec := &putHeaders{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClients(ctx, ClientOptions{Endpoint: srv.URL, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ig := &integration.Integration{TenantID: "t", ID: "i", Bucket: "findings",
		SSE: "aws:kms", KMSKeyID: "arn:aws:kms:eu-west-1:111122223333:key/k", StorageClass: "STANDARD_IA", BucketOwnerFullControl: true,
		Credentials: event.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}}
	if res := c.TestConnection(ctx, ig); !res.Connected {
		t.Fatalf("not connected: %v", res.Err)
	}
	cl, _, err := c.Client(ctx, ig)
	if err != nil {
		t.Fatal(err)
	}
	scan := &event.ScanCompleted{ScanID: "s1", Provider: event.Provider{UID: "1"}}
	a := event.Artifact{Format: "csv"}
	if _, e := putSmall(ctx, cl, ig.Bucket, objectOptions(scan, ig, a), a, "out/x.csv", 3, strings.NewReader("a,b")); e != nil {
		t.Fatal(e)
	}
	if len(rec.puts) != 2 {
		t.Fatalf("%d PUTs, want the beacon's and the export's", len(rec.puts))
	}
	for _, h := range []string{"X-Amz-Server-Side-Encryption", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "X-Amz-Storage-Class", "X-Amz-Acl"} {
		beacon, export := rec.puts[0].Get(h), rec.puts[1].Get(h)
		if beacon == "" || beacon != export {
			t.Errorf("%s: beacon %q, export %q; want the same, set", h, beacon, export)
		}
	}
	if got := rec.puts[0].Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); got != ig.KMSKeyID {
		t.Errorf("beacon KMS key %q, want %q", got, ig.KMSKeyID)
	}
}
