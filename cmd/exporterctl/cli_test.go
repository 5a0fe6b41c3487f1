package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
)

// result is one in-process run of exporterctl.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// ctl runs exporterctl in-process with env as its environment (and nothing
// else of the real one).
func ctl(ctx context.Context, env map[string]string, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code := runContext(ctx, args, strings.NewReader(stdin), &out, &errb, getenv)
	return result{code, out.String(), errb.String()}
}

// deadServer is a NATS URL nothing listens on: a command that gets as far as
// connecting fails with exit 1 there, so exit 2 proves validation stopped it.
const deadServer = "nats://127.0.0.1:1"

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	payload := filepath.Join(dir, "payload.json")
	if err := os.WriteFile(payload, []byte(`{"id":"i1","tenant_id":"t1","providers":["p"],"configuration":{"bucket_name":"bkt"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	put := []string{"integration", "put", "--tenant", "t1", "--id", "i1", "--bucket", "my-bucket", "--provider", "p1"}
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no command":            {nil, nil, "no command"},
		"unknown command":       {[]string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		"group without command": {[]string{"integration"}, nil, "which command"},
		"unknown flag":          {[]string{"integration", "get", "--tenant", "t", "--id", "i", "--nope"}, nil, "-nope"},
		"js domain not a token": {[]string{"--js-domain", "hub.eu", "integration", "get", "--tenant", "t", "--id", "i"}, nil, `--js-domain "hub.eu"`},
		"get without id":        {[]string{"integration", "get", "--tenant", "t"}, nil, "--id is required"},
		"bad tenant":            {[]string{"integration", "delete", "--tenant", "a.b", "--id", "i"}, nil, `--tenant "a.b"`},
		"put without bucket":    {[]string{"integration", "put", "--tenant", "t", "--id", "i", "--provider", "p"}, nil, "--bucket is required"},
		"put without provider":  {[]string{"integration", "put", "--tenant", "t", "--id", "i", "--bucket", "bkt"}, nil, "--provider is required"},
		"put bad provider":      {append(slices.Clone(put), "--provider", "p*"), nil, `--provider "p*"`},
		"key without secret":    {append(slices.Clone(put), "--access-key-id", "AKIAEXAMPLE"), nil, "needs a secret"},
		"secret without key":    {append(slices.Clone(put), "--secret-access-key", "s3cr3t-value"), nil, "needs --access-key-id"},
		"token without key":     {append(slices.Clone(put), "--session-token", "tok-value"), nil, "--session-token needs"},
		"secret twice": {append(slices.Clone(put), "--access-key-id", "AKIAEXAMPLE", "--secret-access-key", "s3cr3t-value",
			"--secret-access-key-file", payload), nil, "not both"},
		"external id without role": {append(slices.Clone(put), "--external-id", "x"), nil, "need --role-arn"},
		"duration out of range": {append(slices.Clone(put), "--role-arn", "arn:aws:iam::123456789012:role/R",
			"--session-duration", "60"), nil, "between 900 and 43200"},
		"bad bucket":          {[]string{"integration", "put", "--tenant", "t", "--id", "i", "--bucket", "Bad_Bucket", "--provider", "p"}, nil, "S3InvalidBucketName"},
		"bad role arn":        {append(slices.Clone(put), "--role-arn", "not-an-arn"), nil, "not an IAM role ARN"},
		"bad sse":             {append(slices.Clone(put), "--sse", "rot13"), nil, "sse"},
		"bad dir":             {append(slices.Clone(put), "--dir", "a/../b"), nil, "'..'"},
		"file with flags":     {[]string{"integration", "put", "--file", payload, "--bucket", "x"}, nil, "--file cannot be combined with --bucket"},
		"key file alone":      {append(slices.Clone(put), "--key-file", payload), nil, "--key-file needs --encrypt"},
		"encrypt without key": {append(slices.Clone(put), "--access-key-id", "AKIAEXAMPLE", "--secret-access-key", "s3cr3t-value", "--encrypt"), nil, "needs a Fernet key"},
		"encrypt nothing":     {append(slices.Clone(put), "--encrypt"), map[string]string{"S3EXPORTER_CREDENTIALS_KEY": "x"}, "no credentials to encrypt"},
		"positional":          {append(slices.Clone(put), "stray"), nil, "unexpected positional"},
		"test both":           {[]string{"integration", "test", "--tenant", "t", "--id", "i", "--file", payload}, nil, "not both"},
		"test encrypt saved":  {[]string{"integration", "test", "--tenant", "t", "--id", "i", "--encrypt"}, nil, "go with --file"},
		"scan no dir":         {[]string{"scan", "publish", "--tenant", "t", "--provider-id", "p", "--provider-uid", "1"}, nil, "one folder"},
		"scan two dirs":       {[]string{"scan", "publish", "--tenant", "t", "--provider-id", "p", "--provider-uid", "1", dir, dir}, nil, "got 2"},
		"scan no uid":         {[]string{"scan", "publish", "--tenant", "t", "--provider-id", "p", dir}, nil, "--provider-uid is required"},
		"scan bad time": {[]string{"scan", "publish", "--tenant", "t", "--provider-id", "p", "--provider-uid", "1",
			"--started-at", "yesterday", dir}, nil, "RFC 3339"},
		"scan bad id":         {[]string{"scan", "publish", "--tenant", "t", "--provider-id", "p", "--provider-uid", "1", "--scan-id", "a b", dir}, nil, "--scan-id"},
		"run without scanner": {[]string{"scan", "run", "--tenant", "t", "--provider-id", "p"}, nil, "needs the scanner's command after --"},
		"run bad tenant":      {[]string{"scan", "run", "--tenant", "a b", "--provider-id", "p", "--", "true"}, nil, "--tenant"},
		"watch bad count":     {[]string{"status", "watch", "--count", "-1"}, nil, "--count"},
		"replay no scan":      {[]string{"replay", "--tenant", "t"}, nil, "--scan is required"},
		"list no tenant":      {[]string{"integration", "list"}, nil, "--tenant is required"},
		"list bad tenant":     {[]string{"integration", "list", "--tenant", "a.*"}, nil, `--tenant "a.*"`},
		"bad inbox prefix":    {[]string{"--inbox-prefix", "_INBOX.*", "integration", "list", "--tenant", "t"}, nil, "--inbox-prefix"},
		"bad prefix":          {[]string{"--prefix", "a.b", "replay", "--tenant", "t", "--scan", "s"}, nil, "--prefix"},
		"tls half":            {[]string{"--tlscert", "c.pem", "replay", "--tenant", "t", "--scan", "s"}, nil, "go together"},
		"bad timeout":         {[]string{"replay", "--tenant", "t", "--scan", "s", "--timeout", "soon"}, nil, "-timeout"},
		"help no command":     {[]string{"help", "nope", "x"}, nil, ""},
		"global after cmd":    {[]string{"replay", "--tenant", "t", "--scan", "s", "--prefix", "bad prefix"}, nil, "--prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"-s", deadServer}, tc.args...)
			r := ctl(context.Background(), tc.env, "", args...)
			if tc.want == "" { // help
				if r.code != 0 || !strings.Contains(r.stdout, "Exit codes") {
					t.Fatalf("got %v", r)
				}
				return
			}
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d (usage)\nstderr: %s", r.code, exitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "exporterctl: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q: want one line starting with \"exporterctl: \"", r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := ctl(context.Background(), nil, "", "--help")
	if r.code != 0 {
		t.Fatalf("--help: %v", r)
	}
	for _, want := range []string{"integration put", "scan publish", "status watch", "replay", "--server", "NATS_URL",
		"3  not connected", "4  export failed", "2  usage error"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	for _, args := range [][]string{
		{"integration", "put", "--help"}, {"help", "integration", "put"}, {"integration", "put", "-h"},
	} {
		r := ctl(context.Background(), nil, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "--secret-access-key-file") || !strings.Contains(r.stdout, "Exit codes") {
			t.Errorf("%v: %v", args, r)
		}
	}
	r = ctl(context.Background(), nil, "", "scan", "publish", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "compliance/**/*.csv") {
		t.Errorf("scan publish --help: %v", r)
	}
	// scan run's help needs no scanner after --.
	r = ctl(context.Background(), nil, "", "scan", "run", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "-- SCANNER [ARGS...]") {
		t.Errorf("scan run --help: %v", r)
	}
}

// TestSecretsNeverPrinted feeds secrets to commands that fail in several
// ways and checks that no output holds them.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	const token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	keyFile := filepath.Join(dir, "key")
	payload := filepath.Join(dir, "payload.json")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(payload, []byte(`{"id":"i1","tenant_id":"t1","type":"amazon_s3","providers":["p"],
		"configuration":{"bucket_name":"bkt"},
		"credentials":{"aws_access_key_id":"AKIAEXAMPLE","aws_secret_access_key":"`+secret+`","aws_session_token":"`+token+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"-s", "nats://user:" + secret + "@127.0.0.1:1", "--timeout", "2s"}
	put := []string{"integration", "put", "--tenant", "t1", "--id", "i1", "--bucket", "bkt", "--provider", "p", "--access-key-id", "AKIAEXAMPLE"}
	env := map[string]string{"AWS_SECRET_ACCESS_KEY": secret, "S3EXPORTER_CREDENTIALS_KEY": key}
	for name, args := range map[string][]string{
		"flag, no server":         append(slices.Clone(put), "--secret-access-key", secret, "--session-token", token),
		"file, no server":         append(slices.Clone(put), "--secret-access-key-file", secretFile),
		"env, encrypted":          append(slices.Clone(put), "--encrypt", "--key-file", keyFile),
		"env key":                 append(slices.Clone(put), "--encrypt"),
		"mistyped flag":           append(slices.Clone(put), "--secret-acess-key", secret),
		"mistyped flag, =":        append(slices.Clone(put), "--secret-acess-key="+secret),
		"secret left positional":  append(slices.Clone(put), "--secret-access-key", secret, token),
		"payload file":            {"integration", "put", "--file", payload},
		"payload file, encrypted": {"integration", "put", "--file", payload, "--encrypt"},
		"payload on stdin":        {"integration", "test", "--file", "-"},
		// The safety net: an error quoting a value that holds a secret.
		"error quoting a secret": {"integration", "put", "--tenant", "t1", "--id", "i1", "--bucket", "B_" + secret, "--provider", "p",
			"--access-key-id", "AKIAEXAMPLE", "--secret-access-key", secret},
	} {
		t.Run(name, func(t *testing.T) {
			stdin, _ := os.ReadFile(payload)
			r := ctl(context.Background(), env, string(stdin), append(slices.Clone(base), args...)...)
			if r.code == 0 {
				t.Fatalf("succeeded without a server: %v", r)
			}
			for _, s := range []string{secret, token, strings.TrimRight(key, "=")} {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Fatalf("a secret was printed: %v", r)
				}
			}
			if r.stderr == "" {
				t.Fatal("no error message")
			}
		})
	}
}

func TestSealCredentials(t *testing.T) {
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Two keys, as during a rotation: the first one encrypts.
	a := &app{getenv: func(k string) string {
		if k == "S3EXPORTER_CREDENTIALS_KEY" {
			return key + "," + oldKey
		}
		return ""
	}, secrets: &secretSet{}}
	creds := event.Credentials{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret-value-1", SessionToken: "token-1",
		RoleARN: "arn:aws:iam::123456789012:role/R", SessionDuration: 1200}
	in := event.IntegrationPayload{ID: "i", TenantID: "t", Credentials: &creds}
	mode, err := a.sealCredentials(&in, true, "", map[string]bool{})
	if err != nil || mode != "encrypted" {
		t.Fatalf("sealCredentials: %q, %v", mode, err)
	}
	if in.Credentials != nil || in.EncryptedCredentials == "" || strings.Contains(in.EncryptedCredentials, "secret-value-1") {
		t.Fatalf("credentials not sealed: %+v", in)
	}
	k, err := fernet.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := k.Decrypt([]byte(in.EncryptedCredentials), time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var back event.Credentials
	if err := json.Unmarshal(plain, &back); err != nil {
		t.Fatal(err)
	}
	if back != creds {
		t.Fatalf("decrypted %#v, want the credentials sent", back.Redacted())
	}
	// The token is bound to its integration (contract v1.1 §2).
	var bound struct {
		TenantID      string `json:"tenant_id"`
		IntegrationID string `json:"integration_id"`
	}
	if err := json.Unmarshal(plain, &bound); err != nil || bound.TenantID != "t" || bound.IntegrationID != "i" {
		t.Fatalf("token binding %+v (%v), want tenant_id t and integration_id i", bound, err)
	}
	for _, s := range []string{key, oldKey} {
		if !slices.Contains(a.secrets.vals, s) {
			t.Errorf("a key of S3EXPORTER_CREDENTIALS_KEY is not masked in output")
		}
	}

	plainIn := event.IntegrationPayload{ID: "i", TenantID: "t", Credentials: &creds}
	if mode, err := a.sealCredentials(&plainIn, false, "", map[string]bool{}); err != nil || mode != "plaintext" || plainIn.Credentials == nil {
		t.Fatalf("without --encrypt: %q, %v, %+v", mode, err, plainIn)
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := newFlagSet("x")
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	pos, err := parseInterleaved(fs, []string{"one", "-a", "v", "two", "-b", "--", "-three"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if *a != "v" || !*b || !slices.Equal(pos, []string{"one", "two", "-three"}) {
		t.Fatalf("a=%q b=%v pos=%q", *a, *b, pos)
	}
	fs = newFlagSet("top")
	g := defaultGlobals(func(string) string { return "" })
	g.register(fs)
	rest, err := parseInterleaved(fs, []string{"-s", "nats://x:4222", "scan", "publish", "--json"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if g.server != "nats://x:4222" || g.json || !slices.Equal(rest, []string{"scan", "publish", "--json"}) {
		t.Fatalf("server=%q json=%v rest=%q", g.server, g.json, rest)
	}
	// A command's flag set keeps what the top level parsed.
	sub := newFlagSet("sub")
	g.register(sub)
	if err := sub.Parse([]string{"--json"}); err != nil {
		t.Fatal(err)
	}
	if g.server != "nats://x:4222" || !g.json {
		t.Fatalf("after the command's flags: server=%q json=%v", g.server, g.json)
	}
}

func TestGlobalsFromEnv(t *testing.T) {
	g := defaultGlobals(func(k string) string {
		return map[string]string{"NATS_URL": "nats://env:4222", "NATS_CREDS": "/c.creds"}[k]
	})
	if g.server != "nats://env:4222" || g.creds != "/c.creds" || g.prefix != "prowler" || g.timeout != 30*time.Second {
		t.Fatalf("%+v", g)
	}
	if g := defaultGlobals(func(string) string { return "" }); g.server != "nats://127.0.0.1:4222" {
		t.Fatalf("default server %q", g.server)
	}
}

func TestRedactURLs(t *testing.T) {
	got := config.RedactURLs("nats://u:p@h1:4222,tls://tok@h2,nats://h3")
	if got != "nats://REDACTED@h1:4222,tls://REDACTED@h2,nats://h3" {
		t.Fatal(got)
	}
}

func TestExitCodes(t *testing.T) {
	for err, want := range map[error]int{
		nil:                        exitOK,
		usageErrorf("x"):           exitUsage,
		withCode(exitNotConnected): exitNotConnected,
		withCode(exitExportFailed): exitExportFailed,
		flag.ErrHelp:               exitError,
	} {
		if got := exitCode(err); got != want {
			t.Errorf("exitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestNewUUID(t *testing.T) {
	a, b := newUUID(), newUUID()
	if a == b || len(a) != 36 || a[14] != '4' || !event.ValidID(a) {
		t.Fatalf("%q %q", a, b)
	}
}
