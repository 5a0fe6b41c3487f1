package exporter

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"golang.org/x/net/http/httpguts"
)

// wire sends the direct PUTs (fastput.go) over HTTP/1.1 connections of its
// own, dialed as the S3 client's transport dials them (its DialContext, so
// the stall deadlines of stall.go, and its TLS configuration, so
// AWS_CA_BUNDLE) and kept alive in a pool of its own. A request is one write
// of its head and body and one read of the answer, on the calling goroutine.
// net/http spends, for the same request, a goroutine to dial, two per
// connection (its read and write loops), channels between them and header
// maps both ways: measured on loopback against a server closing every
// connection, 115 µs of CPU per 20 KB PUT against 70 (docs/BENCHMARKS.md,
// workload 1).
//
// It sends only what net/http would send for the same request
// (TestWireSendsWhatNetHTTPSends), and only when net/http would send it
// directly: a transport with a proxy for the URL, its own TLS dialer, or a
// header value net/http would refuse goes through net/http (wireOf, send).
type wire struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	tls         *tls.Config // nil: the defaults
	respTimeout time.Duration
	idleTimeout time.Duration
	maxIdle     int // per host
	maxIdleAll  int
	// proxy is the transport's (it reads the environment): a request it
	// gives a proxy for goes through net/http.
	proxy func(*http.Request) (*url.URL, error)

	mu    sync.Mutex
	idle  map[string][]*wireConn // by scheme and host, most recent last
	count int
	sweep *time.Timer
}

type wireConn struct {
	net.Conn
	br   *bufio.Reader
	used time.Time // when it was last put back
}

// wireMaxAnswer is the most of an answer's body read: a success has none, an
// error a short XML document. A longer one closes the connection.
const wireMaxAnswer = 64 << 10

// wireHeadMax bounds the request bodies copied after their head into one
// buffer, so that a small request leaves in one write.
const wireHeadMax = 64 << 10

var wireBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// wires holds one wire per HTTP client (clients share their SDK
// configuration's, so there is one in practice).
var wires = struct {
	sync.Mutex
	m map[*awshttp.BuildableClient]*wire
}{m: map[*awshttp.BuildableClient]*wire{}}

// wireOf returns the wire of an S3 client's HTTP client, or nil when its
// requests must go through net/http: a client that is not the SDK's
// buildable one (tests, callers' own), or whose transport dials TLS itself.
func wireOf(hc any) *wire {
	bc, ok := hc.(*awshttp.BuildableClient)
	if !ok {
		return nil
	}
	wires.Lock()
	defer wires.Unlock()
	if w, ok := wires.m[bc]; ok {
		return w
	}
	var w *wire
	if tr := bc.GetTransport(); tr.DialTLSContext == nil && tr.DialTLS == nil && tr.Dial == nil {
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		}
		w = &wire{dial: dial, tls: tr.TLSClientConfig, respTimeout: tr.ResponseHeaderTimeout,
			idleTimeout: tr.IdleConnTimeout, maxIdle: tr.MaxIdleConnsPerHost, maxIdleAll: tr.MaxIdleConns,
			idle: map[string][]*wireConn{}}
		if w.idleTimeout <= 0 {
			w.idleTimeout = 90 * time.Second
		}
		if w.maxIdle <= 0 {
			w.maxIdle = http.DefaultMaxIdleConnsPerHost
		}
		if w.maxIdleAll <= 0 {
			w.maxIdleAll = 100
		}
		w.maxIdleAll = max(w.maxIdleAll, w.maxIdle)
		w.proxy = tr.Proxy
	}
	if len(wires.m) >= maxDirectTargets {
		wires.m = map[*awshttp.BuildableClient]*wire{}
	}
	wires.m[bc] = w
	return w
}

// usable reports whether req may go on the wire: no proxy for its URL, and
// headers net/http would send as they are.
func (w *wire) usable(req *http.Request) bool {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return false
	}
	if w.proxy != nil {
		if p, err := w.proxy(req); err != nil || p != nil {
			return false
		}
	}
	// The checks net/http makes before it sends a request (a line break in
	// a metadata value, which comes from the event, would add a header).
	for name, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(name) {
			return false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return httpguts.ValidHostHeader(req.Host)
}

// do sends req, whose body is chunks (size req.ContentLength), and returns
// the answer with its body read (at most wireMaxAnswer). A connection from
// the pool that turns out closed (the server dropped it while idle) is
// replaced by a new one once: a PUT of the same bytes is idempotent, and
// net/http does the same.
func (w *wire) do(ctx context.Context, req *http.Request, chunks [][]byte) (*http.Response, []byte, error) {
	key := req.URL.Scheme + "://" + req.URL.Host
	for try := 0; ; try++ {
		c, reused := w.get(key)
		if c == nil {
			var err error
			if c, err = w.connect(ctx, req); err != nil {
				return nil, nil, err
			}
		}
		resp, body, keep, err := w.roundTrip(ctx, c, req, chunks)
		if err == nil {
			if keep {
				w.put(key, c)
			} else {
				c.close()
			}
			return resp, body, nil
		}
		c.close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if !reused || try > 0 || isNoResponse(err) {
			return nil, nil, err
		}
	}
}

// connect dials req's host as the transport would, with TLS for https.
func (w *wire) connect(ctx context.Context, req *http.Request) (*wireConn, error) {
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
	}
	conn, err := w.dial(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if req.URL.Scheme == "https" {
		cfg := &tls.Config{}
		if w.tls != nil {
			cfg = w.tls.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	return &wireConn{Conn: conn, br: bufio.NewReaderSize(conn, 4<<10)}, nil
}

func (c *wireConn) close() { _ = c.Conn.Close() }

// roundTrip writes req on c and reads its answer. keep reports whether c
// may carry another request.
func (w *wire) roundTrip(ctx context.Context, c *wireConn, req *http.Request, chunks [][]byte) (resp *http.Response, body []byte, keep bool, err error) {
	// The context's end breaks the connection's reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	bp := wireBufs.Get().(*[]byte)
	head := appendHead((*bp)[:0], req)
	size := 0
	for _, ch := range chunks {
		size += len(ch)
	}
	if int64(size) != req.ContentLength {
		wireBufs.Put(bp)
		return nil, nil, false, fmt.Errorf("wire: body of %d bytes, Content-Length %d", size, req.ContentLength)
	}
	if len(head)+size <= wireHeadMax {
		for _, ch := range chunks {
			head = append(head, ch...)
		}
		chunks = nil
	}
	_, err = c.Write(head)
	*bp = head[:0]
	wireBufs.Put(bp)
	for _, ch := range chunks {
		if err != nil {
			break
		}
		_, err = c.Write(ch)
	}
	if err != nil {
		return nil, nil, false, err
	}
	if w.respTimeout > 0 {
		if err := c.SetReadDeadline(time.Now().Add(w.respTimeout)); err != nil {
			return nil, nil, false, err
		}
	}
	for range 5 { // informational answers (100 Continue unasked) come first
		if resp, err = http.ReadResponse(c.br, req); err != nil || resp.StatusCode >= 200 {
			break
		}
	}
	if err != nil {
		return nil, nil, false, err // past the response timeout: os.ErrDeadlineExceeded, isNoResponse
	}
	if resp.StatusCode < 200 {
		return nil, nil, false, fmt.Errorf("wire: %d informational answers in a row", 5)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, wireMaxAnswer+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, nil, false, err
	}
	keep = !resp.Close && len(body) <= wireMaxAnswer && c.br.Buffered() == 0
	if len(body) > wireMaxAnswer {
		body = body[:wireMaxAnswer]
	}
	// Kept only if the context's end has not touched its deadlines.
	if keep && stop() {
		keep = c.SetDeadline(time.Time{}) == nil
	} else {
		keep = false
	}
	return resp, body, keep, nil
}

// appendHead appends req's request line and header, as net/http writes them
// for an HTTP/1.1 request with a known length (Host first, then the
// header; the body's length from ContentLength).
func appendHead(b []byte, req *http.Request) []byte {
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	b = append(b, host...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, req.ContentLength, 10)
	b = append(b, "\r\n"...)
	for name, vs := range req.Header {
		if name == "Host" || name == "Content-Length" || name == "Transfer-Encoding" || name == "Connection" {
			continue
		}
		for _, v := range vs {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// get takes the most recently used idle connection of key, closing those
// idle for too long.
func (w *wire) get(key string) (*wireConn, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cs := w.idle[key]
	for len(cs) > 0 {
		c := cs[len(cs)-1]
		cs = cs[:len(cs)-1]
		w.count--
		if time.Since(c.used) < w.idleTimeout {
			w.setIdle(key, cs)
			return c, true
		}
		go c.close()
	}
	w.setIdle(key, cs)
	return nil, false
}

// put keeps c for the next request to key, within the pool's bounds.
func (w *wire) put(key string, c *wireConn) {
	c.used = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.idle[key]) >= w.maxIdle || w.count >= w.maxIdleAll {
		go c.close()
		return
	}
	w.idle[key] = append(w.idle[key], c)
	w.count++
	if w.sweep == nil {
		w.sweep = time.AfterFunc(w.idleTimeout, w.closeIdle)
	}
}

func (w *wire) setIdle(key string, cs []*wireConn) {
	if len(cs) == 0 {
		delete(w.idle, key)
		return
	}
	w.idle[key] = cs
}

// closeIdle closes the connections idle for the idle timeout, and comes
// back while some are kept.
func (w *wire) closeIdle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, cs := range w.idle {
		kept := cs[:0]
		for _, c := range cs {
			if time.Since(c.used) >= w.idleTimeout {
				go c.close()
				w.count--
				continue
			}
			kept = append(kept, c)
		}
		w.setIdle(key, kept)
	}
	w.sweep = nil
	if w.count > 0 {
		w.sweep = time.AfterFunc(w.idleTimeout/2, w.closeIdle)
	}
}
