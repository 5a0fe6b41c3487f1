// Package config reads the exporter's settings from the environment.
//
// Every variable starts with S3EXPORTER_ (see contract §8); Usage prints them
// all with their defaults. Load reads and validates them; a problem is reported
// as an error that names the variable.
package config

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"go.uber.org/zap/zapcore"
)

// Prefix starts the name of every variable.
const Prefix = "S3EXPORTER"

// Config holds every setting. The envconfig tags carry the full variable names
// (and Load processes them with an empty prefix) so that envconfig never falls
// back to an unprefixed variable such as LOG_LEVEL.
type Config struct {
	// NATS connection.
	NATSURL      string `envconfig:"S3EXPORTER_NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS servers, comma-separated (nats://, tls://, ws:// or wss:// URLs)"`
	NATSCreds    string `envconfig:"S3EXPORTER_NATS_CREDS" desc:"NATS user credentials (.creds) file"`
	NATSNKeySeed string `envconfig:"S3EXPORTER_NATS_NKEY_SEED" desc:"file holding an NKey seed for NATS authentication"`
	NATSTLSCert  string `envconfig:"S3EXPORTER_NATS_TLS_CERT" desc:"client certificate (PEM) for NATS TLS; needs S3EXPORTER_NATS_TLS_KEY"`
	NATSTLSKey   string `envconfig:"S3EXPORTER_NATS_TLS_KEY" desc:"client private key (PEM) for NATS TLS; needs S3EXPORTER_NATS_TLS_CERT"`
	NATSTLSCA    string `envconfig:"S3EXPORTER_NATS_TLS_CA" desc:"CA bundle (PEM) to verify the NATS servers"`
	NATSJSDomain string `envconfig:"S3EXPORTER_NATS_JS_DOMAIN" desc:"JetStream domain holding the streams, object stores and bucket (e.g. the hub's, seen from a leaf node); empty: the connected server's own JetStream"`

	// Subjects and streams.
	SubjectPrefix  string        `envconfig:"S3EXPORTER_SUBJECT_PREFIX" default:"prowler" desc:"first token of every subject; upper-cased it prefixes the streams and the key-value bucket"`
	ManageStreams  bool          `envconfig:"S3EXPORTER_MANAGE_STREAMS" default:"true" desc:"create missing streams and the key-value bucket at start (false: only check they exist)"`
	StreamReplicas int           `envconfig:"S3EXPORTER_STREAM_REPLICAS" default:"1" desc:"replicas of the streams and bucket it creates (1 to 5; 3 on a NATS cluster)"`
	ScanMaxAge     time.Duration `envconfig:"S3EXPORTER_SCAN_MAX_AGE" default:"168h" desc:"max age of messages in the scans stream"`

	// AWS.
	S3Endpoint       string `envconfig:"S3EXPORTER_S3_ENDPOINT" desc:"S3-compatible endpoint (http or https URL) used for every integration instead of AWS"`
	S3ForcePathStyle bool   `envconfig:"S3EXPORTER_S3_FORCE_PATH_STYLE" default:"false" desc:"use path-style S3 addressing"`
	STSEndpoint      string `envconfig:"S3EXPORTER_STS_ENDPOINT" desc:"STS endpoint (http or https URL) used to assume roles instead of AWS"`
	DefaultRegion    string `envconfig:"S3EXPORTER_DEFAULT_REGION" default:"us-east-1" desc:"AWS region used before a bucket's region is known"`

	// HTTP.
	MetricsAddr string `envconfig:"S3EXPORTER_METRICS_ADDR" default:":9090" desc:"listen address of /metrics, /healthz and /readyz"`

	// Integrations.
	CredentialsKey            Secret   `envconfig:"S3EXPORTER_CREDENTIALS_KEY" desc:"Fernet key(s) (url-safe base64 of 32 bytes) that decrypt encrypted_credentials; several comma-separated for rotation: the first encrypts, all decrypt"`
	AllowPlaintextCredentials bool     `envconfig:"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS" default:"false" desc:"accept plaintext credentials in integration events"`
	AllowAmbientCredentials   bool     `envconfig:"S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS" default:"false" desc:"accept integrations with neither keys nor role_arn, written with the exporter's own AWS identity (single-tenant deployments only; the dev stack sets it)"`
	FileSourceRoots           []string `envconfig:"S3EXPORTER_FILE_SOURCE_ROOTS" desc:"absolute directories allowed for file:// sources, comma-separated, read at <root>/<tenant_id>/<scan_id>/ (empty: file sources off)"`
	S3SourceBuckets           []string `envconfig:"S3EXPORTER_S3_SOURCE_BUCKETS" desc:"buckets of the platform's own (Prowler App's output bucket) that s3:// sources may name, comma-separated; read with the exporter's own AWS identity, only under <tenant_id>/<scan_id>/ (empty: s3 sources off)"`
	ArchiveMaxBytes           int64    `envconfig:"S3EXPORTER_ARCHIVE_MAX_BYTES" default:"10737418240" desc:"most bytes the exported members of one archive artifact may expand to in all (by their headers, and counted as they stream); an archive over it is refused as a whole"`
	RoleARNPattern            string   `envconfig:"S3EXPORTER_ROLE_ARN_PATTERN" desc:"glob every role_arn must match, e.g. arn:aws:iam::*:role/Prowler*"`

	// Control (contract §7).
	GlobalControl bool `envconfig:"S3EXPORTER_GLOBAL_CONTROL" default:"true" desc:"also serve the tenant-less control subjects (<prefix>.control.integrations.test, ...), for a trusted admin backend; false leaves only <prefix>.control.<tenant_id>.*"`

	// Logging.
	LogLevel string `envconfig:"S3EXPORTER_LOG_LEVEL" default:"info" desc:"log level: debug, info, warn or error (logs are JSON)"`

	// Work and retries.
	Concurrency           int             `envconfig:"S3EXPORTER_CONCURRENCY" default:"256" desc:"most artifact uploads running at once in this replica, across tenants; each tenant gets a fair share and each destination an adaptive limit within it"`
	MaxInFlightScans      int             `envconfig:"S3EXPORTER_MAX_INFLIGHT_SCANS" default:"32" desc:"most scans exporting at once in this replica"`
	PartSize              int64           `envconfig:"S3EXPORTER_PART_SIZE" default:"8388608" desc:"multipart upload part size in bytes (5 MiB to 5 GiB)"`
	MultipartThreshold    int64           `envconfig:"S3EXPORTER_MULTIPART_THRESHOLD" default:"16777216" desc:"artifacts of at least this many bytes use a multipart upload (5 MiB to 5 GiB)"`
	UploadTimeout         time.Duration   `envconfig:"S3EXPORTER_UPLOAD_TIMEOUT" default:"30m" desc:"time limit of one artifact upload attempt"`
	AckWait               time.Duration   `envconfig:"S3EXPORTER_ACK_WAIT" default:"60s" desc:"JetStream ack wait of the scans consumer (progress is signalled while uploads run)"`
	MaxDeliver            int             `envconfig:"S3EXPORTER_MAX_DELIVER" default:"10" desc:"attempts at a scan (deliveries that were not deferrals) before it is given up and dead-lettered (1 to 1000)"`
	Backoff               []time.Duration `envconfig:"S3EXPORTER_BACKOFF" default:"5s,30s,2m,10m,30m" desc:"delays before redelivering a failed scan event (NakWithDelay), comma-separated; the last one repeats"`
	InProcessRetries      int             `envconfig:"S3EXPORTER_INPROCESS_RETRIES" default:"3" desc:"quick retries of a failed upload within one delivery (0 to 20)"`
	RetryBaseDelay        time.Duration   `envconfig:"S3EXPORTER_RETRY_BASE_DELAY" default:"200ms" desc:"base of the jittered exponential delay between quick retries"`
	S3RetryMaxBackoff     time.Duration   `envconfig:"S3EXPORTER_S3_RETRY_MAX_BACKOFF" default:"20s" desc:"most delay between the AWS SDK's tries of one S3 request (jittered, doubling from 1 s after throttling, from 50 ms after other errors; 20s is the SDK's own)"`
	ShutdownGrace         time.Duration   `envconfig:"S3EXPORTER_SHUTDOWN_GRACE" default:"25s" desc:"time in-flight work gets to finish on shutdown"`
	ConsumerName          string          `envconfig:"S3EXPORTER_CONSUMER_NAME" default:"s3-exporter" desc:"durable consumer name shared by all replicas"`
	ConnectionTestTimeout time.Duration   `envconfig:"S3EXPORTER_CONNECTION_TEST_TIMEOUT" default:"20s" desc:"time limit of one connection test"`

	// Upload scheduling (docs/design.md, "Fair, latency-proof uploads").
	UploadMemory            int64         `envconfig:"S3EXPORTER_UPLOAD_MEMORY" default:"0" desc:"byte budget of the uploads running at once (0: half of GOMEMLIMIT when set, else 268435456); see docs/operations.md, Memory"`
	GCHeapFloor             int64         `envconfig:"S3EXPORTER_GC_HEAP_FLOOR" default:"67108864" desc:"while the live heap is under half of this many bytes, the Go collector waits for the heap to reach it (a quarter of GOMEMLIMIT at most) rather than for it to double, and collects less often; 0: off (GOGC set: off)"`
	ResponseTimeout         time.Duration `envconfig:"S3EXPORTER_RESPONSE_TIMEOUT" default:"60s" desc:"an S3 request with no response headers (or a body that stops moving) for this long fails as a retryable Timeout"`
	CredentialRefreshWindow time.Duration `envconfig:"S3EXPORTER_CREDENTIAL_REFRESH_WINDOW" default:"1m" desc:"assumed-role credentials are refreshed this long before they expire (more than 0, less than 15m, the shortest role session)"`
	BreakerFailures         int           `envconfig:"S3EXPORTER_BREAKER_FAILURES" default:"5" desc:"failures in a row (timeouts, throttling, 5xx, refused connections) of one destination that open its circuit breaker (1 to 1000)"`
	BreakerCooldown         time.Duration `envconfig:"S3EXPORTER_BREAKER_COOLDOWN" default:"30s" desc:"how long an open breaker fails uploads fast before a probe; doubles on each failed probe, up to 5m"`
	// Scan fairness and stream limits (the scan consumer's).
	MaxHeldScans      int   `envconfig:"S3EXPORTER_MAX_HELD_SCANS" default:"128" desc:"most scan events this replica holds unacknowledged, exporting or waiting for a slot (at least S3EXPORTER_MAX_INFLIGHT_SCANS)"`
	MaxTenantScans    int   `envconfig:"S3EXPORTER_MAX_TENANT_SCANS" default:"8" desc:"most scans of one tenant exporting at once in this replica; a tenant holds at most 4 times that while other tenants need the room (alone and progressing, up to S3EXPORTER_MAX_HELD_SCANS less S3EXPORTER_MAX_INFLIGHT_SCANS), its next scans are deferred without using attempts"`
	StatusStreamBytes int64 `envconfig:"S3EXPORTER_STATUS_STREAM_MAX_BYTES" default:"1073741824" desc:"MaxBytes of the status stream when the exporter creates it, oldest statuses dropped first (-1: no limit; an existing stream is not changed)"`
	DLQStreamBytes    int64 `envconfig:"S3EXPORTER_DLQ_STREAM_MAX_BYTES" default:"1073741824" desc:"MaxBytes of the dead-letter stream when the exporter creates it, oldest dead letters dropped first (-1: no limit; an existing stream is not changed)"`
}

// Default returns the configuration with every default and no environment.
// The defaults are the struct tags' (the one place each is written, also
// what Usage prints), parsed here; TestLoadDefaults keeps this equal to what
// Load reads from an empty environment. Tests build on it.
func Default() *Config {
	c := &Config{}
	v := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		def, ok := f.Tag.Lookup("default")
		if !ok {
			continue
		}
		if err := setDefault(v.Field(i), def); err != nil {
			// A tag that does not parse is a programming error, which
			// every test building on Default reports.
			panic(fmt.Sprintf("config: the default of %s: %v", f.Name, err))
		}
	}
	return c
}

// setDefault parses a default tag into a field, for the kinds Config uses.
func setDefault(f reflect.Value, def string) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(def)
		f.SetInt(int64(d))
		return err
	case []time.Duration:
		var ds []time.Duration
		for _, p := range strings.Split(def, ",") {
			d, err := time.ParseDuration(p)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		f.Set(reflect.ValueOf(ds))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(def)
	case reflect.Bool:
		b, err := strconv.ParseBool(def)
		f.SetBool(b)
		return err
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(def, 10, 64)
		f.SetInt(n)
		return err
	default:
		return fmt.Errorf("no default parser for %s", f.Type())
	}
	return nil
}

// Load reads the configuration from the environment and validates it. An
// unset variable takes its default; a variable set to the empty string is
// empty (which some settings reject).
func Load() (*Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return nil, parseError(err)
	}
	c.normalize()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// normalize tidies what an operator may reasonably write loosely.
func (c *Config) normalize() {
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	roots := c.FileSourceRoots[:0]
	for _, r := range c.FileSourceRoots {
		if r = strings.TrimSpace(r); r != "" {
			roots = append(roots, filepath.Clean(r))
		}
	}
	if len(roots) == 0 {
		roots = nil
	}
	c.FileSourceRoots = roots
	buckets := c.S3SourceBuckets[:0]
	for _, b := range c.S3SourceBuckets {
		if b = strings.TrimSpace(b); b != "" {
			buckets = append(buckets, b)
		}
	}
	if len(buckets) == 0 {
		buckets = nil
	}
	c.S3SourceBuckets = buckets
}

// parseError turns envconfig's error (which quotes the raw value and the Go
// field) into one that names the variable and says what it expects.
func parseError(err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("config: %w", err)
	}
	value := fmt.Sprintf(" %q", pe.Value)
	if f, ok := reflect.TypeOf(Config{}).FieldByName(pe.FieldName); ok && f.Type == reflect.TypeOf(Secret("")) {
		value = ""
	}
	return &FieldError{Var: pe.KeyName, Reason: fmt.Sprintf("invalid value%s: want %s", value, expected(pe.TypeName))}
}

func expected(typeName string) string {
	switch typeName {
	case "bool":
		return "true or false"
	case "int", "int64":
		return "an integer"
	case "time.Duration":
		return "a duration such as 90s, 10m or 1h30m"
	case "[]time.Duration":
		return "comma-separated durations such as 5s,30s,2m"
	default:
		return "a " + typeName
	}
}

// Usage writes a table of every variable, its default and its meaning.
func Usage(w io.Writer) error {
	const format = "VARIABLE\tDEFAULT\tMEANING\n" +
		"{{range .}}{{usage_key .}}\t{{with usage_default .}}{{.}}{{else}}-{{end}}\t{{usage_description .}}\n{{end}}"
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	if err := envconfig.Usagef("", &Config{}, tw, format); err != nil {
		return fmt.Errorf("config: usage: %w", err)
	}
	return tw.Flush()
}

// BackoffFor returns the delay to ask for (NakWithDelay) after delivery number
// deliveryAttempt (1-based, as jetstream's MsgMetadata.NumDelivered) failed:
// Backoff[deliveryAttempt-1], the last entry once the list runs out, and the
// first for an attempt below 1. It is 0 when Backoff is empty.
func (c *Config) BackoffFor(deliveryAttempt int) time.Duration {
	if len(c.Backoff) == 0 {
		return 0
	}
	i := min(max(deliveryAttempt-1, 0), len(c.Backoff)-1)
	return c.Backoff[i]
}

// ZapLevel returns LogLevel as a zap level (info when it does not parse; Validate
// rejects such a level).
func (c *Config) ZapLevel() zapcore.Level {
	l, err := zapcore.ParseLevel(c.LogLevel)
	if err != nil {
		return zapcore.InfoLevel
	}
	return l
}

// MarshalLogObject implements zapcore.ObjectMarshaler, so the whole
// configuration can be logged with zap.Object("config", cfg). Keys are the
// variable names without the prefix, lower-cased; the credentials key is
// redacted and so is any password in the NATS URL.
func (c *Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := strings.ToLower(strings.TrimPrefix(f.Tag.Get("envconfig"), Prefix+"_"))
		switch x := v.Field(i).Interface().(type) {
		case Secret:
			enc.AddString(key, x.String())
		case string:
			if f.Name == "NATSURL" {
				x = RedactURLs(x)
			}
			enc.AddString(key, x)
		case bool:
			enc.AddBool(key, x)
		case int:
			enc.AddInt(key, x)
		case int64:
			enc.AddInt64(key, x)
		case time.Duration:
			enc.AddString(key, x.String())
		default:
			enc.AddString(key, fmt.Sprint(x))
		}
	}
	return nil
}
