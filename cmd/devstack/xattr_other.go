//go:build !linux

package main

// supportsXattr is false off Linux: the posix backend then keeps metadata in
// a sidecar directory.
func supportsXattr(string) bool { return false }
