package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
)

// TestAStalledTenantDoesNotTakeEveryScanSlot: tenant A's bucket holds
// every request until the test lets it go, and A has a backlog of scans; the replica
// exports 4 scans at once, at most 2 of one tenant. Tenant B's scans,
// published after A's, all succeed while A's first scans are still stuck.
// (Without the per-tenant cap A's backlog held all 4 slots and B waited for
// A's uploads.) A's 14 scans are more than its hold (8) and than the room
// the replica lends while alone (16 held less 4 exporting): A holds 12, and
// B's scans take lent places back.
func TestAStalledTenantDoesNotTakeEveryScanSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls a bucket")
	}
	// A world of its own (NATS, proxy, buckets); A's bucket answers only
	// when let go, so other tests' load cannot let A finish first.
	t.Parallel()
	e, proxy := brokenBucketEnv(t, func(c *config.Config) {
		c.MaxInFlightScans = 4
		c.MaxHeldScans = 16
		c.MaxTenantScans = 2
	})
	slow, healthy := e.bucket("stalled"), e.bucket("healthy")
	e.put(e.integration("tenant-a", "stalled", slow, "prov-1"))
	e.put(e.integration("tenant-b", "healthy", healthy, "prov-1"))
	proxy.SetBucketDelay(slow, time.Hour)
	// Let A's bucket go before the exporter stops, so that its shutdown
	// does not wait on the held uploads.
	t.Cleanup(func() { proxy.SetBucketDelay(slow, 0) })

	var aIDs []string
	for i := range 14 {
		id := fmt.Sprintf("scan-a-%02d", i)
		files, _ := prowlerFiles(int64(500+i), "111122223333")
		e.publishScan("tenant-a", "prov-1", "111122223333", id, files)
		aIDs = append(aIDs, id)
	}
	for i := range 5 {
		id := fmt.Sprintf("scan-b-%02d", i)
		files, _ := prowlerFiles(int64(600+i), fmt.Sprintf("4444555566%02d", i))
		e.publishScan("tenant-b", "prov-1", fmt.Sprintf("4444555566%02d", i), id, files)
		st, ok := e.waitFor(2*time.Minute, func(s client.Status) bool {
			return s.Export != nil && s.Export.ScanID == id && s.Export.State != event.StateRetrying
		})
		if !ok || st.Export.State != event.StateSucceeded {
			t.Fatalf("tenant B's %s did not succeed while A was stalled: %+v\n%s", id, st.Export, e.logText())
		}
	}
	// The property holds only if A was still stalled: none of A's scans
	// has a final status yet.
	for _, id := range aIDs {
		for _, s := range e.exports(id, "stalled") {
			if s.State != event.StateRetrying {
				t.Fatalf("A's %s finished (%s) before B's scans: the test did not stall A long enough", id, s.State)
			}
		}
	}
}
