package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/internal/fernet"
)

// TestReadmeCommandsParse runs every exporterctl command of the README's
// shell blocks against a NATS URL nothing listens on: each must get past
// flag parsing (exit 2 is a usage error: a command or flag the README names
// that exporterctl no longer has). What needs no NATS must succeed. The
// commands' behaviour against a running exporter is the e2e tests' and
// `make demo`'s. "scan run -- prowler …" runs a stand-in for Prowler.
func TestReadmeCommandsParse(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeCommands(string(readme))
	if len(cmds) < 15 {
		t.Fatalf("found %d exporterctl commands in README.md, want at least 15: %q", len(cmds), cmds)
	}
	// The files the README's commands name, in a folder of their own.
	dir := t.TempDir()
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fernet.key"), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs(filepath.Join("..", "..", "testdata", "prowler-5.39.1-aws"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "output"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "testdata", "prowler-5.39.1-aws"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	// A stand-in for Prowler, first on PATH: "scan run -- prowler … -o DIR"
	// runs as written and finds real Prowler output in DIR.
	bin := filepath.Join(dir, "bin")
	fake := "#!/bin/sh\n# a stand-in for Prowler: copies real Prowler output into -o DIR\n" +
		"while [ $# -gt 0 ]; do case \"$1\" in -o) out=\"$2\"; shift;; esac; shift; done\n" +
		"mkdir -p \"$out\" && cp -R '" + src + "'/. \"$out\"/\n"
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "prowler"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	// "scan publish --archive s3://…" reads the archive with the AWS default
	// chain before it connects to NATS: give it an endpoint nothing listens
	// on, and nothing of the machine's own AWS settings.
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "readme", "AWS_SECRET_ACCESS_KEY": "readme",
		"AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	t.Chdir(dir)

	for _, args := range cmds {
		line := strings.Join(args, " ")
		r := ctl(context.Background(), nil, "", append([]string{"--server", deadServer, "--timeout", "2s"}, args...)...)
		if r.code == exitUsage {
			t.Errorf("README: %s\n%s", line, r)
			continue
		}
		if args[0] == "scan" && args[1] == "run" && !strings.Contains(r.stderr, "the scanner exited with code 0") {
			t.Errorf("README: %s: the stand-in scanner did not run:\n%s", line, r)
		}
		offline := (args[0] == "key" && args[1] == "generate") || indexOf(args, "--dry-run") >= 0
		if offline && r.code != exitOK {
			t.Errorf("README: %s needs no NATS and failed:\n%s", line, r)
		}
	}
}

// readmeCommands returns the arguments of every exporterctl command in the
// README's sh blocks ("exporterctl …", "bin/exporterctl …" or
// "go run ./cmd/exporterctl …"), continuation lines joined, comments and
// redirections dropped.
func readmeCommands(md string) [][]string {
	var cmds [][]string
	inSh := false
	var cur string
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
			continue
		case strings.HasPrefix(line, "```"):
			inSh = false
			continue
		}
		if !inSh {
			continue
		}
		if cur != "" {
			cur += " " + strings.TrimSpace(line)
		} else {
			cur = strings.TrimSpace(line)
		}
		if strings.HasSuffix(cur, `\`) {
			cur = strings.TrimSuffix(cur, `\`)
			continue
		}
		cmd := cur
		cur = ""
		if i := strings.Index(cmd, " #"); i >= 0 {
			cmd = cmd[:i]
		}
		if i := strings.Index(cmd, " > "); i >= 0 {
			cmd = cmd[:i]
		}
		for _, prefix := range []string{"exporterctl ", "bin/exporterctl ", "go run ./cmd/exporterctl "} {
			if rest, ok := strings.CutPrefix(cmd, prefix); ok {
				cmds = append(cmds, strings.Fields(rest))
				break
			}
		}
	}
	return cmds
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}
