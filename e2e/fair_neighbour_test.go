package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// neighbours is two tenants on one exporter behind a proxy that can delay
// or black-hole one bucket: tenant-a's (the bad neighbour) and tenant-b's.
type neighbours struct {
	*env
	proxy      *s3test.FaultProxy
	tally      *exportTally
	bucketA    string
	bucketB    string
	scansA     []loadScan
	scansB     []loadScan
	igA, igB   string
	tenA, tenB string
}

func newNeighbours(t *testing.T, name string, nA, nB int, mutate func(*config.Config)) *neighbours {
	t.Helper()
	proxy := s3test.NewFaultProxy(t, s3Server(t).Endpoint())
	e := newEnv(t, func(c *config.Config) {
		c.S3Endpoint = proxy.URL()
		// A replica holds every scan of the test: the per-tenant cap on
		// scans in flight is the consumer's half of issue 12; this test
		// is about the uploads.
		c.MaxInFlightScans = 128
		if mutate != nil {
			mutate(c)
		}
	})
	n := &neighbours{env: e, proxy: proxy, tally: followExports(t, e.cl.JS),
		bucketA: e.bucket(name + "-a"), bucketB: e.bucket(name + "-b"),
		igA: "bad-neighbour", igB: "good-neighbour", tenA: "tenant-a", tenB: "tenant-b"}
	// Let tenant-a's bucket go before the exporter stops (a test that
	// fails while holding it), so that the shutdown does not wait on it.
	t.Cleanup(func() { proxy.SetBucketDelay(n.bucketA, 0) })
	e.put(e.integration(n.tenA, n.igA, n.bucketA, "prov-1"))
	e.put(e.integration(n.tenB, n.igB, n.bucketB, "prov-1"))
	n.scansA = loadScans(name+"-a", nA, smallFormats, 0, 0)
	n.scansB = loadScans(name+"-b", nB, smallFormats, 0, 0)
	for i := range n.scansB {
		n.scansB[i].tenant = n.tenB
	}
	return n
}

// succeeded counts the scans of scans that have a succeeded status for ig.
func (n *neighbours) succeeded(scans []loadScan, ig string) int {
	n.tally.mu.Lock()
	defer n.tally.mu.Unlock()
	c := 0
	for _, s := range scans {
		if n.tally.succeeded[exportKey{s.id, ig}] > 0 {
			c++
		}
	}
	return c
}

// waitAll waits until every scan of scans succeeded for ig; any failed
// status fails the test.
func (n *neighbours) waitAll(scans []loadScan, ig string, timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for n.succeeded(scans, ig) < len(scans) {
		if _, failed := n.tally.settled(); failed > 0 {
			n.t.Fatalf("a scan failed: %v\nexporter log:\n%s", n.tally.failures(), n.logText())
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%d of %d scans of %s succeeded; missing %v\nexporter log:\n%s", n.succeeded(scans, ig), len(scans), ig,
				n.tally.missing(scans, ig), n.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// warmUp exports tenant-a's first scan while its bucket is healthy, so that
// the exporter knows the bucket's region and what follows is held in the
// uploads themselves (a region lookup waits outside the upload slots).
func (n *neighbours) warmUp() {
	n.t.Helper()
	if err := publishLoad(n.cl, n.scansA[:1], 1, 0); err != nil {
		n.t.Fatal(err)
	}
	n.waitAll(n.scansA[:1], n.igA, time.Minute)
}

// waitHeld waits until the proxy holds requests to the bad bucket: its
// uploads are running and stuck.
func (n *neighbours) waitHeld(want int64) {
	n.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for n.proxy.Stats().Delayed < want {
		if time.Now().After(deadline) {
			n.t.Fatalf("the proxy held %d requests of tenant-a, want %d", n.proxy.Stats().Delayed, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAnotherTenantsScansSucceedWhileOneBucketIsSlow: tenant-a's bucket
// holds every request (a slow bucket, as slow as the test wants: it answers
// only when let go) while 40 of its scans are queued; tenant-b's 10 scans to
// a healthy bucket all succeed meanwhile, none waiting for tenant-a's. Then
// tenant-a's bucket answers after 300 ms a request and all its scans land.
// Before issue 12 all 16 upload slots were tenant-a's, in arrival order, and
// tenant-b's scans waited for them.
func TestAnotherTenantsScansSucceedWhileOneBucketIsSlow(t *testing.T) {
	if testing.Short() {
		t.Skip("two tenants through a delaying proxy")
	}
	// A world of its own (NATS, proxy, buckets); tenant-a's bucket answers
	// only when let go, so other tests' load cannot blur the comparison.
	t.Parallel()
	n := newNeighbours(t, "slow", 40, 10, nil)
	n.warmUp()
	n.proxy.SetBucketDelay(n.bucketA, time.Hour)
	if err := publishLoad(n.cl, n.scansA[1:], 4, 0); err != nil {
		t.Fatal(err)
	}
	n.waitHeld(4) // tenant-a's uploads are stuck
	if err := publishLoad(n.cl, n.scansB, 4, 0); err != nil {
		t.Fatal(err)
	}
	n.waitAll(n.scansB, n.igB, 2*time.Minute)
	if got := n.succeeded(n.scansA, n.igA); got != 1 {
		t.Fatalf("%d of tenant-a's scans succeeded through a bucket that answered nothing (want only the first)", got)
	}
	reg := n.reg
	if q := sumGauge(t, reg, "s3exporter_uploads_queued"); q == 0 {
		t.Errorf("no upload queued while tenant-a's bucket held them all")
	}
	held := n.proxy.Stats().Delayed

	// The bucket answers again, slowly.
	n.proxy.SetBucketDelay(n.bucketA, 300*time.Millisecond)
	n.waitAll(n.scansA, n.igA, 5*time.Minute)
	t.Logf("tenant-a: %d requests held, %d in all", held, n.proxy.Stats().Delayed)
	checkObjects(t, n.s3, n.bucketB, wantObjects(n.scansB, "output"), 1)
	checkObjects(t, n.s3, n.bucketA, wantObjects(n.scansA, "output"), 5)
	if w := histCount(t, reg, "s3exporter_fair_share_wait_seconds"); w < float64(3*(len(n.scansA)+len(n.scansB))) {
		t.Errorf("s3exporter_fair_share_wait_seconds observed %v waits, want one per upload (%d)", w, 3*(len(n.scansA)+len(n.scansB)))
	}
}

// TestBlackHoleFailsFastOpensTheBreakerAndClosesItAgain: tenant-a's bucket
// never answers. Its uploads fail within the response timeout (1 s here)
// as a retryable Timeout, not after S3EXPORTER_UPLOAD_TIMEOUT (30 min); after
// 3 failures in a row the destination's breaker opens (a connection status
// says so, with breaker "open"), and tenant-a's scans go retrying without
// waiting on it. Tenant-b's scans all succeed meanwhile. When the bucket
// answers again, a probe closes the breaker (breaker "closed", connected)
// and every scan of tenant-a lands.
func TestBlackHoleFailsFastOpensTheBreakerAndClosesItAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("two tenants through a black-holing proxy")
	}
	t.Parallel() // a world of its own: NATS, proxy, buckets
	n := newNeighbours(t, "hole", 10, 10, func(c *config.Config) {
		c.ResponseTimeout = time.Second
		c.BreakerFailures = 3
		c.BreakerCooldown = time.Second
		// Redeliveries keep coming while the bucket is dead; none may run
		// out (deferral that spares attempts is the consumer's half).
		c.Backoff = []time.Duration{500 * time.Millisecond}
		c.MaxDeliver = 1000
	})
	n.warmUp()
	n.proxy.SetBucketDelay(n.bucketA, s3test.BlackHole)
	if err := publishLoad(n.cl, n.scansA[1:], 4, 0); err != nil {
		t.Fatal(err)
	}
	n.waitHeld(1)
	if err := publishLoad(n.cl, n.scansB, 4, 0); err != nil {
		t.Fatal(err)
	}
	n.waitAll(n.scansB, n.igB, 2*time.Minute)

	// Fail fast: a retrying status with a retryable Timeout, well before
	// the 30 minutes of the upload timeout (the bound here is generous).
	st, ok := n.waitFor(2*time.Minute, func(s client.Status) bool {
		return s.Export != nil && s.Export.IntegrationID == n.igA && s.Export.State == event.StateRetrying &&
			len(s.Export.Errors) > 0 && s.Export.Errors[0].Code == "Timeout" &&
			strings.Contains(s.Export.Errors[0].Message, "no response from S3 within the response timeout")
	})
	if !ok {
		t.Fatalf("no retrying status with Timeout for tenant-a; statuses: %s\nexporter log:\n%s", n.dump(), n.logText())
	}
	t.Logf("tenant-a retrying: %s", st.Export.Errors[0].Message)
	open, ok := n.waitFor(2*time.Minute, func(s client.Status) bool {
		return s.Connection != nil && s.Connection.IntegrationID == n.igA && s.Connection.Breaker == event.BreakerOpen
	})
	if !ok {
		t.Fatalf("no connection status with breaker open; statuses: %s\nexporter log:\n%s", n.dump(), n.logText())
	}
	if c := open.Connection; c.Connected || c.Error == nil || c.Error.Code != "Timeout" || c.TenantID != n.tenA {
		t.Errorf("breaker-open status %+v, want disconnected with a Timeout of tenant-a", *c)
	}
	// The breaker fails fast: a retrying status that was not sent at all.
	if _, ok := n.waitFor(2*time.Minute, func(s client.Status) bool {
		return s.Export != nil && s.Export.IntegrationID == n.igA && s.Export.State == event.StateRetrying &&
			len(s.Export.Errors) > 0 && strings.Contains(s.Export.Errors[0].Message, "circuit breaker open")
	}); !ok {
		t.Fatalf("no upload refused by the open breaker; statuses: %s", n.dump())
	}
	reg := n.reg
	if opens := sumMetric(t, reg, "s3exporter_breaker_opens_total"); opens < 1 {
		t.Errorf("s3exporter_breaker_opens_total = %v", opens)
	}
	if got := n.succeeded(n.scansA, n.igA); got != 1 {
		t.Fatalf("%d of tenant-a's scans succeeded through a black hole (want only the first)", got)
	}

	// The bucket comes back: a probe closes the breaker and every scan lands.
	n.proxy.SetBucketDelay(n.bucketA, 0)
	n.waitAll(n.scansA, n.igA, 3*time.Minute)
	closed, ok := n.waitFor(time.Minute, func(s client.Status) bool {
		return s.Connection != nil && s.Connection.IntegrationID == n.igA && s.Connection.Breaker == event.BreakerClosed
	})
	if !ok {
		t.Fatalf("no connection status with breaker closed; statuses: %s", n.dump())
	}
	if c := closed.Connection; !c.Connected || c.Error != nil || !c.LastCheckedAt.After(open.Connection.LastCheckedAt) {
		t.Errorf("breaker-closed status %+v, want connected, after the open one", *c)
	}
	if g := gaugeValue(t, reg, "s3exporter_breakers", "state", "open"); g != 0 {
		t.Errorf("s3exporter_breakers{state=open} = %v after the breaker closed", g)
	}
	checkObjects(t, n.s3, n.bucketA, wantObjects(n.scansA, "output"), 1)
	checkObjects(t, n.s3, n.bucketB, wantObjects(n.scansB, "output"), 1)
	if d := n.dlqAll(); len(d) != 0 {
		t.Errorf("%d dead letters: %v", len(d), d)
	}
}

// TestUploadMemoryBudgetIsRespected: with S3EXPORTER_UPLOAD_MEMORY at its
// minimum (16 MiB) and scans of 3 MiB files (6 MiB each as the budget counts
// them: the buffer and as much read ahead), never more than the budget is in
// flight, as the peak gauge shows, while every scan lands.
func TestUploadMemoryBudgetIsRespected(t *testing.T) {
	if testing.Short() {
		t.Skip("a load under a small memory budget")
	}
	t.Parallel() // a world of its own: NATS, bucket, the exporter's gauges
	const budget = 16 << 20
	e := newEnv(t, func(c *config.Config) {
		c.UploadMemory = budget
		c.MaxInFlightScans = 32
	})
	b := e.bucket("budget")
	e.put(e.integration("tenant-a", "budgeted", b, "prov-1"))
	tally := followExports(t, e.cl.JS)
	scans := loadScans("budget", 12, smallFormats, 1, 3<<20)
	if err := publishLoad(e.cl, scans, 4, 0); err != nil {
		t.Fatal(err)
	}
	if !tally.waitSettled(len(scans), 3*time.Minute) {
		t.Fatalf("missing %v, failures %v\nexporter log:\n%s", tally.missing(scans, "budgeted"), tally.failures(), e.logText())
	}
	checkObjects(t, e.s3, b, wantObjects(scans, "output"), 3)
	reg := e.reg
	peak := sumGauge(t, reg, "s3exporter_upload_bytes_in_flight_peak")
	if got := sumGauge(t, reg, "s3exporter_upload_memory_budget_bytes"); got != budget {
		t.Errorf("budget gauge %v, want %d", got, budget)
	}
	if peak > budget {
		t.Errorf("peak of bytes in flight %v over the budget %d", peak, budget)
	}
	if peak < 6<<20 {
		t.Errorf("peak of bytes in flight %v: a 3 MiB file never counted", peak)
	}
	if now := sumGauge(t, reg, "s3exporter_upload_bytes_in_flight"); now != 0 {
		t.Errorf("%v bytes still in flight after every scan settled", now)
	}
	t.Logf("peak %.1f MiB of a %d MiB budget", peak/(1<<20), budget>>20)
}

// sumGauge adds up every series of a gauge family of reg.
func sumGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return gaugeValue(t, reg, name, "", "")
}

// gaugeValue is the value of the series of a gauge family whose label is
// value (every series added up when label is "").
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if match {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// histCount is the number of observations of a histogram family of reg.
func histCount(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}
