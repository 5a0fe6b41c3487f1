package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRcloneBinaryMissingSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := rcloneBinary()
	if err == nil {
		t.Fatal("rclone found on an empty PATH")
	}
	if !strings.Contains(err.Error(), "apt-get install rclone") || !strings.Contains(err.Error(), "go install github.com/rclone/rclone") {
		t.Errorf("error %q does not say how to install rclone", err)
	}
	// The harness refuses to start workload 1 without it, before any work.
	o, err := parseOptions([]string{"-workloads", "small"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bench(o); err == nil || !strings.Contains(err.Error(), "apt-get install rclone") {
		t.Errorf("bench without rclone: %v", err)
	}
}

// TestWriteRcloneConfig reads the written configuration back with rclone
// itself (skipped where rclone is not installed).
func TestWriteRcloneConfig(t *testing.T) {
	bin, err := rcloneBinary()
	if err != nil {
		t.Skip(err)
	}
	path := filepath.Join(t.TempDir(), "rclone.conf")
	c := serverConf{Endpoint: "http://127.0.0.1:7070", Region: "eu-west-3", AccessKey: "AKIDBENCH", SecretKey: "s3cr3t/+key"}
	if err := writeRcloneConfig(path, "bench", c); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", path, "config", "dump").Output()
	if err != nil {
		t.Fatalf("rclone config dump: %v", err)
	}
	var dump map[string]map[string]string
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("rclone config dump: %v\n%s", err, out)
	}
	got := dump["bench"]
	want := map[string]string{"type": "s3", "provider": "Other", "endpoint": c.Endpoint, "region": c.Region,
		"access_key_id": c.AccessKey, "secret_access_key": c.SecretKey, "force_path_style": "true", "no_check_bucket": "true"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (dump %v)", k, got[k], v, got)
		}
	}
	if err := writeRcloneConfig(path, "a]b", c); err == nil {
		t.Error("a remote name with ']' was written")
	}
}
