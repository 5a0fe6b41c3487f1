// Package miniotest runs MinIO, an S3 server this project did not write, as
// a child process for the end-to-end tests: a second world besides versitygw
// that enforces what AWS enforces where versitygw does not (SSE-KMS with a
// named key, IAM users with policies and conditions, Object Lock).
//
// MinIO is AGPL-3.0: it is never linked, never in go.mod. Binary installs
// it with `go install github.com/minio/minio@<Version>` into the test cache
// (as s3test does for versitygw; $MINIO_BIN overrides it) and Run starts it
// as a process. Its admin API (users, policies) is called over HTTP, signed
// with SigV4 like any S3 request; the one body MinIO wants encrypted (a new
// user's secret) is sealed the way MinIO reads it (madmin's format: a salt,
// an algorithm id, a nonce, then a sio stream), with sio-go (MIT) and the
// standard library's PBKDF2. madmin-go and mc, which would do this for us,
// are AGPL-3.0 as well, and mc would be one more program to build.
package miniotest

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/secure-io/sio-go"

	"github.com/prowler-cloud/s3-exporter/testutil"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

const (
	// Module and Version are the MinIO server the tests run.
	Module  = "github.com/minio/minio"
	Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

	// Region is the region MinIO signs in and reports.
	Region = "us-east-1"
	// AccessKey and SecretKey are the root credentials: test-only values.
	AccessKey = "minio-root"
	SecretKey = "minio-root-secret-key"
	// KeyName is the one key of MinIO's built-in KMS (MINIO_KMS_SECRET_KEY):
	// SSE-KMS with this key id works; any other key id is a key the KMS
	// does not have.
	KeyName = "prowler-test-key"

	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// Binary returns the path of a MinIO executable: $MINIO_BIN if set, else
// <cache>/minio-<Version>, installed with go install the first time (a few
// minutes cold; concurrent test binaries wait on a lock file).
func Binary() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MINIO_BIN: %w", err)
		}
		return p, nil
	}
	return s3test.InstallCached("minio-"+Version, Module+"@"+Version)
}

// Server is a MinIO process serving one drive from a temporary directory
// on 127.0.0.1, with SSE-KMS (the built-in key KeyName).
type Server struct {
	port    int
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}

	rootOnce sync.Once
	root     *s3.Client
}

var errExited = errors.New("minio exited")

// Run starts MinIO and returns once it is ready. Stop it with Close.
func Run() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "minio-")
	if err != nil {
		return nil, fmt.Errorf("minio dir: %w", err)
	}
	s := &Server{dir: dir, logPath: filepath.Join(dir, "minio.log")}
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(bin); err == nil || !errors.Is(err, errExited) {
			break
		}
		// A free port was taken before MinIO bound it: try others.
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Start runs MinIO for one test (or a test binary's first user of it) and
// stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Run()
	if err != nil {
		t.Fatalf("start minio: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("minio log, last lines:\n%s", s.LogTail(4096))
		}
		_ = s.Close()
	})
	return s
}

func (s *Server) start(bin string) error {
	ports, err := testutil.FreePorts(2)
	if err != nil {
		return err
	}
	s.port = ports[0]
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("minio dir: %w", err)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("minio log: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	cmd := exec.Command(bin, "server", "--quiet", "--anonymous",
		"--address", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		data)
	cmd.Dir = s.dir
	// A clean environment: MinIO reads many MINIO_* settings.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir, "TMPDIR=" + os.TempDir(),
		"MINIO_ROOT_USER=" + AccessKey, "MINIO_ROOT_PASSWORD=" + SecretKey,
		"MINIO_REGION=" + Region,
		"MINIO_KMS_SECRET_KEY=" + KeyName + ":" + base64.StdEncoding.EncodeToString(key),
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off",
	}
	exited, err := s3test.StartChild(cmd, logf)
	if err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	s.cmd, s.exited = cmd, exited
	if err := s.waitReady(); err != nil {
		s.stop()
		return fmt.Errorf("%w\nminio log:\n%s", err, s.LogTail(2048))
	}
	return nil
}

func (s *Server) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w before serving on port %d", errExited, s.port)
		default:
		}
		resp, err := client.Get(s.Endpoint() + "/minio/health/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio not ready on port %d after %v (last: %v)", s.port, readyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Close stops MinIO and removes its directory.
func (s *Server) Close() error {
	s.stop()
	return os.RemoveAll(s.dir)
}

// Endpoint is MinIO's base URL, http://127.0.0.1:port.
func (s *Server) Endpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// LogTail returns the last n bytes of MinIO's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Client returns a path-style S3 client of MinIO for the given credentials.
func (s *Server) Client(access, secret string, optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint()),
		UsePathStyle: true,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(access, secret, "")),
	}, optFns...)
}

// RootClient is a cached client with the root credentials.
func (s *Server) RootClient() *s3.Client {
	s.rootOnce.Do(func() { s.root = s.Client(AccessKey, SecretKey) })
	return s.root
}

// AdminError is an error answer of MinIO's admin API.
type AdminError struct {
	StatusCode int
	Body       string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("minio admin: HTTP %d: %s", e.StatusCode, e.Body)
}

// admin sends a PUT to MinIO's admin API (/minio/admin/v3/<op>), signed
// with the root credentials.
func (s *Server) admin(ctx context.Context, op string, query url.Values, body []byte) error {
	u := s.Endpoint() + "/minio/admin/v3/" + op
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", Region, time.Now()); err != nil {
		return fmt.Errorf("minio admin %s: sign: %w", op, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("minio admin %s: %w", op, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("minio admin %s: %w", op, &AdminError{StatusCode: resp.StatusCode, Body: string(out)})
	}
	return nil
}

// sealForAdmin encrypts data with password as MinIO's admin API expects
// the bodies it reads encrypted: salt (32 bytes) | algorithm id (2:
// PBKDF2-SHA256 with 8192 iterations, AES-256-GCM) | nonce (8 bytes) | a
// sio stream of data.
func sealForAdmin(password string, data []byte) ([]byte, error) {
	const pbkdf2AESGCM, iterations = 0x02, 8192
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		return nil, err
	}
	stream, err := sio.AES_256_GCM.Stream(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, stream.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Write(salt)
	out.WriteByte(pbkdf2AESGCM)
	out.Write(nonce)
	w := stream.EncryptWriter(&out, nonce, nil)
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func helperCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// AddUser creates an IAM user; it can do nothing until a policy is
// attached (AttachPolicy).
func (s *Server) AddUser(access, secret string) error {
	body, err := json.Marshal(map[string]string{"secretKey": secret, "status": "enabled"})
	if err != nil {
		return err
	}
	sealed, err := sealForAdmin(SecretKey, body)
	if err != nil {
		return fmt.Errorf("add user %s: %w", access, err)
	}
	ctx, cancel := helperCtx()
	defer cancel()
	return s.admin(ctx, "add-user", url.Values{"accessKey": {access}}, sealed)
}

// AddPolicy creates (or replaces) a named IAM policy.
func (s *Server) AddPolicy(name, policyJSON string) error {
	ctx, cancel := helperCtx()
	defer cancel()
	return s.admin(ctx, "add-canned-policy", url.Values{"name": {name}}, []byte(policyJSON))
}

// AttachPolicy sets user's policy to the named one (replacing any other).
func (s *Server) AttachPolicy(policy, user string) error {
	ctx, cancel := helperCtx()
	defer cancel()
	return s.admin(ctx, "set-user-or-group-policy",
		url.Values{"policyName": {policy}, "userOrGroup": {user}, "isGroup": {"false"}}, nil)
}

// MustUser creates a user holding exactly policyJSON (under a policy of the
// same name as the user).
func (s *Server) MustUser(t testing.TB, access, secret, policyJSON string) {
	t.Helper()
	if err := s.AddUser(access, secret); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPolicy(access, policyJSON); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachPolicy(access, access); err != nil {
		t.Fatal(err)
	}
}

// ErrorCode is the S3 error code of err ("" when it has none); for tests
// that look at what MinIO answered.
func ErrorCode(err error) string {
	var x interface{ ErrorCode() string }
	if errors.As(err, &x) {
		return x.ErrorCode()
	}
	return ""
}
