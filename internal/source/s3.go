package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// S3Options configures the exporter's reader of s3:// sources (contract
// v1.2 §3).
type S3Options struct {
	// Buckets are the buckets s3:// sources may name
	// (S3EXPORTER_S3_SOURCE_BUCKETS); none: s3 sources are off.
	Buckets []string
	// Endpoint and PathStyle: S3EXPORTER_S3_ENDPOINT and
	// S3EXPORTER_S3_FORCE_PATH_STYLE.
	Endpoint  string
	PathStyle bool
	// DefaultRegion is asked where a bucket is (S3EXPORTER_DEFAULT_REGION).
	DefaultRegion string
	// Credentials, when set, replace the SDK's default chain (tests,
	// exporterctl's flags). The daemon leaves it nil: its own identity.
	Credentials aws.CredentialsProvider
	// MaxResumes bounds the ranged GETs one read makes after a body that
	// broke midway (default 5).
	MaxResumes int
}

// S3Reader reads objects of the platform's own buckets (Prowler App's
// output bucket) with the exporter's own AWS identity. It is kept apart from
// the tenants' clients (package exporter) by construction: it loads its own
// configuration, holds its S3 clients privately and only ever calls
// GetObject, HeadObject, GetBucketLocation and HeadBucket through the
// readAPI interface, so no code path can write with it, and no tenant's
// client can reach the code that reads sources.
type S3Reader struct {
	opts    S3Options
	base    aws.Config
	buckets map[string]bool
	newAPI  func(region string) readAPI

	mu      sync.Mutex
	clients map[string]readAPI // by region
	regions map[string]string  // bucket -> region
}

// readAPI is all the S3Reader may do.
type readAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetBucketLocation(ctx context.Context, in *s3.GetBucketLocationInput, optFns ...func(*s3.Options)) (*s3.GetBucketLocationOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

// NewS3Reader loads the exporter's own AWS configuration (the SDK default
// chain: IRSA, Pod Identity, instance role, environment; AWS_CA_BUNDLE).
func NewS3Reader(ctx context.Context, opts S3Options) (*S3Reader, error) {
	if opts.DefaultRegion == "" {
		opts.DefaultRegion = "us-east-1"
	}
	if opts.MaxResumes <= 0 {
		opts.MaxResumes = 5
	}
	loads := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(opts.DefaultRegion),
		// A *awshttp.BuildableClient, so that AWS_CA_BUNDLE keeps working.
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = 64
			tr.ResponseHeaderTimeout = time.Minute
		})),
	}
	if opts.Credentials != nil {
		loads = append(loads, awsconfig.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration for s3 sources: %w", err)
	}
	r := &S3Reader{opts: opts, base: cfg, buckets: map[string]bool{}, clients: map[string]readAPI{}, regions: map[string]string{}}
	for _, b := range opts.Buckets {
		if b = strings.TrimSpace(b); b != "" {
			r.buckets[b] = true
		}
	}
	r.newAPI = func(region string) readAPI {
		return s3.NewFromConfig(r.base, func(o *s3.Options) {
			o.Region = region
			o.UsePathStyle = r.opts.PathStyle
			// A ranged GET has no whole-object checksum to validate: the
			// SDK would log that on stderr for every one.
			o.DisableLogOutputChecksumValidationSkipped = true
			if r.opts.Endpoint != "" {
				o.BaseEndpoint = aws.String(r.opts.Endpoint)
			}
		})
	}
	return r, nil
}

// Allowed reports whether s3:// sources may name bucket.
func (r *S3Reader) Allowed(bucket string) bool { return r != nil && r.buckets[bucket] }

// Buckets lists the buckets s3 sources may name, sorted.
func (r *S3Reader) Buckets() []string {
	var out []string
	for b := range r.buckets {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

func (r *S3Reader) api(region string) readAPI {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.clients[region]
	if !ok {
		c = r.newAPI(region)
		r.clients[region] = c
	}
	return c
}

// client returns the client of bucket's region, found as for destinations
// (contract §5 step 1): GetBucketLocation, else the x-amz-bucket-region of
// HeadBucket's answer (S3 sends it on a 301 and a 403 too), else the
// default region (not remembered, so that it is asked again).
func (r *S3Reader) client(ctx context.Context, bucket string) readAPI {
	r.mu.Lock()
	region, ok := r.regions[bucket]
	r.mu.Unlock()
	if ok {
		return r.api(region)
	}
	def := r.api(r.opts.DefaultRegion)
	found := ""
	if out, err := def.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)}); err == nil {
		found = bucketLocation(string(out.LocationConstraint))
	} else if hb, err := def.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		found = aws.ToString(hb.BucketRegion)
	} else {
		found = regionHeader(err)
	}
	if found == "" {
		return def
	}
	r.mu.Lock()
	if len(r.regions) > 1024 { // operator-listed buckets: a handful
		clear(r.regions)
	}
	r.regions[bucket] = found
	r.mu.Unlock()
	return r.api(found)
}

// bucketLocation maps GetBucketLocation's answer to a region: empty is
// us-east-1, "EU" the old name of eu-west-1.
func bucketLocation(loc string) string {
	switch loc {
	case "":
		return "us-east-1"
	case "EU":
		return "eu-west-1"
	}
	return loc
}

func regionHeader(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// Head returns an object's size and ETag.
func (r *S3Reader) Head(ctx context.Context, bucket, key string) (size int64, etag string, err error) {
	out, err := r.client(ctx, bucket).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, "", s3Error("s3://"+bucket+"/"+key, err)
	}
	return aws.ToInt64(out.ContentLength), aws.ToString(out.ETag), nil
}

// Tail reads the last n bytes of an object (all of it when it is smaller)
// with one suffix-range GET, and returns them with the object's size and
// ETag, which the answer's Content-Range and ETag carry: a zip's member
// list is at its end, so this one request replaces a HEAD and the first
// ranged GET.
func (r *S3Reader) Tail(ctx context.Context, bucket, key string, n int64) (tail []byte, size int64, etag string, err error) {
	src := "s3://" + bucket + "/" + key
	out, err := r.client(ctx, bucket).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=-%d", n))})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable {
			// An empty object has no last byte to name.
			size, etag, err := r.Head(ctx, bucket, key)
			return nil, size, etag, err
		}
		return nil, 0, "", s3Error(src, err)
	}
	defer out.Body.Close()
	etag = aws.ToString(out.ETag)
	size, start := aws.ToInt64(out.ContentLength), int64(0)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes <first>-<last>/<size>"
		rng, total, ok := strings.Cut(strings.TrimPrefix(cr, "bytes "), "/")
		first, _, ok2 := strings.Cut(rng, "-")
		var err1, err2 error
		size, err1 = strconv.ParseInt(total, 10, 64)
		start, err2 = strconv.ParseInt(first, 10, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil || start < 0 || start > size {
			return nil, 0, "", errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: unreadable Content-Range %q", src, cr))
		}
	}
	want := size - start
	if want > n || want < 0 {
		return nil, 0, "", errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: %d bytes for the last %d", src, want, n))
	}
	tail = make([]byte, 0, want)
	tail, err = readInto(tail, io.LimitReader(out.Body, want))
	if err != nil && int64(len(tail)) < want && etag != "" {
		// The body broke: read on from there, pinned to the ETag (the
		// stream resumes again if it breaks again).
		var rc io.ReadCloser
		if rc, _, err = r.Open(ctx, bucket, key, etag, start+int64(len(tail)), want-int64(len(tail))); err == nil {
			tail, err = readInto(tail, rc)
			rc.Close()
		}
	}
	if err != nil {
		return nil, 0, "", readError(src, err)
	}
	if int64(len(tail)) != want {
		return nil, 0, "", errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: %d bytes of its last %d", src, len(tail), want))
	}
	return tail, size, etag, nil
}

// readError classifies an error reading a source's bytes: an already
// classified one as it is, anything else a retryable SourceNotFound.
func readError(src string, err error) error {
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return ce
	}
	return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: %w", src, err))
}

// readInto appends what r yields to b until EOF.
func readInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// ReaderAt returns an io.ReaderAt over an object, by ranged GETs with a
// read-ahead block, pinned to the ETag it has now, and its size; what it
// may fetch in all is bounded as for an archive's member list.
func (r *S3Reader) ReaderAt(ctx context.Context, bucket, key string) (io.ReaderAt, int64, error) {
	size, etag, err := r.Head(ctx, bucket, key)
	if err != nil {
		return nil, 0, err
	}
	return newReadAheadAt(ctx, "s3://"+bucket+"/"+key, size, maxDirectoryBytes, r.fetcher(bucket, key, etag)), size, nil
}

// fetcher reads n bytes at off of an object, pinned to etag.
func (r *S3Reader) fetcher(bucket, key, etag string) rangeFetcher {
	return func(ctx context.Context, off, n int64) ([]byte, error) {
		rc, _, err := r.Open(ctx, bucket, key, etag, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		b := make([]byte, n)
		if _, err := io.ReadFull(rc, b); err != nil {
			return nil, readError("s3://"+bucket+"/"+key, err)
		}
		return b, nil
	}
}

// Open streams n bytes of an object from off (n < 0: to its end; off 0 and
// n < 0: the whole object, with a plain GET). etag, when set, pins the
// object (If-Match): a changed object fails instead of mixing versions.
// A body that breaks midway is read on by a ranged GET from where it
// stopped, pinned to the ETag of the first answer, at most MaxResumes
// times. size is the bytes the stream will yield (-1 when unknown).
func (r *S3Reader) Open(ctx context.Context, bucket, key, etag string, off, n int64) (_ io.ReadCloser, size int64, _ error) {
	s := &s3Stream{r: r, ctx: ctx, bucket: bucket, key: key, etag: etag, pos: off, end: -1}
	if n >= 0 {
		s.end = off + n
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), 0, nil
	}
	if err := s.get(); err != nil {
		return nil, 0, err
	}
	if s.end < 0 {
		return s, -1, nil
	}
	return s, s.end - off, nil
}

// s3Stream is a resumable read of an object's bytes [pos, end).
type s3Stream struct {
	r           *S3Reader
	ctx         context.Context
	bucket, key string
	etag        string
	pos, end    int64 // end -1: unknown until the first answer
	body        io.ReadCloser
	resumes     int
	err         error
}

func (s *s3Stream) src() string { return "s3://" + s.bucket + "/" + s.key }

// get sends the GET for [pos, end).
func (s *s3Stream) get() error {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)}
	if s.etag != "" {
		in.IfMatch = aws.String(s.etag)
	}
	if s.pos > 0 || s.end >= 0 {
		rng := fmt.Sprintf("bytes=%d-", s.pos)
		if s.end >= 0 {
			rng += fmt.Sprint(s.end - 1)
		}
		in.Range = aws.String(rng)
	}
	out, err := s.r.client(s.ctx, s.bucket).GetObject(s.ctx, in)
	if err != nil {
		return s3Error(s.src(), err)
	}
	if s.etag == "" {
		s.etag = aws.ToString(out.ETag)
	}
	if s.end < 0 && out.ContentLength != nil {
		s.end = s.pos + *out.ContentLength
	}
	s.body = out.Body
	return nil
}

func (s *s3Stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.end >= 0 && s.pos >= s.end {
		return 0, io.EOF
	}
	if s.end >= 0 && int64(len(p)) > s.end-s.pos {
		p = p[:s.end-s.pos]
	}
	for {
		if s.body == nil {
			if err := s.get(); err != nil {
				s.err = err
				return 0, err
			}
		}
		n, err := s.body.Read(p)
		s.pos += int64(n)
		if err == nil {
			return n, nil
		}
		if err == io.EOF && (s.end < 0 || s.pos >= s.end) {
			s.closeBody()
			return n, io.EOF
		}
		// The body broke, or ended short of its length: read on from here
		// with a ranged GET pinned to the same ETag.
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		s.closeBody()
		if cerr := s.ctx.Err(); cerr != nil {
			s.err = errcode.Retryable(errcode.Timeout, fmt.Errorf("reading %s: %w", s.src(), cerr))
			return n, s.err
		}
		if s.resumes >= s.r.opts.MaxResumes {
			s.err = errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: broke %d times, last at byte %d: %w", s.src(), s.resumes+1, s.pos, err))
			return n, s.err
		}
		s.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

func (s *s3Stream) closeBody() {
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
}

func (s *s3Stream) Close() error {
	s.closeBody()
	if s.err == nil {
		s.err = errors.New("read after close")
	}
	return nil
}

// Resumes returns how many ranged GETs read on after a broken body.
func (s *s3Stream) Resumes() int { return s.resumes }

// s3Error classifies an error of the exporter's own reads: a missing
// object (or bucket) is a retryable SourceNotFound (the scan engine may
// still be writing it); an object that changed while it was read
// (If-Match) too, and a 403 (S3's answer for a missing key to an identity
// that may not list the bucket); anything else (throttling, 5xx, the
// network) is retryable as well.
func s3Error(src string, err error) error {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchKey" || code == "NoSuchBucket" || code == "NotFound" || code == "" && status == http.StatusNotFound:
		return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: not found (%s)", src, strings.TrimSpace(code+" "+statusText(status))))
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: the object changed while it was read", src))
	case code == "AccessDenied" || code == "Forbidden" || code == "" && status == http.StatusForbidden:
		// S3 answers 403 for a missing key when the identity may not list
		// the bucket (the documented policy grants s3:GetObject only): a
		// missing object, as far as the exporter can tell.
		return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf(
			"source %s: refused to the exporter's own identity: missing, or no s3:GetObject on it (%s)", src, strings.TrimSpace(code+" "+statusText(status))))
	case code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable:
		return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: shorter than expected (it changed?): %w", src, err))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return errcode.Retryable(errcode.Timeout, fmt.Errorf("source %s: %w", src, err))
	}
	return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: %w", src, err))
}

func statusText(status int) string {
	if status == 0 {
		return ""
	}
	return fmt.Sprintf("HTTP %d", status)
}
