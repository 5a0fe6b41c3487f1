package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const embeddedChildEnv = "DEVSTACK_EMBEDDED_S3_DIR"

// TestRunEmbeddedS3 runs the embedded gateway in a child test process,
// because embedgw allows one gateway per process and changes the working
// directory, then checks what it left on disk.
func TestRunEmbeddedS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw in a child process")
	}
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
	endpoint, err := runEmbeddedS3(ctx, dir, addr, "dev-root", "dev-root-secret")
	if err != nil {
		t.Fatal(err)
	}
	if endpoint != "http://"+addr {
		t.Fatalf("endpoint = %q", endpoint)
	}
	if _, err := runEmbeddedS3(ctx, t.TempDir(), "127.0.0.1:0", "a", "b"); err == nil {
		t.Fatal("a second embedded gateway in the same process started")
	}

	client := func(access, secret string) *s3.Client {
		return s3.New(s3.Options{
			Region: demoRegion, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""),
		})
	}
	root := client("dev-root", "dev-root-secret")
	opCtx, opCancel := context.WithTimeout(ctx, 30*time.Second)
	defer opCancel()
	if _, err := root.CreateBucket(opCtx, &s3.CreateBucketInput{Bucket: aws.String("dev-bucket")}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutObject(opCtx, &s3.PutObjectInput{
		Bucket: aws.String("dev-bucket"), Key: aws.String("a/b.csv"),
		Body: bytes.NewReader([]byte("x;y\n")), ContentType: aws.String("text/csv"),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := root.GetObject(opCtx, &s3.GetObjectInput{Bucket: aws.String("dev-bucket"), Key: aws.String("a/b.csv")})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(got.Body)
	_ = got.Body.Close()
	if err != nil || string(body) != "x;y\n" || aws.ToString(got.ContentType) != "text/csv" {
		t.Fatalf("object = %q (%s), %v", body, aws.ToString(got.ContentType), err)
	}
	// The gateway checks signatures: a wrong secret is refused.
	_, err = client("dev-root", "wrong-secret").PutObject(opCtx, &s3.PutObjectInput{
		Bucket: aws.String("dev-bucket"), Key: aws.String("c"), Body: bytes.NewReader([]byte("c")),
	})
	if code := errorCode(err); code != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
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

func errorCode(err error) string {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	return ""
}
