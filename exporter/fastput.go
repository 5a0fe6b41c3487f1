package exporter

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/prowler-cloud/s3-exporter/internal/iox"
)

// The direct PUT: the first attempt at a small artifact's PutObject is one
// SigV4-signed HTTP request built here, sent through the client's own HTTP
// client (its connection pool and response timeout), signed with the SDK's
// signer and the client's credentials, to the URL the SDK's own endpoint
// resolver gives for the bucket and key. It skips the SDK's middleware
// stack: some forty middlewares and 500 allocations per call, which cost
// more CPU than the request itself (docs/BENCHMARKS.md, workload 1).
//
// It only ever sends what the SDK would send for the fields the exporter
// sets (putOptions), with x-amz-checksum-sha256 where the SDK sends its
// CRC32: the artifact's SHA-256 is known, so S3 verifies the bytes end to
// end for free, and a bucket with Object Lock, which requires a checksum,
// takes the first request. A failure the SDK's retryer would have retried
// counts in s3exporter_s3_request_retries_total, as the SDK's own retries
// do. Anything it does not handle goes to the SDK, unchanged:
//   - before sending: no SHA-256 in the event, a body over
//     directPutMaxBytes (the SDK sends those with Expect: 100-continue), an
//     endpoint that is not plain SigV4 for "s3", credentials that cannot be
//     had;
//   - after sending: any answer that is not a success (an access denial, a
//     wrong region, throttling, an expired token): the SDK sends the request
//     again and makes of the answer the typed error, the retries and the
//     region and token handling every other request gets; a connection that
//     failed before any answer (refused, reset), which the SDK retries.
//
// Only a request that got no answer within the response timeout, or whose
// context ended, is not sent again: its error is returned as the SDK would
// return it, so that a bucket that never answers costs one timeout, not two.

// directPutMaxBytes is the largest body sent with a direct PUT: the SDK
// sends bodies over 2 MiB with Expect: 100-continue, so that a refusal does
// not cost the upload of the whole body.
const directPutMaxBytes = 2 << 20

// directSigner signs the direct PUTs as the S3 client's signer does (no
// second escaping of the path).
var directSigner = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })

// directPut sends in (a PutObjectInput that putOptions.applyPut filled:
// TestDirectPutOnlyGetsWhatItSends holds that it sets no field directHeaders
// does not send) with the bytes of chunks, whose SHA-256 is sha256Hex.
// handled false means the caller must send it with the SDK; handled true
// returns the ETag, or the error to report.
func directPut(ctx context.Context, cl *s3.Client, in *s3.PutObjectInput, chunks [][]byte, sha256Hex string) (etag string, handled bool, err error) {
	if time.Now().UnixNano() < skewedUntil.Load() {
		return "", false, nil
	}
	size := aws.ToInt64(in.ContentLength)
	sum, derr := hex.DecodeString(sha256Hex)
	if derr != nil || len(sum) != 32 || size > directPutMaxBytes || in.Bucket == nil || in.Key == nil {
		return "", false, nil
	}
	t := targetOf(ctx, cl, aws.ToString(in.Bucket))
	if !t.ok {
		return "", false, nil
	}
	creds, cerr := t.creds.Retrieve(ctx)
	if cerr != nil {
		return "", false, nil
	}
	target := t.url(aws.ToString(in.Key))
	req := (&http.Request{
		Method: http.MethodPut, URL: target, Host: target.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        make(http.Header, 12),
		Body:          io.NopCloser(iox.NewChunksReader(chunks)),
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(iox.NewChunksReader(chunks)), nil },
		ContentLength: size,
	}).WithContext(ctx)
	hexSum := strings.ToLower(sha256Hex)
	checksum := ""
	if t.checksum {
		checksum = base64.StdEncoding.EncodeToString(sum)
	}
	directHeaders(req.Header, in, hexSum, checksum)
	if err := directSigner.SignHTTP(ctx, creds, req, hexSum, "s3", t.region, time.Now().UTC()); err != nil {
		return "", false, nil
	}
	resp, errBody, err := t.send(ctx, req, chunks)
	if err != nil {
		failed := &smithy.OperationError{ServiceID: s3.ServiceID, OperationName: "PutObject", Err: &smithyhttp.RequestSendError{Err: err}}
		if isNoResponse(err) || ctx.Err() != nil {
			return "", true, failed
		}
		directRetried(t.retryer, failed)
		return "", false, nil
	}
	if resp.StatusCode/100 == 2 {
		return resp.Header.Get("ETag"), true, nil
	}
	answer := directAnswer(resp, errBody)
	if isSkew(answer) {
		skewedUntil.Store(time.Now().Add(skewPause).UnixNano())
	}
	directRetried(t.retryer, answer)
	return "", false, nil
}

// send sends req, whose body is chunks, on the wire when it may go there,
// else through the client's HTTP client, and returns the answer with its
// body read (at most 64 KiB, so that the connection can be kept).
func (t *directTarget) send(ctx context.Context, req *http.Request, chunks [][]byte) (*http.Response, []byte, error) {
	if t.wire != nil && t.wire.usable(req) {
		return t.wire.do(ctx, req, chunks)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, wireMaxAnswer))
	if err != nil && resp.StatusCode/100 == 2 {
		return nil, nil, err
	}
	return resp, body, nil
}

// skewedUntil (Unix nanoseconds) is when direct PUTs may be sent again after
// an answer saying this host's clock is off: the SDK corrects its signing
// time by the offset it learns from such answers, the direct PUT signs with
// the host's clock and would be refused, then sent again by the SDK, for
// every artifact. The clock is the host's, so the pause is the process's.
var skewedUntil atomic.Int64

// skewPause is how long direct PUTs stay off after a clock skew answer.
const skewPause = 10 * time.Minute

// isSkew reports an answer refusing the request's signing time.
func isSkew(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	return api.ErrorCode() == "RequestTimeTooSkewed"
}

// directRetried counts the SDK's request that follows a failed direct PUT
// in s3exporter_s3_request_retries_total, as the SDK's retryer counts its
// own, when the failure is one that the retryer would retry (a refusal is
// sent again too, but is no retry: the SDK would not have sent it twice).
func directRetried(retryer aws.Retryer, err error) {
	if r, ok := retryer.(*countingRetryer); ok {
		if c := classify("", err); c.Retryable {
			r.onRetry(c.Code)
		}
	}
}

// directAnswer is the error an S3 answer other than a success stands for,
// as the SDK would have made it (its code and message from the XML body).
func directAnswer(resp *http.Response, body []byte) error {
	var doc struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	_ = xml.Unmarshal(body, &doc)
	return &smithy.OperationError{ServiceID: s3.ServiceID, OperationName: "PutObject",
		Err: &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: resp},
			Err:      &smithy.GenericAPIError{Code: doc.Code, Message: doc.Message},
		}}}
}

// directTarget is what a direct PUT needs of a client and a bucket: the
// client's HTTP client, credentials and settings, the bucket's URL as the
// SDK's endpoint resolver gives it (the rules do not look at the key) and
// the region to sign for. ok is false when the endpoint wants anything but
// SigV4 for "s3" (a multi-region access point, S3 Express, Outposts,
// Object Lambda): those PUTs go to the SDK.
type directTarget struct {
	ok       bool
	http     aws.HTTPClient
	wire     *wire // nil: every request through http
	creds    aws.CredentialsProvider
	retryer  aws.Retryer
	checksum bool
	base     url.URL
	rawBase  string
	region   string
}

// directKey names a cached directTarget.
type directKey struct {
	cl     *s3.Client
	bucket string
}

// directTargets caches the targets: resolving the endpoint (the rules
// engine) and copying the client's options took more CPU than signing.
// Clients are immutable, so an entry never goes stale; the cache is emptied
// when full, so it holds no client for long once the exporter dropped it.
var directTargets = struct {
	sync.Mutex
	m map[directKey]*directTarget
}{m: map[directKey]*directTarget{}}

const maxDirectTargets = 4096

func targetOf(ctx context.Context, cl *s3.Client, bucket string) *directTarget {
	k := directKey{cl, bucket}
	directTargets.Lock()
	t, ok := directTargets.m[k]
	directTargets.Unlock()
	if ok {
		return t
	}
	t = resolveTarget(ctx, cl.Options(), bucket)
	directTargets.Lock()
	if len(directTargets.m) >= maxDirectTargets {
		directTargets.m = map[directKey]*directTarget{}
	}
	directTargets.m[k] = t
	directTargets.Unlock()
	return t
}

// resolveTarget resolves bucket's endpoint as the SDK's PutObject does for
// these options.
func resolveTarget(ctx context.Context, o s3.Options, bucket string) *directTarget {
	t := &directTarget{http: o.HTTPClient, creds: o.Credentials, retryer: o.Retryer,
		checksum: o.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired}
	if o.EndpointResolverV2 == nil || o.Region == "" || o.HTTPClient == nil || o.Credentials == nil {
		return t
	}
	params := s3.EndpointParameters{
		Bucket: aws.String(bucket), Region: aws.String(o.Region),
		UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:                   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		Endpoint:                       o.BaseEndpoint,
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, params)
	if err != nil || len(ep.Headers) > 0 {
		return t
	}
	t.region = o.Region
	if auths, ok := smithyauth.GetAuthOptions(&ep.Properties); ok {
		// The endpoint rules name the scheme "sigv4" (others: "sigv4a",
		// "sigv4-s3express").
		if len(auths) != 1 || auths[0].SchemeID != "sigv4" && auths[0].SchemeID != smithyauth.SchemeIDSigV4 {
			return t
		}
		if name, ok := smithyhttp.GetSigV4SigningName(&auths[0].SignerProperties); ok && name != "s3" {
			return t
		}
		if r, ok := smithyhttp.GetSigV4SigningRegion(&auths[0].SignerProperties); ok && r != "" {
			t.region = r
		}
	}
	t.wire = wireOf(o.HTTPClient)
	t.base = ep.URI
	t.rawBase = ep.URI.RawPath
	if t.rawBase == "" {
		t.rawBase = ep.URI.EscapedPath()
	}
	t.ok = true
	return t
}

// url returns the URL of key in the target's bucket.
func (t *directTarget) url(key string) *url.URL {
	u := t.base
	key = "/" + key
	u.Path = smithyhttp.JoinPath(u.Path, key)
	u.RawPath = smithyhttp.JoinPath(t.rawBase, httpbinding.EscapePath(key, false))
	u.RawQuery = "x-id=PutObject"
	return &u
}

// directHeaders sets the headers of in's fields, as the SDK's serializer
// names them, and the payload's SHA-256: signed, and as the checksum S3
// verifies unless b64Sum is "" (AWS_REQUEST_CHECKSUM_CALCULATION
// when_required, for stores that refuse checksum headers: the SDK then
// sends none either).
func directHeaders(h http.Header, in *s3.PutObjectInput, hexSum, b64Sum string) {
	// The names are written in canonical form: Header.Set would
	// canonicalize each one again, on every request.
	h["X-Amz-Content-Sha256"] = []string{hexSum}
	if b64Sum != "" {
		h["X-Amz-Checksum-Sha256"] = []string{b64Sum}
	}
	h["Content-Length"] = []string{strconv.FormatInt(aws.ToInt64(in.ContentLength), 10)}
	if in.ContentType != nil {
		h["Content-Type"] = []string{*in.ContentType}
	}
	if in.ContentMD5 != nil {
		h["Content-Md5"] = []string{*in.ContentMD5}
	}
	if in.ServerSideEncryption != "" {
		h["X-Amz-Server-Side-Encryption"] = []string{string(in.ServerSideEncryption)}
	}
	if in.SSEKMSKeyId != nil {
		h["X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"] = []string{*in.SSEKMSKeyId}
	}
	if in.StorageClass != "" {
		h["X-Amz-Storage-Class"] = []string{string(in.StorageClass)}
	}
	if in.ACL != "" {
		h["X-Amz-Acl"] = []string{string(in.ACL)}
	}
	for k, v := range in.Metadata {
		name, ok := metaHeaders[k]
		if !ok {
			name = http.CanonicalHeaderKey("X-Amz-Meta-" + k)
		}
		h[name] = []string{v}
	}
	h["User-Agent"] = []string{"s3-exporter (aws-sdk-go-v2 signer)"}
}

// metaHeaders are the header names of the exporter's own metadata keys.
var metaHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{MetaScanID, MetaProviderUID, MetaFormat, MetaFramework, MetaSHA256} {
		m[k] = http.CanonicalHeaderKey("X-Amz-Meta-" + k)
	}
	return m
}()
