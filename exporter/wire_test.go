package exporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// wireServer records what reaches it, request by request and connection by
// connection, and answers with answer.
type wireServer struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []seenRequest
	uris  []string
	conns atomic.Int64
}

func newWireServer(t *testing.T, tlsToo bool, answer func(w http.ResponseWriter)) *wireServer {
	t.Helper()
	s := &wireServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, seenRequest{method: r.Method, path: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: b})
		s.uris = append(s.uris, r.RequestURI+" "+r.Proto+" "+r.Host)
		s.mu.Unlock()
		answer(w)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	if tlsToo {
		s.EnableHTTP2 = true // offered: the wire must still speak HTTP/1.1
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *wireServer) requests() ([]seenRequest, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...), append([]string(nil), s.uris...)
}

// wireClient is an S3 client whose HTTP client is the SDK's buildable one
// (so its direct PUTs go on the wire), for srv.
func wireClient(t *testing.T, srv *wireServer, tweak func(*http.Transport)) *s3.Client {
	t.Helper()
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if srv.TLS != nil {
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			tr.TLSClientConfig.RootCAs = pool
		}
		tr.Proxy = nil
		if tweak != nil {
			tweak(tr)
		}
	})
	return s3.New(s3.Options{
		Region: "eu-west-3", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), HTTPClient: hc,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	})
}

func putDirect(t *testing.T, cl *s3.Client, key string, body []byte) (string, bool, error) {
	t.Helper()
	sum := sha256.Sum256(body)
	in := &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key), ContentLength: aws.Int64(int64(len(body)))}
	po := fullOptions()
	po.applyPut(in)
	half := len(body) / 2
	return directPut(context.Background(), cl, in, [][]byte{body[:half], body[half:]}, hex.EncodeToString(sum[:]))
}

// TestWireSendsWhatNetHTTPSends: the same signed request, sent on the wire
// and by net/http, reaches the server the same: request line (escaped key,
// query), Host, every header, the body.
func TestWireSendsWhatNetHTTPSends(t *testing.T) {
	srv := newWireServer(t, false, func(w http.ResponseWriter) { w.Header().Set("ETag", `"e"`) })
	cl := wireClient(t, srv, nil)
	tgt := targetOf(context.Background(), cl, "bkt")
	if tgt.wire == nil {
		t.Fatal("a client with the SDK's HTTP client has no wire")
	}
	body := bytes.Repeat([]byte("a,b\n"), 3000)
	key := "out put/compliance/prowler-output-1+2-20250805120000_cis_5.0 (aws)%é.csv"
	newReq := func() *http.Request {
		in := &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key), ContentLength: aws.Int64(int64(len(body)))}
		po := fullOptions()
		po.applyPut(in)
		u := tgt.url(key)
		req := (&http.Request{Method: http.MethodPut, URL: u, Host: u.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))})
		directHeaders(req.Header, in, "0123", "abc=")
		req.Header["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=00"}
		req.Header["X-Amz-Date"] = []string{"20261207T000000Z"}
		return req
	}
	if !tgt.wire.usable(newReq()) {
		t.Fatal("a plain request is not usable on the wire")
	}
	resp, _, err := tgt.wire.do(context.Background(), newReq(), [][]byte{body[:5], body[5:]})
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("ETag") != `"e"` {
		t.Fatalf("wire: %v %v", resp, err)
	}
	resp2, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	reqs, uris := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if uris[0] != uris[1] {
		t.Errorf("request lines: wire %q, net/http %q", uris[0], uris[1])
	}
	wire, std := reqs[0], reqs[1]
	if !bytes.Equal(wire.body, body) || !bytes.Equal(std.body, body) {
		t.Error("bodies differ")
	}
	for name := range merged(wire.header, std.header) {
		if name == "Accept-Encoding" { // net/http's own, for answers it would decompress
			continue
		}
		if w, s := wire.header.Values(name), std.header.Values(name); strings.Join(w, "\n") != strings.Join(s, "\n") {
			t.Errorf("header %s: wire %q, net/http %q", name, w, s)
		}
	}
}

// TestWireKeepsConnectionsAlive: direct PUTs through a client of
// NewClients share one kept-alive connection; one the server closed is
// replaced (the PUT is sent again on a new connection); one the server
// answers with Connection: close is not kept.
func TestWireKeepsConnectionsAlive(t *testing.T) {
	var closeNext atomic.Bool
	srv := newWireServer(t, false, func(w http.ResponseWriter) {
		if closeNext.Swap(false) {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("ETag", `"e"`)
	})
	cl := wireClient(t, srv, nil)
	for i := range 10 {
		if etag, handled, err := putDirect(t, cl, "k.csv", []byte("a,b\n1,2\n")); err != nil || !handled || etag != `"e"` {
			t.Fatalf("put %d: %q %v %v", i, etag, handled, err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("10 PUTs in a row took %d connections, want 1", n)
	}
	srv.CloseClientConnections()
	if _, handled, err := putDirect(t, cl, "k.csv", []byte("x")); err != nil || !handled {
		t.Fatalf("put after the server closed the connection: %v %v", handled, err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want a second one after the server closed the first", n)
	}
	closeNext.Store(true)
	for range 2 {
		if _, _, err := putDirect(t, cl, "k.csv", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.conns.Load(); n != 3 {
		t.Fatalf("%d connections, want a third after an answer with Connection: close", n)
	}
	if reqs, _ := srv.requests(); len(reqs) != 13 {
		t.Fatalf("%d requests reached the server, want 13 (nothing sent twice)", len(reqs))
	}
}

// TestWireSpeaksHTTP1OverTLS: over https the wire verifies the server with
// the transport's TLS configuration (AWS_CA_BUNDLE's roots) and asks for
// HTTP/1.1 even where the server offers HTTP/2.
func TestWireSpeaksHTTP1OverTLS(t *testing.T) {
	srv := newWireServer(t, true, func(w http.ResponseWriter) { w.Header().Set("ETag", `"e"`) })
	cl := wireClient(t, srv, nil)
	for range 3 {
		if etag, handled, err := putDirect(t, cl, "k.csv", []byte("secret bytes")); err != nil || !handled || etag != `"e"` {
			t.Fatalf("put over TLS: %q %v %v", etag, handled, err)
		}
	}
	reqs, uris := srv.requests()
	if len(reqs) != 3 || !strings.Contains(uris[0], " HTTP/1.1 ") || srv.conns.Load() != 1 {
		t.Fatalf("requests %v over %d connections", uris, srv.conns.Load())
	}
	// Without the server's root the handshake fails, and the SDK's
	// request (which fails the same way) reports it.
	untrusted := wireClient(t, srv, func(tr *http.Transport) { tr.TLSClientConfig.RootCAs = x509.NewCertPool() })
	if _, _, err := putDirect(t, untrusted, "k.csv", []byte("x")); err != nil {
		t.Fatalf("a failed handshake: %v, want it left to the SDK", err)
	}
	if reqs, _ := srv.requests(); len(reqs) != 3 {
		t.Fatalf("%d requests reached the server through an unverified connection", len(reqs))
	}
}

// TestWireLeavesToNetHTTPWhatItWouldNotSendAsIs: a proxy for the URL, or a
// header value with a line break (metadata is the event's), goes through
// net/http, which uses the proxy or refuses the value.
func TestWireLeavesToNetHTTPWhatItWouldNotSendAsIs(t *testing.T) {
	srv := newWireServer(t, false, func(w http.ResponseWriter) {})
	proxied := wireClient(t, srv, func(tr *http.Transport) {
		tr.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("http://proxy.invalid:3128") }
	})
	req := &http.Request{Method: http.MethodPut, URL: &url.URL{Scheme: "http", Host: "h", Path: "/b/k"}, Host: "h", Header: http.Header{}}
	if w := targetOf(context.Background(), proxied, "bkt").wire; w == nil || w.usable(req) {
		t.Fatal("a request the transport would send through a proxy is usable on the wire")
	}
	w := targetOf(context.Background(), wireClient(t, srv, nil), "bkt").wire
	for _, h := range []http.Header{{"X-Amz-Meta-A": {"v\r\nX-Injected: 1"}}, {"X-Amz-Meta-A": {"v\n"}}, {"Bad Name": {"v"}}} {
		req.Header = h
		if w.usable(req) {
			t.Errorf("header %q is usable on the wire", h)
		}
	}
	req.Header = http.Header{"X-Amz-Meta-A": {"tab\tand é are fine"}}
	if !w.usable(req) {
		t.Error("a valid header is not usable on the wire")
	}
}

// TestWireIdleConnectionsAreBounded: the pool keeps at most the transport's
// idle connections per host, and closes those idle past its idle timeout.
func TestWireIdleConnectionsAreBounded(t *testing.T) {
	srv := newWireServer(t, false, func(w http.ResponseWriter) {})
	cl := wireClient(t, srv, func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 2; tr.IdleConnTimeout = 50 * time.Millisecond })
	w := targetOf(context.Background(), cl, "bkt").wire
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := putDirect(t, cl, "k.csv", []byte("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	w.mu.Lock()
	kept := w.count
	w.mu.Unlock()
	if kept > 2 {
		t.Fatalf("%d idle connections kept, want at most 2", kept)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		kept = w.count
		w.mu.Unlock()
		if kept == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections still kept past the idle timeout", kept)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
