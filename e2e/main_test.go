package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain stops what the tests share once they are done: the versitygw
// process and its directory, and the exporter binary built for the tests
// that run it as a process.
func TestMain(m *testing.M) {
	code := m.Run()
	if sharedS3 != nil {
		_ = sharedS3.Close()
	}
	if exporterBin != "" {
		_ = os.RemoveAll(filepath.Dir(exporterBin))
	}
	os.Exit(code)
}
