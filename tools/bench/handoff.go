package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

// Workload 7 (contract v1.2): Prowler App's hand-off. Scans are handed off
// as zips in a source bucket of the platform's own (as Prowler App uploads
// them), one scan-completed event each naming its zip; the exporter reads
// them with its own identity and writes every member to the tenant's
// bucket. The baseline is `rclone copy` of the same files, already
// extracted, from one bucket to another: what an operator would run to move
// the outputs by hand. rclone sees two remotes (as two accounts would be),
// so it streams every byte through itself rather than asking the server to
// copy. Then one zip with one large member, for the exporter's peak memory.

const handoffPrefix = "bhandoff"

type handoffResult struct {
	Scans, Files    int
	ZipBytes        int64 // the zips, in all
	Concurrency     int
	Exporter        []runStat
	Rclone          []runStat
	RcloneVersion   string
	Large           *handoffLarge
	Reruns          int
	SourceBucket    string
	ExtractedBucket string
}

type handoffLarge struct {
	Size, ZipSize int64
	Stat          runStat
	IdleRSS       int64
}

// handoffRcloneHelp says how to get rclone when it is missing.
const handoffRcloneHelp = "workload 7 compares the exporter with rclone, which is not on PATH: install it (Debian and Ubuntu: apt-get install rclone; elsewhere your distribution's package or the rclone project's release binary), or leave handoff out of -workloads"

// handoffMember is one file of a handed-off scan, deflated once and shared
// by every scan's zip (only the names differ).
type handoffMember struct {
	spec       fileSpec
	body, comp []byte
	crc        uint32
}

// memberName is the file's name in the scan's folder, as Prowler names it.
func (m handoffMember) memberName(uid string, started time.Time) string {
	base := "prowler-output-" + uid + "-" + started.UTC().Format("20060102150405")
	switch m.spec.Format {
	case event.FormatCompliance:
		return "compliance/" + base + "_" + m.spec.Framework + ".csv"
	case event.FormatCSV:
		return base + ".csv"
	case event.FormatHTML:
		return base + ".html"
	}
	return base + ".ocsf.json"
}

func runHandoff(ctx context.Context, s *stack, o options, logf func(string, ...any)) (*handoffResult, error) {
	rclone, err := exec.LookPath("rclone")
	if err != nil {
		return nil, errors.New(handoffRcloneHelp)
	}
	ver, _ := exec.Command(rclone, "version").Output()
	res := &handoffResult{Scans: o.handoffScans, Concurrency: o.concurrency, RcloneVersion: strings.TrimSpace(strings.SplitN(string(ver), "\n", 2)[0]),
		SourceBucket: "handoff-src", ExtractedBucket: "handoff-extracted"}

	members, err := handoffMembers()
	if err != nil {
		return nil, err
	}
	res.Files = len(members)
	tenant, uid := "tenant-handoff", "123456789012"
	first := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)
	for _, b := range []string{res.SourceBucket, res.ExtractedBucket} {
		if err := s.createBucket(ctx, b); err != nil {
			return nil, err
		}
		defer s.dropBucket(b)
	}
	logf("workload 7: storing %d zips (%d files each) and the same files extracted", res.Scans, res.Files)
	events := make([]event.ScanCompleted, res.Scans)
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	gctx, cancelStore := context.WithCancel(ctx)
	defer cancelStore()
	sem := make(chan struct{}, 8)
	cl := s.s3.RootClient()
	for i := range res.Scans {
		sem <- struct{}{}
		wg.Add(1)
		store := func() error {
			scanID := fmt.Sprintf("handoff-%04d", i)
			started := first.Add(time.Duration(i) * time.Minute)
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			for _, m := range members {
				name := m.memberName(uid, started)
				w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: m.crc,
					CompressedSize64: uint64(len(m.comp)), UncompressedSize64: uint64(len(m.body)), Modified: started})
				if err != nil {
					return err
				}
				if _, err := w.Write(m.comp); err != nil {
					return err
				}
				if _, err := cl.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(res.ExtractedBucket),
					Key: aws.String(tenant + "/" + scanID + "/" + name), Body: bytes.NewReader(m.body)}); err != nil {
					return err
				}
			}
			if err := zw.Close(); err != nil {
				return err
			}
			key := tenant + "/" + scanID + "/prowler-output-" + uid + "-" + started.Format("20060102150405") + ".zip"
			if _, err := cl.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(res.SourceBucket), Key: aws.String(key),
				Body: bytes.NewReader(buf.Bytes())}); err != nil {
				return err
			}
			size := int64(buf.Len())
			mu.Lock()
			res.ZipBytes += size
			mu.Unlock()
			done := started.Add(41 * time.Minute)
			events[i] = event.ScanCompleted{ScanID: scanID, TenantID: tenant, Provider: event.Provider{Type: "aws", UID: uid},
				StartedAt: started, CompletedAt: &done,
				Artifacts: []event.Artifact{{Format: event.FormatArchive, Source: "s3://" + res.SourceBucket + "/" + key, Size: &size}}}
			return nil
		}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := store(); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancelStore()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("storing the scans: %w", firstErr)
	}
	var want int64
	for _, m := range members {
		want += int64(len(m.body))
	}
	want *= int64(res.Scans)

	hub, err := newStatusHub(s.nc, handoffPrefix)
	if err != nil {
		return nil, err
	}
	defer hub.close()
	for r := 1; r <= o.rounds; r++ {
		for attempt := 1; ; attempt++ {
			tag := fmt.Sprintf("%d-%d", r, attempt)
			base, err := handoffRcloneRound(ctx, s, rclone, res, tag, want)
			if err != nil {
				return nil, fmt.Errorf("rclone, round %d: %w", r, err)
			}
			e, err := handoffExporterRound(ctx, s, hub, res, events, tag, want)
			if err != nil {
				return nil, fmt.Errorf("exporter, round %d: %w", r, err)
			}
			logf("workload 7 round %d: exporter %.0f objects/s (%.1f s, CPU %.1f s, peak RSS %d MiB), rclone %.0f objects/s (%.1f s, CPU %.1f s, peak RSS %d MiB) (load %.2f)",
				r, e.rate(), e.Wall.Seconds(), e.CPU.Seconds(), e.PeakRSS>>20, base.rate(), base.Wall.Seconds(), base.CPU.Seconds(), base.PeakRSS>>20, e.Load1)
			if disturbed(e, base) && attempt <= o.reruns {
				res.Reruns++
				logf("workload 7 round %d disturbed by other work on the machine: again", r)
				continue
			}
			res.Exporter, res.Rclone = append(res.Exporter, e), append(res.Rclone, base)
			break
		}
	}
	if res.Large, err = handoffLargeRound(ctx, s, hub, o.largeSize, logf); err != nil {
		return nil, fmt.Errorf("large member: %w", err)
	}
	return res, nil
}

// handoffMembers renders the files of one workload-1 scan and deflates
// them once (Prowler App's zips are deflated).
func handoffMembers() ([]handoffMember, error) {
	var out []handoffMember
	for i, f := range smallScanFiles() {
		body, err := io.ReadAll(fixtures.SizedReader(f.Format, f.Size, int64(i+1)))
		if err != nil {
			return nil, err
		}
		var comp bytes.Buffer
		fw, _ := flate.NewWriter(&comp, flate.DefaultCompression)
		if _, err := fw.Write(body); err != nil {
			return nil, err
		}
		if err := fw.Close(); err != nil {
			return nil, err
		}
		out = append(out, handoffMember{spec: f, body: body, comp: comp.Bytes(), crc: crc32.ChecksumIEEE(body)})
	}
	return out, nil
}

// handoffExporterRound exports every handed-off scan with a fresh exporter
// that reads the source bucket with its own identity.
func handoffExporterRound(ctx context.Context, s *stack, hub *statusHub, res *handoffResult, events []event.ScanCompleted, tag string, want int64) (runStat, error) {
	bucket, provider, igID := "handoff-exp-"+tag, "prov-"+tag, "ig-"+tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, err
	}
	defer s.dropBucket(bucket)
	p, err := s.startExporter("handoff-exporter-"+tag, handoffPrefix, handoffEnv(s, res.SourceBucket, res.Concurrency))
	if err != nil {
		return runStat{}, err
	}
	defer p.stop(30 * time.Second)
	cl, err := s.client(handoffPrefix)
	if err != nil {
		return runStat{}, err
	}
	in, err := s.integration(events[0].TenantID, igID, bucket, provider)
	if err != nil {
		return runStat{}, err
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.putIntegration(ictx, hub, cl, in); err != nil {
		return runStat{}, err
	}
	w := hub.expectExports(igID, len(events))
	m := s.meter(p.pid())
	t0 := time.Now()
	for _, ev := range events {
		ev.Provider.ID = provider
		if err := s.publishScan(ctx, handoffPrefix, ev, ev.ScanID+"."+tag); err != nil {
			return runStat{}, err
		}
	}
	wctx, cancel2 := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel2()
	if err := hub.wait(wctx, w); err != nil {
		return runStat{}, fmt.Errorf("%w; exporter log %s", err, p.logPath)
	}
	st := runStat{Objects: len(events) * res.Files, Bytes: want, Wall: hub.last(w).Sub(t0)}
	m.stop(&st)
	if errs := p.errorLines(); len(errs) > 0 {
		return st, fmt.Errorf("the exporter logged %d errors, first: %s", len(errs), errs[0])
	}
	if err := handoffCheck(ctx, s, bucket, st.Objects, want); err != nil {
		return st, err
	}
	return st, p.stop(30 * time.Second)
}

// handoffEnv is the exporter's environment for workload 7: the source
// bucket, its own identity (here the S3 server's root keys, from the
// environment, as the SDK default chain reads them) and the concurrency of
// rclone's transfers.
func handoffEnv(s *stack, source string, conc int) map[string]string {
	return map[string]string{
		"S3EXPORTER_S3_SOURCE_BUCKETS": source,
		"S3EXPORTER_CONCURRENCY":       fmt.Sprint(conc),
		"AWS_ACCESS_KEY_ID":            s.s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY":        s.s3.SecretKey,
		"AWS_REGION":                   s.s3.Region(),
		"AWS_EC2_METADATA_DISABLED":    "true",
	}
}

// handoffRcloneRound copies the extracted files to a fresh bucket with
// rclone, as many transfers at once as the exporter's concurrency.
func handoffRcloneRound(ctx context.Context, s *stack, rclone string, res *handoffResult, tag string, want int64) (runStat, error) {
	bucket := "handoff-rclone-" + tag
	if err := s.createBucket(ctx, bucket); err != nil {
		return runStat{}, err
	}
	defer s.dropBucket(bucket)
	n := fmt.Sprint(res.Concurrency)
	cmd := exec.CommandContext(ctx, rclone, "copy", "src:"+res.ExtractedBucket, "dst:"+bucket+"/prowler-findings",
		"--transfers", n, "--checkers", n, "--s3-no-check-bucket", "--no-update-modtime", "--config", "/dev/null", "-q")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, remote := range []string{"SRC", "DST"} {
		for k, v := range map[string]string{"TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": s.s3.Endpoint(), "REGION": s.s3.Region(),
			"ACCESS_KEY_ID": s.s3.AccessKey, "SECRET_ACCESS_KEY": s.s3.SecretKey, "FORCE_PATH_STYLE": "true"} {
			cmd.Env = append(cmd.Env, "RCLONE_CONFIG_"+remote+"_"+k+"="+v)
		}
	}
	logPath := s.logPath("handoff-rclone-" + tag)
	logFile, err := os.Create(logPath)
	if err != nil {
		return runStat{}, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	m := s.meter(0)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return runStat{}, fmt.Errorf("rclone copy: %v; log %s:\n%s", err, logPath, tail(logPath, 10))
	}
	st := runStat{Objects: res.Scans * res.Files, Bytes: want, Wall: time.Since(t0)}
	m.stop(&st)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		st.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		st.PeakRSS = ru.Maxrss << 10
	}
	return st, handoffCheck(ctx, s, bucket, st.Objects, want)
}

// handoffCheck verifies that a round's bucket holds every file, and every
// byte.
func handoffCheck(ctx context.Context, s *stack, bucket string, objects int, bytes int64) error {
	n, size, err := s.countObjects(ctx, bucket)
	if err != nil {
		return err
	}
	if n != objects || size != bytes {
		return fmt.Errorf("bucket %s holds %d objects, %d bytes; want %d, %d", bucket, n, size, objects, bytes)
	}
	return nil
}

// handoffLargeRound hands off one zip holding one member of size bytes (an
// OCSF JSON, deflated) and measures the exporter's peak memory exporting it.
func handoffLargeRound(ctx context.Context, s *stack, hub *statusHub, size int64, logf func(string, ...any)) (*handoffLarge, error) {
	source, bucket, provider, igID := "handoff-large-src", "handoff-large-dst", "prov-large", "ig-large"
	tenant, scanID, uid := "tenant-handoff-large", "handoff-large", "123456789012"
	started := time.Date(2025, 8, 6, 12, 0, 0, 0, time.UTC)
	for _, b := range []string{source, bucket} {
		if err := s.createBucket(ctx, b); err != nil {
			return nil, err
		}
		defer s.dropBucket(b)
	}
	logf("workload 7: zipping a %d MiB OCSF JSON", size>>20)
	zipPath := filepath.Join(s.work, "handoff-large.zip")
	if err := writeLargeZip(zipPath, "prowler-output-"+uid+"-"+started.Format("20060102150405")+".ocsf.json", size); err != nil {
		return nil, err
	}
	defer os.Remove(zipPath)
	f, err := os.Open(zipPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	key := tenant + "/" + scanID + "/prowler-output.zip"
	up := transfermanager.New(s.s3.RootClient())
	if _, err := up.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(source), Key: aws.String(key), Body: f}); err != nil {
		return nil, fmt.Errorf("uploading the zip: %w", err)
	}
	res := &handoffLarge{Size: size, ZipSize: fi.Size()}
	p, err := s.startExporter("handoff-large-exporter", handoffPrefix, handoffEnv(s, source, 16))
	if err != nil {
		return nil, err
	}
	defer p.stop(30 * time.Second)
	cl, err := s.client(handoffPrefix)
	if err != nil {
		return nil, err
	}
	in, err := s.integration(tenant, igID, bucket, provider)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.putIntegration(ictx, hub, cl, in); err != nil {
		return nil, err
	}
	idle, _ := sampleProc(p.pid())
	res.IdleRSS = idle.RSS
	w := hub.expectExports(igID, 1)
	m := s.meter(p.pid())
	t0 := time.Now()
	zsize := fi.Size()
	ev := event.ScanCompleted{ScanID: scanID, TenantID: tenant, Provider: event.Provider{ID: provider, Type: "aws", UID: uid}, StartedAt: started,
		Artifacts: []event.Artifact{{Format: event.FormatArchive, Source: "s3://" + source + "/" + key, Size: &zsize}}}
	if err := s.publishScan(ctx, handoffPrefix, ev, scanID); err != nil {
		return nil, err
	}
	wctx, cancel2 := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel2()
	if err := hub.wait(wctx, w); err != nil {
		return nil, fmt.Errorf("%w; exporter log %s", err, p.logPath)
	}
	res.Stat = runStat{Objects: 1, Bytes: size, Wall: hub.last(w).Sub(t0)}
	m.stop(&res.Stat)
	if err := handoffCheck(ctx, s, bucket, 1, size); err != nil {
		return nil, err
	}
	logf("workload 7: %d MiB member exported in %.1f s, exporter peak RSS %d MiB (idle %d MiB)", size>>20, res.Stat.Wall.Seconds(), res.Stat.PeakRSS>>20, res.IdleRSS>>20)
	return res, p.stop(30 * time.Second)
}

// writeLargeZip writes a zip of one deflated member of size bytes to path,
// streaming (the member is never held whole).
func writeLargeZip(path, name string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := zip.NewWriter(bw)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err == nil {
		_, err = io.Copy(w, fixtures.SizedReader(event.FormatOCSF, size, 7))
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *report) handoffSummary(t *table) {
	h := r.handoff
	if h == nil {
		return
	}
	ratio := median(ratios(h.Exporter, h.Rclone, runStat.rate))
	t.row("7. Prowler App hand-off", fmt.Sprintf("objects/s, %d scans handed off as zips vs `rclone copy` of the extracted files", h.Scans),
		fmt.Sprintf("%.2f×", ratio), "≥ 1.0×", verdict(ratio >= 1.0))
	if l := h.Large; l != nil {
		t.row("", fmt.Sprintf("exporter's peak RSS, one zip with a %s member", mib(l.Size)), mib(l.Stat.PeakRSS), "≤ 128 MiB", verdict(l.Stat.PeakRSS <= 128<<20))
	}
}

func (r *report) handoffSection(p printer) {
	h := r.handoff
	p("## 7. Prowler App hand-off\n\n")
	p("%d scans handed off as Prowler App hands them off (contract v1.2): each scan's %d files (the files of workload 1, named as Prowler names them, ", h.Scans, h.Files)
	p("compliance CSVs under `compliance/`) in one deflated zip in a source bucket, %s of zips in all, ", mib(h.ZipBytes))
	p("and one scan-completed event per scan naming its zip (`s3://`). The exporter (`S3EXPORTER_CONCURRENCY` %d, `S3EXPORTER_S3_SOURCE_BUCKETS` the source bucket) ", h.Concurrency)
	p("reads each zip's member list with one suffix-range GET (which holds all of a zip of at most 256 KiB: its members are then read from that copy; a larger zip's with one ranged GET each), inflates each member and writes it to the tenant's bucket. ")
	p("The baseline is `rclone copy` (%s) of the same files already extracted, from one bucket to another, with `--transfers %d --checkers %d`: ", h.RcloneVersion, h.Concurrency, h.Concurrency)
	p("the source and destination are two rclone remotes, as two accounts would be, so rclone streams every byte through itself (within one remote it would ask the server to copy). ")
	p("Both read from and write to the same versitygw; both rounds' buckets are checked for every object and byte.\n\n")
	t := newTable("round", "exporter objects/s", "rclone objects/s", "ratio", "exporter CPU", "rclone CPU", "exporter peak RSS", "rclone peak RSS")
	for i := range h.Exporter {
		e, b := h.Exporter[i], h.Rclone[i]
		t.row(fmt.Sprint(i+1), fmt.Sprintf("%.0f", e.rate()), fmt.Sprintf("%.0f", b.rate()), fmt.Sprintf("%.2f×", e.rate()/max(b.rate(), 1e-9)),
			fmt.Sprintf("%.1f s", e.CPU.Seconds()), fmt.Sprintf("%.1f s", b.CPU.Seconds()), mib(e.PeakRSS), mib(b.PeakRSS))
	}
	p("%s\n", t)
	p("Ratio (median of the per-round ratios): **%.2f×**. %s\n\n", median(ratios(h.Exporter, h.Rclone, runStat.rate)), r.rerunNote(h.Reruns))
	if l := h.Large; l != nil {
		p("One zip with one %s member (an OCSF JSON, deflated to %s), handed off alone to a fresh exporter: exported in %.1f s (%.0f MB/s), ",
			mib(l.Size), mib(l.ZipSize), l.Stat.Wall.Seconds(), l.Stat.mbps())
		p("exporter peak RSS **%s** (idle %s; target ≤ 128 MiB): the member streams from one ranged GET through the inflater into a multipart upload, ", mib(l.Stat.PeakRSS), mib(l.IdleRSS))
		p("so memory does not grow with its size.\n\n")
	}
}
