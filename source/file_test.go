package source_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/source"
)

var scan = &event.ScanCompleted{ScanID: "s1", TenantID: "t1", Provider: event.Provider{ID: "p1", UID: "1"}}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func size(n int) *int64 { v := int64(n); return &v }

func wantCode(t *testing.T, what string, err error, code errcode.Code, retry bool) {
	t.Helper()
	var e *errcode.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v (%T), want %s", what, err, err, code)
	}
	if e.Code != code || e.Retryable != retry {
		t.Fatalf("%s: %s retryable %v, want %s retryable %v (%v)", what, e.Code, e.Retryable, code, retry, err)
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, op *source.Opened) ([]byte, error) {
	t.Helper()
	defer op.Close()
	return io.ReadAll(op)
}

// fileTree lays out:
//
//	base/root/s1/out.csv          allowed
//	base/root/s1/link-in.csv  ->  base/root/s1/out.csv
//	base/root/s1/link-out.csv ->  base/outside/secret.csv
//	base/root/s1/dir-out      ->  base/outside
//	base/rootx/s1/out.csv         a sibling whose name starts like the root
//	base/outside/secret.csv
//	base/rootlink             ->  base/root (a root given through a symlink)
func fileTree(t *testing.T) (base string, data []byte) {
	base = t.TempDir()
	// t.TempDir may itself sit under a symlink; the opener resolves roots.
	data = []byte("AUTH_METHOD;TIMESTAMP;ACCOUNT_UID\nprofile;2025-08-05;111122223333\n")
	write(t, filepath.Join(base, "root/s1/out.csv"), data)
	write(t, filepath.Join(base, "rootx/s1/out.csv"), data)
	write(t, filepath.Join(base, "outside/secret.csv"), []byte("secret"))
	symlink(t, filepath.Join(base, "root/s1/out.csv"), filepath.Join(base, "root/s1/link-in.csv"))
	symlink(t, filepath.Join(base, "outside/secret.csv"), filepath.Join(base, "root/s1/link-out.csv"))
	symlink(t, filepath.Join(base, "outside"), filepath.Join(base, "root/s1/dir-out"))
	symlink(t, filepath.Join(base, "root"), filepath.Join(base, "rootlink"))
	return base, data
}

func TestNewOpener(t *testing.T) {
	if _, err := source.NewOpener(nil, []string{"relative/root"}); err == nil {
		t.Error("a relative root was accepted")
	}
	if _, err := source.NewOpener(nil, []string{filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing root was accepted")
	}
	if _, err := source.NewOpener(nil, nil); err != nil {
		t.Errorf("no roots: %v", err)
	}
}

func TestFileSourceAllowed(t *testing.T) {
	base, data := fileTree(t)
	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, roots := range [][]string{
		{base + "/root"},
		{base + "/rootlink"}, // resolved at start
		{base + "/root/"},
		{elsewhere, base + "/root"},
	} {
		o, err := source.NewOpener(nil, roots)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{
			"root/s1/out.csv",
			"root/s1/link-in.csv",   // a symlink that stays inside
			"root/s1/../s1/out.csv", // cleaned, still inside
			"rootlink/s1/out.csv",   // a path through a symlink to the root
		} {
			a := event.Artifact{Format: "csv", Source: "file://" + base + "/" + p}
			op, err := o.Open(context.Background(), scan, a)
			if err != nil {
				t.Fatalf("roots %v: Open(%s): %v", roots, p, err)
			}
			if op.Size != int64(len(data)) {
				t.Errorf("Size = %d", op.Size)
			}
			got, err := readAll(t, op)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("read %q, %v", got, err)
			}
		}
	}
}

func TestFileSourceRefused(t *testing.T) {
	base, _ := fileTree(t)
	o, err := source.NewOpener(nil, []string{filepath.Join(base, "root")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code errcode.Code
	}{
		{base + "/outside/secret.csv", errcode.SourceRefused},
		{base + "/root/s1/link-out.csv", errcode.SourceRefused},       // symlink out of the root
		{base + "/root/s1/dir-out/secret.csv", errcode.SourceRefused}, // through a symlinked directory
		{base + "/root/../outside/secret.csv", errcode.SourceRefused}, // ".." out of the root
		{base + "/root/s1/../../outside/secret.csv", errcode.SourceRefused},
		{base + "/rootx/s1/out.csv", errcode.SourceRefused},    // a sibling sharing the root's name as a prefix
		{base + "/outside/missing.csv", errcode.SourceRefused}, // outside and missing: refused, revealing nothing
		{"/etc/passwd", errcode.SourceRefused},
		{base + "/root/s1", errcode.SourceRefused}, // a directory
		{base + "/root", errcode.SourceRefused},    // the root itself
		{base + "/root/s1/missing.csv", errcode.SourceNotFound},
		{base + "/root/s1/dir-out/missing.csv", errcode.SourceRefused}, // missing, through a symlinked directory: refused
		{base + "/root/s1/nodir/missing.csv", errcode.SourceNotFound},
	} {
		_, err := o.Open(context.Background(), scan, event.Artifact{Format: "csv", Source: "file://" + tc.path})
		wantCode(t, tc.path, err, tc.code, false)
	}

	// With no roots, file sources are off.
	off, err := source.NewOpener(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = off.Open(context.Background(), scan, event.Artifact{Format: "csv", Source: "file://" + base + "/root/s1/out.csv"})
	wantCode(t, "no roots", err, errcode.SourceRefused, false)

	// A source that does not parse is refused.
	for _, src := range []string{"file://relative", "ftp://x/y", "nats-os://B"} {
		_, err = o.Open(context.Background(), scan, event.Artifact{Format: "csv", Source: src})
		wantCode(t, src, err, errcode.SourceRefused, false)
	}
}

func TestFileSourceVerified(t *testing.T) {
	base, data := fileTree(t)
	o, err := source.NewOpener(nil, []string{filepath.Join(base, "root")})
	if err != nil {
		t.Fatal(err)
	}
	src := "file://" + base + "/root/s1/out.csv"
	ctx := context.Background()

	// Right digest and size.
	op, err := o.Open(ctx, scan, event.Artifact{Format: "csv", Source: src, SHA256: sha(data), Size: size(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, op); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}

	// Wrong digest: Read fails, permanently, instead of reaching EOF.
	op, err = o.Open(ctx, scan, event.Artifact{Format: "csv", Source: src, SHA256: sha([]byte("other"))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = readAll(t, op)
	wantCode(t, "wrong sha256", err, errcode.ChecksumMismatch, false)

	// Wrong size: the file's size is known, so it fails at once.
	_, err = o.Open(ctx, scan, event.Artifact{Format: "csv", Source: src, Size: size(len(data) + 1)})
	wantCode(t, "wrong size", err, errcode.ChecksumMismatch, false)

	// A file cut short after it was opened (no size in the event): the size
	// seen at open time still catches it.
	cut := filepath.Join(base, "root/s1/cut.csv")
	write(t, cut, data)
	op, err = o.Open(ctx, scan, event.Artifact{Format: "csv", Source: "file://" + cut})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(cut, 5); err != nil {
		t.Fatal(err)
	}
	_, err = readAll(t, op)
	wantCode(t, "truncated file", err, errcode.ChecksumMismatch, false)
}
