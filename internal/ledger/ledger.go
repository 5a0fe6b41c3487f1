// Package ledger keeps the export progress of each (tenant, scan,
// integration) in the JetStream key-value bucket PROWLER_EXPORTS, so that a
// redelivered or replayed scan does not upload again what is already there.
//
// The bucket holds three kinds of keys, each in its own namespace: no
// identifier (contract: [A-Za-z0-9_=-]{1,128}) contains a dot, so a key of
// one kind can never be a key of another.
//
//	x.<tenant_id>.<scan_id>.<integration_id>  export progress (Entry, JSON)
//	c.<tenant_id>.<integration_id>            fingerprint of the last connection-tested configuration
//	d.<stream_sequence>                       deferrals of one scan message (decimal)
//
// Before 1.2 exports were kept under <tenant_id>.<scan_id>.<integration_id>
// and fingerprints under _conn.<tenant_id>.<integration_id>, which collide
// for a tenant named "_conn". Those keys are still read when the new one is
// missing (they expire with the bucket's TTL), and never written.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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

// ErrCorrupt is returned (wrapped) by Get for an entry that does not
// decode. The caller decides what to do; Get also returns a zero Entry.
var ErrCorrupt = errors.New("corrupt ledger entry")

// Ledger reads and writes entries.
type Ledger struct {
	kv jetstream.KeyValue
}

// New returns a ledger over kv.
func New(kv jetstream.KeyValue) *Ledger { return &Ledger{kv: kv} }

// Key is the export entry key: x.<tenant_id>.<scan_id>.<integration_id>.
func Key(tenant, scan, integration string) string {
	return "x." + tenant + "." + scan + "." + integration
}

// legacyKey is the export entry key before namespaces.
func legacyKey(tenant, scan, integration string) string {
	return tenant + "." + scan + "." + integration
}

// FingerprintKey is the key of an integration's tested-configuration
// fingerprint: c.<tenant_id>.<integration_id>.
func FingerprintKey(tenant, integration string) string { return "c." + tenant + "." + integration }

func legacyFingerprintKey(tenant, integration string) string {
	return "_conn." + tenant + "." + integration
}

// DeferralsKey is the key of the deferral count of the scan message at
// stream sequence seq: d.<seq>.
func DeferralsKey(seq uint64) string { return "d." + strconv.FormatUint(seq, 10) }

// get reads key, then legacy when key has no value; found is false when
// neither has one.
func (l *Ledger) get(ctx context.Context, key, legacy string) (v []byte, k string, found bool, err error) {
	for _, k := range []string{key, legacy} {
		if k == "" {
			continue
		}
		kve, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, k, false, fmt.Errorf("reading ledger %s: %w", k, err)
		}
		return kve.Value(), k, true, nil
	}
	return nil, key, false, nil
}

// Get returns the entry, or a zero Entry when there is none. An entry that
// does not decode returns a zero Entry and an error wrapping ErrCorrupt.
func (l *Ledger) Get(ctx context.Context, tenant, scan, integration string) (Entry, error) {
	v, k, found, err := l.get(ctx, Key(tenant, scan, integration), legacyKey(tenant, scan, integration))
	if err != nil || !found {
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(v, &e); err != nil {
		return Entry{}, fmt.Errorf("%w %s (%d bytes): %v", ErrCorrupt, k, len(v), err)
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

// Delete removes the entry, under its legacy key too (a replay ignores the
// ledger).
func (l *Ledger) Delete(ctx context.Context, tenant, scan, integration string) error {
	for _, k := range []string{Key(tenant, scan, integration), legacyKey(tenant, scan, integration)} {
		if err := l.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
	}
	return nil
}

// Deferrals returns how many times the scan message at stream sequence seq
// was deferred: 0 when never. A value that does not parse is reported
// (wrapping ErrCorrupt) with 0.
func (l *Ledger) Deferrals(ctx context.Context, seq uint64) (int, error) {
	v, k, found, err := l.get(ctx, DeferralsKey(seq), "")
	if err != nil || !found {
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w %s: %q", ErrCorrupt, k, v)
	}
	return n, nil
}

// SetDeferrals records n deferrals of the scan message at seq.
func (l *Ledger) SetDeferrals(ctx context.Context, seq uint64, n int) error {
	if _, err := l.kv.Put(ctx, DeferralsKey(seq), []byte(strconv.Itoa(n))); err != nil {
		return fmt.Errorf("writing ledger %s: %w", DeferralsKey(seq), err)
	}
	return nil
}

// SwapFingerprint stores fp as the integration's tested-configuration
// fingerprint and reports whether it differs from the one stored before
// (under the legacy key when the new one was never written).
func (l *Ledger) SwapFingerprint(ctx context.Context, tenant, integration, fp string) (bool, error) {
	k := FingerprintKey(tenant, integration)
	old, from, found, err := l.get(ctx, k, legacyFingerprintKey(tenant, integration))
	if err != nil {
		return false, err
	}
	changed := !found || string(old) != fp
	if changed || from != k {
		// A legacy fingerprint is copied to its new key, so that it does
		// not expire with the bucket's TTL (which would test again).
		_, err = l.kv.Put(ctx, k, []byte(fp))
	}
	return changed, err
}

// ForgetFingerprint drops the fingerprint of a deleted integration.
func (l *Ledger) ForgetFingerprint(ctx context.Context, tenant, integration string) error {
	for _, k := range []string{FingerprintKey(tenant, integration), legacyFingerprintKey(tenant, integration)} {
		if err := l.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
	}
	return nil
}
