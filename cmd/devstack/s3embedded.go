package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// The dev stack is the only user of the in-process gateway: it lives here, not
// in testutil, so that no unit-test binary links versitygw (with kafka-go,
// fiber and a vault client behind it). Tests run versitygw as a process
// (s3test.StartS3).

// s3ReadyTimeout bounds the wait for the gateway to answer.
const s3ReadyTimeout = 30 * time.Second

// runEmbeddedS3 serves S3 from this process with versitygw's embedgw package
// and its posix backend. dir holds data/ (one directory
// per bucket), iam/ (users made through the admin API, which is served on the
// same address) and access.log. addr is host:port, e.g. "127.0.0.1:7070".
// access and secret are the root credentials; the region is us-east-1.
//
// It returns the endpoint (http://addr) once the gateway answers, and the
// gateway stops when ctx is done.
//
// Caveats of embedgw: only one gateway may run per process, and the posix
// backend changes the process's working directory to dir/data (it resolves
// object paths relative to it), so use absolute paths after calling this.
func runEmbeddedS3(ctx context.Context, dir, addr, access, secret string) (string, error) {
	// Checked before the posix backend is made: making a second one would
	// move the working directory under the running gateway's feet.
	if !embeddedRunning.CompareAndSwap(false, true) {
		return "", errors.New("embedded s3: a gateway already runs in this process")
	}
	endpoint, err := serveEmbeddedS3(ctx, dir, addr, access, secret)
	if err != nil {
		embeddedRunning.Store(false)
	}
	return endpoint, err
}

// embeddedRunning mirrors embedgw's own one-gateway-per-process rule.
var embeddedRunning atomic.Bool

func serveEmbeddedS3(ctx context.Context, dir, addr, access, secret string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("embedded s3: %w", err)
	}
	dataDir, iamDir := filepath.Join(dir, "data"), filepath.Join(dir, "iam")
	for _, d := range []string{dataDir, iamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("embedded s3: %w", err)
		}
	}
	opts := posix.PosixOpts{CopyObjectThreshold: 5 << 30}
	var ms meta.MetadataStorer = meta.XattrMeta{}
	if !supportsXattr(dataDir) {
		sidecar := filepath.Join(dir, "meta")
		if err := os.MkdirAll(sidecar, 0o755); err != nil {
			return "", fmt.Errorf("embedded s3: %w", err)
		}
		sc, err := meta.NewSideCar(sidecar)
		if err != nil {
			return "", fmt.Errorf("embedded s3: sidecar metadata: %w", err)
		}
		ms, opts.SideCarDir = sc, sidecar
	}
	be, err := posix.New(dataDir, ms, opts)
	if err != nil {
		return "", fmt.Errorf("embedded s3: posix backend: %w", err)
	}
	cfg := &embedgw.Config{
		RootUserAccess:    access,
		RootUserSecret:    secret,
		Region:            demoRegion,
		Ports:             []string{addr},
		MaxConnections:    10000,
		MaxRequests:       5000,
		MultipartMaxParts: 10000,
		Quiet:             true,
		IAMDir:            iamDir,
		AccessLog:         filepath.Join(dir, "access.log"),
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		err := embedgw.RunVersityGW(runCtx, be, cfg)
		be.Shutdown()
		embeddedRunning.Store(false)
		done <- err
	}()

	endpoint := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(s3ReadyTimeout)
	for {
		select {
		case err := <-done:
			cancel()
			if err == nil {
				err = errors.New("gateway stopped")
			}
			return "", fmt.Errorf("embedded s3 on %s: %w", addr, err)
		case <-ctx.Done():
			cancel()
			<-done
			return "", fmt.Errorf("embedded s3 on %s: %w", addr, ctx.Err())
		default:
		}
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.Header.Get("Server") == "VERSITYGW" {
				// The gateway goroutine ends when ctx is done; cancel
				// is only kept to satisfy vet's lostcancel check.
				context.AfterFunc(ctx, cancel)
				return endpoint, nil
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			return "", fmt.Errorf("embedded s3 on %s: not serving after %v", addr, s3ReadyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
