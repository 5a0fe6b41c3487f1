package main

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Workload 5: network latency. Workload 6: a noisy neighbour. Both are about
// issue 12: throughput when S3 is a network away, and one tenant's slow or
// dead bucket not stalling another tenant.

// networkDelays are the delays of workload 5, the first being the
// exporter's own reference (the proxy, no delay).
var networkDelays = []time.Duration{0, 30 * time.Millisecond, 100 * time.Millisecond}

// networkAScans is how many of workload 5's scans baseline A uploads: with
// 16 workers at 100 ms it does some 150 objects/s whatever the count, and
// the exporter's 200 scans would take it a minute per round.
const networkAScans = 30

type networkResult struct {
	Scans, AScans, BScans int
	// Exporter[d] are the exporter's rounds (on its defaults) through a
	// proxy adding d; A[d] the fixed-concurrency SDK baseline's (16 workers);
	// B the one-at-a-time baseline's at 30 ms.
	Exporter map[time.Duration][]runStat
	A        map[time.Duration][]runStat
	B        []runStat
}

func runNetwork(ctx context.Context, s *stack, o options, logf func(string, ...any)) (*networkResult, error) {
	files := smallScanFiles()
	logf("workload 5: storing %d scans of %d files", o.networkScans, len(files))
	data, err := storeScans(ctx, s.js, "tenant-network", "net", o.networkScans, files, 4)
	if err != nil {
		return nil, err
	}
	hub, err := newStatusHub(s.nc, smallPrefix)
	if err != nil {
		return nil, err
	}
	defer hub.close()
	b := &smallBench{s: s, data: data, hub: hub, logf: logf, tenant: data.Tenant, conc: 0, res: &smallResult{}}
	res := &networkResult{Scans: len(data.Scans), AScans: min(networkAScans, len(data.Scans)), BScans: min(o.delayBScans, len(data.Scans)),
		Exporter: map[time.Duration][]runStat{}, A: map[time.Duration][]runStat{}}
	urls := map[time.Duration]string{}
	for _, d := range networkDelays {
		proxy, url, err := s.startDelayProxy(d)
		if err != nil {
			return nil, err
		}
		defer proxy.stop(10 * time.Second)
		urls[d] = url
	}
	for r := 1; r <= o.rounds; r++ {
		for _, d := range networkDelays {
			tag := fmt.Sprintf("n%d-%d", r, d.Milliseconds())
			e, err := b.exporterRound(ctx, tag, "", urls[d], data)
			if err != nil {
				return nil, fmt.Errorf("exporter with %v per request, round %d: %w", d, r, err)
			}
			res.Exporter[d] = append(res.Exporter[d], e)
			if d == 0 {
				logf("workload 5 round %d, no delay: exporter %.0f objects/s", r, e.rate())
				continue
			}
			a, err := b.baseline(ctx, "na"+tag, data.head(res.AScans), 16, "", urls[d])
			if err != nil {
				return nil, fmt.Errorf("baseline A16 with %v per request, round %d: %w", d, r, err)
			}
			res.A[d] = append(res.A[d], a)
			line := fmt.Sprintf("workload 5 round %d, %v per request: exporter %.0f objects/s, A16 %.0f", r, d, e.rate(), a.rate())
			if d == 30*time.Millisecond {
				bb, err := b.baseline(ctx, "nb"+tag, data.head(res.BScans), 1, "", urls[d])
				if err != nil {
					return nil, fmt.Errorf("baseline B with %v per request, round %d: %w", d, r, err)
				}
				res.B = append(res.B, bb)
				line += fmt.Sprintf(", B %.1f", bb.rate())
			}
			logf("%s", line)
		}
	}
	return res, nil
}

// Workload 6.

const noisyPrefix = "bnoisy"

// noisyCase is one bad neighbour: tenant A's bucket slow or a black hole.
type noisyCase struct {
	Name string
	// Solo and Loaded are tenant B's scan latencies (publish to succeeded),
	// seconds: alone, and with A's scans queued against the bad bucket.
	Solo, Loaded []float64
	// Starved is how many of B's scans did not succeed within noisyPatience
	// of the last one's publish (with A loaded).
	Starved int
}

type noisyResult struct {
	AScans, AFiles, BScans, BFiles int
	Env                            map[string]string
	Cases                          []noisyCase
}

// noisyPatience is how long B's scans get, after the last is published,
// before those still missing count as starved (the 180 s).
const noisyPatience = 180 * time.Second

// noisyBFiles is one of tenant B's small scans: five small files.
func noisyBFiles() []fileSpec {
	return append(latencyScanFiles(), fileSpec{Format: event.FormatCompliance, Framework: "pci_4.0_aws", Name: "pci_4.0_aws.csv", Size: 20_000})
}

func runNoisy(ctx context.Context, s *stack, o options, logf func(string, ...any)) (*noisyResult, error) {
	aFiles, bFiles := smallScanFiles(), noisyBFiles()
	logf("workload 6: storing %d scans of tenant A (%d files) and %d of tenant B (%d files)", o.noisyAScans, len(aFiles), o.noisyBScans, len(bFiles))
	aData, err := storeScans(ctx, s.js, "tenant-noisy-a", "noisya", o.noisyAScans, aFiles, 4)
	if err != nil {
		return nil, err
	}
	bData, err := storeScans(ctx, s.js, "tenant-noisy-b", "noisyb", o.noisyBScans, bFiles, 4)
	if err != nil {
		return nil, err
	}
	hub, err := newStatusHub(s.nc, noisyPrefix)
	if err != nil {
		return nil, err
	}
	defer hub.close()
	res := &noisyResult{AScans: len(aData.Scans), AFiles: len(aFiles), BScans: len(bData.Scans), BFiles: len(bFiles), Env: o.noisyEnv}
	for i, c := range []struct{ name, delay string }{{"slow bucket (1.5 s per request)", "1500ms"}, {"black hole (never answers)", "hole"}} {
		nc := noisyCase{Name: c.name}
		for _, loaded := range []bool{false, true} {
			tag := fmt.Sprintf("%d-%v", i, loaded)
			lat, starved, err := noisyRound(ctx, s, hub, aData, bData, c.delay, loaded, tag, o.noisyEnv)
			if err != nil {
				return nil, fmt.Errorf("workload 6, %s (A loaded %v): %w", c.name, loaded, err)
			}
			if loaded {
				nc.Loaded, nc.Starved = lat, starved
			} else {
				nc.Solo = lat
			}
			logf("workload 6, %s, A loaded %v: B p50 %.2f s, p95 %.2f s, %d starved", c.name, loaded, percentile(lat, 50), percentile(lat, 95), starved)
		}
		res.Cases = append(res.Cases, nc)
	}
	return res, nil
}

// noisyRound runs one fresh exporter behind a proxy that applies delay to
// tenant A's bucket. When loaded, A's scans are published first; then B's,
// four a second. It returns B's latencies (seconds, succeeded scans only)
// and how many of B's scans starved.
func noisyRound(ctx context.Context, s *stack, hub *statusHub, aData, bData dataset, delay string, loaded bool, tag string, env map[string]string) ([]float64, int, error) {
	bucketA, bucketB := "noisy-a-"+tag, "noisy-b-"+tag
	for _, b := range []string{bucketA, bucketB} {
		if err := s.createBucket(ctx, b); err != nil {
			return nil, 0, err
		}
		defer s.dropBucket(b)
	}
	proxy, url, err := s.startBucketDelayProxy(bucketA + "=" + delay)
	if err != nil {
		return nil, 0, err
	}
	defer proxy.stop(10 * time.Second)
	extra := map[string]string{"S3EXPORTER_S3_ENDPOINT": url}
	for k, v := range env {
		extra[k] = v
	}
	p, err := s.startExporter("noisy-exporter-"+tag, noisyPrefix, extra)
	if err != nil {
		return nil, 0, err
	}
	defer p.stop(30 * time.Second)
	cl, err := s.client(noisyPrefix)
	if err != nil {
		return nil, 0, err
	}
	igA, igB, provider := "ig-a-"+tag, "ig-b-"+tag, "prov-"+tag
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, ig := range []struct{ tenant, id, bucket string }{{aData.Tenant, igA, bucketA}, {bData.Tenant, igB, bucketB}} {
		in, err := s.integration(ig.tenant, ig.id, ig.bucket, provider)
		if err != nil {
			return nil, 0, err
		}
		if err := s.putIntegration(ictx, hub, cl, in); err != nil {
			return nil, 0, err
		}
	}
	// The integrations are tested: now A's bucket turns bad.
	if err := proxy.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return nil, 0, err
	}
	if loaded {
		hub.expectExports(igA, len(aData.Scans))
		for i := range aData.Scans {
			if err := s.publishScan(ctx, noisyPrefix, aData.event(i, provider), aData.Scans[i].ID+"."+tag); err != nil {
				return nil, 0, err
			}
		}
		// Let A's uploads take what they can before B comes.
		time.Sleep(2 * time.Second)
	}
	w := hub.expectExports(igB, len(bData.Scans))
	published := make(map[string]time.Time, len(bData.Scans))
	tick := time.NewTicker(250 * time.Millisecond) // four a second
	defer tick.Stop()
	for i := range bData.Scans {
		published[bData.Scans[i].ID] = time.Now()
		if err := s.publishScan(ctx, noisyPrefix, bData.event(i, provider), bData.Scans[i].ID+"."+tag); err != nil {
			return nil, 0, err
		}
		<-tick.C
	}
	wctx, cancel2 := context.WithTimeout(ctx, noisyPatience)
	defer cancel2()
	_ = hub.wait(wctx, w) // a timeout leaves some starved; counted below
	var lat []float64
	starved := 0
	for id, at := range published {
		r, ok := hub.receipt(w, id)
		if !ok || r.Status.State != event.StateSucceeded {
			starved++
			continue
		}
		lat = append(lat, r.At.Sub(at).Seconds())
	}
	sort.Float64s(lat)
	if !loaded && starved > 0 {
		return nil, 0, fmt.Errorf("tenant B alone: %d scans did not succeed; exporter log %s", starved, p.logPath)
	}
	return lat, starved, nil
}
