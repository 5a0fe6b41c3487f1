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
)

// putSmall uploads an artifact of known size below the multipart threshold
// with one PutObject, as the transfer manager would, without its per-upload
// client and middleware (docs/BENCHMARKS.md, workload 1: most artifacts of a
// scan are this small). The body is read into a buffer of exactly its size,
// and to its end, so that the source's size and sha256 checks have run
// before anything is sent.
func putSmall(ctx context.Context, cl *s3.Client, bucket string, po putOptions, a event.Artifact, key string, size int64, body io.Reader) (*event.ObjectRecord, *errcode.Error) {
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
	in := &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(buf),
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
