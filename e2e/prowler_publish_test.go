package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

var (
	ctlBinOnce sync.Once
	ctlBin     string
	ctlBinErr  error
)

// buildCtl builds exporterctl once per test binary: these tests run it as
// the scan engine would, as a command.
func buildCtl(t *testing.T) string {
	t.Helper()
	ctlBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "exporterctl-bin-")
		if err != nil {
			ctlBinErr = err
			return
		}
		ctlBin = filepath.Join(dir, "exporterctl")
		out, err := exec.Command("go", "build", "-o", ctlBin, "github.com/prowler-cloud/s3-exporter/cmd/exporterctl").CombinedOutput()
		if err != nil {
			ctlBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if ctlBinErr != nil {
		t.Fatal(ctlBinErr)
	}
	return ctlBin
}

type ctlResult struct {
	code           int
	stdout, stderr string
}

func (e *env) ctl(t *testing.T, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildCtl(t), append([]string{"--server", e.ns.ClientURL()}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running exporterctl: %v", err)
	}
	return r
}

// prowlerKey is where a file of a Prowler output folder lands:
// {dir}/{format}/<Prowler's own file name>, compliance files (CSV and OCSF)
// in {dir}/compliance/.
func prowlerKey(dir, rel string) string {
	name := filepath.Base(rel)
	switch {
	case strings.HasPrefix(rel, "compliance/"):
		return dir + "/compliance/" + name
	case strings.HasSuffix(name, ".ocsf.json"):
		return dir + "/json-ocsf/" + name
	case strings.HasSuffix(name, ".asff.json"):
		return dir + "/json-asff/" + name
	case strings.HasSuffix(name, ".html"):
		return dir + "/html/" + name
	}
	return dir + "/csv/" + name
}

// prowlerFolder reads every output file of a Prowler folder, by path
// relative to it.
func prowlerFolder(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "PROVENANCE.md" {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func (e *env) scanEvents(t *testing.T) uint64 {
	t.Helper()
	st, err := e.cl.JS.Stream(context.Background(), "PROWLER_SCANS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Issue 15: `exporterctl scan publish` on genuine Prowler 5.39.1 output.
// With no --provider-uid or --started-at, the uid and time come from the
// file names, and every file, the compliance OCSF and the empty compliance
// CSV included, lands byte for byte under {dir}/{format}/ with the very name
// Prowler gave it. --dry-run publishes nothing; a folder mixing two scans'
// timestamps is refused and publishes nothing.
func TestProwler5FolderPublishedUnderProwlersOwnNames(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs exporterctl")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	src := fixtures.Prowler5Output(t)
	want := prowlerFolder(t, src)
	if len(want) != 10 || want["compliance/prowler-output-123456789012-20261201085125_aws_well_architected_framework_reliability_pillar_aws.csv"] == nil ||
		len(want["compliance/prowler-output-123456789012-20261201085125_aws_well_architected_framework_reliability_pillar_aws.csv"]) != 0 {
		t.Fatalf("the folder is not the expected one: %d files", len(want))
	}
	e := newEnv(t, nil)
	b := e.bucket("prowler5")
	e.putAndWaitConn(e.integration("tenant-a", "a-s3", b, "aws-1"))

	// Dry run: the plan names every key, nothing is published.
	r := e.ctl(t, "scan", "publish", "--tenant", "tenant-a", "--provider-id", "aws-1", "--dry-run", src)
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for rel := range want {
		if !strings.Contains(r.stdout, prowlerKey("{dir}", rel)) {
			t.Errorf("the dry run does not show %s:\n%s", prowlerKey("{dir}", rel), r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "skipping") || !strings.Contains(r.stderr, "PROVENANCE.md") {
		t.Errorf("the skipped file is not listed: %s", r.stderr)
	}
	if n := e.scanEvents(t); n != 0 {
		t.Fatalf("the dry run published %d events", n)
	}

	// A copy whose one compliance file is from another run.
	mixed := t.TempDir()
	for rel, body := range want {
		if strings.Contains(rel, "cis_5.0_aws") {
			rel = strings.Replace(rel, "20261201085125", "20261201093000", 1)
		}
		writeFile(t, filepath.Join(mixed, rel), body)
	}
	r = e.ctl(t, "scan", "publish", "--tenant", "tenant-a", "--provider-id", "aws-1", mixed)
	if r.code == 0 || !strings.Contains(r.stderr, "mixes the outputs of several scans") ||
		!strings.Contains(r.stderr, "20261201085125") || !strings.Contains(r.stderr, "20261201093000") {
		t.Fatalf("mixed timestamps: exit %d\n%s", r.code, r.stderr)
	}
	if n := e.scanEvents(t); n != 0 {
		t.Fatalf("the refused folder published %d events", n)
	}

	r = e.ctl(t, "scan", "publish", "--tenant", "tenant-a", "--provider-id", "aws-1", "--wait", src)
	if r.code != 0 {
		t.Fatalf("publish: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "provider uid 123456789012, started at 2026-12-01T08:51:25Z (from the file names)") {
		t.Errorf("the uid and start taken from the names are not said: %s", r.stderr)
	}
	got := e.objects(b)
	if len(got) != len(want) {
		t.Errorf("%d objects for %d files: %v", len(got), len(want), keysOf(got))
	}
	for rel, body := range want {
		key := prowlerKey("output", rel)
		o, ok := got[key]
		if !ok {
			t.Errorf("%s did not land at %s; objects %v", rel, key, keysOf(got))
			continue
		}
		if !bytes.Equal(o.Body, body) {
			t.Errorf("%s: %d bytes landed, the file has %d", key, len(o.Body), len(body))
		}
		h, err := e.s3.RootClient().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if h.Metadata["prowler-provider-uid"] != "123456789012" || h.Metadata["prowler-sha256"] != hexSum(body) {
			t.Errorf("%s: metadata %v", key, h.Metadata)
		}
	}
}
