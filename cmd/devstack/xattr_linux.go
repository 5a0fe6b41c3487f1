package main

import "syscall"

// supportsXattr reports whether dir's filesystem stores user extended
// attributes, which versitygw's posix backend keeps object metadata in.
func supportsXattr(dir string) bool {
	err := syscall.Setxattr(dir, "user.s3exporter.devstack", []byte("1"), 0)
	if err != nil {
		return false
	}
	_ = syscall.Removexattr(dir, "user.s3exporter.devstack")
	return true
}
