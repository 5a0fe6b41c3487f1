package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

// Workload 4: latency of single scans on an idle system.

const (
	latencyPrefix = "blat"
	latencyWarmup = 5
)

type latencyResult struct {
	Scans int
	// Per scan, in seconds: the exporter (publish to succeeded status) and
	// the direct upload of the same files (read from the object store and
	// PUT, 4 at once, by this program with warm connections).
	Exporter, Direct []float64
	// The exporter's time split by its status event's timestamps: publish
	// to the handler's start, the handler's work, and the end of the
	// uploads to the status arriving here.
	Queue, Work, Report []float64
	// Round trips to nats-server measured here after the run (seconds,
	// medians): what the exporter's per-scan NATS requests cost each.
	StreamInfoRTT, KVGetRTT, KVPutRTT, ObjectOpenRTT float64
	Load1                                            float64
	OtherCores                                       float64 // CPU of other work on the machine during the series
	Reruns                                           int     // series run again because other work disturbed them
}

func runLatency(ctx context.Context, s *stack, o options, logf func(string, ...any)) (*latencyResult, error) {
	n := o.latencyScans
	logf("workload 4: storing %d scans of 4 small files", n+latencyWarmup)
	data, err := storeScans(ctx, s.js, "tenant-lat", "lat", n+latencyWarmup, latencyScanFiles(), 4)
	if err != nil {
		return nil, err
	}
	hub, err := newStatusHub(s.nc, latencyPrefix)
	if err != nil {
		return nil, err
	}
	defer hub.close()
	bucket, direct, provider, igID := "lat-exp", "lat-direct", "prov-lat", "ig-lat"
	for _, b := range []string{bucket, direct} {
		if err := s.createBucket(ctx, b); err != nil {
			return nil, err
		}
		defer s.dropBucket(b)
	}
	p, err := s.startExporter("latency-exporter", latencyPrefix, nil)
	if err != nil {
		return nil, err
	}
	defer p.stop(30 * time.Second)
	cl, err := s.client(latencyPrefix)
	if err != nil {
		return nil, err
	}
	in, err := s.integration(data.Tenant, igID, bucket, provider)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.putIntegration(ictx, hub, cl, in); err != nil {
		return nil, err
	}
	s3c, err := plainS3(ctx, s.conf())
	if err != nil {
		return nil, err
	}
	store, err := s.js.ObjectStore(ctx, objectStore)
	if err != nil {
		return nil, err
	}

	var res *latencyResult
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// The scans of a disturbed series are in the ledger: new ones.
			if data, err = storeScans(ctx, s.js, "tenant-lat", fmt.Sprintf("lat%d", attempt), n+latencyWarmup, latencyScanFiles(), 4); err != nil {
				return nil, err
			}
		}
		res = &latencyResult{Scans: n}
		m := s.meter(p.pid())
		start := time.Now()
		for i := range n + latencyWarmup {
			if i == latencyWarmup {
				m, start = s.meter(p.pid()), time.Now()
			}
			d, err := directScan(ctx, store, s3c, direct, data, i)
			if err != nil {
				return nil, fmt.Errorf("direct upload of scan %d: %w", i, err)
			}
			w := hub.expectExports(igID, 1)
			t0 := time.Now()
			if err := s.publishScan(ctx, latencyPrefix, data.event(i, provider), data.Scans[i].ID); err != nil {
				return nil, err
			}
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			err = hub.wait(wctx, w)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("scan %d: %w; exporter log %s", i, err, p.logPath)
			}
			rc, _ := hub.receipt(w, data.Scans[i].ID)
			if i < latencyWarmup {
				continue // connections, clients and the bucket region warm up
			}
			res.Direct = append(res.Direct, d.Seconds())
			res.Exporter = append(res.Exporter, rc.At.Sub(t0).Seconds())
			res.Queue = append(res.Queue, rc.Status.StartedAt.Sub(t0).Seconds())
			res.Work = append(res.Work, rc.Status.FinishedAt.Sub(rc.Status.StartedAt).Seconds())
			res.Report = append(res.Report, rc.At.Sub(rc.Status.FinishedAt).Seconds())
		}
		st := runStat{Wall: time.Since(start)}
		m.stop(&st)
		res.Load1, res.OtherCores, res.Reruns = st.Load1, st.otherCores(), attempt-1
		logf("workload 4: exporter p50 %.1f ms p99 %.1f ms; direct p50 %.1f ms p99 %.1f ms (load %.2f; other work %.2f cores)",
			1e3*percentile(res.Exporter, 50), 1e3*percentile(res.Exporter, 99), 1e3*percentile(res.Direct, 50), 1e3*percentile(res.Direct, 99), res.Load1, res.OtherCores)
		if res.OtherCores <= maxOtherCores || attempt > o.reruns {
			break
		}
		logf("workload 4 disturbed by other work on the machine: again")
	}
	if errs := p.errorLines(); len(errs) > 0 {
		return nil, fmt.Errorf("the exporter logged %d errors, first: %s", len(errs), errs[0])
	}
	// Every series writes the same keys (the scans' start times repeat).
	if got, _, err := s.countObjects(ctx, bucket); err != nil || got != 4*len(data.Scans) {
		return nil, fmt.Errorf("bucket %s holds %d objects, want %d (%v)", bucket, got, 4*len(data.Scans), err)
	}
	if err := measureRTTs(ctx, s, store, data, res); err != nil {
		return nil, err
	}
	return res, nil
}

// directScan uploads scan i's files straight from the object store, 4 at
// once, as the exporter does for a scan with one integration.
func directScan(ctx context.Context, store jetstream.ObjectStore, cl *s3.Client, bucket string, data dataset, i int) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(data.Scans[i].Artifacts))
	for j, a := range data.Scans[i].Artifacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, err := objectName(a)
			if err == nil {
				_, err = copyObject(ctx, store, cl, bucket, name, exporter.ObjectKey("prowler-findings", a, data.UID, data.Scans[i].Started), exporter.ContentType(a.Format))
			}
			errs[j] = err
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// measureRTTs times the NATS requests the exporter makes per scan besides
// the uploads: a stream info (read-your-writes), a key-value get and put
// (ledger), and opening an object-store object.
func measureRTTs(ctx context.Context, s *stack, store jetstream.ObjectStore, data dataset, res *latencyResult) error {
	topo := streams.Topology{Prefix: latencyPrefix}
	kv, err := s.js.KeyValue(ctx, topo.LedgerBucket())
	if err != nil {
		return err
	}
	l := ledger.New(kv)
	const n = 100
	var info, get, put, open []float64
	for i := range n {
		t := time.Now()
		st, err := s.js.Stream(ctx, topo.IntegrationsStream())
		if err != nil {
			return err
		}
		if _, err := st.Info(ctx); err != nil {
			return err
		}
		info = append(info, time.Since(t).Seconds()/2) // two requests, as Follower.CatchUp makes
		t = time.Now()
		if _, err := l.Get(ctx, "rtt", fmt.Sprint(i), "x"); err != nil {
			return err
		}
		get = append(get, time.Since(t).Seconds())
		t = time.Now()
		if err := l.Put(ctx, "rtt", fmt.Sprint(i), "x", ledger.Entry{State: "succeeded"}); err != nil {
			return err
		}
		put = append(put, time.Since(t).Seconds())
		name, err := objectName(data.Scans[i%len(data.Scans)].Artifacts[2])
		if err != nil {
			return err
		}
		t = time.Now()
		r, err := store.Get(ctx, name)
		if err != nil {
			return err
		}
		open = append(open, time.Since(t).Seconds())
		r.Close()
	}
	res.StreamInfoRTT, res.KVGetRTT, res.KVPutRTT, res.ObjectOpenRTT = median(info), median(get), median(put), median(open)
	return nil
}
