package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// Prowler5Folder is the folder of genuine Prowler 5.39.1 output (`prowler
// aws`, every format, compliance on; its PROVENANCE.md says how it was made),
// relative to the module's root: shared/ sits beside the clone.
const Prowler5Folder = "../shared/testdata/prowler-5.39.1-aws"

// Prowler5Output returns the absolute path of Prowler5Folder, found from the
// test's working directory up to the module's root. A missing folder fails
// the test: it is part of the suite's inputs, not optional.
func Prowler5Output(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, Prowler5Folder)
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		t.Fatalf("the real Prowler output folder %s is missing (shared/testdata belongs beside the clone): %v", p, err)
	}
	return p
}
