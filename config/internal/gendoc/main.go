// Command gendoc writes the configuration reference (docs/configuration.md)
// from the settings' own definitions, the struct tags of config.Config. Run
// it with `go generate ./config` (make docs); config's tests fail when the
// committed file differs from what it writes.
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/prowler-cloud/s3-exporter/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gendoc FILE")
		os.Exit(2)
	}
	var b bytes.Buffer
	if err := config.WriteReference(&b); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
