package exporter

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// ErrNoResponse marks a request that S3 did not answer within the response
// timeout: a black hole, not a blip. classify makes it a retryable Timeout;
// neither the SDK nor the exporter retries it at once.
var ErrNoResponse = errors.New("no response from S3 within the response timeout")

// withResponseTimeout makes tr fail a request whose response headers do not
// come within d of its body being sent (http.Transport.ResponseHeaderTimeout),
// and one whose body stops moving for d (a deadline on each write to the
// connection: ResponseHeaderTimeout starts only once the body is sent, and a
// server that stops reading would hold a part upload until UploadTimeout).
func withResponseTimeout(tr *http.Transport, d time.Duration) {
	if d <= 0 {
		return
	}
	tr.ResponseHeaderTimeout = d
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, timeout: d}, nil
	}
}

// stallConn fails a write that makes no progress for timeout.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = &noResponseError{err: err}
	}
	return n, err
}

// copyBufs are the buffers request bodies are copied to connections
// through (stallConn.ReadFrom).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// ReadFrom copies a request body to the connection through a pooled buffer,
// each Write under the stall deadline. net/http hands the connection the
// body behind an io.LimitedReader, which io.Copy would copy through a new
// buffer of up to 32 KiB per request (docs/BENCHMARKS.md, workload 1: a
// tenth of the exporter's allocations); a larger one also takes fewer
// writes for a larger body.
func (c *stallConn) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{c}, r, *bp) // Writer only: no ReadFrom again
}

// noResponseError is a stalled write: a net.Error that times out, and
// ErrNoResponse to errors.Is.
type noResponseError struct{ err error }

func (e *noResponseError) Error() string        { return ErrNoResponse.Error() + ": " + e.err.Error() }
func (e *noResponseError) Unwrap() error        { return e.err }
func (e *noResponseError) Is(target error) bool { return target == ErrNoResponse }
func (e *noResponseError) Timeout() bool        { return true }
func (e *noResponseError) Temporary() bool      { return false }

// isNoResponse reports whether err is a request that timed out waiting for
// S3 (as opposed to the context's deadline: UploadTimeout, shutdown).
func isNoResponse(err error) bool {
	return errors.Is(err, ErrNoResponse) || errors.Is(err, os.ErrDeadlineExceeded) ||
		strings.Contains(err.Error(), "timeout awaiting response headers")
}

// noRetryWithoutResponse tells the SDK's retryer not to retry a request that
// got no response within the response timeout.
var noRetryWithoutResponse = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if isNoResponse(err) {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})
