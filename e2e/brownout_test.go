package e2e

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// TestS3BrownOutIsAbsorbedByRetries: S3 answers 35% of requests with 503
// SlowDown, resets 5% of connections and delays 10% by 300 ms. Every scan
// still lands, once, byte for byte; nothing is dead-lettered; the retries
// show in the metrics.
//
// A small artifact's PutObject is tried 4 times: the direct PUT, then the
// AWS SDK's 3 tries (a reset on a kept-alive connection is sent again on a
// new one at once, as net/http does, and counts in none of them).
// s3exporter_s3_request_retries_total counts the SDK's tries after the
// first; s3exporter_upload_retries_total and s3exporter_redeliveries_total
// count the exporter's own (an upload tried again in process, a scan
// redelivered), which happen when all 4 tries fail: about 2.5% of artifacts
// at these rates (0.4^4), so some 11 of the 450 of this test (the chance of
// none is about 1 in 60,000). At the 25% of 503s this test first used, with
// 3 tries, it was 2% (the direct PUT's fourth try made none happen in about
// one run in 15).
func TestS3BrownOutIsAbsorbedByRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("a load through a faulty S3")
	}
	t.Parallel() // a world of its own: NATS, proxy, bucket, the exporter's metrics
	proxy := s3test.NewFaultProxy(t, s3Server(t).Endpoint())
	e := newEnv(t, func(c *config.Config) {
		c.S3Endpoint = proxy.URL()
		// The SDK's jittered delays between tries (1 s, doubling, after a
		// 503 SlowDown) would make this run wait seconds per retry.
		c.S3RetryMaxBackoff = 50 * time.Millisecond
	})
	b := e.bucket("brownout")
	proxy.SetFaults(s3test.Faults{ErrorRate: 0.35, ResetRate: 0.05, SlowRate: 0.10, SlowDelay: 300 * time.Millisecond})
	e.put(e.integration("tenant-a", "weathered", b, "prov-1"))
	tally := followExports(t, e.cl.JS)

	scans := loadScans("brownout", 150, smallFormats, 0, 0)
	if err := publishLoad(e.cl, scans, 4, 0); err != nil {
		t.Fatal(err)
	}
	if !tally.waitSettled(len(scans), 2*time.Minute) {
		ok, failed := tally.settled()
		t.Fatalf("%d of %d exports succeeded, %d failed %v; missing %v\nexporter log:\n%s", ok, len(scans), failed,
			tally.failures(), tally.missing(scans, "weathered"), e.logText())
	}
	faults := proxy.Stats()
	proxy.SetFaults(s3test.Faults{})

	checkObjects(t, e.s3, b, wantObjects(scans, "output"), 1)
	sc := readExportStatuses(t, e.cl.JS)
	if dups := sc.checkSucceeded(t, scans, "weathered"); dups != 0 {
		t.Errorf("%d duplicate succeeded statuses from one replica that never stopped", dups)
	}
	if n := len(e.dlqAll()); n != 0 {
		t.Errorf("%d dead letters", n)
	}

	// What is observable: the exporter's own retries (an upload tried again
	// in process, or the scan redelivered) are counted by error code; the
	// AWS SDK's retries inside one attempt (3 tries per request) are not,
	// but every fault the proxy injected was either absorbed by them or
	// surfaced as one of the exporter's.
	reg := e.reg
	uploadRetries := sumMetric(t, reg, "s3exporter_upload_retries_total")
	redeliveries := sumMetric(t, reg, "s3exporter_redeliveries_total")
	retries := uploadRetries + redeliveries
	sdkRetries := sumMetric(t, reg, "s3exporter_s3_request_retries_total")
	failures := sumMetric(t, reg, "s3exporter_upload_failures_total")
	t.Logf("proxy: %d requests, %d answered 503 SlowDown, %d reset, %d slowed", faults.Requests, faults.Errors, faults.Resets, faults.Slowed)
	t.Logf("exporter: s3exporter_upload_retries_total %v %v, s3exporter_redeliveries_total %v %v, s3exporter_upload_failures_total %v, %d retrying statuses",
		uploadRetries, labelled(t, reg, "s3exporter_upload_retries_total", "code"),
		redeliveries, labelled(t, reg, "s3exporter_redeliveries_total", "reason"), failures, sc.retrying)
	if faults.Errors == 0 || faults.Resets == 0 || faults.Slowed == 0 {
		t.Errorf("the brown-out injected too little to prove anything: %+v", faults)
	}
	if retries == 0 {
		t.Errorf("s3exporter_upload_retries_total + s3exporter_redeliveries_total is 0 after %d injected failures", faults.Errors+faults.Resets)
	}
	t.Logf("SDK: s3exporter_s3_request_retries_total %v %v", sdkRetries, labelled(t, reg, "s3exporter_s3_request_retries_total", "code"))
	// Most injected failures are absorbed by the SDK's retries (a request
	// fails for good only when all 3 tries do).
	if sdkRetries < float64(faults.Errors+faults.Resets)/2 {
		t.Errorf("s3exporter_s3_request_retries_total is %v after %d injected failures", sdkRetries, faults.Errors+faults.Resets)
	}
}

// sumMetric adds up every series of a metric family of reg.
func sumMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	var sum float64
	for _, v := range labelled(t, reg, name, "") {
		sum += v
	}
	return sum
}

// labelled returns the non-zero values of a counter family by the value of
// one label.
func labelled(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if v == 0 {
				continue
			}
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key = lp.GetValue()
				}
			}
			out[key] += v
		}
	}
	return out
}
