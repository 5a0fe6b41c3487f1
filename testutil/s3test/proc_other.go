//go:build !linux

package s3test

import "os/exec"

func configureChild(*exec.Cmd) {}

// supportsXattr is false off Linux: the posix backend then keeps metadata in
// a sidecar directory.
func supportsXattr(string) bool { return false }
