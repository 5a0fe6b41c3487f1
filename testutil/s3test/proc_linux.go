package s3test

import (
	"os/exec"
	"syscall"
)

// configureChild makes the kernel kill the child when the test binary dies
// (a go test timeout, a SIGKILL), so no server outlives its tests and holds
// their ports.
func configureChild(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// supportsXattr reports whether dir's filesystem stores user extended
// attributes, which versitygw's posix backend keeps object metadata in.
func supportsXattr(dir string) bool {
	err := syscall.Setxattr(dir, "user.s3exporter.test", []byte("1"), 0)
	if err != nil {
		return false
	}
	_ = syscall.Removexattr(dir, "user.s3exporter.test")
	return true
}
