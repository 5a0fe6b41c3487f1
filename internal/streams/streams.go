// Package streams is the exporter's JetStream topology (contract §1): the
// names of its streams, subjects and ledger bucket for one subject prefix,
// their configurations, and creating or checking them at start.
package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Topology names the streams and subjects of one subject prefix.
type Topology struct {
	Prefix     string
	Replicas   int
	ScanMaxAge time.Duration
	// StatusMaxBytes and DLQMaxBytes bound the status and dead-letter
	// streams (0: DefaultStreamMaxBytes, -1: no limit), so that a flood of
	// statuses or dead letters cannot fill the account's JetStream storage
	// (which would stop the scans stream too). The oldest messages go first.
	StatusMaxBytes int64
	DLQMaxBytes    int64
}

// DefaultStreamMaxBytes is the default MaxBytes of the status and
// dead-letter streams: 1 GiB, about a million statuses.
const DefaultStreamMaxBytes = 1 << 30

func maxBytes(n int64) int64 {
	if n == 0 {
		return DefaultStreamMaxBytes
	}
	return n
}

func (t Topology) stream(kind string) string { return strings.ToUpper(t.Prefix) + "_" + kind }

// ScansStream is PROWLER_SCANS for the prefix "prowler".
func (t Topology) ScansStream() string { return t.stream("SCANS") }

// IntegrationsStream is PROWLER_INTEGRATIONS.
func (t Topology) IntegrationsStream() string { return t.stream("INTEGRATIONS") }

// StatusStream is PROWLER_STATUS.
func (t Topology) StatusStream() string { return t.stream("STATUS") }

// DLQStream is PROWLER_DLQ.
func (t Topology) DLQStream() string { return t.stream("DLQ") }

// LedgerBucket is the PROWLER_EXPORTS key-value bucket.
func (t Topology) LedgerBucket() string { return t.stream("EXPORTS") }

// Subject builds prefix.kind.tokens….
func (t Topology) Subject(kind string, tokens ...string) string {
	return event.Subject(t.Prefix, kind, tokens...)
}

const day = 24 * time.Hour

// StreamConfigs returns the streams of contract §1.
func (t Topology) StreamConfigs() []jetstream.StreamConfig {
	r := max(t.Replicas, 1)
	maxAge := t.ScanMaxAge
	if maxAge <= 0 {
		maxAge = 7 * day
	}
	return []jetstream.StreamConfig{
		{
			Name: t.ScansStream(), Subjects: []string{t.Subject(event.ScansCompleted, ">")},
			Retention: jetstream.LimitsPolicy, MaxAge: maxAge, Storage: jetstream.FileStorage,
			Duplicates: 2 * time.Minute, Replicas: r,
			Description: "scan-completed events from scan engines",
		},
		{
			Name: t.IntegrationsStream(), Subjects: []string{t.Subject(event.IntegrationsChanged, ">")},
			Retention: jetstream.LimitsPolicy, MaxMsgsPerSubject: 1, Storage: jetstream.FileStorage, Replicas: r,
			Description: "the last state of each integration",
		},
		{
			Name:      t.StatusStream(),
			Subjects:  []string{t.Subject(event.ExportsStatus, ">"), t.Subject(event.IntegrationsStatus, ">")},
			Retention: jetstream.LimitsPolicy, MaxAge: 30 * day, MaxBytes: maxBytes(t.StatusMaxBytes),
			Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage, Replicas: r,
			Description: "export and connection status events",
		},
		{
			Name: t.DLQStream(), Subjects: []string{t.Prefix + ".dlq.>"},
			Retention: jetstream.LimitsPolicy, MaxAge: 30 * day, MaxBytes: maxBytes(t.DLQMaxBytes),
			Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage, Replicas: r,
			Description: "dead-lettered scan events",
		},
	}
}

// LedgerConfig is the PROWLER_EXPORTS bucket. Entries live a day longer than
// scans do: past that no redelivery or replay can ask for them.
func (t Topology) LedgerConfig() jetstream.KeyValueConfig {
	maxAge := t.ScanMaxAge
	if maxAge <= 0 {
		maxAge = 7 * day
	}
	return jetstream.KeyValueConfig{
		Bucket: t.LedgerBucket(), Description: "export progress (x.tenant.scan.integration), tested fingerprints (c.), deferrals (d.)",
		History: 1, TTL: maxAge + day, Storage: jetstream.FileStorage, Replicas: max(t.Replicas, 1),
	}
}

// EnsureStreams creates the streams and the ledger bucket that are missing
// when manage is true, and otherwise checks that they exist. It never changes
// one that exists: operators may have tuned it.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology, manage bool) (jetstream.KeyValue, error) {
	for _, sc := range t.StreamConfigs() {
		_, err := js.Stream(ctx, sc.Name)
		switch {
		case err == nil:
			continue
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("checking stream %s: %w", sc.Name, err)
		case !manage:
			return nil, fmt.Errorf("stream %s does not exist (S3EXPORTER_MANAGE_STREAMS=false: create it first)", sc.Name)
		}
		if _, err := js.CreateStream(ctx, sc); err != nil {
			// Another replica may have created it meanwhile.
			if _, lerr := js.Stream(ctx, sc.Name); lerr != nil {
				return nil, fmt.Errorf("creating stream %s: %w", sc.Name, err)
			}
		}
	}
	kv, err := js.KeyValue(ctx, t.LedgerBucket())
	switch {
	case err == nil:
		return kv, nil
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("key-value bucket %s: %w", t.LedgerBucket(), err)
	case !manage:
		return nil, fmt.Errorf("key-value bucket %s does not exist (S3EXPORTER_MANAGE_STREAMS=false: create it first)", t.LedgerBucket())
	}
	kv, err = js.CreateKeyValue(ctx, t.LedgerConfig())
	if err != nil {
		if kv, lerr := js.KeyValue(ctx, t.LedgerBucket()); lerr == nil {
			return kv, nil
		}
		return nil, fmt.Errorf("creating key-value bucket %s: %w", t.LedgerBucket(), err)
	}
	return kv, nil
}
