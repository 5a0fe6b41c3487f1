package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnknownFlagUsageLine: a mistyped flag gets one line naming it with the
// command's usage, not the flag package's "flag provided but not defined".
func TestUnknownFlagUsageLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"integration", "get", "--tenant", "t", "--id", "i", "--nope"},
			"exporterctl: unknown flag --nope; usage: exporterctl integration get --tenant T --id I\n"},
		{[]string{"--frob", "replay"},
			"exporterctl: unknown flag --frob; usage: exporterctl [connection flags] <command> [flags] [arguments]\n"},
		{[]string{"integration", "put", "--tenant"},
			"exporterctl: flag --tenant needs a value; usage: exporterctl integration put --tenant T --id I --bucket B --provider P [--provider P2 ...] [flags]\n"},
		{[]string{"dlq", "replay", "--seq", "zero"},
			`exporterctl: invalid value "zero" for --seq: not a stream sequence; usage: exporterctl dlq replay (--seq N [--seq M ...] | --tenant T --all) [--delete] [--force]` + "\n"},
	} {
		r := ctl(context.Background(), nil, "", append([]string{"-s", deadServer}, tc.args...)...)
		if r.code != exitUsage || r.stderr != tc.want || r.stdout != "" {
			t.Errorf("%v: %v\nwant stderr %q", tc.args, r, tc.want)
		}
		if strings.Contains(r.stderr, "provided but not defined") {
			t.Errorf("%v: the flag package's message leaks through: %q", tc.args, r.stderr)
		}
	}
}

func decodeJSONError(t *testing.T, r result) jsonError {
	t.Helper()
	var j jsonError
	if strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr is not one line: %q", r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stderr), &j); err != nil {
		t.Fatalf("stderr is not JSON: %q (%v)", r.stderr, err)
	}
	if j.Error.ExitCode != r.code {
		t.Errorf("exit_code %d, process exit %d", j.Error.ExitCode, r.code)
	}
	return j
}

// TestJSONErrors: with --json, wherever it stands, an error is one JSON
// object on stderr with a code, the message and the exit code.
func TestJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		jsonCode string
		msg      string
	}{
		{[]string{"--json", "integration", "get", "--tenant", "t"}, exitUsage, "UsageError", "--id is required"},
		{[]string{"integration", "get", "--tenant", "t", "--id", "i", "--nope", "--json"}, exitUsage, "UsageError", "unknown flag --nope"},
		{[]string{"--json", "frobnicate"}, exitUsage, "UsageError", `unknown command "frobnicate"`},
		{[]string{"integration", "get", "--json", "--tenant", "t", "--id", "i", "--timeout", "2s"}, exitError, "Error", "connecting to NATS"},
	} {
		r := ctl(context.Background(), nil, "", append([]string{"-s", deadServer}, tc.args...)...)
		if r.code != tc.code || r.stdout != "" {
			t.Errorf("%v: %v", tc.args, r)
			continue
		}
		j := decodeJSONError(t, r)
		if j.Error.Code != tc.jsonCode || !strings.Contains(j.Error.Message, tc.msg) {
			t.Errorf("%v: %+v, want code %s and a message with %q", tc.args, j.Error, tc.jsonCode, tc.msg)
		}
	}
	// After "--", --json is an argument, not the flag.
	if wantsJSON([]string{"replay", "--", "--json"}) {
		t.Error("wantsJSON looks past --")
	}
}

func writeContext(t *testing.T, home, name, body string) {
	t.Helper()
	dir := filepath.Join(home, ".config", "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestContextSettings: a nats CLI context fills the connection settings;
// flags and NATS_* variables win over it; its secrets are redacted.
func TestContextSettings(t *testing.T) {
	home := t.TempDir()
	writeContext(t, home, "prod", `{"description":"prod","url":"nats://ctxuser:ctx-s3cret-pw@127.0.0.1:2","creds":"~/prod.creds","token":"","jetstream_domain":"hub"}`)
	writeContext(t, home, "broken", `{"url":`)
	env := map[string]string{"HOME": home}
	get := []string{"--timeout", "2s", "integration", "get", "--tenant", "t", "--id", "i"}

	// The context's url and creds (~ expanded): the creds file is read first,
	// and does not exist.
	r := ctl(context.Background(), env, "", append([]string{"--context", "prod"}, get...)...)
	if r.code != exitError || !strings.Contains(r.stderr, filepath.Join(home, "prod.creds")) {
		t.Errorf("--context prod: %v", r)
	}
	// NATS_CONTEXT names it too; --creds on the command line wins over it,
	// and then the context's URL is the one dialled, its password redacted.
	env["NATS_CONTEXT"] = "prod"
	r = ctl(context.Background(), env, "", append([]string{"--creds", ""}, get...)...)
	if r.code != exitError || !strings.Contains(r.stderr, "127.0.0.1:2") || strings.Contains(r.stderr, "ctx-s3cret-pw") {
		t.Errorf("NATS_CONTEXT=prod --creds '': %v", r)
	}
	// A flag wins over the context's url.
	r = ctl(context.Background(), env, "", append([]string{"--creds", "", "-s", deadServer}, get...)...)
	if r.code != exitError || !strings.Contains(r.stderr, "127.0.0.1:1") || strings.Contains(r.stderr, "127.0.0.1:2") {
		t.Errorf("-s over the context: %v", r)
	}
	// So does NATS_URL.
	env["NATS_URL"] = deadServer
	r = ctl(context.Background(), env, "", append([]string{"--creds", ""}, get...)...)
	if r.code != exitError || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("NATS_URL over the context: %v", r)
	}
	delete(env, "NATS_URL")
	delete(env, "NATS_CONTEXT")

	for _, tc := range []struct {
		name string
		code int
		want string
	}{
		{"nope", exitUsage, "no such context"},
		{"../prod", exitUsage, "not a context name"},
		{"broken", exitError, "is not a nats context"},
	} {
		r := ctl(context.Background(), env, "", append([]string{"--context", tc.name}, get...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("--context %s: %v", tc.name, r)
		}
	}
	// XDG_CONFIG_HOME is where the nats CLI looks first.
	xdg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(xdg, "nats", "context"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(xdg, "nats", "context", "x.json"), []byte(`{"url":"nats://127.0.0.1:3"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ctl(context.Background(), map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdg}, "", append([]string{"--context", "x"}, get...)...)
	if r.code != exitError || !strings.Contains(r.stderr, "127.0.0.1:3") {
		t.Errorf("--context from XDG_CONFIG_HOME: %v", r)
	}
}

func TestHelpNamesNewCommandsAndCodes(t *testing.T) {
	r := ctl(context.Background(), nil, "", "--help")
	for _, want := range []string{"dlq list", "dlq replay", "--context NAME", "5  not found", "errors too"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

func TestDLQUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "replay"}, "which dead letters"},
		{[]string{"dlq", "replay", "--all"}, "--all needs --tenant"},
		{[]string{"dlq", "replay", "--seq", "3", "--tenant", "t", "--all"}, "not both"},
		{[]string{"dlq", "replay", "--tenant", "a.b", "--all"}, `--tenant "a.b"`},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit"},
		{[]string{"dlq", "list", "--tenant", "t>"}, `--tenant "t>"`},
	} {
		r := ctl(context.Background(), nil, "", append([]string{"-s", deadServer}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %v", tc.args, r)
		}
	}
}
