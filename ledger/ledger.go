// Package ledger keeps the export progress of each (tenant, scan,
// integration) in the JetStream key-value bucket PROWLER_EXPORTS, so that a
// redelivered or replayed scan does not upload again what is already there.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Entry is the progress of one scan for one integration.
type Entry struct {
	State   string                        `json:"state"`
	Attempt int                           `json:"attempt"`
	Objects map[string]event.ObjectRecord `json:"objects"` // by artifact name
	// Failed holds the artifacts that failed permanently; they are not tried again.
	Failed    map[string]event.ExportError `json:"failed,omitempty"`
	UpdatedAt time.Time                    `json:"updated_at"`
}

// Ledger reads and writes entries.
type Ledger struct {
	kv jetstream.KeyValue
}

// New returns a ledger over kv.
func New(kv jetstream.KeyValue) *Ledger { return &Ledger{kv: kv} }

// Key is the entry key: <tenant_id>.<scan_id>.<integration_id>.
func Key(tenant, scan, integration string) string { return tenant + "." + scan + "." + integration }

// Get returns the entry, or a zero Entry when there is none.
func (l *Ledger) Get(ctx context.Context, tenant, scan, integration string) (Entry, error) {
	kve, err := l.kv.Get(ctx, Key(tenant, scan, integration))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Entry{}, nil
	}
	if err != nil {
		return Entry{}, fmt.Errorf("reading ledger %s: %w", Key(tenant, scan, integration), err)
	}
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		// A corrupt entry must not block the export: start over.
		return Entry{}, nil
	}
	return e, nil
}

// Put writes the entry.
func (l *Ledger) Put(ctx context.Context, tenant, scan, integration string, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := l.kv.Put(ctx, Key(tenant, scan, integration), b); err != nil {
		return fmt.Errorf("writing ledger %s: %w", Key(tenant, scan, integration), err)
	}
	return nil
}

// Delete removes the entry (a replay ignores the ledger).
func (l *Ledger) Delete(ctx context.Context, tenant, scan, integration string) error {
	err := l.kv.Delete(ctx, Key(tenant, scan, integration))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}

// fingerprintKey holds the fingerprint of the last connection-tested
// configuration of an integration.
func fingerprintKey(tenant, integration string) string { return "_conn." + tenant + "." + integration }

// SwapFingerprint stores fp as the integration's tested-configuration
// fingerprint and reports whether it differs from the one stored before.
func (l *Ledger) SwapFingerprint(ctx context.Context, tenant, integration, fp string) (bool, error) {
	k := fingerprintKey(tenant, integration)
	old, err := l.kv.Get(ctx, k)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, err
	}
	if err == nil && string(old.Value()) == fp {
		return false, nil
	}
	_, err = l.kv.Put(ctx, k, []byte(fp))
	return true, err
}

// ForgetFingerprint drops the fingerprint of a deleted integration.
func (l *Ledger) ForgetFingerprint(ctx context.Context, tenant, integration string) error {
	err := l.kv.Delete(ctx, fingerprintKey(tenant, integration))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	return nil
}
