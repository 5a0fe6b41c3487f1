package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
)

// TestTwoThousandQueuedScansStayWithinTheInFlightLimit: 2,000 scans wait on
// the stream when two replicas with S3EXPORTER_MAX_INFLIGHT_SCANS=4 and
// S3EXPORTER_MAX_HELD_SCANS=4 start.
// The durable consumer never has more than 4 × 2 messages unacknowledged,
// each replica's memory stays bounded, and every scan is exported once.
func TestTwoThousandQueuedScansStayWithinTheInFlightLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 scans through two exporter processes")
	}
	// A world of its own (NATS, processes, bucket); what it checks are
	// limits (messages unacknowledged, resident memory), not speeds, so
	// other tests running beside it cannot push it over them.
	t.Parallel()
	const (
		n        = 2000
		inFlight = 4
		replicas = 2
		rssLimit = 300 << 10 // KiB
	)
	bin := buildExporter(t)
	e := newEnvNoExporter(t)
	b := e.bucket("load")
	e.put(e.integration("tenant-a", "bulk", b, "prov-1"))

	scans := loadScans("load", n, []string{event.FormatCSV}, 0, 0)
	start := time.Now()
	if err := publishLoad(e.cl, scans, 4, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("queued %d scans in %v", n, time.Since(start).Round(time.Millisecond))

	tally := followExports(t, e.cl.JS)
	env := replicaEnv(e.ns.ClientURL(), e.s3.Endpoint(), map[string]string{"S3EXPORTER_MAX_INFLIGHT_SCANS": "4", "S3EXPORTER_MAX_HELD_SCANS": "4"})
	var rs []*replica
	for _, name := range []string{"replica-1", "replica-2"} {
		rs = append(rs, startReplica(t, name, bin, env))
	}
	start = time.Now()

	// Sample the consumer's unacknowledged messages every 50 ms and the
	// replicas' resident memory every 100 ms until the work is done.
	var (
		mu                     sync.Mutex
		maxAckPending, samples int
		peakRSS                = map[string]int64{}
		sampleErr              error
		ctx, stopSampling      = context.WithCancel(context.Background())
		sampling               sync.WaitGroup
	)
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		cons, err := e.cl.JS.Consumer(ctx, "PROWLER_SCANS", "s3-exporter")
		if err != nil {
			sampleErr = err
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if info, err := cons.Info(ctx); err == nil {
				mu.Lock()
				maxAckPending = max(maxAckPending, info.NumAckPending)
				samples++
				mu.Unlock()
			}
			if i%2 == 0 {
				for _, r := range rs {
					if kib, err := r.rssKiB(); err == nil {
						mu.Lock()
						peakRSS[r.name] = max(peakRSS[r.name], kib)
						mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	ok := tally.waitSettled(n, 4*time.Minute)
	stopSampling()
	sampling.Wait()
	if sampleErr != nil {
		t.Fatal(sampleErr)
	}
	if !ok {
		done, failed := tally.settled()
		t.Fatalf("%d of %d exports succeeded, %d failed %v; %s; logs:\n%s\n%s", done, n, failed, tally.failures(), consumerState(e.cl.JS),
			rs[0].notable(30), rs[1].notable(30))
	}
	t.Logf("%d scans exported in %v; %d consumer samples, at most %d unacknowledged (limit %d × %d replicas)",
		n, time.Since(start).Round(time.Millisecond), samples, maxAckPending, inFlight, replicas)
	for _, r := range rs {
		t.Logf("%s: %d exports, peak RSS %.1f MiB", r.name, r.count("export finished"), float64(peakRSS[r.name])/1024)
		if peakRSS[r.name] == 0 {
			t.Errorf("%s: no memory sample", r.name)
		}
		if peakRSS[r.name] > rssLimit {
			t.Errorf("%s: peak RSS %d KiB, over %d KiB", r.name, peakRSS[r.name], rssLimit)
		}
	}
	if maxAckPending > inFlight*replicas {
		t.Errorf("the consumer had %d messages unacknowledged, over %d × %d", maxAckPending, inFlight, replicas)
	}
	if samples < 10 || maxAckPending == 0 {
		t.Errorf("%d consumer samples, max %d unacknowledged: the sampler saw no work", samples, maxAckPending)
	}

	checkObjects(t, e.s3, b, wantObjects(scans, "output"), 40)
	consumerIdle(t, e.cl.JS, 15*time.Second)
	sc := readExportStatuses(t, e.cl.JS)
	if dups := sc.checkSucceeded(t, scans, "bulk"); dups != 0 {
		t.Errorf("%d duplicate succeeded statuses without any failure", dups)
	}
	if n := dlqCount(t, e.cl.JS); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
