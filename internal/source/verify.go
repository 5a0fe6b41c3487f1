package source

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strings"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// verifier checks size and sha256 as the artifact streams through it. The
// mismatch is reported by the Read that would otherwise return EOF, so an
// upload built on it fails (and is aborted) instead of completing.
type verifier struct {
	rc     io.ReadCloser
	src    string
	sum    hash.Hash
	want   string
	size   *int64
	n      int64
	failed error
}

func newVerifier(rc io.ReadCloser, src, sha string, size *int64) io.ReadCloser {
	v := &verifier{rc: rc, src: src, want: strings.ToLower(sha), size: size}
	if sha != "" {
		v.sum = sha256.New()
	}
	return v
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.failed != nil {
		return 0, v.failed
	}
	n, err := v.rc.Read(p)
	v.n += int64(n)
	if v.sum != nil {
		v.sum.Write(p[:n])
	}
	if v.size != nil && v.n > *v.size {
		v.failed = errcode.Permanentf(errcode.ChecksumMismatch, "source %s: longer than the expected %d bytes", v.src, *v.size)
		return 0, v.failed
	}
	if err == io.EOF {
		if v.size != nil && v.n != *v.size {
			v.failed = errcode.Permanentf(errcode.ChecksumMismatch, "source %s: %d bytes read, %d expected", v.src, v.n, *v.size)
			return n, v.failed
		}
		if v.sum != nil {
			if got := hex.EncodeToString(v.sum.Sum(nil)); got != v.want {
				v.failed = errcode.Permanentf(errcode.ChecksumMismatch, "source %s: sha256 is %s, the event says %s", v.src, got, v.want)
				return n, v.failed
			}
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }
