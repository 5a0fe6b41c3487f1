package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/testutil"
)

// Faults is what a FaultProxy injects. Rates are shares of requests (0..1),
// drawn independently per request in this order: error, reset, slow.
type Faults struct {
	// ErrorRate answers 503 SlowDown without forwarding.
	ErrorRate float64
	// ResetRate closes the connection without answering.
	ResetRate float64
	// SlowRate delays the request by SlowDelay before forwarding it.
	SlowRate  float64
	SlowDelay time.Duration
	// BytesPerSecond, when > 0, throttles every request body to that rate
	// (to make an upload last long enough to interrupt it).
	BytesPerSecond int64
	// PathPrefix, when set, limits the faults to requests whose path starts
	// with it (path-style: "/<bucket>" breaks one bucket only).
	PathPrefix string
}

// FaultStats counts what a FaultProxy did.
type FaultStats struct {
	Requests, Errors, Resets, Slowed int64
	// Delayed counts the requests held by SetBucketDelay.
	Delayed int64
	// Broken counts the answers BreakBodies cut short.
	Broken int64
}

// FaultProxy is an HTTP reverse proxy in front of an S3 server that injects
// S3 brown-outs: 503 SlowDown answers, connection resets and slow responses.
// It keeps the client's Host header so SigV4 signatures stay valid.
//
// It also restores one answer of AWS S3 that versitygw v1.8.0 lacks: an
// UploadPart that arrives after its upload was aborted gets 404 NoSuchUpload
// (versitygw accepts it and re-creates the upload). Without that, a part
// still crossing a throttled proxy when the exporter aborts would leave an
// upload open that real S3 would not. A part already on its way to the
// server when the abort arrives holds the abort back until it is answered
// (uploadLock), so the abort is always the last word, as on S3.
type FaultProxy struct {
	aborted sync.Map // upload id -> struct{}
	uploads sync.Map // upload id -> *sync.RWMutex (uploadLock)
	// intercept and log: see Intercept and Requests.
	hookMu    sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool
	log       []ProxiedRequest
	delays    sync.Map // bucket -> *bucketDelay
	breaks    sync.Map // path -> *bodyBreak (BreakBodies)
	srv       *httptest.Server
	mu        sync.Mutex
	faults    Faults
	rng       *rand.Rand // guarded by mu; seeded by Seed(t)
	stats     struct{ requests, errors, resets, slowed, delayed, broken atomic.Int64 }
}

// draw returns the next number in [0, 1) of the proxy's seeded source.
func (p *FaultProxy) draw() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64()
}

// NewFaultProxy starts a proxy to target (an http URL); it stops at the end of
// the test.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("fault proxy target: %v", err)
	}
	// Seeded from the test, so that a brown-out's draws can be replayed
	// (the requests they fall on depend on the run's timing).
	p := &FaultProxy{rng: testutil.Rand(t)}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.stats.requests.Add(1)
		p.hookMu.Lock()
		p.log = append(p.log, ProxiedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
		hook := p.intercept
		p.hookMu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		if d, ok := p.delays.Load(bucketOf(r.URL.Path)); ok {
			p.stats.delayed.Add(1)
			if !d.(*bucketDelay).hold(r) {
				// Never an empty 200: drop the connection.
				panic(http.ErrAbortHandler)
			}
		}
		f := p.Faults()
		if f.PathPrefix != "" && !strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			f = Faults{}
		}
		switch {
		case f.ErrorRate > 0 && p.draw() < f.ErrorRate:
			p.stats.errors.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		case f.ResetRate > 0 && p.draw() < f.ResetRate:
			p.stats.resets.Add(1)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case f.SlowRate > 0 && p.draw() < f.SlowRate:
			p.stats.slowed.Add(1)
			time.Sleep(f.SlowDelay)
		}
		if f.BytesPerSecond > 0 && r.Body != nil {
			r.Body = &throttled{r: r.Body, rate: f.BytesPerSecond, start: time.Now()}
		}
		uploadID := r.URL.Query().Get("uploadId")
		if uploadID != "" && r.Method == http.MethodPut {
			// Read the whole part first, then see whether its upload
			// was aborted meanwhile.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			l := p.uploadLock(uploadID)
			l.RLock()
			defer l.RUnlock()
			if _, gone := p.aborted.Load(uploadID); gone {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>`)
				return
			}
			// Hold the lock until the server has answered, even if the
			// client gives up meanwhile (a shutdown cancels its parts,
			// then aborts): the part is already on its way, and an abort
			// let through before the server finishes it would be undone
			// by it. (With a Done channel of its own, the context also
			// keeps ReverseProxy from cancelling on the client's close.)
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if uploadID != "" && r.Method == http.MethodDelete {
			p.aborted.Store(uploadID, struct{}{})
			// Wait for the parts being forwarded: versitygw would re-create
			// the upload for a part it finishes after the abort.
			l := p.uploadLock(uploadID)
			l.Lock()
			defer l.Unlock()
		}
		if r.Method == http.MethodGet {
			if b, ok := p.breaks.Load(r.URL.Path); ok && b.(*bodyBreak).take() {
				w = &breakingWriter{ResponseWriter: w, left: b.(*bodyBreak).after, broken: &p.stats.broken}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// uploadLock is the lock of one multipart upload: parts forward under its
// read side, an abort under its write side.
func (p *FaultProxy) uploadLock(id string) *sync.RWMutex {
	l, _ := p.uploads.LoadOrStore(id, &sync.RWMutex{})
	return l.(*sync.RWMutex)
}

// ProxiedRequest is a request as the proxy received it (before any fault).
type ProxiedRequest struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
}

// SignedBy is the access key ID in the request's SigV4 Authorization header.
func (r ProxiedRequest) SignedBy() string { return testutil.SignedBy(r.Header) }

// Requests returns every request received so far, in order.
func (p *FaultProxy) Requests() []ProxiedRequest {
	p.hookMu.Lock()
	defer p.hookMu.Unlock()
	return append([]ProxiedRequest(nil), p.log...)
}

// Intercept sets a function that sees each request first (after it is
// recorded, before any fault); when it returns true it has answered and the
// request goes no further. Tests use it to answer as AWS would where
// versitygw does not (ExpiredToken, a 403 with x-amz-bucket-region). nil
// removes it.
func (p *FaultProxy) Intercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.hookMu.Lock()
	p.intercept = f
	p.hookMu.Unlock()
}

// WriteS3Error answers an S3 error, as S3 does.
func WriteS3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>`+msg+`</Message></Error>`)
}

// URL is the proxy's address; use it as the S3 endpoint.
func (p *FaultProxy) URL() string { return p.srv.URL }

// SetFaults changes what is injected from the next request on.
func (p *FaultProxy) SetFaults(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Faults returns the current faults.
func (p *FaultProxy) Faults() Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// Stats returns what the proxy did so far.
func (p *FaultProxy) Stats() FaultStats {
	return FaultStats{Requests: p.stats.requests.Load(), Errors: p.stats.errors.Load(),
		Resets: p.stats.resets.Load(), Slowed: p.stats.slowed.Load(), Delayed: p.stats.delayed.Load(), Broken: p.stats.broken.Load()}
}

// BlackHole is a bucket delay that never ends: the proxy reads the request
// and never answers, as a dead network path or a hung server would.
const BlackHole time.Duration = -1

// SetBucketDelay holds every request to bucket (path-style addressing) for d
// before forwarding it, or for ever with BlackHole; 0 removes the delay.
// Requests held under the previous setting of bucket are released at once
// (forwarded; a black hole's are dropped), so a test can hold a bucket with
// a long delay and let it go. A held request whose client gives up is
// dropped.
func (p *FaultProxy) SetBucketDelay(bucket string, d time.Duration) {
	var old any
	if d == 0 {
		old, _ = p.delays.LoadAndDelete(bucket)
	} else {
		old, _ = p.delays.Swap(bucket, &bucketDelay{d: d, release: make(chan struct{})})
	}
	if old != nil {
		close(old.(*bucketDelay).release)
	}
}

type bucketDelay struct {
	d       time.Duration
	release chan struct{} // closed when the setting changes
}

// bucketOf is the bucket of a path-style request path.
func bucketOf(path string) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return b
}

// hold waits out the delay (for ever: BlackHole), until the setting changes
// or until the client gives up; it reports whether to forward the request.
// A black hole reads the body, as a server that accepted the request would,
// so that the client waits for response headers.
func (b *bucketDelay) hold(r *http.Request) bool {
	var timeout <-chan time.Time
	if b.d == BlackHole {
		_, _ = io.Copy(io.Discard, r.Body)
	} else {
		t := time.NewTimer(b.d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-b.release:
		return b.d != BlackHole
	case <-r.Context().Done():
		return false
	}
}

type throttled struct {
	r     io.ReadCloser
	rate  int64
	start time.Time
	n     int64
}

func (t *throttled) Read(p []byte) (int, error) {
	if max := t.rate / 10; int64(len(p)) > max && max > 0 {
		p = p[:max]
	}
	n, err := t.r.Read(p)
	t.n += int64(n)
	want := time.Duration(float64(t.n) / float64(t.rate) * float64(time.Second))
	if d := want - time.Since(t.start); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

func (t *throttled) Close() error { return t.r.Close() }

// BreakBodies cuts the body of the next times GET answers for path
// ("/<bucket>/<key>", path-style) after after bytes: the connection drops
// mid-body, as a network fault would.
func (p *FaultProxy) BreakBodies(path string, after int64, times int) {
	b := &bodyBreak{after: after}
	b.left.Store(int64(times))
	p.breaks.Store(path, b)
}

type bodyBreak struct {
	after int64
	left  atomic.Int64
}

func (b *bodyBreak) take() bool { return b.left.Add(-1) >= 0 }

// breakingWriter fails its writes past left bytes: ReverseProxy then aborts
// the answer (http.ErrAbortHandler), and the client reads a body that stops
// short of its Content-Length.
type breakingWriter struct {
	http.ResponseWriter
	left   int64
	broken *atomic.Int64
}

func (w *breakingWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > w.left {
		n, _ := w.ResponseWriter.Write(b[:w.left])
		w.left = 0
		w.broken.Add(1)
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		return n, errBodyBroken
	}
	w.left -= int64(len(b))
	return w.ResponseWriter.Write(b)
}

func (w *breakingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

var errBodyBroken = errors.New("fault proxy: body broken on purpose")
