package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// fairnessEnv: one tenant, whose bucket answers slowly, exporting one scan
// at a time in the replica and holding at most 4 (4 × S3EXPORTER_MAX_TENANT_SCANS):
// of n scans published at once, the others are deferred again and again,
// with S3EXPORTER_MAX_DELIVER=1: a deferral counted as an attempt would give a scan up.
func fairnessEnv(t *testing.T) (*env, string) {
	t.Helper()
	e, proxy := brokenBucketEnv(t, func(c *config.Config) {
		c.MaxInFlightScans = 4
		c.MaxHeldScans = 8
		c.MaxTenantScans = 1
		c.MaxDeliver = 1
	})
	b := e.bucket("slow")
	proxy.SetFaults(s3test.Faults{SlowRate: 1, SlowDelay: 300 * time.Millisecond, PathPrefix: "/" + b})
	e.put(e.integration("tenant-a", "slow", b, "prov-1"))
	return e, b
}

// publishFairnessScans publishes n scans of tenant-a (distinct accounts, so
// distinct object keys) and returns their ids.
func publishFairnessScans(e *env, n int) []string {
	var ids []string
	for i := range n {
		id := fmt.Sprintf("scan-fair-%02d", i)
		files, _ := prowlerFiles(int64(300+i), fmt.Sprintf("1111222233%02d", i))
		e.publishScan("tenant-a", "prov-1", fmt.Sprintf("1111222233%02d", i), id, files)
		ids = append(ids, id)
	}
	return ids
}

// deferrals reads the deferral counts the ledger holds, by stream sequence.
func deferrals(t *testing.T, e *env) map[string]int {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "PROWLER_EXPORTS")
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, "d.") {
			continue
		}
		v, err := kv.Get(ctx, k)
		if err != nil {
			continue // expired or deleted meanwhile
		}
		n, err := strconv.Atoi(string(v.Value()))
		if err != nil {
			t.Fatalf("deferral count %s = %q", k, v.Value())
		}
		out[k] = n
	}
	return out
}

// waitAllSucceeded waits for a succeeded status of every scan and checks
// that each used one attempt and nothing was dead-lettered.
func waitAllSucceeded(t *testing.T, e *env, ids []string) {
	t.Helper()
	for _, id := range ids {
		st, ok := e.waitFor(3*time.Minute, func(s client.Status) bool {
			return s.Export != nil && s.Export.ScanID == id && s.Export.State != event.StateRetrying
		})
		if !ok {
			t.Fatalf("no final status for %s; deferrals %v\n%s", id, deferrals(t, e), e.logText())
		}
		if st.Export.State != event.StateSucceeded || st.Export.Attempt != 1 {
			t.Fatalf("%s: %s at attempt %d %+v, want succeeded at attempt 1 (deferrals are not attempts)",
				id, st.Export.State, st.Export.Attempt, st.Export.Errors)
		}
	}
	if n := len(e.dlqAll()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// TestDeferredScansAreNotGivenUpEarly: a tenant's scans held back for
// fairness are deferred many more times than S3EXPORTER_MAX_DELIVER, and
// every one still succeeds at its first attempt.
func TestDeferredScansAreNotGivenUpEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out several deferrals")
	}
	// A world of its own (NATS, proxy, bucket). Load from other tests
	// only slows the bucket further, which defers the scans more.
	t.Parallel()
	e, b := fairnessEnv(t)
	ids := publishFairnessScans(e, 10)
	waitAllSucceeded(t, e, ids)
	most := 0
	for _, n := range deferrals(t, e) {
		most = max(most, n)
	}
	if most <= e.cfg.MaxDeliver {
		t.Fatalf("the most deferred scan was deferred %d times: the test did not defer beyond S3EXPORTER_MAX_DELIVER=%d", most, e.cfg.MaxDeliver)
	}
	t.Logf("most deferrals of one scan: %d (S3EXPORTER_MAX_DELIVER=%d)", most, e.cfg.MaxDeliver)
	if got := len(e.objects(b)); got == 0 || got%10 != 0 {
		t.Fatalf("%d objects in the bucket, want every file of the 10 scans", got)
	}
}

// TestARestartMidDeferralLosesNoScan: the replica stops while scans are
// deferred; its successor picks the deferral counts up from the ledger and
// every scan still succeeds at its first attempt.
func TestARestartMidDeferralLosesNoScan(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out several deferrals and a restart")
	}
	// A world of its own (NATS, proxy, bucket). Load from other tests
	// only slows the bucket further, which defers the scans more.
	t.Parallel()
	e, b := fairnessEnv(t)
	ids := publishFairnessScans(e, 10)
	deadline := time.Now().Add(time.Minute)
	var before map[string]int
	for {
		before = deferrals(t, e)
		if len(before) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no deferrals to interrupt: %v\n%s", before, e.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.stop()
	e.start()
	waitAllSucceeded(t, e, ids)
	after := deferrals(t, e)
	for k, n := range before {
		if after[k] < n {
			t.Errorf("%s: %d deferrals before the restart, %d after: the count was lost", k, n, after[k])
		}
	}
	// Every file of every scan is in the bucket.
	files, _ := prowlerFiles(300, "111122223300")
	if got := len(e.objects(b)); got != 10*len(files) {
		t.Fatalf("%d objects in the bucket, want %d", got, 10*len(files))
	}
}
