package integration_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// The shape of the large cache of BENCHMARKS.md workload 3: 100,000
// integrations across 10,000 tenants, each tenant with 5 providers and each
// integration exporting 2 of them.
const (
	benchTenants          = 10_000
	benchPerTenant        = 10
	benchProvidersPerTen  = 5
	benchProvidersPerInt  = 2
	benchLookups          = 1 << 16
	benchTotalIntegration = benchTenants * benchPerTenant
)

func benchTenant(t int) string      { return fmt.Sprintf("tenant-%05d", t) }
func benchProvider(t, p int) string { return fmt.Sprintf("prov-%05d-%d", t, p) }

type lookup struct{ tenant, provider string }

// big is the shared 100k cache of the lookup benchmarks, built once per
// process (RunParallel calls its benchmark several times).
var big struct {
	once    sync.Once
	cache   *integration.Cache
	plain   map[string]map[string][]*integration.Integration
	lookups []lookup
}

// bigCache returns the 100k cache (shared: do not change it), a plain
// two-level map holding the same selections (the floor any index can reach)
// and lookups spread over every tenant.
func bigCache(b *testing.B) (*integration.Cache, map[string]map[string][]*integration.Integration, []lookup) {
	b.Helper()
	big.once.Do(func() { big.cache, big.plain, big.lookups = buildBigCache() })
	if big.cache.Len() != benchTotalIntegration {
		b.Fatalf("cache holds %d integrations, want %d", big.cache.Len(), benchTotalIntegration)
	}
	return big.cache, big.plain, big.lookups
}

func buildBigCache() (*integration.Cache, map[string]map[string][]*integration.Integration, []lookup) {
	c := integration.NewCache()
	plain := make(map[string]map[string][]*integration.Integration, benchTenants)
	for t := range benchTenants {
		byProv := map[string][]*integration.Integration{}
		for i := range benchPerTenant {
			provs := make([]string, benchProvidersPerInt)
			for k := range provs {
				provs[k] = benchProvider(t, (i+k)%benchProvidersPerTen)
			}
			x := &integration.Integration{ID: fmt.Sprintf("ig-%05d-%02d", t, i), TenantID: benchTenant(t), Enabled: i%7 != 6,
				Providers: provs, Bucket: "bucket-" + benchTenant(t), OutputDirectory: "output"}
			c.Put(x)
			if x.Enabled {
				for _, p := range provs {
					byProv[p] = append(byProv[p], x)
				}
			}
		}
		plain[benchTenant(t)] = byProv
	}
	lookups := make([]lookup, benchLookups)
	for i := range lookups {
		t := (i * 7919) % benchTenants // a stride that visits every tenant
		lookups[i] = lookup{benchTenant(t), benchProvider(t, i%benchProvidersPerTen)}
	}
	return c, plain, lookups
}

// BenchmarkCacheSelect100k is the per-scan lookup of the exporter
// (Cache.Select) on the 100k cache: read lock, index walk, copy of the
// enabled integrations and their sort by id.
func BenchmarkCacheSelect100k(b *testing.B) {
	c, _, lookups := bigCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		l := lookups[i&(benchLookups-1)]
		n += len(c.Select(l.tenant, l.provider))
	}
	if n == 0 {
		b.Fatal("every lookup came back empty")
	}
}

// BenchmarkCacheSelect100kParallel is the same lookup from every core at once
// (scans in flight share the cache's read lock).
func BenchmarkCacheSelect100kParallel(b *testing.B) {
	c, _, lookups := bigCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l := lookups[i&(benchLookups-1)]
			if c.Select(l.tenant, l.provider) == nil {
				panic("nil selection")
			}
			i++
		}
	})
}

// BenchmarkPlainMapLookup100k is the baseline of the cache lookup: a
// two-level map from tenant and provider to a prebuilt slice, no lock, no
// copy. No index can do less.
func BenchmarkPlainMapLookup100k(b *testing.B) {
	_, plain, lookups := bigCache(b)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		l := lookups[i&(benchLookups-1)]
		n += len(plain[l.tenant][l.provider])
	}
	if n == 0 {
		b.Fatal("every lookup came back empty")
	}
}

// BenchmarkCachePut is one integration applied to the 100k cache, as the
// follower does for each message while it catches up.
func BenchmarkCachePut(b *testing.B) {
	c, _, _ := buildBigCache() // its own: Put changes it
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := i % benchTenants
		c.Put(&integration.Integration{ID: fmt.Sprintf("ig-%05d-%02d", t, i%benchPerTenant), TenantID: benchTenant(t), Enabled: true,
			Providers: []string{benchProvider(t, 0), benchProvider(t, 1)}, Bucket: "bucket", OutputDirectory: "output"})
	}
}

// BenchmarkParseChange decodes and validates one integration-changed event
// whose credentials are a Fernet token (what the follower does per message
// during catch-up, before Cache.Put).
func BenchmarkParseChange(b *testing.B) {
	ks, err := fernet.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	key, err := fernet.ParseKey(ks)
	if err != nil {
		b.Fatal(err)
	}
	creds, err := event.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey}.WireJSON()
	if err != nil {
		b.Fatal(err)
	}
	token, err := key.Encrypt(creds, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	enabled := true
	data, err := json.Marshal(event.IntegrationChanged{Action: event.ActionUpsert, Integration: event.IntegrationPayload{
		ID: "i1", TenantID: "t1", Type: event.TypeAmazonS3, Enabled: &enabled, Providers: []string{"p1", "p2"},
		Configuration:        event.Configuration{BucketName: "my-security-findings-bucket", OutputDirectory: "prowler-findings"},
		EncryptedCredentials: string(token),
	}})
	if err != nil {
		b.Fatal(err)
	}
	p := &integration.Parser{Prefix: "prowler", Key: key}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ch, err := p.ParseChange(changeSubject, data)
		if err != nil || ch.Integration == nil {
			b.Fatalf("ParseChange: %v", err)
		}
	}
}
