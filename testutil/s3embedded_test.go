package testutil

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const embeddedChildEnv = "TESTUTIL_EMBEDDED_S3_DIR"

// TestRunEmbeddedS3 runs the embedded gateway in a child test process,
// because embedgw allows one gateway per process and changes the working
// directory, then checks what it left on disk.
func TestRunEmbeddedS3(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedS3Child$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), embeddedChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestEmbeddedS3Child")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// The object is a plain file under data/<bucket>/.
	b, err := os.ReadFile(filepath.Join(dir, "data", "dev-bucket", "a", "b.csv"))
	if err != nil || string(b) != "x;y\n" {
		t.Fatalf("object file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "access.log")); err != nil {
		t.Fatalf("access log: %v", err)
	}
}

func TestEmbeddedS3Child(t *testing.T) {
	dir := os.Getenv(embeddedChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestRunEmbeddedS3")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	endpoint, err := RunEmbeddedS3(ctx, dir, addr, "dev-root", "dev-root-secret")
	if err != nil {
		t.Fatal(err)
	}
	if endpoint != "http://"+addr {
		t.Fatalf("endpoint = %q", endpoint)
	}
	if _, err := RunEmbeddedS3(ctx, t.TempDir(), "127.0.0.1:0", "a", "b"); err == nil {
		t.Fatal("a second embedded gateway in the same process started")
	}

	// Reuse S3Server's helpers against the embedded gateway.
	s := &S3Server{AccessKey: "dev-root", SecretKey: "dev-root-secret", region: DefaultS3Region, port: port}
	s.MustCreateBucket(t, "dev-bucket")
	opCtx, opCancel := context.WithTimeout(ctx, 30*time.Second)
	defer opCancel()
	if _, err := s.RootClient().PutObject(opCtx, &s3.PutObjectInput{
		Bucket: aws.String("dev-bucket"), Key: aws.String("a/b.csv"),
		Body: bytes.NewReader([]byte("x;y\n")), ContentType: aws.String("text/csv"),
	}); err != nil {
		t.Fatal(err)
	}
	if o := s.MustGetObject(t, "dev-bucket", "a/b.csv"); string(o.Body) != "x;y\n" || o.ContentType != "text/csv" {
		t.Fatalf("object = %+v", o)
	}
	s.MustCreateUser(t, "dev-user", "dev-user-secret", RoleUser)
	err = putObject(opCtx, s.Client("dev-user", "dev-user-secret"), "dev-bucket", "c", "text/plain", []byte("c"))
	if code, _ := s3Code(err); code != "AccessDenied" {
		t.Fatalf("user without grant: %v", err)
	}

	// Cancelling ctx stops the gateway.
	cancel()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("gateway still serving after its context was cancelled")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
