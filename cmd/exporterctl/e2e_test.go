package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// world is a running exporter (embedded NATS, versitygw, the daemon
// in-process) and a way to run exporterctl against it.
type world struct {
	t      *testing.T
	url    string
	s3     *s3test.S3Server
	key    string
	env    map[string]string
	mu     sync.Mutex
	output []string // every stdout and stderr, to look for secrets at the end
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, nil)
}

// newWorldWith is newWorld with the exporter's configuration changed by
// mutate (after the world's own settings).
func newWorldWith(t *testing.T, mutate func(*config.Config, *s3test.S3Server)) *world {
	t.Helper()
	ns := natstest.StartNATS(t)
	s3srv := s3test.StartS3(t)
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.NATSURL = ns.ClientURL()
	cfg.S3Endpoint = s3srv.Endpoint()
	cfg.S3ForcePathStyle = true
	cfg.AllowPlaintextCredentials = true
	cfg.CredentialsKey = config.Secret(key)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.Backoff = []time.Duration{200 * time.Millisecond}
	cfg.RetryBaseDelay = 20 * time.Millisecond
	cfg.ShutdownGrace = 5 * time.Second
	if mutate != nil {
		mutate(cfg, s3srv)
	}
	d := daemon.New(cfg, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("starting the exporter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Logf("exporter shutdown: %v", err)
		}
	})
	return &world{t: t, url: ns.ClientURL(), s3: s3srv, key: key, env: map[string]string{}}
}

// run runs exporterctl against the world's NATS server.
func (w *world) run(ctx context.Context, stdin string, args ...string) result {
	w.t.Helper()
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
	}
	r := ctl(ctx, w.env, stdin, append([]string{"--server", w.url, "--timeout", "20s"}, args...)...)
	w.mu.Lock()
	w.output = append(w.output, r.stdout, r.stderr)
	w.mu.Unlock()
	return r
}

// must runs exporterctl and fails the test unless it exits with code.
func (w *world) must(code int, args ...string) result {
	w.t.Helper()
	r := w.run(nil, "", args...)
	if r.code != code {
		w.t.Fatalf("exporterctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// eventually runs exporterctl until it exits with code (the exporter applies
// integration changes asynchronously).
func (w *world) eventually(code int, args ...string) result {
	w.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := w.run(nil, "", args...)
		if r.code == code {
			return r
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("exporterctl %s: still exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastChange reads the last integration-changed message of an integration
// straight from the stream: what exporterctl put on the wire.
func (w *world) lastChange(tenant, id string) []byte {
	w.t.Helper()
	nc, err := nats.Connect(w.url)
	if err != nil {
		w.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "PROWLER_INTEGRATIONS")
	if err != nil {
		w.t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, event.Subject("prowler", event.IntegrationsChanged, tenant, id))
	if err != nil {
		w.t.Fatal(err)
	}
	return msg.Data
}

// writeScanFolder writes a scan's outputs, named and laid out as Prowler App
// writes them, plus a file that is not an output.
func writeScanFolder(t *testing.T, seed int64, uid string, frameworks ...string) (string, []fixtures.OutputFile, time.Time) {
	t.Helper()
	dir := t.TempDir()
	start := fixtures.ScanStart(seed)
	files := fixtures.ProwlerOutputs(seed, uid, 30, frameworks)
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(fixtures.ProwlerFileName(uid, start, f)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "scan.log"), []byte("not an output"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, files, start
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEndToEnd(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its S3 server, its exporter
	w := newWorld(t)
	const (
		tenant = "tenant-1"
		uid    = "111122223333"
	)
	bucket := "exporterctl-e2e"
	if err := w.s3.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	secret := w.s3.SecretKey
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	keyFile := filepath.Join(dir, "fernet.key")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(w.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// integration put: plaintext (secret from a file), and encrypted (secret
	// from the environment, key from a file).
	r := w.must(0, "integration", "put", "--tenant", tenant, "--id", "plain", "--bucket", "s3://"+bucket, "--dir", "plain-out",
		"--provider", "aws-1", "--access-key-id", w.s3.AccessKey, "--secret-access-key-file", secretFile)
	if !strings.Contains(r.stdout, "credentials: plaintext") {
		t.Errorf("put plain: %q", r.stdout)
	}
	w.env["AWS_SECRET_ACCESS_KEY"] = secret
	r = w.must(0, "--json", "integration", "put", "--tenant", tenant, "--id", "enc", "--bucket", bucket, "--dir", "enc-out",
		"--provider", "aws-1", "--provider", "aws-2", "--access-key-id", w.s3.AccessKey, "--encrypt", "--key-file", keyFile)
	var putOut map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &putOut); err != nil || putOut["credentials"] != "encrypted" ||
		putOut["subject"] != "prowler.integrations.changed.tenant-1.enc" {
		t.Errorf("put enc --json: %q (%v)", r.stdout, err)
	}
	delete(w.env, "AWS_SECRET_ACCESS_KEY")

	// On the wire: the plaintext one carries the secret in clear (not a
	// redacted marker), the encrypted one only a token.
	plainWire, encWire := w.lastChange(tenant, "plain"), w.lastChange(tenant, "enc")
	if !bytes.Contains(plainWire, []byte(`"aws_secret_access_key":"`+secret+`"`)) {
		t.Errorf("plaintext upsert does not carry the secret: %s", plainWire)
	}
	if bytes.Contains(encWire, []byte(secret)) || bytes.Contains(encWire, []byte(`"credentials"`)) ||
		!bytes.Contains(encWire, []byte(`"encrypted_credentials":"gAAAAA`)) {
		t.Errorf("encrypted upsert: %s", encWire)
	}

	// integration get: the exporter decrypted and holds it; nothing secret shown.
	r = w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "enc")
	var got event.GetReply
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("get: %v\n%s", err, r.stdout)
	}
	if got.Integration.Configuration.BucketName != bucket || got.Integration.Configuration.OutputDirectory != "enc-out" ||
		!slices.Equal(got.Integration.Providers, []string{"aws-1", "aws-2"}) || got.Integration.Credentials == nil {
		t.Errorf("get enc: %s", r.stdout)
	}
	if !strings.Contains(r.stdout, `"aws_secret_access_key": "[REDACTED]"`) {
		t.Errorf("get enc does not show the secret as redacted: %s", r.stdout)
	}
	w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "plain")

	// integration list: the tenant's own, as a table and as JSON (over a
	// reply prefix of its own, as a per-tenant NATS user needs).
	r = w.must(0, "integration", "list", "--tenant", tenant)
	if rows := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(rows) != 3 || !strings.HasPrefix(rows[0], "ID") ||
		!strings.HasPrefix(rows[1], "enc ") || !strings.HasPrefix(rows[2], "plain ") || !strings.Contains(rows[1], bucket) {
		t.Errorf("integration list:\n%s", r.stdout)
	}
	r = w.must(0, "--json", "--inbox-prefix", "_INBOX_tenant-1", "integration", "list", "--tenant", tenant)
	var listed event.ListReply
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed.Integrations) != 2 ||
		listed.Integrations[0].Integration.ID != "enc" || listed.Integrations[1].Integration.ID != "plain" {
		t.Errorf("integration list --json: %q (%v)", r.stdout, err)
	}
	if strings.Contains(r.stdout, secret) {
		t.Error("integration list shows the secret")
	}
	r = w.must(0, "integration", "list", "--tenant", "tenant-2")
	if !strings.Contains(r.stdout, "tenant tenant-2 has no integration") {
		t.Errorf("list of another tenant: %q", r.stdout)
	}

	// integration test: cached, and unsaved from a file (encrypted on the way).
	r = w.must(0, "integration", "test", "--tenant", tenant, "--id", "plain")
	if !strings.HasPrefix(r.stdout, "connected") {
		t.Errorf("test plain: %q", r.stdout)
	}
	unsaved := `{"id":"draft","tenant_id":"` + tenant + `","providers":["aws-1"],
		"configuration":{"bucket_name":"%s"},
		"credentials":{"aws_access_key_id":"` + w.s3.AccessKey + `","aws_secret_access_key":"` + secret + `"}}`
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(strings.Replace(unsaved, "%s", bucket, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.must(0, "--json", "integration", "test", "--file", good, "--encrypt", "--key-file", keyFile)
	var tr event.TestReply
	if err := json.Unmarshal([]byte(r.stdout), &tr); err != nil || !tr.Connected || tr.Error != nil {
		t.Errorf("test --file --encrypt: %q (%v)", r.stdout, err)
	}
	r = w.run(nil, strings.Replace(unsaved, "%s", "no-such-bucket-here", 1), "integration", "test", "--file", "-")
	if r.code != exitNotConnected || !strings.HasPrefix(r.stdout, "not connected: S3BucketNotFound: ") {
		t.Errorf("test of a missing bucket: %v", r)
	}

	// scan publish --wait: both integrations export aws-1.
	folder, files, start := writeScanFolder(t, 7, uid, "cis_5.0_aws", "iso27001_2013_aws")
	r = w.must(0, "scan", "publish", folder, "--tenant", tenant, "--provider-id", "aws-1", "--provider-uid", uid,
		"--started-at", start.Format(time.RFC3339), "--wait")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	scanID := lines[0]
	if !uuidPattern.MatchString(scanID) {
		t.Fatalf("scan publish printed %q, want a scan id first", r.stdout)
	}
	for _, id := range []string{"enc", "plain"} {
		if !strings.Contains(r.stdout, "integration "+id+": succeeded (attempt 1, 6 objects)") {
			t.Errorf("scan publish --wait: no success of %s:\n%s", id, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "scan.log") {
		t.Errorf("the skipped file is not reported: %q", r.stderr)
	}
	for _, out := range []string{"plain-out", "enc-out"} {
		objs, err := w.s3.ListObjects(bucket, out+"/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		for _, f := range files {
			key := exporter.ObjectKey(out, event.Artifact{Format: f.Format, Framework: f.Framework}, uid, start)
			if !slices.Contains(keys, key) {
				t.Errorf("%s is not in the bucket (%q)", key, keys)
				continue
			}
			o, err := w.s3.GetObject(bucket, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(o.Body, f.Body) {
				t.Errorf("%s: the bytes differ from the file's", key)
			}
		}
		if len(keys) != len(files) {
			t.Errorf("%s holds %d objects, want %d: %q", out, len(keys), len(files), keys)
		}
	}

	// scan publish --wait to an integration whose bucket is gone: exit 4.
	w.must(0, "integration", "put", "--tenant", tenant, "--id", "broken", "--bucket", "missing-bucket", "--provider", "aws-3",
		"--access-key-id", w.s3.AccessKey, "--secret-access-key-file", secretFile)
	w.eventually(0, "integration", "get", "--tenant", tenant, "--id", "broken")
	small, _, _ := writeScanFolder(t, 8, uid)
	r = w.must(exitExportFailed, "--json", "scan", "publish", "--tenant", tenant, "--provider-id", "aws-3", "--provider-uid", uid,
		"--scan-id", "scan-broken", "--wait", small)
	var failed struct {
		ScanID  string               `json:"scan_id"`
		Exports []event.ExportStatus `json:"exports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &failed); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	if failed.ScanID != "scan-broken" || len(failed.Exports) != 1 || failed.Exports[0].State != event.StateFailed ||
		len(failed.Exports[0].Errors) == 0 || failed.Exports[0].Errors[0].Code != "S3BucketNotFound" {
		t.Errorf("failed export: %s", r.stdout)
	}

	// status watch: JSON lines, from the start, filtered by tenant.
	r = w.must(0, "status", "watch", "--tenant", tenant, "--from-start", "--count", "3")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("status watch --count 3 printed %d lines:\n%s", len(lines), r.stdout)
	}
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["tenant_id"] != tenant {
			t.Errorf("status line %q: %v", l, err)
		}
	}

	// replay to one integration: a second succeeded status of the scan for it.
	succeeded := func(out string) int {
		n := 0
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var st event.ExportStatus
			if json.Unmarshal(sc.Bytes(), &st) == nil && st.ScanID == scanID && st.IntegrationID == "plain" && st.State == event.StateSucceeded {
				n++
			}
		}
		return n
	}
	r = w.must(0, "replay", "--tenant", tenant, "--scan", scanID, "--integration", "plain")
	if !strings.Contains(r.stdout, "accepted") {
		t.Errorf("replay: %q", r.stdout)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r = w.run(ctx, "", "status", "watch", "--tenant", tenant, "--from-start")
		cancel()
		if succeeded(r.stdout) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second export after the replay:\n%s", r.stdout)
		}
	}
	if r.code != 0 {
		t.Errorf("status watch ended by its context: exit %d, stderr %q", r.code, r.stderr)
	}
	r = w.must(exitError, "replay", "--tenant", tenant, "--scan", "never-published")
	if !strings.Contains(r.stderr, "InvalidRequest") {
		t.Errorf("replay of an unknown scan: %q", r.stderr)
	}

	// integration delete: the exporter forgets it.
	w.must(0, "integration", "delete", "--tenant", tenant, "--id", "enc")
	// (exit 5, not found, since issue 13: it was exit 1 like any error.)
	r = w.eventually(exitNotFound, "integration", "get", "--tenant", tenant, "--id", "enc")
	if !strings.Contains(r.stderr, "not known") {
		t.Errorf("get after delete: %q", r.stderr)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	all := strings.Join(w.output, "\n")
	for _, s := range []string{secret, strings.TrimRight(w.key, "=")} {
		if strings.Contains(all, s) {
			t.Errorf("a secret appeared in exporterctl's output")
		}
	}
}
