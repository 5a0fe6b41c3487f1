package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prowler-cloud/s3-exporter/internal/fernet"
)

// FieldError is a problem with one variable. Validate joins one per problem
// (errors.As finds the first).
type FieldError struct {
	Var    string // the variable, e.g. S3EXPORTER_STREAM_REPLICAS
	Reason string // what is wrong, never a secret value
}

func (e *FieldError) Error() string { return e.Var + ": " + e.Reason }

const (
	minPartSize = 5 << 20 // S3's smallest part but the last
	maxPartSize = 5 << 30 // S3's largest part and largest single PutObject
)

var (
	// tokenRe is what may name a subject token, a stream, a key-value bucket
	// (nats.go requires [a-zA-Z0-9_-]+ for buckets) and a durable consumer.
	tokenRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	regionRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	// bucketRe: an S3 bucket name (the general purpose rules).
	bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// Validate checks every setting and returns nil, or one error listing each
// problem on its own line as "S3EXPORTER_VARIABLE: reason".
func (c *Config) Validate() error {
	var v validator
	v.natsURL("S3EXPORTER_NATS_URL", c.NATSURL)
	v.file("S3EXPORTER_NATS_CREDS", c.NATSCreds)
	v.file("S3EXPORTER_NATS_NKEY_SEED", c.NATSNKeySeed)
	if c.NATSCreds != "" && c.NATSNKeySeed != "" {
		v.add("S3EXPORTER_NATS_NKEY_SEED", "cannot be used together with S3EXPORTER_NATS_CREDS")
	}
	v.file("S3EXPORTER_NATS_TLS_CERT", c.NATSTLSCert)
	v.file("S3EXPORTER_NATS_TLS_KEY", c.NATSTLSKey)
	v.file("S3EXPORTER_NATS_TLS_CA", c.NATSTLSCA)
	if c.NATSTLSCert != "" && c.NATSTLSKey == "" {
		v.add("S3EXPORTER_NATS_TLS_KEY", "required when S3EXPORTER_NATS_TLS_CERT is set")
	}
	if c.NATSTLSKey != "" && c.NATSTLSCert == "" {
		v.add("S3EXPORTER_NATS_TLS_CERT", "required when S3EXPORTER_NATS_TLS_KEY is set")
	}
	// The domain becomes a token of every JetStream API subject
	// ($JS.<domain>.API.>); a dot or wildcard would address another domain or
	// many at once, so only a plain token passes.
	if c.NATSJSDomain != "" && !tokenRe.MatchString(c.NATSJSDomain) {
		v.add("S3EXPORTER_NATS_JS_DOMAIN", fmt.Sprintf("must be empty (no domain) or 1 to 64 letters, digits, '_' or '-' (one subject token), got %q", c.NATSJSDomain))
	}

	if !tokenRe.MatchString(c.SubjectPrefix) {
		v.add("S3EXPORTER_SUBJECT_PREFIX", fmt.Sprintf("must be 1 to 64 letters, digits, '_' or '-' (one subject token that also names streams and a bucket), got %q", c.SubjectPrefix))
	}
	v.intRange("S3EXPORTER_STREAM_REPLICAS", c.StreamReplicas, 1, 5)
	v.positive("S3EXPORTER_SCAN_MAX_AGE", c.ScanMaxAge)

	v.httpURL("S3EXPORTER_S3_ENDPOINT", c.S3Endpoint)
	v.httpURL("S3EXPORTER_STS_ENDPOINT", c.STSEndpoint)
	if !regionRe.MatchString(c.DefaultRegion) {
		v.add("S3EXPORTER_DEFAULT_REGION", fmt.Sprintf("must be an AWS region name such as us-east-1, got %q", c.DefaultRegion))
	}

	v.listenAddr("S3EXPORTER_METRICS_ADDR", c.MetricsAddr)

	if c.CredentialsKey.IsSet() {
		if _, err := fernet.ParseKeys(c.CredentialsKey.Reveal()); err != nil {
			// The error names the position of a bad key, never its text.
			v.add("S3EXPORTER_CREDENTIALS_KEY", fmt.Sprintf("not a Fernet key or comma-separated list of keys (each the url-safe base64 encoding of 32 bytes): %v", err))
		}
	}
	for _, r := range c.FileSourceRoots {
		if !filepath.IsAbs(r) {
			v.add("S3EXPORTER_FILE_SOURCE_ROOTS", fmt.Sprintf("every root must be an absolute directory, got %q", r))
		}
	}
	for _, b := range c.S3SourceBuckets {
		if !bucketRe.MatchString(b) {
			v.add("S3EXPORTER_S3_SOURCE_BUCKETS", fmt.Sprintf("every entry must be an S3 bucket name (3 to 63 lower-case letters, digits, '.' or '-'), got %q", b))
		}
	}
	if c.ArchiveMaxBytes < 1 {
		v.add("S3EXPORTER_ARCHIVE_MAX_BYTES", fmt.Sprintf("must be a positive number of bytes, got %d", c.ArchiveMaxBytes))
	}
	if c.RoleARNPattern != "" {
		if !strings.HasPrefix(c.RoleARNPattern, "arn:") {
			v.add("S3EXPORTER_ROLE_ARN_PATTERN", fmt.Sprintf("must be an ARN glob starting with \"arn:\" ('*' any characters, '?' one), got %q", c.RoleARNPattern))
		}
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.add("S3EXPORTER_LOG_LEVEL", fmt.Sprintf("must be one of debug, info, warn, error, got %q", c.LogLevel))
	}

	v.intRange("S3EXPORTER_CONCURRENCY", c.Concurrency, 1, 1024)
	v.intRange("S3EXPORTER_MAX_INFLIGHT_SCANS", c.MaxInFlightScans, 1, 1024)
	v.sizeRange("S3EXPORTER_PART_SIZE", c.PartSize)
	v.sizeRange("S3EXPORTER_MULTIPART_THRESHOLD", c.MultipartThreshold)
	v.positive("S3EXPORTER_UPLOAD_TIMEOUT", c.UploadTimeout)
	if c.AckWait < time.Second {
		v.add("S3EXPORTER_ACK_WAIT", fmt.Sprintf("must be at least 1s, got %s", c.AckWait))
	}
	v.intRange("S3EXPORTER_MAX_DELIVER", c.MaxDeliver, 1, 1000)
	v.intRange("S3EXPORTER_MAX_HELD_SCANS", c.MaxHeldScans, 1, 10_000)
	if c.MaxHeldScans < c.MaxInFlightScans {
		v.add("S3EXPORTER_MAX_HELD_SCANS", fmt.Sprintf("must be at least S3EXPORTER_MAX_INFLIGHT_SCANS (%d), got %d", c.MaxInFlightScans, c.MaxHeldScans))
	}
	v.intRange("S3EXPORTER_MAX_TENANT_SCANS", c.MaxTenantScans, 1, 1024)
	for _, b := range []struct {
		name string
		n    int64
	}{{"S3EXPORTER_STATUS_STREAM_MAX_BYTES", c.StatusStreamBytes}, {"S3EXPORTER_DLQ_STREAM_MAX_BYTES", c.DLQStreamBytes}} {
		if b.n != -1 && b.n < 1<<20 {
			v.add(b.name, fmt.Sprintf("must be at least 1048576 (1 MiB), or -1 for no limit, got %d", b.n))
		}
	}
	if len(c.Backoff) == 0 {
		v.add("S3EXPORTER_BACKOFF", "must list at least one duration")
	}
	for _, d := range c.Backoff {
		if d <= 0 {
			v.add("S3EXPORTER_BACKOFF", fmt.Sprintf("every delay must be positive, got %s", d))
			break
		}
	}
	v.intRange("S3EXPORTER_INPROCESS_RETRIES", c.InProcessRetries, 0, 20)
	v.positive("S3EXPORTER_RETRY_BASE_DELAY", c.RetryBaseDelay)
	v.positive("S3EXPORTER_S3_RETRY_MAX_BACKOFF", c.S3RetryMaxBackoff)
	v.positive("S3EXPORTER_SHUTDOWN_GRACE", c.ShutdownGrace)
	if !tokenRe.MatchString(c.ConsumerName) {
		v.add("S3EXPORTER_CONSUMER_NAME", fmt.Sprintf("must be 1 to 64 letters, digits, '_' or '-', got %q", c.ConsumerName))
	}
	v.positive("S3EXPORTER_CONNECTION_TEST_TIMEOUT", c.ConnectionTestTimeout)
	if c.UploadMemory != 0 && c.UploadMemory < 16<<20 {
		v.add("S3EXPORTER_UPLOAD_MEMORY", fmt.Sprintf("must be 0 (derived) or at least 16777216 bytes, got %d", c.UploadMemory))
	}
	if c.GCHeapFloor < 0 {
		v.add("S3EXPORTER_GC_HEAP_FLOOR", fmt.Sprintf("must be 0 (off) or a number of bytes, got %d", c.GCHeapFloor))
	}
	v.positive("S3EXPORTER_RESPONSE_TIMEOUT", c.ResponseTimeout)
	if c.CredentialRefreshWindow <= 0 || c.CredentialRefreshWindow >= 15*time.Minute {
		v.add("S3EXPORTER_CREDENTIAL_REFRESH_WINDOW", fmt.Sprintf("must be more than 0 and less than 15m (the shortest role session), got %v", c.CredentialRefreshWindow))
	}
	v.intRange("S3EXPORTER_BREAKER_FAILURES", c.BreakerFailures, 1, 1000)
	v.positive("S3EXPORTER_BREAKER_COOLDOWN", c.BreakerCooldown)
	return v.err()
}

type validator struct{ errs []error }

func (v *validator) add(name, reason string) {
	v.errs = append(v.errs, &FieldError{Var: name, Reason: reason})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) intRange(name string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(name, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n))
	}
}

func (v *validator) sizeRange(name string, n int64) {
	if n < minPartSize || n > maxPartSize {
		v.add(name, fmt.Sprintf("must be between %d (5 MiB) and %d (5 GiB) bytes, got %d", int64(minPartSize), int64(maxPartSize), n))
	}
}

func (v *validator) positive(name string, d time.Duration) {
	if d <= 0 {
		v.add(name, fmt.Sprintf("must be a positive duration, got %s", d))
	}
}

// file checks that a configured path names a readable file.
func (v *validator) file(name, p string) {
	if p == "" {
		return
	}
	st, err := os.Stat(p)
	switch {
	case err != nil:
		v.add(name, fmt.Sprintf("cannot read %q: %v", p, errors.Unwrap(err)))
	case st.IsDir():
		v.add(name, fmt.Sprintf("%q is a directory, want a file", p))
	}
}

func (v *validator) httpURL(name, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(name, fmt.Sprintf("must be an http:// or https:// URL, got %q", RedactURLs(s)))
	}
}

func (v *validator) natsURL(name, s string) {
	if strings.TrimSpace(s) == "" {
		v.add(name, "must name at least one server")
		return
	}
	for _, one := range strings.Split(s, ",") {
		one = strings.TrimSpace(one)
		if one == "" {
			v.add(name, fmt.Sprintf("empty entry in the server list %q", RedactURLs(s)))
			return
		}
		if !strings.Contains(one, "://") {
			one = "nats://" + one // as nats.go does
		}
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			v.add(name, fmt.Sprintf("not a server URL: %q", RedactURLs(one)))
			return
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			v.add(name, fmt.Sprintf("scheme must be nats, tls, ws or wss, got %q", u.Scheme))
			return
		}
	}
}

func (v *validator) listenAddr(name, s string) {
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		v.add(name, fmt.Sprintf("must be host:port or :port, got %q", s))
	}
}

// RedactURLs hides the user information (user, password or token) of every
// URL in a comma-separated list, without needing the URLs to parse.
func RedactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		start := 0
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			start = j + len("://")
		}
		parts[i] = p[:start] + "REDACTED" + p[at:]
	}
	return strings.Join(parts, ",")
}
