package exporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

func newTestClients(t *testing.T, endpoint string, tune func(*ClientOptions)) *Clients {
	t.Helper()
	opts := ClientOptions{Endpoint: endpoint, PathStyle: true, MaxAttempts: 1}
	if tune != nil {
		tune(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClients(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func staticIG(tenant, id, bucket string) *integration.Integration {
	return &integration.Integration{TenantID: tenant, ID: id, Bucket: bucket,
		Credentials: event.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}}
}

// Contract v1.1 §2: equal credentials of two tenants are two signers, with
// their own providers and clients.
func TestSignersAreNeverSharedBetweenTenants(t *testing.T) {
	c := newTestClients(t, "http://127.0.0.1:1", nil)
	a, b := staticIG("tenant-a", "i", "bucket"), staticIG("tenant-b", "i", "bucket")
	if c.client(a, "us-east-1") == c.client(b, "us-east-1") {
		t.Error("two tenants with equal credentials share an S3 client")
	}
	a2 := staticIG("tenant-a", "other", "other-bucket")
	if c.client(a, "us-east-1") != c.client(a2, "us-east-1") {
		t.Error("one tenant's integrations with equal credentials should share a client")
	}
	if c.lru.Len() != 2 {
		t.Errorf("%d signers cached, want 2", c.lru.Len())
	}
}

// The cache drops one signer at a time, the least recently used, and a
// tenant over its cap loses its own, never another tenant's.
func TestSignerCacheIsAnLRUWithAPerTenantCap(t *testing.T) {
	c := newTestClients(t, "http://127.0.0.1:1", func(o *ClientOptions) { o.MaxSigners = 4; o.MaxSignersPerTenant = 2 })
	ig := func(tenant, key string) *integration.Integration {
		x := staticIG(tenant, "i", "b")
		x.Credentials.AccessKeyID = key
		return x
	}
	cached := func() map[string]bool {
		out := map[string]bool{}
		for el := c.lru.Front(); el != nil; el = el.Next() {
			out[el.Value.(*signer).key] = true
		}
		return out
	}
	b1, a1, a2 := ig("b", "k1"), ig("a", "k1"), ig("a", "k2")
	for _, x := range []*integration.Integration{b1, a1, a2} {
		c.Credentials(x)
	}
	c.Credentials(a1) // a1 is now used more recently than a2
	a3 := ig("a", "k3")
	c.Credentials(a3) // tenant a is at its cap: a2 goes, b1 (older) stays
	got := cached()
	if !got[b1.SigningKey()] || !got[a1.SigningKey()] || got[a2.SigningKey()] || !got[a3.SigningKey()] {
		t.Fatalf("after tenant a's third signer: b1 %v a1 %v a2 %v a3 %v; want a2 dropped only",
			got[b1.SigningKey()], got[a1.SigningKey()], got[a2.SigningKey()], got[a3.SigningKey()])
	}
	c1, c2 := ig("c", "k1"), ig("c", "k2")
	c.Credentials(c1) // 4 signers: full
	c.Credentials(c2) // the least recently used (b1) goes, alone
	got = cached()
	if len(got) != 4 || got[b1.SigningKey()] || !got[a1.SigningKey()] || !got[a3.SigningKey()] || !got[c1.SigningKey()] {
		t.Fatalf("after the cache filled: %d signers, b1 %v; want 4 with only b1 dropped", len(got), got[b1.SigningKey()])
	}
	if c.perTenant["a"] != 2 || c.perTenant["b"] != 0 || c.perTenant["c"] != 2 {
		t.Errorf("per-tenant counts %v", c.perTenant)
	}
	if _, ok := c.perTenant["b"]; ok {
		t.Error("a tenant with no signer left keeps a count")
	}
}

// regionBucket answers GetBucketLocation and HeadBucket as told, and counts
// them.
type regionBucket struct {
	location     string // "" = 403 AccessDenied
	headStatus   int
	headRegion   string
	locs, heads  atomic.Int32
	puts         atomic.Int32
	lastPutAuth  atomic.Value
	putsByRegion sync.Map
}

var scopeRegion = regexp.MustCompile(`Credential=[^/]+/\d+/([^/]+)/s3/`)

func (b *regionBucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Has("location"):
		b.locs.Add(1)
		if b.location == "" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		_, _ = w.Write([]byte(`<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` + b.location + `</LocationConstraint>`))
	case r.Method == http.MethodHead:
		b.heads.Add(1)
		if b.headRegion != "" {
			w.Header().Set("X-Amz-Bucket-Region", b.headRegion)
		}
		w.WriteHeader(b.headStatus)
	case r.Method == http.MethodPut:
		b.puts.Add(1)
		if m := scopeRegion.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
			b.putsByRegion.Store(m[1], true)
		}
		w.Header().Set("ETag", `"etag"`)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Issue 11 point 11: a region from an AWS answer goes into endpoint
// resolution only if it looks like a region; otherwise the bucket's export
// fails with S3InvalidBucketRegion (permanent), and nothing is sent.
func TestBucketRegionsFromAnswersAreValidated(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		b    *regionBucket
		want string // region, or "" for S3InvalidBucketRegion
	}{
		{"location", &regionBucket{location: "eu-west-3"}, "eu-west-3"},
		{"legacy EU", &regionBucket{location: "EU"}, "eu-west-1"},
		{"hostile location", &regionBucket{location: "evil.example.com#"}, ""},
		{"uppercase location", &regionBucket{location: "EU-WEST-1"}, ""},
		{"too long", &regionBucket{location: strings.Repeat("a", 33)}, ""},
		{"header of a 403 HeadBucket", &regionBucket{headStatus: 403, headRegion: "ap-south-2"}, "ap-south-2"},
		{"header of a 301 HeadBucket", &regionBucket{headStatus: 301, headRegion: "sa-east-1"}, "sa-east-1"},
		{"header of a 200 HeadBucket", &regionBucket{headStatus: 200, headRegion: "ca-central-1"}, "ca-central-1"},
		{"hostile header", &regionBucket{headStatus: 403, headRegion: "x.evil.example/"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClients(t, serve(t, tc.b), nil)
			ig := staticIG("t", "i", "bucket")
			cl, region, err := c.Client(ctx, ig)
			if tc.want == "" {
				if e := errcode.From(err); err == nil || e.Code != errcode.S3InvalidBucketRegion || e.Retryable {
					t.Fatalf("Client = %v, %q, %v; want permanent S3InvalidBucketRegion", cl, region, err)
				}
				res := c.TestConnection(ctx, ig)
				if res.Connected || res.Err == nil || res.Err.Code != errcode.S3InvalidBucketRegion {
					t.Fatalf("connection test %+v, want S3InvalidBucketRegion", res)
				}
				if tc.b.puts.Load() != 0 {
					t.Errorf("%d PUTs sent with an invalid region", tc.b.puts.Load())
				}
				return
			}
			if err != nil || region != tc.want {
				t.Fatalf("Client = %q, %v; want %q", region, err, tc.want)
			}
			res := c.TestConnection(ctx, ig)
			if !res.Connected || res.Region != tc.want {
				t.Fatalf("connection test %+v, want connected in %s", res, tc.want)
			}
			if _, ok := tc.b.putsByRegion.Load(tc.want); !ok {
				t.Errorf("the beacon was not signed for %s", tc.want)
			}
		})
	}
}

// Issue 15 part 2, point 2: when GetBucketLocation and HeadBucket are both
// denied, the default region is remembered for a while (not asked again for
// every artifact), reported as unknown, and asked again after the TTL.
func TestFallbackRegionIsRememberedForATime(t *testing.T) {
	b := &regionBucket{headStatus: http.StatusForbidden}
	c := newTestClients(t, serve(t, b), func(o *ClientOptions) { o.FallbackRegionTTL = time.Hour })
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	ig := staticIG("t", "i", "bucket")
	ctx := context.Background()
	for range 5 {
		cl, region, err := c.Client(ctx, ig)
		if err != nil || cl == nil || region != "" {
			t.Fatalf("Client = %v, %q, %v; want the default region's client, reported unknown", cl, region, err)
		}
	}
	if b.locs.Load() != 1 || b.heads.Load() != 1 {
		t.Fatalf("%d GetBucketLocation and %d HeadBucket for 5 uploads, want 1 and 1", b.locs.Load(), b.heads.Load())
	}
	now = now.Add(time.Hour)
	if _, _, err := c.Client(ctx, ig); err != nil {
		t.Fatal(err)
	}
	if b.locs.Load() != 2 || b.heads.Load() != 2 {
		t.Errorf("after the TTL: %d GetBucketLocation, %d HeadBucket; want asked again", b.locs.Load(), b.heads.Load())
	}
	// The connection test reports the guessed region as unknown.
	res := c.TestConnection(ctx, ig)
	if !res.Connected || res.Region != "" {
		t.Errorf("connection test %+v: a guessed region must be reported unknown (empty)", res)
	}
}

// countingProvider hands out key-1, key-2, … and counts the fetches.
type countingProvider struct{ n atomic.Int32 }

func (p *countingProvider) Retrieve(context.Context) (aws.Credentials, error) {
	n := p.n.Add(1)
	return aws.Credentials{AccessKeyID: "key-" + string(rune('0'+n)), SecretAccessKey: "s", SessionToken: "tok",
		CanExpire: true, Expires: time.Now().Add(time.Hour)}, nil
}

// expiringBucket answers ExpiredToken to requests signed by key-1.
type expiringBucket struct{ refused, stored atomic.Int32 }

func (b *expiringBucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Authorization"), "Credential=key-1/") || r.Header.Get("X-Amz-Security-Token") == "expired" {
		b.refused.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>`))
		return
	}
	b.stored.Add(1)
	w.Header().Set("ETag", `"etag"`)
}

// Issue 15 part 2, point 1: credentials that can be fetched again are
// invalidated on ExpiredToken, and the retry signs with new ones; an
// expired static session token is permanent AWSInvalidCredentials.
func TestExpiredTokenRenewsFetchedCredentials(t *testing.T) {
	b := &expiringBucket{}
	c := newTestClients(t, serve(t, b), nil)
	p := &countingProvider{}
	c.base.Credentials = aws.NewCredentialsCache(p) // the exporter's own identity
	ig := &integration.Integration{TenantID: "t", ID: "i", Bucket: "bucket"}
	ctx := context.Background()
	put := func(ig *integration.Integration) *errcode.Error {
		_, err := c.client(ig, "us-east-1").PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
		return classify("PutObject", err)
	}
	e := put(ig)
	if e == nil || e.Code != errcode.AWSInvalidCredentials || !e.Retryable {
		t.Fatalf("first put: %v; want retryable AWSInvalidCredentials", e)
	}
	if e := put(ig); e != nil {
		t.Fatalf("retry after the invalidation: %v", e)
	}
	if p.n.Load() != 2 || b.refused.Load() != 1 || b.stored.Load() != 1 {
		t.Errorf("%d fetches, %d refused, %d stored; want 2, 1, 1", p.n.Load(), b.refused.Load(), b.stored.Load())
	}

	static := staticIG("t", "static", "bucket")
	static.Credentials.SessionToken = "expired"
	for range 2 {
		e := put(static)
		if e == nil || e.Code != errcode.AWSInvalidCredentials || e.Retryable || !strings.Contains(e.Error(), "aws_session_token") {
			t.Fatalf("static token: %v; want permanent AWSInvalidCredentials saying to update aws_session_token", e)
		}
	}
	if p.n.Load() != 2 {
		t.Errorf("a static token's expiry fetched the exporter's credentials (%d fetches)", p.n.Load())
	}
}

// Region discovery refused for an expired session asks again with a new
// one, so the upload is not failed for it.
func TestRegionDiscoveryRenewsAnExpiredSession(t *testing.T) {
	b := &expiringBucket{}
	c := newTestClients(t, serve(t, b), nil)
	p := &countingProvider{}
	c.base.Credentials = aws.NewCredentialsCache(p)
	ig := &integration.Integration{TenantID: "t", ID: "i", Bucket: "bucket"}
	if _, _, err := c.Client(context.Background(), ig); err != nil {
		t.Fatalf("Client: %v", err)
	}
	if p.n.Load() != 2 || b.refused.Load() != 1 {
		t.Errorf("%d fetches, %d refused; want 2 and 1", p.n.Load(), b.refused.Load())
	}
}

// A HeadBucket that succeeds without x-amz-bucket-region (an S3-compatible
// store) leaves the region unknown too: the default region is tried,
// remembered, and not reported as found.
func TestHeadBucketWithoutRegionIsAGuess(t *testing.T) {
	b := &regionBucket{headStatus: http.StatusOK}
	c := newTestClients(t, serve(t, b), nil)
	ig := staticIG("t", "i", "bucket")
	for range 3 {
		if _, region, err := c.Client(context.Background(), ig); err != nil || region != "" {
			t.Fatalf("Client = %q, %v; want the default region, reported unknown", region, err)
		}
	}
	if b.locs.Load() != 1 || b.heads.Load() != 1 {
		t.Errorf("%d GetBucketLocation, %d HeadBucket; want 1 and 1", b.locs.Load(), b.heads.Load())
	}
	if res := c.TestConnection(context.Background(), ig); !res.Connected || res.Region != "" {
		t.Errorf("connection test %+v; want connected, region unknown", res)
	}
}

// Many uploads refused at once with the same expired session renew it once.
func TestConcurrentExpiriesRenewOnce(t *testing.T) {
	b := &expiringBucket{}
	c := newTestClients(t, serve(t, b), nil)
	p := &countingProvider{}
	c.base.Credentials = aws.NewCredentialsCache(p)
	ig := &integration.Integration{TenantID: "t", ID: "i", Bucket: "bucket"}
	cl := c.client(ig, "us-east-1")
	if _, err := c.Credentials(ig).Retrieve(context.Background()); err != nil { // key-1 cached
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
		}()
	}
	wg.Wait()
	if n := p.n.Load(); n != 2 {
		t.Errorf("%d credential fetches for 16 uploads refused with one expired session, want 2", n)
	}
}
