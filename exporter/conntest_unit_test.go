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
