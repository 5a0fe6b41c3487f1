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
		if v.failed = v.atEnd(); v.failed != nil {
			return n, v.failed
		}
	}
	return n, err
}

// atEnd checks size and sha256 once every byte went through.
func (v *verifier) atEnd() error {
	if v.size != nil && v.n != *v.size {
		return errcode.Permanentf(errcode.ChecksumMismatch, "source %s: %d bytes read, %d expected", v.src, v.n, *v.size)
	}
	if v.sum != nil {
		if got := hex.EncodeToString(v.sum.Sum(nil)); got != v.want {
			return errcode.Permanentf(errcode.ChecksumMismatch, "source %s: sha256 is %s, the event says %s", v.src, got, v.want)
		}
	}
	return nil
}

// whole runs the checks of Read over the whole content, when the reader
// below holds it in memory and nothing was read yet (Opened.Whole).
func (v *verifier) whole() ([][]byte, bool, error) {
	w, isWhole := v.rc.(wholeReader)
	if !isWhole || v.n != 0 || v.failed != nil {
		return nil, false, nil
	}
	chunks, ok, err := w.whole()
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		v.failed = err
		return nil, true, err
	}
	for _, c := range chunks {
		v.n += int64(len(c))
		if v.sum != nil {
			v.sum.Write(c)
		}
	}
	if v.size != nil && v.n > *v.size {
		v.failed = errcode.Permanentf(errcode.ChecksumMismatch, "source %s: longer than the expected %d bytes", v.src, *v.size)
	} else {
		v.failed = v.atEnd()
	}
	if v.failed != nil {
		return nil, true, v.failed
	}
	v.failed = io.EOF // read to its end: later Reads say so
	return chunks, true, nil
}

func (v *verifier) Close() error { return v.rc.Close() }
