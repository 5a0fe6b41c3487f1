package daemon

import (
	"fmt"
	"testing"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/consumer"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/control"
)

// TestPackageDefaultsAreTheSettingsDefaults: each package takes the
// defaults of its options from its own constants, and a setting of the
// daemon (config's struct tags, what --help and docs/configuration.md
// show) has the same default as the option it sets: a package used without
// the daemon (the tests, the bench) behaves as the daemon does by default.
func TestPackageDefaultsAreTheSettingsDefaults(t *testing.T) {
	d := config.Default()
	for _, c := range []struct {
		setting     string
		got, option any
	}{
		{"S3EXPORTER_CONCURRENCY", d.Concurrency, exporter.DefaultConcurrency},
		{"S3EXPORTER_PART_SIZE", d.PartSize, int64(exporter.DefaultPartSize)},
		{"S3EXPORTER_MULTIPART_THRESHOLD", d.MultipartThreshold, int64(exporter.DefaultMultipartThreshold)},
		{"S3EXPORTER_UPLOAD_TIMEOUT", d.UploadTimeout, exporter.DefaultUploadTimeout},
		{"S3EXPORTER_RETRY_BASE_DELAY", d.RetryBaseDelay, exporter.DefaultRetryBaseDelay},
		{"S3EXPORTER_BREAKER_FAILURES", d.BreakerFailures, exporter.DefaultBreakerFailures},
		{"S3EXPORTER_BREAKER_COOLDOWN", d.BreakerCooldown, exporter.DefaultBreakerCooldown},
		{"S3EXPORTER_DEFAULT_REGION", d.DefaultRegion, exporter.DefaultRegion},
		{"S3EXPORTER_CREDENTIAL_REFRESH_WINDOW", d.CredentialRefreshWindow, exporter.DefaultCredentialExpiryWindow},
		{"S3EXPORTER_RESPONSE_TIMEOUT", d.ResponseTimeout, exporter.DefaultResponseTimeout},
		{"S3EXPORTER_MAX_INFLIGHT_SCANS", d.MaxInFlightScans, consumer.DefaultMaxInFlight},
		{"S3EXPORTER_ACK_WAIT", d.AckWait, consumer.DefaultAckWait},
		{"S3EXPORTER_SUBJECT_PREFIX", d.SubjectPrefix, control.DefaultPrefix},
		{"S3EXPORTER_CONNECTION_TEST_TIMEOUT", d.ConnectionTestTimeout, control.DefaultTestTimeout},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.option) || fmt.Sprintf("%T", c.got) != fmt.Sprintf("%T", c.option) {
			t.Errorf("%s defaults to %v (%T), its option to %v (%T)", c.setting, c.got, c.got, c.option, c.option)
		}
	}
	// S3EXPORTER_BACKOFF: every delay, and the last one repeating.
	for attempt := 0; attempt <= len(d.Backoff)+2; attempt++ {
		if got, want := consumer.DefaultBackoff(attempt), d.BackoffFor(attempt); got != want {
			t.Errorf("S3EXPORTER_BACKOFF: attempt %d waits %v by default, the option %v", attempt, want, got)
		}
	}
}
