package s3test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// InstallCached returns <cache>/<name>, installing it with
// `go install <pkgAtVersion>` (a main package outside this module's graph,
// built as a program of its own) unless it is there already. <cache> is the
// directory VersityGWBinary uses. Installers serialise on <name>.lock and the
// binary is renamed into place only when complete.
func InstallCached(name, pkgAtVersion string) (string, error) {
	cache, err := testCacheDir()
	if err != nil {
		return "", err
	}
	return cached(cache, name, func(dir string) (string, error) {
		cmd := exec.Command(goTool(), "install", pkgAtVersion)
		// Outside any module, so that this repository's go.mod has no say.
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go install %s: %w\n%s", pkgAtVersion, err, out.String())
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			return "", fmt.Errorf("go install %s: want one binary in %s, found %d (%v)", pkgAtVersion, dir, len(entries), err)
		}
		return filepath.Join(dir, entries[0].Name()), nil
	})
}

// cached returns <cache>/<name>, making it with build unless it is there
// already. build writes the program into the empty folder it is given and
// returns its path. Builders serialise on <name>.lock, and the program is
// renamed into place only when complete, so nobody runs a half-written file.
func cached(cache, name string, build func(dir string) (string, error)) (string, error) {
	bin := filepath.Join(cache, name)
	if isExecutable(bin) {
		return bin, nil
	}
	unlock, err := lockFile(filepath.Join(cache, name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // made by another process while we waited
		return bin, nil
	}
	dir, err := os.MkdirTemp(cache, name+"-build-*")
	if err != nil {
		return "", fmt.Errorf("%s build: %w", name, err)
	}
	defer os.RemoveAll(dir)
	made, err := build(dir)
	if err != nil {
		return "", err
	}
	if err := os.Rename(made, bin); err != nil {
		return "", fmt.Errorf("%s build: %w", name, err)
	}
	return bin, nil
}

// StartChild starts a test server's process with its output going to logf,
// made to die with the test binary where the platform allows it (Linux).
// The returned channel is closed once the process has exited and logf is
// closed; a failed start closes logf at once.
func StartChild(cmd *exec.Cmd, logf *os.File) (exited chan struct{}, err error) {
	cmd.Stdout, cmd.Stderr = logf, logf
	configureChild(cmd)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	return exited, nil
}
