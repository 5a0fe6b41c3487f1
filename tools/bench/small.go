package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Workload 1: many small scans.

const smallPrefix = "bsmall"

type smallResult struct {
	Scans, ObjectsPerScan int
	BScans                int
	Exporter, A, B        []runStat
	// Rclone is `rclone copy --transfers <concurrency>` of the same files,
	// laid out on disk under the exporter's keys (rclone.go); its CPU is
	// the rclone process's own, from the kernel's accounting of the child.
	Rclone        []runStat
	RcloneVersion string
	Reruns        int // rounds run again because other work disturbed them
	// With Delay added to every S3 request (a proxy in front of versitygw):
	// the exporter on DelayScans scans and baseline B on DelayBScans.
	Delay                   time.Duration
	DelayScans, DelayBScans int
	DelayExporter, DelayB   []runStat
	// Profiles of an extra round of the exporter and of baseline A, and of
	// nats-server during the exporter's.
	Profile, ProfileA       *profileSummary
	ProfileNATS             *profileSummary
	ProfileRun, ProfileRunA runStat
}

type smallBench struct {
	s      *stack
	rclone *rcloneSetup
	data   dataset
	bData  dataset
	hub    *statusHub
	logf   func(string, ...any)
	res    *smallResult
	conc   int
	tenant string
}

func runSmall(ctx context.Context, s *stack, o options, logf func(string, ...any)) (*smallResult, error) {
	files := smallScanFiles()
	logf("workload 1: storing %d scans of %d files in the object store", o.scans, len(files))
	start := time.Now()
	data, err := storeScans(ctx, s.js, "tenant-small", "scan", o.scans, files, 4)
	if err != nil {
		return nil, err
	}
	logf("workload 1: stored %d objects (%.0f MB) in %v", data.objects(), float64(data.bytes())/1e6, time.Since(start).Round(time.Second))
	hub, err := newStatusHub(s.nc, smallPrefix)
	if err != nil {
		return nil, err
	}
	defer hub.close()
	b := &smallBench{s: s, data: data, bData: data.head(o.bScans), hub: hub, logf: logf, conc: o.concurrency, tenant: data.Tenant,
		res: &smallResult{Scans: o.scans, ObjectsPerScan: len(files), BScans: min(o.bScans, o.scans)}}
	if b.rclone, err = newRcloneSetup(ctx, s, data); err != nil {
		return nil, err
	}
	b.res.RcloneVersion = b.rclone.version
	for r := 1; r <= o.rounds; r++ {
		for attempt := 1; ; attempt++ {
			tag := fmt.Sprintf("%d-%d", r, attempt)
			a, err := b.baseline(ctx, "a"+tag, b.data, o.concurrency, "", "")
			if err != nil {
				return nil, fmt.Errorf("baseline A, round %d: %w", r, err)
			}
			e, err := b.exporterRound(ctx, "r"+tag, "", "", b.data)
			if err != nil {
				return nil, fmt.Errorf("exporter, round %d: %w", r, err)
			}
			rc, err := b.rcloneRound(ctx, "c"+tag)
			if err != nil {
				return nil, fmt.Errorf("rclone, round %d: %w", r, err)
			}
			bb, err := b.baseline(ctx, "b"+tag, b.bData, 1, "", "")
			if err != nil {
				return nil, fmt.Errorf("baseline B, round %d: %w", r, err)
			}
			logf("workload 1 round %d: exporter %.0f objects/s, A %.0f, rclone %.0f, B %.0f; CPU ms per object: exporter %.2f + nats-server %.2f, A %.2f, rclone %.2f: (exporter + nats-server) / rclone %.2f (load %.2f; other work %.2f, %.2f, %.2f, %.2f cores)",
				r, e.rate(), a.rate(), rc.rate(), bb.rate(), e.perObject(e.CPU), e.perObject(e.NATSCPU), a.perObject(a.CPU), rc.perObject(rc.CPU),
				cpuVsRclone(e, rc), e.Load1, e.otherCores(), a.otherCores(), rc.otherCores(), bb.otherCores())
			if disturbed(e, a, rc, bb) && attempt <= o.reruns {
				b.res.Reruns++
				logf("workload 1 round %d disturbed by other work on the machine: again", r)
				continue
			}
			b.res.A, b.res.Exporter, b.res.B = append(b.res.A, a), append(b.res.Exporter, e), append(b.res.B, bb)
			b.res.Rclone = append(b.res.Rclone, rc)
			break
		}
	}
	if o.delay > 0 {
		if err := b.delayed(ctx, o); err != nil {
			return nil, err
		}
	}
	if o.profile {
		profA := filepath.Join(s.work, "workload1-baseline-a.cpu.pprof")
		a, err := b.baseline(ctx, "aprof", b.data, o.concurrency, profA, "")
		if err != nil {
			return nil, fmt.Errorf("profiled baseline A: %w", err)
		}
		pa, err := analyzeProfile(profA, a.Wall, uploadCategories)
		if err != nil {
			return nil, err
		}
		prof := filepath.Join(s.work, "workload1-exporter.cpu.pprof")
		e, err := b.exporterRound(ctx, "prof", prof, "", b.data)
		if err != nil {
			return nil, fmt.Errorf("profiled exporter: %w", err)
		}
		p, err := analyzeProfile(prof, e.Wall, uploadCategories)
		if err != nil {
			return nil, err
		}
		b.res.Profile, b.res.ProfileRun, b.res.ProfileA, b.res.ProfileRunA = &p, e, &pa, a
		if pn, err := analyzeProfile(filepath.Join(s.work, "nats-server.cpu.pprof"), e.Wall, natsCategories); err == nil {
			b.res.ProfileNATS = &pn
		} else {
			logf("workload 1: no nats-server profile: %v", err)
		}
		logf("workload 1: profiled runs: exporter %.0f objects/s (%v CPU sampled, %.2f ms per object from /proc), A %.0f objects/s (%v, %.2f ms per object)",
			e.rate(), p.Total.Round(time.Millisecond), e.perObject(e.CPU), a.rate(), pa.Total.Round(time.Millisecond), a.perObject(a.CPU))
	}
	return b.res, nil
}

// exporterRound exports every scan through a fresh exporter process, to a
// new bucket through a new integration (so no ledger entry or cached client
// of an earlier round helps). With prof set, the daemon runs profiled.
func (b *smallBench) exporterRound(ctx context.Context, tag, prof, endpoint string, data dataset) (runStat, error) {
	s := b.s
	bucket, provider, igID := "small-exp-"+tag, "prov-"+tag, "ig-"+tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, err
	}
	defer s.dropBucket(bucket)
	var (
		p   *exporterProc
		err error
	)
	extra := map[string]string{}
	if b.conc > 0 { // 0: the exporter's default
		extra["S3EXPORTER_CONCURRENCY"] = fmt.Sprint(b.conc)
	}
	if endpoint != "" {
		extra["S3EXPORTER_S3_ENDPOINT"] = endpoint
	}
	if prof == "" {
		p, err = s.startExporter("small-exporter-"+tag, smallPrefix, extra)
	} else {
		p, err = s.startProfiledExporter("small-exporter-"+tag, smallPrefix, prof, false, extra)
	}
	if err != nil {
		return runStat{}, err
	}
	defer p.stop(30 * time.Second)
	cl, err := s.client(smallPrefix)
	if err != nil {
		return runStat{}, err
	}
	in, err := s.integration(b.tenant, igID, bucket, provider)
	if err != nil {
		return runStat{}, err
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.putIntegration(ictx, b.hub, cl, in); err != nil {
		return runStat{}, err
	}

	w := b.hub.expectExports(igID, len(data.Scans))
	if prof != "" {
		_ = p.cmd.Process.Signal(syscall.SIGUSR1)
		_ = s.nats.cmd.Process.Signal(syscall.SIGUSR1)
	}
	m := s.meter(p.pid())
	t0 := time.Now()
	for i := range data.Scans {
		if err := s.publishScan(ctx, smallPrefix, data.event(i, provider), data.Scans[i].ID+"."+tag); err != nil {
			return runStat{}, err
		}
	}
	wctx, cancel2 := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel2()
	if err := b.hub.wait(wctx, w); err != nil {
		return runStat{}, fmt.Errorf("%w; exporter log %s", err, p.logPath)
	}
	st := runStat{Objects: data.objects(), Bytes: data.bytes(), Wall: b.hub.last(w).Sub(t0)}
	m.stop(&st)
	if prof != "" {
		_ = p.cmd.Process.Signal(syscall.SIGUSR2)
		_ = s.nats.cmd.Process.Signal(syscall.SIGUSR2)
	}
	if errs := p.errorLines(); len(errs) > 0 {
		return st, fmt.Errorf("the exporter logged %d errors, first: %s", len(errs), errs[0])
	}
	if err := b.check(ctx, bucket, data); err != nil {
		return st, err
	}
	if err := p.stop(30 * time.Second); err != nil {
		return st, err
	}
	return st, nil
}

// baseline runs baseline A (concurrency 16) or B (1) as a child process.
func (b *smallBench) baseline(ctx context.Context, tag string, data dataset, conc int, prof, endpoint string) (runStat, error) {
	s := b.s
	bucket := "small-base-" + tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, err
	}
	defer s.dropBucket(bucket)
	conf := s.conf()
	if endpoint != "" {
		conf.Endpoint = endpoint
	}
	m := s.meter(0)
	var res childResult
	if err := runChild(s.self, "put", putJob{Server: conf, Bucket: bucket, Data: data, Concurrency: conc, CPUProfile: prof}, &res, s.logPath("small-baseline-"+tag)); err != nil {
		return runStat{}, err
	}
	st := runStat{Objects: res.Objects, Bytes: res.Bytes, Wall: secs(res.Seconds)}
	m.stop(&st)
	// The child's own accounting is exact for the child; the servers' and
	// machine's figures also cover the child's start (a few ms).
	st.CPU, st.PeakRSS = secs(res.CPUSeconds), res.MaxRSS
	return st, b.check(ctx, bucket, data)
}

// check verifies that the bucket holds every object with every byte.
func (b *smallBench) check(ctx context.Context, bucket string, data dataset) error {
	n, size, err := b.s.countObjects(ctx, bucket)
	if err != nil {
		return err
	}
	if n != data.objects() || size != data.bytes() {
		return fmt.Errorf("bucket %s holds %d objects (%d bytes), want %d (%d bytes)", bucket, n, size, data.objects(), data.bytes())
	}
	return nil
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// delayed runs the exporter and baseline B through a proxy that adds
// o.delay to every S3 request.
func (b *smallBench) delayed(ctx context.Context, o options) error {
	proxy, url, err := b.s.startDelayProxy(o.delay)
	if err != nil {
		return err
	}
	defer proxy.stop(10 * time.Second)
	b.res.Delay = o.delay
	b.res.DelayScans, b.res.DelayBScans = min(o.delayScans, o.scans), min(o.delayBScans, o.scans)
	for r := 1; r <= o.rounds; r++ {
		bb, err := b.baseline(ctx, fmt.Sprintf("db%d", r), b.data.head(o.delayBScans), 1, "", url)
		if err != nil {
			return fmt.Errorf("baseline B with %v per request, round %d: %w", o.delay, r, err)
		}
		e, err := b.exporterRound(ctx, fmt.Sprintf("d%d", r), "", url, b.data.head(o.delayScans))
		if err != nil {
			return fmt.Errorf("exporter with %v per request, round %d: %w", o.delay, r, err)
		}
		b.res.DelayB, b.res.DelayExporter = append(b.res.DelayB, bb), append(b.res.DelayExporter, e)
		b.logf("workload 1 with %v per S3 request, round %d: exporter %.0f objects/s, B %.0f", o.delay, r, e.rate(), bb.rate())
	}
	return nil
}

// rcloneSetup is what the rclone rounds of workload 1 share: the binary, a
// configuration for the S3 server and the dataset's files on disk.
type rcloneSetup struct {
	bin, config, dir, version string
}

// rcloneRemote is the remote's name in the harness's rclone configuration.
const rcloneRemote = "bench"

// newRcloneSetup finds rclone, writes its configuration and lays the
// dataset's files out on disk (once; every round copies the same files).
func newRcloneSetup(ctx context.Context, s *stack, data dataset) (*rcloneSetup, error) {
	bin, err := rcloneBinary()
	if err != nil {
		return nil, err
	}
	r := &rcloneSetup{bin: bin, config: filepath.Join(s.work, "rclone.conf"), dir: filepath.Join(s.work, "rclone-files")}
	if out, err := exec.Command(bin, "version").Output(); err == nil {
		r.version, _, _ = strings.Cut(string(out), "\n")
	}
	if err := writeRcloneConfig(r.config, rcloneRemote, s.conf()); err != nil {
		return nil, err
	}
	store, err := s.js.ObjectStore(ctx, objectStore)
	if err != nil {
		return nil, err
	}
	if err := writeDataset(ctx, store, r.dir, "prowler-findings", data); err != nil {
		return nil, fmt.Errorf("laying out the files for rclone: %w", err)
	}
	return r, nil
}

// rcloneRound copies the dataset's files from disk to a new bucket with
// `rclone copy --transfers <concurrency>`, rclone's defaults otherwise
// (it lists the destination, sends each file's MD5 with it and reads each
// object's metadata back after its PUT to check it).
func (b *smallBench) rcloneRound(ctx context.Context, tag string) (runStat, error) {
	s := b.s
	bucket := "small-rclone-" + tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, err
	}
	defer s.dropBucket(bucket)
	run := rcloneRun{Bin: b.rclone.bin, Config: b.rclone.config, Log: s.logPath("small-rclone-" + tag),
		Args: []string{"copy", "--transfers", fmt.Sprint(b.conc), b.rclone.dir, rcloneRemote + ":" + bucket}}
	m := s.meter(0)
	res, err := run.run(ctx)
	if err != nil {
		return runStat{}, err
	}
	st := runStat{Objects: b.data.objects(), Bytes: b.data.bytes(), Wall: res.Wall}
	m.stop(&st)
	st.CPU, st.PeakRSS = res.CPU, res.MaxRSS
	return st, b.check(ctx, bucket, b.data)
}

// cpuVsRclone is the exporter's and nats-server's CPU per object over
// rclone's: what serving the exporter costs against what a copy tool costs
// for the same files (rclone reads them from disk, so it has no server of
// its own; versitygw's share is reported apart).
func cpuVsRclone(e, rc runStat) float64 {
	d := rc.perObject(rc.CPU)
	if d <= 0 {
		return 0
	}
	return e.perObject(e.CPU+e.NATSCPU) / d
}
