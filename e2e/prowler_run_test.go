package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

// standInScanner writes a script that behaves like `prowler aws -o DIR`: it
// copies the real Prowler 5 output into the folder given with -o (its
// compliance/ folder included) and exits with code exit, Prowler's 3 when
// checks failed.
func standInScanner(t *testing.T, exit int) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "prowler")
	body := `#!/bin/sh
# A stand-in for the Prowler CLI: prowler <provider> [-o DIR] ...
out=output
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--output-directory) out="$2"; shift ;;
  esac
  shift
done
mkdir -p "$out/compliance"
echo "prowler: writing to $out"
cp "` + fixtures.Prowler5Output(t) + `"/prowler-output-* "$out"/
cp "` + fixtures.Prowler5Output(t) + `"/compliance/* "$out"/compliance/
chmod u+w "$out"/* "$out"/compliance/*
exit ` + string(rune('0'+exit)) + `
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// Issue 15: `exporterctl scan run -- prowler aws -o DIR`: the scanner's exit
// code 3 means done; exporterctl publishes what it wrote in DIR (not an
// earlier run's file left there), waits for the export and exits 0. A
// scanner failing with another code publishes nothing and exits 1.
func TestScanRunPublishesWhatTheScannerWrote(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs exporterctl")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	want := prowlerFolder(t, fixtures.Prowler5Output(t))
	e := newEnv(t, nil)
	b := e.bucket("scanrun")
	e.putAndWaitConn(e.integration("tenant-a", "a-s3", b, "aws-1"))

	out := filepath.Join(t.TempDir(), "out")
	// An earlier run's file, with another timestamp: not this scan's.
	old := []byte("an earlier run's findings\n")
	writeFile(t, filepath.Join(out, "prowler-output-123456789012-20261130085125.csv"), old)

	r := e.ctl(t, "scan", "run", "--tenant", "tenant-a", "--provider-id", "aws-1", "--",
		standInScanner(t, 3), "aws", "-o", out, "--compliance", "cis_5.0_aws")
	if r.code != 0 {
		t.Fatalf("scan run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "prowler: writing to "+out) || !strings.Contains(r.stderr, "exited with code 3") ||
		!strings.Contains(r.stdout, "integration a-s3: succeeded") {
		t.Errorf("output:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	got := e.objects(b)
	if len(got) != len(want) {
		t.Errorf("%d objects for %d files: %v", len(got), len(want), keysOf(got))
	}
	for rel, body := range want {
		if o, ok := got[prowlerKey("output", rel)]; !ok || !bytes.Equal(o.Body, body) {
			t.Errorf("%s did not land byte for byte at %s", rel, prowlerKey("output", rel))
		}
	}

	// A scanner that fails: nothing published, exit 1.
	events := e.scanEvents(t)
	r = e.ctl(t, "scan", "run", "--tenant", "tenant-a", "--provider-id", "aws-1", "--",
		standInScanner(t, 1), "aws", "-o", filepath.Join(t.TempDir(), "out2"))
	if r.code != 1 || !strings.Contains(r.stderr, "exited with code 1; nothing was published") {
		t.Fatalf("failing scanner: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if n := e.scanEvents(t); n != events {
		t.Fatalf("a failed scanner's outputs were published (%d events, were %d)", n, events)
	}
}
