package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func ptr(n int64) *int64 { return &n }

// nopCloser counts Close calls.
type nopCloser struct {
	io.Reader
	closed int
}

func (c *nopCloser) Close() error { c.closed++; return nil }

func wantMismatch(t *testing.T, err error) {
	t.Helper()
	var e *errcode.Error
	if !errors.As(err, &e) || e.Code != errcode.ChecksumMismatch || e.Retryable {
		t.Fatalf("error %v (%T), want a permanent ChecksumMismatch", err, err)
	}
}

func TestVerifierOK(t *testing.T) {
	data := bytes.Repeat([]byte("prowler;finding;PASS\n"), 1000)
	for name, r := range map[string]func() io.Reader{
		"plain":      func() io.Reader { return bytes.NewReader(data) },
		"one byte":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"data + EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
		"half":       func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
	} {
		for _, tc := range []struct {
			sha  string
			size *int64
		}{
			{sum(data), ptr(int64(len(data)))},
			{strings.ToUpper(sum(data)), nil},
			{"", ptr(int64(len(data)))},
			{"", nil},
		} {
			rc := &nopCloser{Reader: r()}
			v := newVerifier(rc, "test://x", tc.sha, tc.size)
			got, err := io.ReadAll(v)
			if err != nil {
				t.Fatalf("%s: ReadAll: %v", name, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s: the bytes changed", name)
			}
			if err := v.Close(); err != nil || rc.closed != 1 {
				t.Errorf("%s: Close = %v, closed %d", name, err, rc.closed)
			}
		}
	}
	// An empty artifact.
	v := newVerifier(&nopCloser{Reader: bytes.NewReader(nil)}, "test://x", sum(nil), ptr(0))
	if b, err := io.ReadAll(v); err != nil || len(b) != 0 {
		t.Errorf("empty: %q, %v", b, err)
	}
}

func TestVerifierSHA256Mismatch(t *testing.T) {
	data := []byte("the artifact's bytes")
	other := sum([]byte("something else"))
	for name, r := range map[string]io.Reader{
		"plain":      bytes.NewReader(data),
		"one byte":   iotest.OneByteReader(bytes.NewReader(data)),
		"data + EOF": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		v := newVerifier(&nopCloser{Reader: r}, "test://x", other, nil)
		// The mismatch comes from a Read, in place of the final EOF: a reader
		// of v never sees a clean end.
		var err error
		var n int
		buf := make([]byte, 4)
		for err == nil {
			var k int
			k, err = v.Read(buf)
			n += k
		}
		if err == io.EOF {
			t.Fatalf("%s: reached EOF despite the mismatch", name)
		}
		wantMismatch(t, err)
		if !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), other) {
			t.Errorf("%s: error %q does not say what differs", name, err)
		}
		// The error sticks.
		if k, err2 := v.Read(buf); k != 0 || err2 != err {
			t.Errorf("%s: a Read after the failure = %d, %v", name, k, err2)
		}
	}
}

func TestVerifierSizeMismatch(t *testing.T) {
	data := []byte("0123456789")
	for _, tc := range []struct {
		name string
		size int64
		why  string
	}{
		{"shorter than said", 11, "10 bytes read, 11 expected"},
		{"longer than said", 9, "longer than the expected 9 bytes"},
		{"empty said", 0, "longer than"},
	} {
		for rname, r := range map[string]io.Reader{
			"plain":    bytes.NewReader(data),
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
		} {
			v := newVerifier(&nopCloser{Reader: r}, "test://x", "", ptr(tc.size))
			got, err := io.ReadAll(v)
			wantMismatch(t, err)
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("%s/%s: error %q does not say %q", tc.name, rname, err, tc.why)
			}
			if int64(len(got)) > tc.size {
				t.Errorf("%s/%s: %d bytes passed a %d-byte limit", tc.name, rname, len(got), tc.size)
			}
		}
	}
	// The size is checked before the digest: a right digest of too many bytes still fails.
	v := newVerifier(&nopCloser{Reader: bytes.NewReader(data)}, "test://x", sum(data), ptr(5))
	_, err := io.ReadAll(v)
	wantMismatch(t, err)
}

func TestVerifierPassesReadErrors(t *testing.T) {
	boom := errors.New("connection lost")
	v := newVerifier(&nopCloser{Reader: iotest.ErrReader(boom)}, "test://x", sum(nil), ptr(0))
	if _, err := v.Read(make([]byte, 8)); err != boom {
		t.Errorf("Read = %v, want the reader's error", err)
	}
}
