package s3test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersityVersionFromGoMod(t *testing.T) {
	dir := t.TempDir()
	gomod := filepath.Join(dir, "go.mod")
	for _, tc := range []struct{ content, want string }{
		{"module x\n\nrequire github.com/versity/versitygw v1.9.1\n", "v1.9.1"},
		{"module x\n\nrequire (\n\tgithub.com/a/b v1.0.0\n\tgithub.com/versity/versitygw v1.8.0 // indirect\n)\n", "v1.8.0"},
		{"module x\n", versityDefaultVersion},
	} {
		if err := os.WriteFile(gomod, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := versityVersion(gomod); got != tc.want {
			t.Errorf("versityVersion(%q) = %q, want %q", tc.content, got, tc.want)
		}
	}
	if got := versityVersion(filepath.Join(dir, "missing")); got != versityDefaultVersion {
		t.Errorf("missing go.mod: %q", got)
	}
}

func TestModuleRootHasGoMod(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(b), "github.com/versity/versitygw") {
		t.Fatalf("go.mod at %s does not require versitygw: %v", root, err)
	}
}

func TestVersityGWBinaryEnvOverride(t *testing.T) {
	t.Setenv("VERSITYGW_BIN", filepath.Join(t.TempDir(), "nope"))
	if _, err := VersityGWBinary(); err == nil || !strings.Contains(err.Error(), "VERSITYGW_BIN") {
		t.Fatalf("missing VERSITYGW_BIN: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "gw")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VERSITYGW_BIN", fake)
	if got, err := VersityGWBinary(); err != nil || got != fake {
		t.Fatalf("VersityGWBinary = %q, %v", got, err)
	}
}

// The build lock excludes a second holder until the first lets go.
func TestLockFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		unlock2, err := lockFile(path)
		if err == nil {
			unlock2()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("second lock taken while the first is held")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("second lock not taken after release")
	}
}

// The cache logic of the versitygw build, on a small program (linking
// versitygw itself takes 20 s, and every run of the e2e suite on a fresh
// machine already builds it through VersityGWBinary): built into a fresh
// cache, nothing temporary left behind, reused by the second call.
func TestBuildCached(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	const pkg = "./testutil/s3test/testdata/hello"
	bin, err := buildCached(root, cache, "hello-v1", pkg)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "hello-v1"); bin != want {
		t.Fatalf("binary at %s, want %s", bin, want)
	}
	if out, err := exec.Command(bin).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if strings.Contains(e.Name(), "-build-") {
			t.Fatalf("left %s behind", e.Name())
		}
	}
	fi1, _ := os.Stat(bin)
	if _, err := buildCached(root, cache, "hello-v1", pkg); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(bin)
	if !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Fatal("binary rebuilt although cached")
	}
	// A package that does not build is an error naming it, and leaves
	// nothing behind.
	if _, err := buildCached(root, cache, "broken-v1", "./testutil/s3test/testdata/missing"); err == nil || !strings.Contains(err.Error(), "testdata/missing") {
		t.Fatalf("building a missing package: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "broken-v1")); !os.IsNotExist(err) {
		t.Fatalf("a failed build left a binary: %v", err)
	}
}

// The versitygw the tests run (built once per machine, cached) is the real
// gateway with its posix backend.
func TestVersityGWBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("may build versitygw (90 s on a fresh machine)")
	}
	bin, err := VersityGWBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "posix", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--sidecar") {
		t.Fatalf("%s posix --help: %v\n%s", bin, err, out)
	}
}
