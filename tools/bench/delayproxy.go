package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runDelayProxy is the delayproxy subcommand: a reverse proxy to an S3
// server that holds every request for a fixed delay before forwarding it, as
// the network to a real S3 endpoint would (a PUT to S3 from the same or a
// nearby region takes tens of milliseconds; on loopback it takes almost
// none, and a sequential uploader is then bound by CPU instead of by waiting).
// It keeps the Host header, so SigV4 signatures stay valid. It prints its URL
// and runs until SIGTERM.
func runDelayProxy(args []string) error {
	fs := flag.NewFlagSet("delayproxy", flag.ContinueOnError)
	target := fs.String("target", "", "S3 server URL")
	delay := fs.Duration("delay", 20*time.Millisecond, "added to every request")
	bucketList := fs.String("buckets", "", "per-bucket delays instead of -delay, name=duration or name=hole (never answers), comma-separated (path-style addressing)")
	armed := fs.Bool("armed", true, "apply -buckets from the start; when false, from the first SIGUSR1 on (so that integrations can be set up first)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	buckets, err := parseBucketDelays(*bucketList)
	if err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("delayproxy: bad -target %q", *target)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport: tr,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	var on atomic.Bool
	on.Store(*armed)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			on.Store(true)
		}
	}()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := *delay
		if bd, ok := buckets[bucketOf(r.URL.Path)]; ok && on.Load() {
			d = bd
		}
		if d == blackHole {
			// Read the request, as a server that accepted it would, and
			// never answer: the client waits for response headers.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("http://" + ln.Addr().String())
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// blackHole is a bucket delay that never ends.
const blackHole time.Duration = -1

// parseBucketDelays reads "a=1.5s,b=hole".
func parseBucketDelays(list string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range strings.Split(list, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("delayproxy: -buckets: %q is not name=duration", kv)
		}
		if v == "hole" {
			out[name] = blackHole
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("delayproxy: -buckets: bad duration %q", v)
		}
		out[name] = d
	}
	return out, nil
}

// bucketOf is the bucket of a path-style request path.
func bucketOf(path string) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return b
}

// startBucketDelayProxy is startDelayProxy with per-bucket delays
// (parseBucketDelays), none for other buckets, applied from the first
// SIGUSR1 to the child on.
func (s *stack) startBucketDelayProxy(buckets string) (*child, string, error) {
	return startURLChild(s.self, "delayproxy", "http://", "delayproxy", "-target", s.s3.Endpoint(), "-delay", "0s", "-buckets", buckets, "-armed=false")
}

// startDelayProxy runs the delayproxy subcommand as a child process in front
// of the S3 server and returns it and its URL.
func (s *stack) startDelayProxy(delay time.Duration) (*child, string, error) {
	return startURLChild(s.self, "delayproxy", "http://", "delayproxy", "-target", s.s3.Endpoint(), "-delay", delay.String())
}
