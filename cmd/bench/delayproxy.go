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
	if err := fs.Parse(args); err != nil {
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
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(*delay)
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

// startDelayProxy runs the delayproxy subcommand as a child process in front
// of the S3 server and returns it and its URL.
func (s *stack) startDelayProxy(delay time.Duration) (*child, string, error) {
	return startURLChild(s.self, "delayproxy", "http://", "delayproxy", "-target", s.s3.Endpoint(), "-delay", delay.String())
}
