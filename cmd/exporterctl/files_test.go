package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindOutputs(t *testing.T) {
	dir := t.TempDir()
	const base = "prowler-output-111122223333-20250805120000"
	writeFiles(t, dir, map[string]string{
		base + ".csv":       "csv",
		base + ".html":      "html",
		base + ".ocsf.json": "ocsf",
		base + ".asff.json": "asff",
		"compliance/" + base + "_cis_5.0_aws.csv":                                  "cis",
		"compliance/" + base + "_aws_foundational_security_best_practices_aws.csv": "fsbp",
		"compliance/nested/custom_framework-1.csv":                                 "custom",
		"compliance/notes.txt":                                                     "skip",
		"README.md":                                                                "skip",
		"other/x.csv":                                                              "skip",
	})
	files, skipped, err := findOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ format, framework, name, body string }
	var have []got
	for _, f := range files {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		have = append(have, got{f.Format, f.Framework, f.Name, string(b)})
	}
	want := []got{
		{"csv", "", base + ".csv", "csv"},
		{"html", "", base + ".html", "html"},
		{"json-ocsf", "", base + ".ocsf.json", "ocsf"},
		{"json-asff", "", base + ".asff.json", "asff"},
		{"compliance", "aws_foundational_security_best_practices_aws", "compliance/" + base + "_aws_foundational_security_best_practices_aws.csv", "fsbp"},
		{"compliance", "cis_5.0_aws", "compliance/" + base + "_cis_5.0_aws.csv", "cis"},
		{"compliance", "custom_framework-1", "compliance/nested/custom_framework-1.csv", "custom"},
	}
	if len(have) != len(want) {
		t.Fatalf("found %d files, want %d: %+v", len(have), len(want), have)
	}
	for i := range want {
		if have[i] != want[i] {
			t.Errorf("file %d: got %+v, want %+v", i, have[i], want[i])
		}
	}
	joined := strings.Join(skipped, "\n")
	for _, s := range []string{"README.md", "notes.txt", "other"} {
		if !strings.Contains(joined, s) {
			t.Errorf("skipped list %q does not mention %s", skipped, s)
		}
	}
	if len(skipped) != 3 {
		t.Errorf("skipped %q, want 3 entries", skipped)
	}
}

func TestFindOutputsOnlySome(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"scan.ocsf.json": "[]", "Report.HTML": "<html>"})
	files, _, err := findOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Format != "html" || files[1].Format != "json-ocsf" {
		t.Fatalf("got %+v", files)
	}
}

func TestFindOutputsRejected(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"two csv":  {map[string]string{"a.csv": "", "b.csv": ""}, "several csv files"},
		"two html": {map[string]string{"a.html": "", "b.html": ""}, "several html files"},
		"two ocsf": {map[string]string{"a.ocsf.json": "", "b.ocsf.json": ""}, "several json-ocsf files"},
		"duplicate framework": {map[string]string{
			"compliance/prowler-output-1-20250101000000_cis.csv": "", "compliance/x/cis.csv": ""}, "appears twice"},
		"bad framework": {map[string]string{"compliance/my framework.csv": ""}, "must match"},
		"only dots":     {map[string]string{"compliance/prowler-output-1-20250101000000_...csv": ""}, "must match"},
		"nothing":       {map[string]string{"notes.txt": ""}, "holds no Prowler output"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			_, _, err := findOutputs(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, _, err := findOutputs(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing folder was accepted")
	}
}

// Every file of a real Prowler 5 folder is recognised, compliance OCSF and
// the empty compliance CSV included, with the uid and timestamp of its name.
func TestFindOutputsRealProwler5Folder(t *testing.T) {
	dir := fixtures.Prowler5Output(t)
	files, skipped, err := findOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || filepath.Base(skipped[0]) != "PROVENANCE.md" {
		t.Errorf("skipped %q, want PROVENANCE.md only", skipped)
	}
	var onDisk []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "PROVENANCE.md" {
			rel, _ := filepath.Rel(dir, p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = "prowler-output-123456789012-20261201085125"
	want := map[string][2]string{
		n + ".csv":       {"csv", ""},
		n + ".html":      {"html", ""},
		n + ".ocsf.json": {"json-ocsf", ""},
		n + ".asff.json": {"json-asff", ""},
		"compliance/" + n + "_aws_foundational_security_best_practices_aws.csv":          {"compliance", "aws_foundational_security_best_practices_aws"},
		"compliance/" + n + "_aws_well_architected_framework_reliability_pillar_aws.csv": {"compliance", "aws_well_architected_framework_reliability_pillar_aws"},
		"compliance/" + n + "_cis_5.0_aws.csv":                                           {"compliance", "cis_5.0_aws"},
		"compliance/" + n + "_cmmc_2.0.csv":                                              {"compliance", "cmmc_2.0"},
		"compliance/" + n + "_cmmc_2.0.ocsf.json":                                        {"compliance-ocsf", "cmmc_2.0"},
		"compliance/" + n + "_prowler_threatscore_aws.csv":                               {"compliance", "prowler_threatscore_aws"},
	}
	if len(files) != len(onDisk) || len(files) != len(want) {
		t.Fatalf("recognised %d files of %d on disk, want %d: %+v", len(files), len(onDisk), len(want), files)
	}
	for _, f := range files {
		w, ok := want[f.Name]
		if !ok || f.Format != w[0] || f.Framework != w[1] || f.UID != "123456789012" || f.TS != "20261201085125" {
			t.Errorf("%+v, want %v", f, w)
		}
	}
	uid, ts, err := scanIdentity(dir, files)
	if err != nil || uid != "123456789012" || ts != "20261201085125" {
		t.Fatalf("scanIdentity = %q %q %v", uid, ts, err)
	}
}

func TestScanIdentityRefusesMixedFolders(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"two timestamps": {map[string]string{
			"prowler-output-111122223333-20250805120000.csv":                        "",
			"compliance/prowler-output-111122223333-20250806120000_cis_5.0_aws.csv": ""}, "several scans: the file names carry the timestamps 20250805120000 (1 files"},
		"two uids": {map[string]string{
			"prowler-output-111122223333-20250805120000.csv":  "",
			"prowler-output-999988887777-20250805120000.html": ""}, "several providers: the file names carry the uids 111122223333"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			files, _, err := findOutputs(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := scanIdentity(dir, files); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Names Prowler did not give carry nothing, and mix with nothing.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"out.csv": "", "prowler-output-iac-20250805120000.html": "", "compliance/x.ocsf.json": ""})
	files, _, err := findOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uid, ts, err := scanIdentity(dir, files); err != nil || uid != "iac" || ts != "20250805120000" {
		t.Fatalf("scanIdentity = %q %q %v", uid, ts, err)
	}
}

func TestScannerOutputDir(t *testing.T) {
	for want, args := range map[string][]string{
		"output":   {"prowler", "aws"},
		"/out":     {"prowler", "aws", "-o", "/out", "-M", "csv"},
		"/out2":    {"prowler", "aws", "--output-directory", "/out2"},
		"/out3":    {"prowler", "aws", "-o=/out3"},
		"/out4":    {"prowler", "aws", "--output-directory=/out4"},
		"last/one": {"prowler", "aws", "-o", "first", "-o", "last/one"},
	} {
		if got := scannerOutputDir(args); got != want {
			t.Errorf("scannerOutputDir(%q) = %q, want %q", args, got, want)
		}
	}
}

// Only the files the scanner created or changed are published.
func TestSnapshotChanged(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"old.csv": "old", "kept.html": "kept"})
	st, err := snapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"compliance/new.csv": "new"})
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "kept.html"), later, later); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"old.csv": false, "kept.html": true, "compliance/new.csv": true} {
		if got := st.changed(filepath.Join(dir, name)); got != want {
			t.Errorf("changed(%s) = %v, want %v", name, got, want)
		}
	}
	if st, err := snapshot(filepath.Join(dir, "missing")); err != nil || len(st) != 0 {
		t.Errorf("a missing folder: %v %v", st, err)
	}
}

// --dry-run needs no NATS (the server here is dead) and shows every key;
// an override that makes the keys differ from the names is pointed out.
func TestScanPublishDryRun(t *testing.T) {
	dir := fixtures.Prowler5Output(t)
	r := ctl(context.Background(), nil, "", "-s", deadServer, "scan", "publish", "--tenant", "t", "--provider-id", "p", "--dry-run", dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, key := range []string{
		"{dir}/csv/prowler-output-123456789012-20261201085125.csv",
		"{dir}/compliance/prowler-output-123456789012-20261201085125_cmmc_2.0.ocsf.json",
		"{dir}/compliance/prowler-output-123456789012-20261201085125_aws_well_architected_framework_reliability_pillar_aws.csv",
	} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("the plan does not show %s:\n%s", key, r.stdout)
		}
	}
	if strings.Contains(r.stderr, "note:") {
		t.Errorf("a note without an override: %s", r.stderr)
	}
	r = ctl(context.Background(), nil, "", "-s", deadServer, "--json", "scan", "publish", "--tenant", "t", "--provider-id", "p",
		"--provider-uid", "999988887777", "--dry-run", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "note: the keys will read prowler-output-999988887777-20261201085125") {
		t.Fatalf("override: exit %d\n%s", r.code, r.stderr)
	}
	var plan struct {
		DryRun bool `json:"dry_run"`
		Files  []struct {
			Format, Key string
			Size        int64
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || !plan.DryRun || len(plan.Files) != 10 {
		t.Fatalf("JSON plan %q: %v", r.stdout, err)
	}
	if r := ctl(context.Background(), nil, "", "-s", deadServer, "scan", "publish", "--tenant", "t", "--provider-id", "p",
		"--dry-run", "--wait", dir); r.code != exitUsage {
		t.Errorf("--dry-run --wait: exit %d", r.code)
	}
}

// findOutputs is findOutputsWhere of every file.
func findOutputs(dir string) ([]outputFile, []string, error) { return findOutputsWhere(dir, nil) }
