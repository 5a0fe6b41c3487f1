package exporter

import (
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
		Body:          payload,
		ContentLength: aws.Int64(size),
	}
	po.applyPut(in)
	var opts []func(*s3.Options)
	if a.SHA256 != "" {
		// The body has just been read to its end, so the source has
		// verified that this is its sha256.
		opts = append(opts, withPayloadSHA256(a.SHA256))
	}
	out, err := cl.PutObject(ctx, in, opts...)
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
// source's size and sha256 checks have run), as a request body. A source
// that holds its bytes already hands them over, checked the same way, and
// they are sent from where they are, without a copy: every artifact of a
// scan of workload 1 comes that way (docs/BENCHMARKS.md).
func readSmall(body io.Reader, size int64, a event.Artifact) (io.ReadSeeker, *errcode.Error) {
	if w, ok := body.(wholeSource); ok {
		chunks, ok, err := w.Whole()
		if ok && err != nil {
			return nil, classify("reading "+a.Source, err)
		}
		if ok {
			r := iox.NewChunksReader(chunks)
			if r.Size() != size {
				return nil, errcode.Permanentf(errcode.ChecksumMismatch, "reading %s: %d bytes, not its %d", a.Source, r.Size(), size)
			}
			return r, nil
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
	return bytes.NewReader(buf), nil
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
