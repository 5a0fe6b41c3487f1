// Package exporter writes a scan's artifacts to the S3 buckets of the selected
// integrations. It knows nothing of NATS messages: it takes a decoded scan and
// the integrations to serve, and returns what happened to each artifact of
// each integration, every failure classified as an *errcode.Error.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/integration"
	"github.com/prowler-cloud/s3-exporter/source"
)

// Opener opens a scan's artifact for reading.
type Opener interface {
	Open(ctx context.Context, scan *event.ScanCompleted, a event.Artifact) (*source.Opened, error)
}

// Options tunes uploads.
type Options struct {
	// Concurrency caps the artifact uploads running at once, across scans.
	Concurrency int
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
}

// Exporter uploads artifacts.
type Exporter struct {
	clients *Clients
	opener  Opener
	opts    Options
	sem     chan struct{}
	idle    chan func() // hands an upload to an idle worker
	log     *zap.Logger
}

// New returns an Exporter.
func New(clients *Clients, opener Opener, opts Options, log *zap.Logger) *Exporter {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.PartConcurrency <= 0 {
		opts.PartConcurrency = 3
	}
	if opts.PartSize < 5<<20 {
		opts.PartSize = 8 << 20
	}
	if opts.MultipartThreshold < opts.PartSize {
		opts.MultipartThreshold = opts.PartSize
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = 30 * time.Minute
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 20 * time.Second
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = 200 * time.Millisecond
	}
	if opts.InFlight == nil {
		opts.InFlight = func(float64) {}
	}
	return &Exporter{clients: clients, opener: opener, opts: opts, sem: make(chan struct{}, opts.Concurrency), idle: make(chan func()), log: log}
}

// Clients returns the exporter's client cache.
func (e *Exporter) Clients() *Clients { return e.clients }

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
		key := ObjectKey(ig.OutputDirectory, a, scan.Provider.UID, scan.StartedAt)
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

// Export uploads every artifact of scan for every job, concurrently under the
// global cap. It never stops early: each artifact's outcome is in the result.
func (e *Exporter) Export(ctx context.Context, scan *event.ScanCompleted, jobs []Job) []Result {
	results := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		ig := job.Integration
		results[i] = Result{Integration: ig, Artifacts: Plan(scan, job)}
		if allSkipped(results[i].Artifacts) {
			continue
		}
		_, region, err := e.clients.Client(ctx, ig)
		results[i].Region = region
		if err != nil {
			ce := classify("finding the bucket region", err)
			for j := range results[i].Artifacts {
				if !results[i].Artifacts[j].Skipped {
					results[i].Artifacts[j].Err = ce
				}
			}
			continue
		}
		for j := range results[i].Artifacts {
			ar := &results[i].Artifacts[j]
			if ar.Skipped {
				continue
			}
			select {
			case e.sem <- struct{}{}:
			case <-ctx.Done():
				ar.Err = classify("waiting for an upload slot", ctx.Err())
				continue
			}
			wg.Add(1)
			e.spawn(func() {
				defer wg.Done()
				defer func() { <-e.sem }()
				e.uploadWithRetry(ctx, scan, ig, ar, job.Retry)
			})
		}
	}
	wg.Wait()
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
// (docs/BENCHMARKS.md, workload 1). The global upload slots (Concurrency)
// are taken before spawn, so at most that many uploads run; workers beyond
// it are idle and exit.
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

// uploadWithRetry uploads one artifact, retrying in process; the caller holds
// an upload slot.
func (e *Exporter) uploadWithRetry(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, ar *ArtifactResult, retry bool) {
	e.opts.InFlight(1)
	defer e.opts.InFlight(-1)

	start := time.Now()
	defer func() { ar.Duration = time.Since(start) }()
	log := e.log.With(zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID),
		zap.String("integration_id", ig.ID), zap.String("format", ar.Artifact.Format), zap.String("key", ar.Key))
	var lastMsg string
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			ar.Err = classify("upload", err)
			return
		}
		rec, err := e.upload(ctx, scan, ig, ar.Artifact, ar.Key, retry || attempt > 0)
		if err == nil {
			ar.Object, ar.Err = rec, nil
			return
		}
		ar.Err = err
		if !err.Retryable || attempt >= e.opts.Retries {
			return
		}
		if err.Code == errcode.S3InvalidBucketRegion {
			e.clients.ForgetRegion(ig)
		}
		ar.Retried = append(ar.Retried, err.Code)
		if msg := err.Error(); msg != lastMsg { // log only when the error changes
			log.Info("upload failed, retrying", zap.String("code", string(err.Code)), zap.Int("attempt", attempt+1), zap.Error(err))
			lastMsg = msg
		}
		d := e.opts.RetryBaseDelay << attempt
		sleep(ctx, d/2+rand.N(d/2+1)) // jitter
	}
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// upload streams one artifact to one bucket.
func (e *Exporter) upload(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, a event.Artifact, key string, retry bool) (*event.ObjectRecord, *errcode.Error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.UploadTimeout)
	defer cancel()
	cl, _, err := e.clients.Client(ctx, ig)
	if err != nil {
		return nil, classify("finding the bucket region", err)
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
		return nil, errcode.Retryable(errcode.Timeout, fmt.Errorf("opening %s: no answer within %v", a.Source, e.opts.OpenTimeout))
	}
	if err != nil {
		return nil, errcode.From(err)
	}
	defer src.Close()
	po := objectOptions(scan, ig, a)
	if src.Size >= 0 && src.Size < e.opts.MultipartThreshold {
		return putSmall(ctx, cl, ig.Bucket, po, a, key, src.Size, src)
	}
	body := &countingReader{r: src}
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
	if err != nil {
		return nil, classify("PutObject "+key, err)
	}
	return &event.ObjectRecord{
		Format: a.Format, Framework: a.Framework, Key: key,
		Size: body.n, ETag: trimQuotes(aws.ToString(out.ETag)),
	}, nil
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

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
