package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prowler-cloud/s3-exporter/testutil"
)

// Defaults of RunS3.
const (
	DefaultS3Region = "us-east-1"
	// DefaultS3AccessKey and DefaultS3SecretKey are the root (admin)
	// credentials of a test server. They are test-only values.
	DefaultS3AccessKey = "test-root"
	DefaultS3SecretKey = "test-root-secret-key"

	s3ReadyTimeout = 30 * time.Second
	s3StopTimeout  = 10 * time.Second
)

// S3Options configures RunS3. The zero value is fine.
type S3Options struct {
	// Dir holds the server's state: data/ (buckets), iam/ (users),
	// versitygw.log (its stdout and stderr) and access.log. Empty makes a
	// temporary directory that Close removes.
	Dir string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// AccessKey and SecretKey of the root account; empty means
	// DefaultS3AccessKey and DefaultS3SecretKey.
	AccessKey, SecretKey string
	// Region the server reports and checks signatures against; empty means
	// DefaultS3Region.
	Region string
	// Binary is the versitygw executable; empty means VersityGWBinary().
	Binary string
	// ExtraArgs are global versitygw flags added before the backend.
	ExtraArgs []string
}

// S3Server is a versitygw process serving S3 on 127.0.0.1 from a posix
// directory, with a file-based IAM (so users can be added) and an S3 access
// log (so requests can be counted). The admin API is served on the S3 port.
type S3Server struct {
	// AccessKey and SecretKey are the root (admin) credentials.
	AccessKey string
	SecretKey string

	region    string
	port      int
	dir       string
	removeDir bool
	bin       string
	args      []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}

	rootOnce   sync.Once
	rootClient *s3.Client
}

// RunS3 starts a versitygw server and returns once it answers HTTP. Stop it
// with Close.
func RunS3(opts S3Options) (*S3Server, error) {
	s := &S3Server{
		AccessKey: opts.AccessKey,
		SecretKey: opts.SecretKey,
		region:    opts.Region,
		port:      opts.Port,
		dir:       opts.Dir,
		bin:       opts.Binary,
	}
	if s.AccessKey == "" {
		s.AccessKey = DefaultS3AccessKey
	}
	if s.SecretKey == "" {
		s.SecretKey = DefaultS3SecretKey
	}
	if s.region == "" {
		s.region = DefaultS3Region
	}
	if s.bin == "" {
		bin, err := VersityGWBinary()
		if err != nil {
			return nil, err
		}
		s.bin = bin
	}
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "versitygw-")
		if err != nil {
			return nil, fmt.Errorf("s3 server dir: %w", err)
		}
		s.dir, s.removeDir = dir, true
	}
	for _, d := range []string{s.DataDir(), s.iamDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.cleanupDir()
			return nil, fmt.Errorf("s3 server dir: %w", err)
		}
	}
	s.args = []string{
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.region,
		"--iam-dir", s.iamDir(),
		"--access-log", s.accessLogPath(),
		"--quiet",
	}
	s.args = append(s.args, opts.ExtraArgs...)
	s.args = append(s.args, "posix")
	if !supportsXattr(s.DataDir()) {
		meta := filepath.Join(s.dir, "meta")
		if err := os.MkdirAll(meta, 0o755); err != nil {
			s.cleanupDir()
			return nil, fmt.Errorf("s3 server dir: %w", err)
		}
		s.args = append(s.args, "--sidecar", meta)
	}
	s.args = append(s.args, s.DataDir())

	pickPort := s.port == 0
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if pickPort {
			if s.port, err = testutil.FreePort(); err != nil {
				break
			}
		}
		if err = s.Start(); err == nil || !pickPort || !errors.Is(err, errExited) {
			break
		}
		// The free port may have been taken before versitygw bound it.
	}
	if err != nil {
		s.cleanupDir()
		return nil, err
	}
	return s, nil
}

// StartS3 starts a versitygw server with its state in t.TempDir(), stops it
// when the test ends, and prints the tail of its log if the test failed.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	s, err := RunS3(S3Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start s3 server: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("versitygw log (%s), last lines:\n%s", s.LogPath(), s.LogTail(40))
		}
		if err := s.Close(); err != nil {
			t.Errorf("stop s3 server: %v", err)
		}
	})
	return s
}

var errExited = errors.New("versitygw exited")

// Start runs the server process if it is not running, on the same port and
// directories as before, and waits until it answers.
func (s *S3Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("versitygw log: %w", err)
	}
	fmt.Fprintf(logf, "--- %s starting versitygw on 127.0.0.1:%d\n", time.Now().Format(time.RFC3339Nano), s.port)

	args := append([]string{"--port", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	// versitygw reads many settings from the environment (ROOT_*, VGW_*,
	// LOGFILE, ...); give it a clean one so the caller's cannot leak in.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	exited, err := StartChild(cmd, logf)
	if err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	s.cmd, s.exited = cmd, exited

	if err := s.waitReady(exited); err != nil {
		s.stopLocked()
		return fmt.Errorf("%w\nversitygw log:\n%s", err, s.LogTail(20))
	}
	return nil
}

func (s *S3Server) waitReady(exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(s3ReadyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%w before serving on port %d", errExited, s.port)
		default:
		}
		resp, err := client.Get(s.Endpoint() + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.Header.Get("Server") == "VERSITYGW" {
				return nil
			}
			// Something else answers on our port.
			return fmt.Errorf("port %d answered by %q, not versitygw", s.port, resp.Header.Get("Server"))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not serving on port %d after %v: %w", s.port, s3ReadyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop terminates the server process (SIGTERM, then SIGKILL after 10 s) and
// leaves its directories in place, so Start brings the same data back on the
// same port: an outage. Stopping a stopped server is a no-op.
func (s *S3Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *S3Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(s3StopTimeout):
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill versitygw: %w", err)
	}
	<-exited
	return nil
}

// Kill stops the server at once with SIGKILL, as a crash would.
func (s *S3Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill versitygw: %w", err)
	}
	<-exited
	return nil
}

// Running reports whether the server process is up.
func (s *S3Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Close stops the server and removes its directory if RunS3 made it.
func (s *S3Server) Close() error {
	err := s.Stop()
	s.cleanupDir()
	return err
}

func (s *S3Server) cleanupDir() {
	if s.removeDir {
		_ = os.RemoveAll(s.dir)
	}
}

// Endpoint is the server's base URL, http://127.0.0.1:port.
func (s *S3Server) Endpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port is the server's TCP port on 127.0.0.1.
func (s *S3Server) Port() int { return s.port }

// Region is the region the server reports and signs in.
func (s *S3Server) Region() string { return s.region }

// DataDir is the posix root: one directory per bucket, one file per object.
func (s *S3Server) DataDir() string { return filepath.Join(s.dir, "data") }

// LogPath is the file that gets the server's stdout and stderr.
func (s *S3Server) LogPath() string { return filepath.Join(s.dir, "versitygw.log") }

func (s *S3Server) iamDir() string        { return filepath.Join(s.dir, "iam") }
func (s *S3Server) accessLogPath() string { return filepath.Join(s.dir, "access.log") }

// LogTail returns the last n lines of the server's log.
func (s *S3Server) LogTail(n int) string {
	b, err := os.ReadFile(s.LogPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Client returns an S3 client for the given credentials, path-style, against
// this server, in its region. optFns can change anything, e.g. the region or
// the retryer.
func (s *S3Server) Client(access, secret string, optFns ...func(*s3.Options)) *s3.Client {
	o := s3.Options{
		Region:       s.region,
		BaseEndpoint: aws.String(s.Endpoint()),
		UsePathStyle: true,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(access, secret, "")),
	}
	return s3.New(o, optFns...)
}

// RootClient is the cached client with the root credentials.
func (s *S3Server) RootClient() *s3.Client {
	s.rootOnce.Do(func() { s.rootClient = s.Client(s.AccessKey, s.SecretKey) })
	return s.rootClient
}

// helperCtx bounds one helper call.
func helperCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// trimETag removes the quotes S3 puts around ETags.
func trimETag(etag *string) string {
	return strings.Trim(aws.ToString(etag), `"`)
}
