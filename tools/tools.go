//go:build tools

// Package tools pins the versions of programs the tests and the dev stack build
// from the module graph (the versitygw S3 server).
package tools

import (
	_ "github.com/versity/versitygw/cmd/versitygw"
)
