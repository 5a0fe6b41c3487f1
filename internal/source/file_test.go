package source_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
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

// fileTree lays out (the event's tenant is t1, its scan s1):
//
//	base/root/t1/s1/out.csv           allowed
//	base/root/t1/s1/sub/out.csv       allowed (any depth below the scan's folder)
//	base/root/t1/s1/link-in.csv   ->  out.csv (relative, stays inside)
//	base/root/t1/s1/link-abs.csv  ->  base/root/t1/s1/out.csv (absolute: refused)
//	base/root/t1/s1/link-out.csv  ->  ../../../outside/secret.csv
//	base/root/t1/s1/link-t2.csv   ->  ../../t2/s2/out.csv (inside the root, another tenant's)
//	base/root/t1/s1/dir-out       ->  ../../../outside
//	base/root/t1/s1/fifo              a FIFO (no writer: opening it blocks without O_NONBLOCK)
//	base/root/t1/s2/out.csv           another scan of t1
//	base/root/t1/s3               ->  s1 (a scan folder that is a symlink)
//	base/root/t2/s2/out.csv           another tenant's
//	base/root/t3                  ->  t2 (a tenant folder that is a symlink)
//	base/root/s1/out.csv              the v1 layout, with no tenant folder
//	base/rootx/t1/s1/out.csv          a sibling whose name starts like the root
//	base/outside/secret.csv
//	base/rootlink                 ->  base/root (a root given through a symlink)
func fileTree(t *testing.T) (base string, data []byte) {
	base = t.TempDir()
	data = []byte("AUTH_METHOD;TIMESTAMP;ACCOUNT_UID\nprofile;2025-08-05;111122223333\n")
	secret := []byte("secret")
	write(t, filepath.Join(base, "root/t1/s1/out.csv"), data)
	write(t, filepath.Join(base, "root/t1/s1/sub/out.csv"), data)
	write(t, filepath.Join(base, "root/t1/s2/out.csv"), secret)
	write(t, filepath.Join(base, "root/t2/s2/out.csv"), secret)
	write(t, filepath.Join(base, "root/s1/out.csv"), secret)
	write(t, filepath.Join(base, "rootx/t1/s1/out.csv"), secret)
	write(t, filepath.Join(base, "outside/secret.csv"), secret)
	symlink(t, "out.csv", filepath.Join(base, "root/t1/s1/link-in.csv"))
	symlink(t, filepath.Join(base, "root/t1/s1/out.csv"), filepath.Join(base, "root/t1/s1/link-abs.csv"))
	symlink(t, "../../../outside/secret.csv", filepath.Join(base, "root/t1/s1/link-out.csv"))
	symlink(t, "../../t2/s2/out.csv", filepath.Join(base, "root/t1/s1/link-t2.csv"))
	symlink(t, "../../../outside", filepath.Join(base, "root/t1/s1/dir-out"))
	symlink(t, "s1", filepath.Join(base, "root/t1/s3"))
	symlink(t, "t2", filepath.Join(base, "root/t3"))
	symlink(t, filepath.Join(base, "root"), filepath.Join(base, "rootlink"))
	if err := syscall.Mkfifo(filepath.Join(base, "root/t1/s1/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base, data
}

func TestNewOpener(t *testing.T) {
	if _, err := source.NewOpener(nil, []string{"relative/root"}); err == nil {
		t.Error("a relative root was accepted")
	}
	if _, err := source.NewOpener(nil, []string{filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing root was accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	write(t, f, nil)
	if _, err := source.NewOpener(nil, []string{f}); err == nil {
		t.Error("a file was accepted as a root")
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
	for _, tc := range []struct {
		roots []string
		paths []string
	}{
		{[]string{base + "/root"}, []string{"root/t1/s1/out.csv", "root/t1/s1/sub/out.csv", "root/t1/s1/link-in.csv", "root/t1/s1/../s1/out.csv"}},
		{[]string{base + "/root/"}, []string{"root/t1/s1/out.csv"}},
		{[]string{elsewhere, base + "/root"}, []string{"root/t1/s1/out.csv"}},
		// A root given through a symlink: paths may name it either way.
		{[]string{base + "/rootlink"}, []string{"rootlink/t1/s1/out.csv", "root/t1/s1/out.csv", "rootlink/t1/s1/link-in.csv"}},
	} {
		o, err := source.NewOpener(nil, tc.roots)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tc.paths {
			a := event.Artifact{Format: "csv", Source: "file://" + base + "/" + p}
			op, err := o.Open(context.Background(), scan, a)
			if err != nil {
				t.Fatalf("roots %v: Open(%s): %v", tc.roots, p, err)
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
	sock := filepath.Join(base, "root/t1/s1/sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		path   string
		tenant string // default t1
		scan   string // default s1
		code   errcode.Code
	}{
		{path: base + "/outside/secret.csv", code: errcode.SourceRefused},
		{path: base + "/root/t1/s1/link-out.csv", code: errcode.SourceRefused},       // symlink out of the root
		{path: base + "/root/t1/s1/link-t2.csv", code: errcode.SourceRefused},        // symlink to another tenant, inside the root
		{path: base + "/root/t1/s1/link-abs.csv", code: errcode.SourceRefused},       // an absolute symlink, even one leading inside
		{path: base + "/root/t1/s1/dir-out/secret.csv", code: errcode.SourceRefused}, // through a symlinked folder
		{path: base + "/root/../outside/secret.csv", code: errcode.SourceRefused},    // ".." out of the root
		{path: base + "/root/t1/s1/../../../outside/secret.csv", code: errcode.SourceRefused},
		{path: base + "/root/t1/s1/../../t2/s2/out.csv", code: errcode.SourceRefused}, // ".." into another tenant's folder
		{path: base + "/root/t2/s2/out.csv", code: errcode.SourceRefused},             // another tenant's file
		{path: base + "/root/t1/s2/out.csv", code: errcode.SourceRefused},             // another scan's file
		{path: base + "/root/s1/out.csv", code: errcode.SourceRefused},                // the v1 layout
		{path: base + "/root/t1/out.csv", code: errcode.SourceRefused},
		{path: base + "/root/t3/s2/out.csv", tenant: "t3", scan: "s2", code: errcode.SourceRefused}, // a tenant folder that is a symlink
		{path: base + "/root/t1/s3/out.csv", scan: "s3", code: errcode.SourceRefused},               // a scan folder that is a symlink
		{path: base + "/rootx/t1/s1/out.csv", code: errcode.SourceRefused},                          // a sibling sharing the root's name as a prefix
		{path: base + "/outside/missing.csv", code: errcode.SourceRefused},                          // outside and missing: refused, revealing nothing
		{path: "/etc/passwd", code: errcode.SourceRefused},
		{path: base + "/root/t1/s1", code: errcode.SourceRefused},      // the scan's folder itself
		{path: base + "/root/t1/s1/sub", code: errcode.SourceRefused},  // a folder
		{path: base + "/root/t1/s1/fifo", code: errcode.SourceRefused}, // a FIFO: refused, not waited on
		{path: sock, code: errcode.SourceRefused},                      // a socket
		{path: base + "/root", code: errcode.SourceRefused},
		{path: base + "/root/t1/s1/missing.csv", code: errcode.SourceNotFound},
		{path: base + "/root/t1/s1/dir-out/missing.csv", code: errcode.SourceRefused}, // missing, through a symlinked folder: refused
		{path: base + "/root/t1/s1/nodir/missing.csv", code: errcode.SourceNotFound},
		{path: base + "/root/t9/s9/out.csv", tenant: "t9", scan: "s9", code: errcode.SourceNotFound}, // no folder yet for that tenant
	} {
		sc := *scan
		if tc.tenant != "" {
			sc.TenantID = tc.tenant
		}
		if tc.scan != "" {
			sc.ScanID = tc.scan
		}
		op, err := o.Open(context.Background(), &sc, event.Artifact{Format: "csv", Source: "file://" + tc.path})
		if err == nil {
			got, _ := readAll(t, op)
			t.Fatalf("%s: opened, read %q", tc.path, got)
		}
		wantCode(t, tc.path, err, tc.code, false)
		if strings.Contains(err.Error(), "secret") && !strings.Contains(tc.path, "secret") {
			t.Errorf("%s: the refusal leaks content: %v", tc.path, err)
		}
	}

	// With no roots, file sources are off.
	off, err := source.NewOpener(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = off.Open(context.Background(), scan, event.Artifact{Format: "csv", Source: "file://" + base + "/root/t1/s1/out.csv"})
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
	src := "file://" + base + "/root/t1/s1/out.csv"
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
	cut := filepath.Join(base, "root/t1/s1/cut.csv")
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
