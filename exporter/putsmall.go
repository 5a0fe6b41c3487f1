package exporter

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/iox"
)

// putSmall uploads an artifact of known size below the multipart threshold
// with one PutObject, as the transfer manager would, without its per-upload
// client and middleware (docs/BENCHMARKS.md, workload 1: most artifacts of a
// scan are this small). The body is read to its end (into a buffer of
// exactly its size, unless the source holds it already: readSmall), so that
// the source's size and sha256 checks have run before anything is sent.
func putSmall(ctx context.Context, cl *s3.Client, bucket string, po putOptions, a event.Artifact, key string, size int64, body io.Reader) (*event.ObjectRecord, *errcode.Error) {
	payload, rerr := readSmall(body, size, a)
	if rerr != nil {
		return nil, rerr
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		ContentLength: aws.Int64(size),
	}
	if a.SHA256 != "" {
		// The body has been read to its end: the source has verified
		// its sha256 (fastput.go).
		din := *in
		po.applyPut(&din)
		if po.Checksum {
			din.ContentMD5 = aws.String(contentMD5(payload...))
		}
		if etag, handled, err := directPut(ctx, cl, &din, payload, a.SHA256); handled {
			if err != nil {
				return nil, classify("PutObject "+key, err)
			}
			return &event.ObjectRecord{Format: a.Format, Framework: a.Framework, Key: key, Size: size, ETag: trimQuotes(etag)}, nil
		}
	}
	var opts []func(*s3.Options)
	if a.SHA256 != "" {
		// The body has just been read to its end, so the source has
		// verified that this is its sha256.
		opts = append(opts, withPayloadSHA256(a.SHA256))
	}
	out, err := putChunks(ctx, cl, in, po, payload, opts...)
	if err != nil {
		return nil, classify("PutObject "+key, err)
	}
	return &event.ObjectRecord{
		Format: a.Format, Framework: a.Framework, Key: key,
		Size: size, ETag: trimQuotes(aws.ToString(out.ETag)),
	}, nil
}

// wholeSource is a source that may hold its bytes in memory already
// (source.Opened: an object-store object fetched with direct gets).
type wholeSource interface {
	Whole() (chunks [][]byte, ok bool, err error)
}

// readSmall returns the size bytes of body, read to its end (so that the
// source's size and sha256 checks have run), in one or more slices. A
// source that holds its bytes already hands them over, checked the same
// way, and they are sent from where they are, without a copy: every
// artifact of a scan of workload 1 comes that way (docs/BENCHMARKS.md).
func readSmall(body io.Reader, size int64, a event.Artifact) ([][]byte, *errcode.Error) {
	if w, ok := body.(wholeSource); ok {
		chunks, ok, err := w.Whole()
		if ok && err != nil {
			return nil, classify("reading "+a.Source, err)
		}
		if ok {
			if n := iox.NewChunksReader(chunks).Size(); n != size {
				return nil, errcode.Permanentf(errcode.ChecksumMismatch, "reading %s: %d bytes, not its %d", a.Source, n, size)
			}
			return chunks, nil
		}
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(body, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, errcode.Permanentf(errcode.ChecksumMismatch, "reading %s: shorter than its %d bytes", a.Source, size)
		}
		return nil, classify("reading "+a.Source, err)
	}
	var one [1]byte
	if n, err := body.Read(one[:]); n > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return nil, errcode.Permanentf(errcode.ChecksumMismatch, "reading %s: longer than its %d bytes", a.Source, size)
		}
		return nil, classify("reading "+a.Source, err)
	}
	return [][]byte{buf}, nil
}

// withPayloadSHA256 hands the request signer the payload's sha256, known
// already, so that the SDK does not hash the payload again. Over plain HTTP
// the SDK signs the payload, and hashes it for that (docs/BENCHMARKS.md,
// workload 1: as much CPU as the exporter's own verification of the
// artifact). Over HTTPS it switches to a trailing checksum and an unsigned
// payload as before: the value set here is then replaced.
func withPayloadSHA256(hexSum string) func(*s3.Options) {
	hexSum = strings.ToLower(hexSum)
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("KnownPayloadSHA256",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hexSum), in)
				}), middleware.Before)
		})
	}
}

// putBuffered sends one PutObject of buf with options po (putChunks).
func putBuffered(ctx context.Context, cl *s3.Client, in *s3.PutObjectInput, po putOptions, buf []byte, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return putChunks(ctx, cl, in, po, [][]byte{buf}, optFns...)
}

// putChunks sends one PutObject of the bytes of chunks, in order, with
// options po. A destination that answers that it requires Content-MD5 or a
// checksum (AWS S3 on a bucket with Object Lock when the SDK computes
// checksums only where required) gets the same request again with
// Content-MD5: the body is in memory, so this costs a hash of a small body,
// no copy. po.Checksum sends it from the first request on.
func putChunks(ctx context.Context, cl *s3.Client, in *s3.PutObjectInput, po putOptions, chunks [][]byte, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	po.applyPut(in)
	if po.Checksum {
		in.ContentMD5 = aws.String(contentMD5(chunks...))
	}
	in.Body = iox.NewChunksReader(chunks)
	out, err := cl.PutObject(ctx, in, optFns...)
	if err == nil || in.ContentMD5 != nil || !needsChecksum(err) {
		return out, err
	}
	if po.ChecksumNeeded != nil {
		po.ChecksumNeeded()
	}
	in.ContentMD5 = aws.String(contentMD5(chunks...))
	in.Body = iox.NewChunksReader(chunks)
	return cl.PutObject(ctx, in, optFns...)
}

// contentMD5 is the Content-MD5 header of the bytes of bs, in order: their
// MD5, base64-encoded.
func contentMD5(bs ...[]byte) string {
	h := md5.New()
	for _, b := range bs {
		h.Write(b)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// needsChecksum reports an answer saying the request needs Content-MD5 or
// a checksum header: AWS S3's InvalidRequest ("Content-MD5 OR
// x-amz-checksum- HTTP header is required for Put Object requests with
// Object Lock parameters"), versitygw's InvalidRequest ("Missing required
// header for this request: Content-MD5 OR x-amz-checksum-*") and MinIO's
// MissingContentMD5.
func needsChecksum(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "MissingContentMD5":
		return true
	case "InvalidRequest":
		msg := strings.ToLower(api.ErrorMessage())
		return strings.Contains(msg, "content-md5") && strings.Contains(msg, "required")
	}
	return false
}
