// Package exporter writes a scan's artifacts to the S3 buckets of the selected
// integrations. It knows nothing of NATS messages: it takes a decoded scan and
// the integrations to serve, and returns what happened to each artifact of
// each integration, every failure classified as an *errcode.Error.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/clock"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/iox"
	"github.com/prowler-cloud/s3-exporter/internal/sched"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// Opener opens a scan's artifact for reading.
type Opener interface {
	Open(ctx context.Context, scan *event.ScanCompleted, a event.Artifact) (*source.Opened, error)
}

// Options tunes uploads.
type Options struct {
	// Concurrency caps the artifact uploads running at once, across scans
	// and tenants (default DefaultConcurrency, 256). Within it each destination has its own
	// adaptive limit and each tenant its fair share (package sched).
	Concurrency int
	// UploadMemory is the byte budget of the uploads running at once
	// (default DefaultUploadMemory; see UploadMemory and MemoryBound).
	UploadMemory int64
	// InitialLimit is a new destination's concurrency limit (default 16).
	InitialLimit int
	// BreakerFailures is how many failures in a row of a destination open
	// its circuit breaker (default 5); BreakerCooldown how long it stays
	// open before a probe (default 30s, doubling up to 5m).
	BreakerFailures int
	BreakerCooldown time.Duration
	// PartSize is the multipart part size in bytes (>= 5 MiB).
	PartSize int64
	// MultipartThreshold is the size from which multipart upload is used.
	MultipartThreshold int64
	// PartConcurrency is how many parts of one object upload at once.
	PartConcurrency int
	// UploadTimeout bounds one artifact upload attempt.
	UploadTimeout time.Duration
	// OpenTimeout bounds opening an artifact's source (default 20s).
	OpenTimeout time.Duration
	// Retries is how many times a retryable failure is tried again at once,
	// with jittered exponential backoff from RetryBaseDelay.
	Retries        int
	RetryBaseDelay time.Duration
	// InFlight, when set, is told of uploads starting (+1) and ending (-1).
	InFlight func(delta float64)
	// Observer, when set, is told of the scheduler's queue, budget, limits
	// and breakers (metrics).
	Observer sched.Observer
	// OnBreaker, when set, is told when the breaker of an integration's
	// destination opens (cause is the failure that opened it) or closes
	// again (cause nil). It runs on the upload's goroutine: it must not
	// block for long.
	OnBreaker func(ig *integration.Integration, open bool, cause *errcode.Error)
}

// Defaults of the options that are settings of the daemon too
// (S3EXPORTER_CONCURRENCY…): internal/daemon's TestPackageDefaultsAreTheSettingsDefaults
// holds them equal to config.Default's.
const (
	DefaultConcurrency        = 256
	DefaultPartSize           = 8 << 20
	DefaultMultipartThreshold = 16 << 20
	DefaultUploadTimeout      = 30 * time.Minute
	DefaultRetryBaseDelay     = 200 * time.Millisecond
	DefaultBreakerFailures    = 5
	DefaultBreakerCooldown    = 30 * time.Second
)

// withDefaults fills what o leaves unset.
func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.InitialLimit <= 0 {
		o.InitialLimit = 16
	}
	if o.UploadMemory <= 0 {
		o.UploadMemory = DefaultUploadMemory
	}
	if o.PartConcurrency <= 0 {
		o.PartConcurrency = 3
	}
	if o.PartSize < 5<<20 {
		o.PartSize = DefaultPartSize
	}
	if o.MultipartThreshold == 0 {
		o.MultipartThreshold = DefaultMultipartThreshold
	}
	if o.MultipartThreshold < o.PartSize {
		o.MultipartThreshold = o.PartSize
	}
	if o.UploadTimeout <= 0 {
		o.UploadTimeout = DefaultUploadTimeout
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 20 * time.Second
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = DefaultBreakerFailures
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = DefaultBreakerCooldown
	}
	if o.InFlight == nil {
		o.InFlight = func(float64) {}
	}
	return o
}

// Exporter uploads artifacts.
type Exporter struct {
	clients *Clients
	opener  Opener
	opts    Options
	sched   *sched.Scheduler
	causes  sync.Map // destination -> errcode.Code that opened its breaker
	// checksums remembers the destinations that asked for a checksum.
	checksums checksumNeeds
	idle      chan func() // hands an upload to an idle worker
	log       *zap.Logger
}

// New returns an Exporter.
func New(clients *Clients, opener Opener, opts Options, log *zap.Logger) *Exporter {
	opts = opts.withDefaults()
	s := sched.New(sched.Config{
		Capacity: opts.Concurrency, Budget: opts.UploadMemory, InitialLimit: opts.InitialLimit,
		BreakerFailures: opts.BreakerFailures, BreakerCooldown: opts.BreakerCooldown,
		Observer: opts.Observer,
	})
	return &Exporter{clients: clients, opener: opener, opts: opts, sched: s, idle: make(chan func()), log: log}
}

// Scheduler returns the exporter's upload scheduler (stats, tests).
func (e *Exporter) Scheduler() *sched.Scheduler { return e.sched }

// Job is one integration to export a scan to.
type Job struct {
	Integration *integration.Integration
	// Done lists the artifacts (by Artifact.Name) already in the bucket, as
	// the ledger says; they are not uploaded again.
	Done map[string]event.ObjectRecord
	// Failed lists the artifacts (by Artifact.Name) that failed permanently
	// in an earlier delivery; they are reported, not tried again.
	Failed map[string]event.ExportError
	// Retry says an earlier delivery (or replay) of this scan may have
	// started uploads for this integration: only then are multipart uploads
	// left behind looked for. On a first attempt there can be none, and the
	// documented IAM policy refuses ListMultipartUploads, so asking would
	// put an AccessDenied in the bucket owner's CloudTrail for every large
	// file.
	Retry bool
}

// ArtifactResult is what happened to one artifact for one integration.
type ArtifactResult struct {
	Artifact event.Artifact
	Key      string
	// Object is set when the artifact is in the bucket.
	Object *event.ObjectRecord
	// Skipped is set when the ledger already had it.
	Skipped bool
	// Err is set when it is not.
	Err *errcode.Error
	// Retried holds the codes of the failures retried in process.
	Retried  []errcode.Code
	Duration time.Duration
}

// Result is what happened to every artifact of a scan for one integration.
type Result struct {
	Integration *integration.Integration
	Region      string
	Artifacts   []ArtifactResult
}

// Failed returns the artifacts that are not in the bucket.
func (r Result) Failed() []ArtifactResult {
	var out []ArtifactResult
	for _, a := range r.Artifacts {
		if a.Err != nil {
			out = append(out, a)
		}
	}
	return out
}

// Plan returns the artifacts of scan for job, each with its key, those the
// ledger already settled (job.Done under the same key, job.Failed) marked
// Skipped with their object or error; the others are still to upload.
func Plan(scan *event.ScanCompleted, job Job) []ArtifactResult {
	ig := job.Integration
	out := make([]ArtifactResult, len(scan.Artifacts))
	for j, a := range scan.Artifacts {
		key := ""
		if a.Format != event.FormatArchive { // an archive's members have keys, it has none
			key = ObjectKey(ig.OutputDirectory, a, scan.Provider.UID, scan.StartedAt)
		}
		out[j] = ArtifactResult{Artifact: a, Key: key}
		if rec, ok := job.Done[a.Name()]; ok && rec.Key == key {
			out[j].Object, out[j].Skipped = &rec, true
		} else if fe, ok := job.Failed[a.Name()]; ok {
			out[j].Err = &errcode.Error{Code: errcode.Code(fe.Code), Err: errors.New(fe.Message)}
			out[j].Skipped = true
		}
	}
	return out
}

// Export uploads every artifact of scan for every job, concurrently, each
// upload when the scheduler gives it a slot (package sched: the tenant's
// fair share, the destination's limit and breaker, the byte budget). It never
// stops early: each artifact's outcome is in the result. An integration
// with write_manifest gets its manifest written after all of that, when
// every artifact is in its bucket, as one more artifact result (manifest.go).
func (e *Exporter) Export(ctx context.Context, scan *event.ScanCompleted, jobs []Job) []Result {
	// Archives become their members' artifacts (archive.go).
	scan, refused := e.expand(ctx, scan)
	results := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		ig := job.Integration
		results[i] = Result{Integration: ig, Artifacts: Plan(scan, job)}
		for j, err := range refused {
			if ar := &results[i].Artifacts[j]; !ar.Skipped {
				ar.Key, ar.Err, ar.Skipped = "", err, true
			}
		}
		if allSkipped(results[i].Artifacts) && !wantsManifest(job, results[i]) {
			continue
		}
		region, err := e.region(ctx, scan.TenantID, ig)
		results[i].Region = region
		if err != nil {
			for j := range results[i].Artifacts {
				if !results[i].Artifacts[j].Skipped {
					results[i].Artifacts[j].Err = err
				}
			}
			continue
		}
		for j := range results[i].Artifacts {
			ar := &results[i].Artifacts[j]
			if ar.Skipped {
				continue
			}
			// One goroutine per waiting upload: it only waits (a small
			// stack); the upload itself runs on a worker (spawn).
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.uploadWithRetry(ctx, scan, ig, ar, job.Retry)
			}()
		}
	}
	wg.Wait()
	// Last, once every upload of the scan is over (manifest.go).
	e.writeManifests(ctx, scan, jobs, results)
	return results
}

// workerIdle is how long an upload worker waits for the next upload before
// it exits.
const workerIdle = 30 * time.Second

// spawn runs an upload on an idle worker goroutine, or on a new one. A
// worker outlives its upload (for workerIdle) so that the next upload reuses
// a goroutine whose stack has already grown to the depth of the AWS SDK's
// middleware: a new goroutine copies its stack several times on the way
// down, which cost more CPU per small object than signing the request
// (docs/BENCHMARKS.md, workload 1). The scheduler's grant is taken before
// spawn, so at most Concurrency uploads run; workers beyond it are idle and
// exit.
func (e *Exporter) spawn(upload func()) {
	select {
	case e.idle <- upload:
	default:
		go e.worker(upload)
	}
}

func (e *Exporter) worker(upload func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		upload()
		t.Reset(workerIdle)
		select {
		case upload = <-e.idle:
		case <-t.C:
			return
		}
	}
}

func allSkipped(ars []ArtifactResult) bool {
	for _, a := range ars {
		if !a.Skipped {
			return false
		}
	}
	return true
}

// uploadWithRetry uploads one artifact, retrying in process. Each attempt
// waits for its own grant, so a backoff holds no slot. retry says the
// artifact was tried before (a redelivery): stale multipart uploads are
// looked for only then.
func (e *Exporter) uploadWithRetry(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, ar *ArtifactResult, retry bool) {
	start := time.Now()
	defer func() { ar.Duration = time.Since(start) }()
	log := e.log.WithLazy(zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID),
		zap.String("integration_id", ig.ID), zap.String("format", ar.Artifact.Format), zap.String("key", ar.Key))
	size := int64(-1)
	if ar.Artifact.Size != nil {
		size = *ar.Artifact.Size
	}
	req := sched.Request{Tenant: scan.TenantID, Dest: destKey(scan.TenantID, ig), Bytes: e.opts.uploadBytes(size)}
	e.retry(ctx, "upload", ig, ar, log, func(attempt int) (*event.ObjectRecord, *errcode.Error) {
		return e.attempt(ctx, scan, ig, ar, req, size, retry || attempt > 0)
	})
}

// retry runs try until it succeeds, fails for good, or has used the quick
// retries of one delivery (e.opts.Retries), with a jittered exponential
// delay between tries; ar holds the outcome and the codes retried. what
// names the operation in the log and in a classified cancellation.
func (e *Exporter) retry(ctx context.Context, what string, ig *integration.Integration, ar *ArtifactResult, log *zap.Logger, try func(attempt int) (*event.ObjectRecord, *errcode.Error)) {
	var lastMsg string
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			ar.Err = classify(what, err)
			return
		}
		rec, err := try(attempt)
		if err == nil {
			ar.Object, ar.Err = rec, nil
			return
		}
		ar.Err = err
		// No quick retry against an open breaker (it fails fast until its
		// cooldown ends) or after a request got no answer within
		// ResponseTimeout (another minute of waiting is not a blip): the
		// scan goes retrying, with the redelivery backoff.
		if !err.Retryable || attempt >= e.opts.Retries || errors.Is(err, sched.ErrOpen) || errors.Is(err, ErrNoResponse) {
			return
		}
		if err.Code == errcode.S3InvalidBucketRegion {
			e.clients.ForgetRegion(ig)
		}
		ar.Retried = append(ar.Retried, err.Code)
		if msg := err.Error(); msg != lastMsg { // log only when the error changes
			log.Info(what+" failed, retrying", zap.String("code", string(err.Code)), zap.Int("attempt", attempt+1), zap.Error(err))
			lastMsg = msg
		}
		d := e.opts.RetryBaseDelay << attempt
		sleep(ctx, d/2+rand.N(d/2+1)) // jitter
	}
}

// attempt uploads once on a worker, under a grant.
func (e *Exporter) attempt(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, ar *ArtifactResult, req sched.Request, size int64, retry bool) (*event.ObjectRecord, *errcode.Error) {
	// One request (PutObject below the threshold): its time is a round
	// trip, the limit's latency signal. A multipart upload's time depends on
	// its size more than on the destination.
	timed := size >= 0 && size < e.opts.MultipartThreshold
	var rec *event.ObjectRecord
	err := e.underGrant(ctx, ig, req, timed, func() (opened bool, err *errcode.Error) {
		e.opts.InFlight(1)
		defer e.opts.InFlight(-1)
		done := make(chan struct{})
		e.spawn(func() {
			defer close(done)
			rec, err, opened = e.upload(ctx, scan, ig, ar.Artifact, ar.Key, retry)
		})
		<-done
		return opened, err
	})
	return rec, err
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) { clock.Sleep(ctx, d) }

// upload streams one artifact to one bucket.
//
// opened reports whether the source opened, that is whether the error (if
// any) says something about the destination rather than the source.
func (e *Exporter) upload(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, a event.Artifact, key string, retry bool) (_ *event.ObjectRecord, _ *errcode.Error, opened bool) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.UploadTimeout)
	defer cancel()
	cl, _, err := e.clients.Client(ctx, ig)
	if err != nil {
		return nil, classify("finding the bucket region", err), true
	}
	// Opening a nats-os:// source is a few JetStream API requests, and the
	// object's chunks then stream under the context it was opened with, so
	// that context must last the whole upload. But a request whose reply is
	// lost (NATS failing over to another server mid-request) would wait for
	// it, up to UploadTimeout, while the scan's heartbeat keeps it from being
	// redelivered: bound the open on its own, and retry.
	octx, cancelOpen := context.WithCancel(ctx)
	defer cancelOpen()
	openTimer := time.AfterFunc(e.opts.OpenTimeout, cancelOpen)
	src, err := e.opener.Open(octx, scan, a)
	if !openTimer.Stop() {
		if err == nil {
			src.Close()
		}
		return nil, errcode.Retryable(errcode.Timeout, fmt.Errorf("opening %s: no answer within %v", a.Source, e.opts.OpenTimeout)), false
	}
	if err != nil {
		return nil, errcode.From(err), false
	}
	defer src.Close()
	sum := manifestDigest(ig, a, src) // manifest.go
	po := objectOptions(scan, ig, a)
	e.checksums.apply(&po, destKey(scan.TenantID, ig))
	if src.Size >= 0 && src.Size < e.opts.MultipartThreshold {
		rec, err := putSmall(ctx, cl, ig.Bucket, po, a, key, src.Size, src)
		return sum.record(rec), err, true
	}
	body := iox.NewCountingReader(src)
	in := &tm.UploadObjectInput{
		Bucket: aws.String(ig.Bucket),
		Key:    aws.String(key),
		Body:   body,
	}
	if src.Size >= 0 {
		in.ContentLength = aws.Int64(src.Size)
	}
	po.applyUpload(in)
	if retry && (src.Size < 0 || src.Size >= e.opts.MultipartThreshold) {
		e.abortStale(ctx, cl, ig.Bucket, key)
	}
	threshold := e.opts.MultipartThreshold
	if src.Size >= threshold {
		// Known to be multipart: the transfer manager reads up to its
		// threshold before its first request; let that be one part rather
		// than the whole threshold (docs/BENCHMARKS.md, workload 2).
		threshold = e.opts.PartSize
	}
	up := tm.New(cl, func(o *tm.Options) {
		o.PartSizeBytes = e.opts.PartSize
		o.MultipartUploadThreshold = threshold
		o.Concurrency = e.opts.PartConcurrency
		// Abort a failed multipart upload even when ctx is canceled, so no
		// parts are left behind.
		o.FailTimeout = 30 * time.Second
		// The transfer manager's own setting wins over the client's and
		// defaults to "when supported" (CRC32 on every part) whatever
		// AWS_REQUEST_CHECKSUM_CALCULATION says: pass the client's on, so
		// that when_required reaches stores that refuse flexible checksums.
		o.RequestChecksumCalculation = cl.Options().RequestChecksumCalculation
	})
	out, err := up.UploadObject(ctx, in)
	if err != nil && !po.Checksum && needsChecksum(err) {
		// The body has streamed away: the next attempt, from a source
		// opened again, sends a CRC32 with every part.
		po.ChecksumNeeded()
		return nil, errcode.Retryable(errcode.S3ClientError, fmt.Errorf(
			"PutObject %s: the bucket requires a checksum on every request; the next attempt sends one: %w", key, err)), true
	}
	if err != nil {
		return nil, classify("PutObject "+key, err), true
	}
	return sum.record(&event.ObjectRecord{
		Format: a.Format, Framework: a.Framework, Key: key,
		Size: body.N, ETag: trimQuotes(aws.ToString(out.ETag)),
	}), nil, true
}

// abortStale aborts multipart uploads of key left behind by an earlier
// attempt that could not abort them itself (a crash, a SIGKILL); it is
// called on retries and redeliveries only. It is best effort: the documented
// IAM policy does not grant s3:ListBucketMultipartUploads (a refused list is
// expected, logged at debug), and then the bucket's lifecycle rule
// (AbortIncompleteMultipartUpload) cleans up instead.
func (e *Exporter) abortStale(ctx context.Context, cl *s3.Client, bucket, key string) {
	out, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		e.log.Debug("listing multipart uploads left behind", zap.String("key", key), zap.Error(err))
		return
	}
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) != key {
			continue
		}
		_, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId})
		if err != nil {
			// Its parts stay billed until the lifecycle rule removes them:
			// the operator should know.
			e.log.Warn("could not abort a multipart upload left behind (the bucket's AbortIncompleteMultipartUpload lifecycle rule will)",
				zap.String("key", key), zap.String("upload_id", aws.ToString(u.UploadId)), zap.String("code", string(classify("AbortMultipartUpload", err).Code)), zap.Error(err))
			continue
		}
		e.log.Info("aborted a multipart upload left behind", zap.String("key", key), zap.String("upload_id", aws.ToString(u.UploadId)))
	}
}

func trimQuotes(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
