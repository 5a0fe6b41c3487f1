package s3test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

const (
	versityModule = "github.com/versity/versitygw"
	// versityDefaultVersion is used when go.mod cannot be read; it is the
	// version tools/tools.go pins.
	versityDefaultVersion = "v1.8.0"
)

var (
	versityBinMu   sync.Mutex
	versityBinPath string
	// startDir is the working directory when the program started: an
	// embedded gateway (cmd/devstack's) changes it later.
	startDir, _ = os.Getwd()
)

// VersityGWBinary returns the path of a versitygw executable, building it
// once from the module graph and caching it across test binaries and runs:
//
//   - $VERSITYGW_BIN, if set, is used as is;
//   - else <cache>/versitygw-<version> where <cache> is $S3EXPORTER_TEST_CACHE
//     or os.UserCacheDir()/s3-exporter-test and <version> is the versitygw
//     version required by the go.mod found above the working directory.
//
// A missing binary is built with `go build` in the module root (about 90 s
// cold). Concurrent test binaries serialise on a lock file and the binary is
// renamed into place only when complete, so nobody runs a half-written file.
func VersityGWBinary() (string, error) {
	if p := os.Getenv("VERSITYGW_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VERSITYGW_BIN: %w", err)
		}
		return p, nil
	}
	versityBinMu.Lock()
	defer versityBinMu.Unlock()
	if versityBinPath != "" {
		return versityBinPath, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cache, err := testCacheDir()
	if err != nil {
		return "", err
	}
	bin, err := buildVersityGW(root, cache)
	if err != nil {
		return "", err
	}
	versityBinPath = bin
	return bin, nil
}

// buildVersityGW returns <cache>/versitygw-<version>, building it in the
// module at root unless it exists.
func buildVersityGW(root, cache string) (string, error) {
	version := versityVersion(filepath.Join(root, "go.mod"))
	return buildCached(root, cache, "versitygw-"+version, versityModule+"/cmd/versitygw")
}

// buildCached returns <cache>/<name>, building pkg into it with go build in
// the module at root unless it exists. Builders serialise on <name>.lock,
// and the binary is renamed into place only when complete.
func buildCached(root, cache, name, pkg string) (string, error) {
	return cached(cache, name, func(dir string) (string, error) {
		out := filepath.Join(dir, name)
		cmd := exec.Command(goTool(), "build", "-o", out, pkg)
		cmd.Dir = root
		var log bytes.Buffer
		cmd.Stdout = &log
		cmd.Stderr = &log
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, root, err, log.String())
		}
		return out, nil
	})
}

func testCacheDir() (string, error) {
	dir := os.Getenv("S3EXPORTER_TEST_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("test cache dir (set S3EXPORTER_TEST_CACHE): %w", err)
		}
		dir = filepath.Join(base, "s3-exporter-test")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("test cache dir: %w", err)
	}
	return dir, nil
}

// moduleRoot walks up from the starting working directory to the nearest
// go.mod.
func moduleRoot() (string, error) {
	dir := startDir
	if dir == "" {
		return "", errors.New("module root: unknown working directory; set VERSITYGW_BIN")
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory to build versitygw in; set VERSITYGW_BIN")
		}
		dir = parent
	}
}

// versityVersion reads the versitygw requirement from a go.mod, falling back
// to the pinned default.
func versityVersion(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return versityDefaultVersion
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == versityModule {
			return fields[1]
		}
	}
	return versityDefaultVersion
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
