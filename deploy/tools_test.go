package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The command-line tools the deploy tests run, at the versions the project
// supports. They are built from the Go module proxy on first use and kept in
// the user cache, like the versitygw binary of the e2e tests.
const (
	helmPkg      = "helm.sh/helm/v3/cmd/helm@v3.22.0"
	kustomizePkg = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"
)

var (
	toolsMu sync.Mutex
	tools   = map[string]string{}
)

// goTool returns the path of the binary of pkg (path@version), installing it
// with `go install` into the user cache the first time. It skips under -short
// (the first build takes minutes), and fails, never skips, when the build
// fails: a chart that cannot be checked is not a passing chart.
func goTool(t *testing.T, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("builds %s", pkg)
	}
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if p, ok := tools[pkg]; ok {
		return p
	}
	path, version, _ := strings.Cut(pkg, "@")
	name := filepath.Base(path)
	if strings.HasPrefix(name, "v") && strings.Trim(name[1:], "0123456789") == "" { // .../kustomize/v5
		name = filepath.Base(filepath.Dir(path))
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "s3-exporter-test", "tools", name+"-"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.CommandContext(t.Context(), "go", "install", pkg)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go install %s: %v\n%s", pkg, err, out)
		}
	}
	tools[pkg] = bin
	return bin
}

// runTool runs bin with args in dir and returns its standard output; the
// error carries the standard error.
func runTool(t *testing.T, dir, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &toolError{err: err, stderr: stderr.String()}
	}
	return string(out), nil
}

type toolError struct {
	err    error
	stderr string
}

func (e *toolError) Error() string { return e.err.Error() + ": " + e.stderr }
