package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testKey is a valid Fernet key used as a secret that must never print.
const testKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

// allVars lists the variable of every field, read from the struct tags.
func allVars(t *testing.T) []string {
	t.Helper()
	typ := reflect.TypeOf(Config{})
	var vars []string
	for i := range typ.NumField() {
		vars = append(vars, typ.Field(i).Tag.Get("envconfig"))
	}
	return vars
}

// clearEnv unsets every variable for the test (restored afterwards).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range allVars(t) {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEveryFieldIsDocumented(t *testing.T) {
	typ := reflect.TypeOf(Config{})
	seen := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		if !strings.HasPrefix(name, Prefix+"_") {
			t.Errorf("%s: variable %q does not start with %s_", f.Name, name, Prefix)
		}
		if seen[name] {
			t.Errorf("%s: variable %q used twice", f.Name, name)
		}
		seen[name] = true
		if f.Tag.Get("desc") == "" {
			t.Errorf("%s: no desc tag", f.Name)
		}
	}
	for _, name := range []string{
		"S3EXPORTER_NATS_URL", "S3EXPORTER_NATS_CREDS", "S3EXPORTER_NATS_NKEY_SEED",
		"S3EXPORTER_NATS_TLS_CERT", "S3EXPORTER_NATS_TLS_KEY", "S3EXPORTER_NATS_TLS_CA",
		"S3EXPORTER_SUBJECT_PREFIX", "S3EXPORTER_S3_ENDPOINT", "S3EXPORTER_S3_FORCE_PATH_STYLE",
		"S3EXPORTER_STS_ENDPOINT", "S3EXPORTER_METRICS_ADDR", "S3EXPORTER_CREDENTIALS_KEY",
		"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS", "S3EXPORTER_FILE_SOURCE_ROOTS",
		"S3EXPORTER_ROLE_ARN_PATTERN", "S3EXPORTER_LOG_LEVEL", "S3EXPORTER_MANAGE_STREAMS",
		"S3EXPORTER_STREAM_REPLICAS", "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS",
	} {
		if !seen[name] {
			t.Errorf("contract variable %s is missing", name)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	clearEnv(t)
	// envconfig would read these unprefixed names if the tags were short ones.
	t.Setenv("LOG_LEVEL", "nonsense")
	t.Setenv("NATS_URL", "nats://elsewhere:1")
	t.Setenv("CONCURRENCY", "x")

	got, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Load() with no environment =\n%#v\nwant Default() =\n%#v", *got, *want)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
	want := map[string]any{
		"NATSURL": "nats://127.0.0.1:4222", "SubjectPrefix": "prowler", "ManageStreams": true,
		"StreamReplicas": 1, "ScanMaxAge": 168 * time.Hour, "DefaultRegion": "us-east-1",
		"MetricsAddr": ":9090", "LogLevel": "info", "Concurrency": 256, "MaxInFlightScans": 32,
		"PartSize": int64(8388608), "MultipartThreshold": int64(16777216), "UploadTimeout": 30 * time.Minute,
		"AckWait": time.Minute, "MaxDeliver": 10, "InProcessRetries": 3, "RetryBaseDelay": 200 * time.Millisecond,
		"ShutdownGrace": 25 * time.Second, "ConsumerName": "s3-exporter", "ConnectionTestTimeout": 20 * time.Second,
		"GlobalControl": true, "S3ForcePathStyle": false, "AllowPlaintextCredentials": false, "CredentialsKey": Secret(""),
		"S3Endpoint": "", "STSEndpoint": "", "RoleARNPattern": "", "NATSCreds": "",
		"UploadMemory": int64(0), "GCHeapFloor": int64(64 << 20), "ResponseTimeout": time.Minute, "BreakerFailures": 5, "BreakerCooldown": 30 * time.Second,
		"MaxHeldScans": 128, "MaxTenantScans": 8, "StatusStreamBytes": int64(1 << 30), "DLQStreamBytes": int64(1 << 30),
	}
	v := reflect.ValueOf(got).Elem()
	for field, w := range want {
		if g := v.FieldByName(field).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %v, want %v", field, g, w)
		}
	}
	if got.FileSourceRoots != nil {
		t.Errorf("FileSourceRoots = %q, want none", got.FileSourceRoots)
	}
	if want := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute}; !reflect.DeepEqual(got.Backoff, want) {
		t.Errorf("Backoff = %v, want %v", got.Backoff, want)
	}
}

func TestLoadFromEnvironment(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "user.creds")
	if err := os.WriteFile(creds, []byte("creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"S3EXPORTER_NATS_URL":                    "nats://a:4222, tls://b:4222",
		"S3EXPORTER_NATS_CREDS":                  creds,
		"S3EXPORTER_SUBJECT_PREFIX":              "acme-prod",
		"S3EXPORTER_NATS_JS_DOMAIN":              "hub_eu-1",
		"S3EXPORTER_MANAGE_STREAMS":              "false",
		"S3EXPORTER_STREAM_REPLICAS":             "3",
		"S3EXPORTER_S3_ENDPOINT":                 "http://127.0.0.1:7070",
		"S3EXPORTER_S3_FORCE_PATH_STYLE":         "true",
		"S3EXPORTER_CREDENTIALS_KEY":             testKey,
		"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS": "1",
		"S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS":   "true",
		"S3EXPORTER_FILE_SOURCE_ROOTS":           " /var/lib/prowler/out/ ,/srv//outputs,",
		"S3EXPORTER_ROLE_ARN_PATTERN":            "arn:aws:iam::*:role/Prowler*",
		"S3EXPORTER_LOG_LEVEL":                   "DEBUG",
		"S3EXPORTER_PART_SIZE":                   "16777216",
		"S3EXPORTER_BACKOFF":                     "1s,2s",
		"S3EXPORTER_ACK_WAIT":                    "2m30s",
		"S3EXPORTER_S3_SOURCE_BUCKETS":           " prowler-app-outputs ,,second.bucket",
		"S3EXPORTER_ARCHIVE_MAX_BYTES":           "1073741824",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.ManageStreams || c.StreamReplicas != 3 || !c.S3ForcePathStyle || !c.AllowPlaintextCredentials {
		t.Errorf("bools/ints not read: %+v", c)
	}
	if !c.AllowAmbientCredentials {
		t.Errorf("AllowAmbientCredentials not read")
	}
	if !slices.Equal(c.S3SourceBuckets, []string{"prowler-app-outputs", "second.bucket"}) || c.ArchiveMaxBytes != 1<<30 {
		t.Errorf("S3SourceBuckets = %q, ArchiveMaxBytes = %d", c.S3SourceBuckets, c.ArchiveMaxBytes)
	}
	if c.NATSJSDomain != "hub_eu-1" {
		t.Errorf("NATSJSDomain = %q", c.NATSJSDomain)
	}
	if c.CredentialsKey.Reveal() != testKey {
		t.Errorf("CredentialsKey not read")
	}
	if want := []string{"/var/lib/prowler/out", "/srv/outputs"}; !reflect.DeepEqual(c.FileSourceRoots, want) {
		t.Errorf("FileSourceRoots = %q, want %q", c.FileSourceRoots, want)
	}
	if c.LogLevel != "debug" || c.ZapLevel() != zapcore.DebugLevel {
		t.Errorf("LogLevel = %q (%v)", c.LogLevel, c.ZapLevel())
	}
	if !reflect.DeepEqual(c.Backoff, []time.Duration{time.Second, 2 * time.Second}) || c.AckWait != 150*time.Second || c.PartSize != 16<<20 {
		t.Errorf("durations/sizes not read: %v %v %v", c.Backoff, c.AckWait, c.PartSize)
	}
	if c.SubjectPrefix != "acme-prod" {
		t.Errorf("SubjectPrefix = %q", c.SubjectPrefix)
	}
}

func TestValidationErrorsNameTheirVariable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	cases := []struct {
		env      map[string]string
		variable string
		contains string
	}{
		{map[string]string{"S3EXPORTER_NATS_URL": ""}, "S3EXPORTER_NATS_URL", "at least one server"},
		{map[string]string{"S3EXPORTER_NATS_URL": "nats://a:1,,nats://b:2"}, "S3EXPORTER_NATS_URL", "empty entry"},
		{map[string]string{"S3EXPORTER_NATS_URL": "http://a:1"}, "S3EXPORTER_NATS_URL", "scheme"},
		{map[string]string{"S3EXPORTER_NATS_CREDS": missing}, "S3EXPORTER_NATS_CREDS", "cannot read"},
		{map[string]string{"S3EXPORTER_NATS_NKEY_SEED": dir}, "S3EXPORTER_NATS_NKEY_SEED", "directory"},
		{map[string]string{"S3EXPORTER_NATS_CREDS": file, "S3EXPORTER_NATS_NKEY_SEED": file}, "S3EXPORTER_NATS_NKEY_SEED", "together"},
		{map[string]string{"S3EXPORTER_NATS_TLS_CERT": file}, "S3EXPORTER_NATS_TLS_KEY", "required"},
		{map[string]string{"S3EXPORTER_NATS_TLS_KEY": file}, "S3EXPORTER_NATS_TLS_CERT", "required"},
		{map[string]string{"S3EXPORTER_NATS_TLS_CA": missing}, "S3EXPORTER_NATS_TLS_CA", "cannot read"},
		{map[string]string{"S3EXPORTER_NATS_JS_DOMAIN": "hub.eu"}, "S3EXPORTER_NATS_JS_DOMAIN", `got "hub.eu"`},
		{map[string]string{"S3EXPORTER_NATS_JS_DOMAIN": "hub*"}, "S3EXPORTER_NATS_JS_DOMAIN", "one subject token"},
		{map[string]string{"S3EXPORTER_NATS_JS_DOMAIN": ">"}, "S3EXPORTER_NATS_JS_DOMAIN", "one subject token"},
		{map[string]string{"S3EXPORTER_NATS_JS_DOMAIN": " hub"}, "S3EXPORTER_NATS_JS_DOMAIN", "letters"},
		{map[string]string{"S3EXPORTER_SUBJECT_PREFIX": "a.b"}, "S3EXPORTER_SUBJECT_PREFIX", `got "a.b"`},
		{map[string]string{"S3EXPORTER_SUBJECT_PREFIX": "a b"}, "S3EXPORTER_SUBJECT_PREFIX", "letters"},
		{map[string]string{"S3EXPORTER_SUBJECT_PREFIX": ">"}, "S3EXPORTER_SUBJECT_PREFIX", "letters"},
		{map[string]string{"S3EXPORTER_SUBJECT_PREFIX": ""}, "S3EXPORTER_SUBJECT_PREFIX", "letters"},
		{map[string]string{"S3EXPORTER_MANAGE_STREAMS": "yes please"}, "S3EXPORTER_MANAGE_STREAMS", "true or false"},
		{map[string]string{"S3EXPORTER_STREAM_REPLICAS": "7"}, "S3EXPORTER_STREAM_REPLICAS", "must be between 1 and 5, got 7"},
		{map[string]string{"S3EXPORTER_STREAM_REPLICAS": "three"}, "S3EXPORTER_STREAM_REPLICAS", "an integer"},
		{map[string]string{"S3EXPORTER_SCAN_MAX_AGE": "7d"}, "S3EXPORTER_SCAN_MAX_AGE", "a duration"},
		{map[string]string{"S3EXPORTER_SCAN_MAX_AGE": "0s"}, "S3EXPORTER_SCAN_MAX_AGE", "positive"},
		{map[string]string{"S3EXPORTER_S3_ENDPOINT": "localhost:9000"}, "S3EXPORTER_S3_ENDPOINT", "http:// or https://"},
		{map[string]string{"S3EXPORTER_S3_FORCE_PATH_STYLE": "maybe"}, "S3EXPORTER_S3_FORCE_PATH_STYLE", "true or false"},
		{map[string]string{"S3EXPORTER_STS_ENDPOINT": "ftp://sts"}, "S3EXPORTER_STS_ENDPOINT", "http:// or https://"},
		{map[string]string{"S3EXPORTER_DEFAULT_REGION": "US East"}, "S3EXPORTER_DEFAULT_REGION", "region"},
		{map[string]string{"S3EXPORTER_METRICS_ADDR": "9090"}, "S3EXPORTER_METRICS_ADDR", "host:port"},
		{map[string]string{"S3EXPORTER_METRICS_ADDR": ":http-ish"}, "S3EXPORTER_METRICS_ADDR", "host:port"},
		{map[string]string{"S3EXPORTER_CREDENTIALS_KEY": "c2hvcnQ="}, "S3EXPORTER_CREDENTIALS_KEY", "not a Fernet key"},
		{map[string]string{"S3EXPORTER_CREDENTIALS_KEY": testKey + ",c2hvcnQ="}, "S3EXPORTER_CREDENTIALS_KEY", "key 2 of 2"},
		{map[string]string{"S3EXPORTER_CREDENTIALS_KEY": testKey + ","}, "S3EXPORTER_CREDENTIALS_KEY", "key 2 of 2 is empty"},
		{map[string]string{"S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS": "sure"}, "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS", "true or false"},
		{map[string]string{"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS": "sure"}, "S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS", "true or false"},
		{map[string]string{"S3EXPORTER_FILE_SOURCE_ROOTS": "/ok,relative/dir"}, "S3EXPORTER_FILE_SOURCE_ROOTS", `"relative/dir"`},
		{map[string]string{"S3EXPORTER_ROLE_ARN_PATTERN": "role/Prowler*"}, "S3EXPORTER_ROLE_ARN_PATTERN", "ARN glob"},
		{map[string]string{"S3EXPORTER_LOG_LEVEL": "verbose"}, "S3EXPORTER_LOG_LEVEL", "debug, info, warn, error"},
		{map[string]string{"S3EXPORTER_CONCURRENCY": "0"}, "S3EXPORTER_CONCURRENCY", "between 1 and 1024, got 0"},
		{map[string]string{"S3EXPORTER_MAX_INFLIGHT_SCANS": "-1"}, "S3EXPORTER_MAX_INFLIGHT_SCANS", "between 1 and 1024"},
		{map[string]string{"S3EXPORTER_PART_SIZE": "1048576"}, "S3EXPORTER_PART_SIZE", "5 MiB"},
		{map[string]string{"S3EXPORTER_PART_SIZE": "16MiB"}, "S3EXPORTER_PART_SIZE", "an integer"},
		{map[string]string{"S3EXPORTER_MULTIPART_THRESHOLD": "1"}, "S3EXPORTER_MULTIPART_THRESHOLD", "5 MiB"},
		{map[string]string{"S3EXPORTER_UPLOAD_TIMEOUT": "-1m"}, "S3EXPORTER_UPLOAD_TIMEOUT", "positive"},
		{map[string]string{"S3EXPORTER_ACK_WAIT": "500ms"}, "S3EXPORTER_ACK_WAIT", "at least 1s"},
		{map[string]string{"S3EXPORTER_MAX_DELIVER": "0"}, "S3EXPORTER_MAX_DELIVER", "between 1 and 1000"},
		{map[string]string{"S3EXPORTER_MAX_HELD_SCANS": "4"}, "S3EXPORTER_MAX_HELD_SCANS", "at least S3EXPORTER_MAX_INFLIGHT_SCANS (32)"},
		{map[string]string{"S3EXPORTER_MAX_TENANT_SCANS": "0"}, "S3EXPORTER_MAX_TENANT_SCANS", "between 1 and 1024"},
		{map[string]string{"S3EXPORTER_STATUS_STREAM_MAX_BYTES": "1000"}, "S3EXPORTER_STATUS_STREAM_MAX_BYTES", "at least 1048576"},
		{map[string]string{"S3EXPORTER_DLQ_STREAM_MAX_BYTES": "0"}, "S3EXPORTER_DLQ_STREAM_MAX_BYTES", "-1 for no limit"},
		{map[string]string{"S3EXPORTER_BACKOFF": ""}, "S3EXPORTER_BACKOFF", "at least one"},
		{map[string]string{"S3EXPORTER_BACKOFF": "5s,soon"}, "S3EXPORTER_BACKOFF", "comma-separated durations"},
		{map[string]string{"S3EXPORTER_BACKOFF": "5s,0s"}, "S3EXPORTER_BACKOFF", "positive"},
		{map[string]string{"S3EXPORTER_INPROCESS_RETRIES": "21"}, "S3EXPORTER_INPROCESS_RETRIES", "between 0 and 20"},
		{map[string]string{"S3EXPORTER_RETRY_BASE_DELAY": "0"}, "S3EXPORTER_RETRY_BASE_DELAY", "positive"},
		{map[string]string{"S3EXPORTER_S3_RETRY_MAX_BACKOFF": "0s"}, "S3EXPORTER_S3_RETRY_MAX_BACKOFF", "positive"},
		{map[string]string{"S3EXPORTER_SHUTDOWN_GRACE": "0s"}, "S3EXPORTER_SHUTDOWN_GRACE", "positive"},
		{map[string]string{"S3EXPORTER_CONSUMER_NAME": "s3.exporter"}, "S3EXPORTER_CONSUMER_NAME", "letters"},
		{map[string]string{"S3EXPORTER_CONNECTION_TEST_TIMEOUT": "0s"}, "S3EXPORTER_CONNECTION_TEST_TIMEOUT", "positive"},
		{map[string]string{"S3EXPORTER_GLOBAL_CONTROL": "tenants-only"}, "S3EXPORTER_GLOBAL_CONTROL", "true or false"},
		{map[string]string{"S3EXPORTER_UPLOAD_MEMORY": "1000"}, "S3EXPORTER_UPLOAD_MEMORY", "at least 16777216"},
		{map[string]string{"S3EXPORTER_UPLOAD_MEMORY": "256MiB"}, "S3EXPORTER_UPLOAD_MEMORY", "an integer"},
		{map[string]string{"S3EXPORTER_GC_HEAP_FLOOR": "-1"}, "S3EXPORTER_GC_HEAP_FLOOR", "0 (off) or a number of bytes"},
		{map[string]string{"S3EXPORTER_RESPONSE_TIMEOUT": "0s"}, "S3EXPORTER_RESPONSE_TIMEOUT", "positive"},
		{map[string]string{"S3EXPORTER_CREDENTIAL_REFRESH_WINDOW": "0s"}, "S3EXPORTER_CREDENTIAL_REFRESH_WINDOW", "less than 15m"},
		{map[string]string{"S3EXPORTER_CREDENTIAL_REFRESH_WINDOW": "15m"}, "S3EXPORTER_CREDENTIAL_REFRESH_WINDOW", "less than 15m"},
		{map[string]string{"S3EXPORTER_BREAKER_FAILURES": "0"}, "S3EXPORTER_BREAKER_FAILURES", "between 1 and 1000"},
		{map[string]string{"S3EXPORTER_BREAKER_COOLDOWN": "-1s"}, "S3EXPORTER_BREAKER_COOLDOWN", "positive"},
		{map[string]string{"S3EXPORTER_S3_SOURCE_BUCKETS": "prowler-out, Bad_Bucket"}, "S3EXPORTER_S3_SOURCE_BUCKETS", `S3 bucket name (3 to 63 lower-case letters, digits, '.' or '-'), got "Bad_Bucket"`},
		{map[string]string{"S3EXPORTER_ARCHIVE_MAX_BYTES": "0"}, "S3EXPORTER_ARCHIVE_MAX_BYTES", "positive"},
		{map[string]string{"S3EXPORTER_ARCHIVE_MAX_BYTES": "10GiB"}, "S3EXPORTER_ARCHIVE_MAX_BYTES", "an integer"},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.variable] = true
		t.Run(tc.variable+"/"+tc.contains, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load()
			if err == nil {
				t.Fatalf("Load accepted %v: %+v", tc.env, c)
			}
			if c != nil {
				t.Error("Load returned a config with its error")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if fe.Var != tc.variable {
				t.Errorf("error names %s, want %s: %v", fe.Var, tc.variable, err)
			}
			if !strings.HasPrefix(err.Error(), tc.variable+": ") || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q, want %q prefix and %q", err, tc.variable+": ", tc.contains)
			}
			if strings.Contains(err.Error(), "envconfig") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one clear line: %q", err)
			}
		})
	}
	for _, v := range allVars(t) {
		if !covered[v] {
			t.Errorf("no validation case for %s", v)
		}
	}
}

func TestStreamReplicasMessage(t *testing.T) {
	c := Default()
	c.StreamReplicas = 7
	if err := c.Validate(); err == nil || err.Error() != "S3EXPORTER_STREAM_REPLICAS: must be between 1 and 5, got 7" {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Concurrency = 0
	c.LogLevel = "loud"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "S3EXPORTER_LOG_LEVEL: ") || !strings.HasPrefix(lines[1], "S3EXPORTER_CONCURRENCY: ") {
		t.Fatalf("error = %q", err)
	}
}

func TestSecretsInErrorsAreHidden(t *testing.T) {
	c := Default()
	c.CredentialsKey = "not-a-key-but-still-secret"
	c.NATSURL = "nats://alice:hunter2@nats:4222,http://bob:pa55@x:1"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"not-a-key-but-still-secret", "hunter2", "pa55"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q reveals %q", err, s)
		}
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var buf bytes.Buffer
	if err := Usage(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	typ := reflect.TypeOf(Config{})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != typ.NumField()+1 {
		t.Errorf("usage has %d lines, want a header and %d variables", len(lines), typ.NumField())
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		line := lines[min(i+1, len(lines)-1)]
		name, def, desc := f.Tag.Get("envconfig"), f.Tag.Get("default"), f.Tag.Get("desc")
		if def == "" {
			def = "-"
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != name || fields[1] != def || !strings.HasSuffix(line, desc) {
			t.Errorf("usage line %q, want %s, default %s and %q", line, name, def, desc)
		}
	}
	if !strings.Contains(out, "S3EXPORTER_BACKOFF") || !strings.Contains(out, "5s,30s,2m,10m,30m") {
		t.Errorf("usage lacks the backoff default:\n%s", out)
	}
}

func TestHelpers(t *testing.T) {
	c := Default()

	backoff := []struct {
		attempt int
		want    time.Duration
	}{
		{-3, 5 * time.Second}, {0, 5 * time.Second}, {1, 5 * time.Second}, {2, 30 * time.Second},
		{3, 2 * time.Minute}, {5, 30 * time.Minute}, {6, 30 * time.Minute}, {100, 30 * time.Minute},
	}
	for _, b := range backoff {
		if got := c.BackoffFor(b.attempt); got != b.want {
			t.Errorf("BackoffFor(%d) = %v, want %v", b.attempt, got, b.want)
		}
	}
	c.Backoff = nil
	if got := c.BackoffFor(1); got != 0 {
		t.Errorf("BackoffFor with no backoff = %v", got)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	c := Default()
	c.CredentialsKey = Secret(testKey)
	c.NATSURL = "nats://alice:hunter2@127.0.0.1:4222"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.CredentialsKey.Reveal() != testKey || !c.CredentialsKey.IsSet() {
		t.Fatal("Reveal lost the value")
	}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c),
			fmt.Sprintf(verb, c.CredentialsKey), fmt.Sprintf(verb, &c.CredentialsKey))
	}
	if got := fmt.Sprint(c.CredentialsKey); got != Redacted {
		t.Errorf("Sprint(secret) = %q, want %q", got, Redacted)
	}
	if got := fmt.Sprintf("%#v", c.CredentialsKey); got != `"[REDACTED]"` {
		t.Errorf("%%#v = %q", got)
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("empty secret prints %q", got)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"CredentialsKey":"[REDACTED]"`) {
		t.Errorf("json = %s", js)
	}
	outputs = append(outputs, string(js))

	var zbuf bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&zbuf), zapcore.DebugLevel))
	logger.Info("config", zap.Object("config", c), zap.Any("key", c.CredentialsKey), zap.Reflect("reflected", c), zap.Stringer("s", c.CredentialsKey))
	_ = logger.Sync()
	if !strings.Contains(zbuf.String(), `"credentials_key":"[REDACTED]"`) || !strings.Contains(zbuf.String(), `"key":"[REDACTED]"`) {
		t.Errorf("zap output lacks redacted fields: %s", zbuf.String())
	}
	if !strings.Contains(zbuf.String(), `"stream_replicas":1`) || !strings.Contains(zbuf.String(), `"ack_wait":"1m0s"`) {
		t.Errorf("zap object lacks settings: %s", zbuf.String())
	}
	outputs = append(outputs, zbuf.String())

	var sbuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&sbuf, nil)).Info("config", "key", c.CredentialsKey, "cfg", c)
	outputs = append(outputs, sbuf.String())

	for _, out := range outputs {
		if strings.Contains(out, testKey) || strings.Contains(out, "cw_0x689") || strings.Contains(out, fmt.Sprintf("%x", testKey)[:16]) {
			t.Errorf("secret printed: %s", out)
		}
	}
	// zap.Object hides the password of the NATS URL.
	object := strings.SplitN(zbuf.String(), `"reflected"`, 2)[0]
	if strings.Contains(object, "hunter2") || !strings.Contains(object, `"nats_url":"nats://REDACTED@127.0.0.1:4222"`) {
		t.Errorf("zap.Object logs the NATS URL as: %s", object)
	}
}
