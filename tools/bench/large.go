package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

// Workload 2: one large artifact.

const largePrefix = "blarge"

type largeResult struct {
	Size     int64
	Exporter []runStat
	// Baseline uploads with the exporter's part settings (8 MiB, 3 at once);
	// BaselineDefault with the transfer manager's defaults (8 MiB, 5 at once).
	Baseline, BaselineDefault []runStat
	// IdleRSS is the exporter's RSS when ready, before the scan.
	IdleRSS []int64
	Reruns  int // rounds run again because other work disturbed them
}

func runLarge(ctx context.Context, s *stack, o options, logf func(string, ...any)) (*largeResult, error) {
	files := []fileSpec{{Format: event.FormatOCSF, Name: "out.ocsf.json", Size: o.largeSize}}
	logf("workload 2: storing a %d MiB OCSF JSON in the object store", o.largeSize>>20)
	start := time.Now()
	data, err := storeScans(ctx, s.js, "tenant-large", "large", 1, files, 1)
	if err != nil {
		return nil, err
	}
	logf("workload 2: stored in %v", time.Since(start).Round(time.Second))
	hub, err := newStatusHub(s.nc, largePrefix)
	if err != nil {
		return nil, err
	}
	defer hub.close()
	res := &largeResult{Size: o.largeSize}
	for r := 1; r <= o.rounds; r++ {
		for attempt := 1; ; attempt++ {
			tag := fmt.Sprintf("%d-%d", r, attempt)
			base, err := largeBaseline(ctx, s, data, "b"+tag, 3)
			if err != nil {
				return nil, fmt.Errorf("baseline, round %d: %w", r, err)
			}
			def, err := largeBaseline(ctx, s, data, "d"+tag, 0)
			if err != nil {
				return nil, fmt.Errorf("baseline (defaults), round %d: %w", r, err)
			}
			e, idle, err := largeExporter(ctx, s, hub, data, "r"+tag)
			if err != nil {
				return nil, fmt.Errorf("exporter, round %d: %w", r, err)
			}
			logf("workload 2 round %d: exporter %.0f MB/s (peak RSS %d MiB), baseline %.0f MB/s (peak RSS %d MiB), with defaults %.0f MB/s (peak RSS %d MiB) (load %.2f; other work %.2f, %.2f, %.2f cores)",
				r, e.mbps(), e.PeakRSS>>20, base.mbps(), base.PeakRSS>>20, def.mbps(), def.PeakRSS>>20, e.Load1, e.otherCores(), base.otherCores(), def.otherCores())
			if disturbed(e, base, def) && attempt <= o.reruns {
				res.Reruns++
				logf("workload 2 round %d disturbed by other work on the machine: again", r)
				continue
			}
			res.Baseline, res.BaselineDefault = append(res.Baseline, base), append(res.BaselineDefault, def)
			res.Exporter, res.IdleRSS = append(res.Exporter, e), append(res.IdleRSS, idle)
			break
		}
	}
	return res, nil
}

func largeExporter(ctx context.Context, s *stack, hub *statusHub, data dataset, tag string) (runStat, int64, error) {
	bucket, provider, igID := "large-exp-"+tag, "prov-"+tag, "ig-"+tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, 0, err
	}
	defer s.dropBucket(bucket)
	p, err := s.startExporter("large-exporter-"+tag, largePrefix, nil)
	if err != nil {
		return runStat{}, 0, err
	}
	defer p.stop(30 * time.Second)
	cl, err := s.client(largePrefix)
	if err != nil {
		return runStat{}, 0, err
	}
	in, err := s.integration(data.Tenant, igID, bucket, provider)
	if err != nil {
		return runStat{}, 0, err
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.putIntegration(ictx, hub, cl, in); err != nil {
		return runStat{}, 0, err
	}
	idle, _ := sampleProc(p.pid())
	w := hub.expectExports(igID, 1)
	m := s.meter(p.pid())
	t0 := time.Now()
	if err := s.publishScan(ctx, largePrefix, data.event(0, provider), data.Scans[0].ID+"."+tag); err != nil {
		return runStat{}, 0, err
	}
	wctx, cancel2 := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel2()
	if err := hub.wait(wctx, w); err != nil {
		return runStat{}, 0, fmt.Errorf("%w; exporter log %s", err, p.logPath)
	}
	st := runStat{Objects: 1, Bytes: data.bytes(), Wall: hub.last(w).Sub(t0)}
	m.stop(&st)
	if err := checkLarge(ctx, s, bucket, data); err != nil {
		return st, 0, err
	}
	return st, idle.RSS, p.stop(30 * time.Second)
}

func largeBaseline(ctx context.Context, s *stack, data dataset, tag string, conc int) (runStat, error) {
	bucket := "large-base-" + tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, err
	}
	defer s.dropBucket(bucket)
	m := s.meter(0)
	var res childResult
	job := tmJob{Server: s.conf(), Bucket: bucket, Artifact: data.Scans[0].Artifacts[0], Data: data, Concurrency: conc}
	if err := runChild(s.self, "tm", job, &res, s.logPath("large-baseline-"+tag)); err != nil {
		return runStat{}, err
	}
	st := runStat{Objects: 1, Bytes: res.Bytes, Wall: secs(res.Seconds)}
	m.stop(&st)
	st.CPU, st.PeakRSS = secs(res.CPUSeconds), res.MaxRSS
	return st, checkLarge(ctx, s, bucket, data)
}

// checkLarge verifies the uploaded object's size.
func checkLarge(ctx context.Context, s *stack, bucket string, data dataset) error {
	a := data.Scans[0].Artifacts[0]
	key := exporter.ObjectKey("prowler-findings", a, data.UID, data.Scans[0].Started)
	out, err := s.s3.RootClient().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("head %s/%s: %w", bucket, key, err)
	}
	if aws.ToInt64(out.ContentLength) != *a.Size {
		return fmt.Errorf("%s/%s holds %d bytes, want %d", bucket, key, aws.ToInt64(out.ContentLength), *a.Size)
	}
	return nil
}
