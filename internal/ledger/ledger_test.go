package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

func newLedger(t *testing.T) (*ledger.Ledger, jetstream.KeyValue) {
	t.Helper()
	js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "PROWLER_EXPORTS", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ledger.New(kv), kv
}

func TestKeysOfDifferentKindsNeverCollide(t *testing.T) {
	// Before namespaces, tenant "_conn" made an export key equal to a
	// fingerprint key: "_conn.<scan>.<integration>".
	l, kv := newLedger(t)
	ctx := context.Background()
	e := ledger.Entry{State: event.StateSucceeded, Attempt: 1, Objects: map[string]event.ObjectRecord{"csv": {Key: "k"}}}
	if err := l.Put(ctx, "_conn", "t2", "i1", e); err != nil {
		t.Fatal(err)
	}
	if changed, err := l.SwapFingerprint(ctx, "t2", "i1", "fp"); err != nil || !changed {
		t.Fatalf("swap: %v %v", changed, err)
	}
	got, err := l.Get(ctx, "_conn", "t2", "i1")
	if err != nil || got.State != event.StateSucceeded || got.Objects["csv"].Key != "k" {
		t.Fatalf("export entry after a fingerprint of the same tokens: %+v %v", got, err)
	}
	if changed, err := l.SwapFingerprint(ctx, "t2", "i1", "fp"); err != nil || changed {
		t.Fatalf("fingerprint after an export of the same tokens: changed %v %v", changed, err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"x._conn.t2.i1": true, "c.t2.i1": true}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %s", k)
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("missing keys %v", want)
	}
}

func TestLegacyKeysAreReadAsAFallback(t *testing.T) {
	l, kv := newLedger(t)
	ctx := context.Background()
	if _, err := kv.Put(ctx, "t1.s1.i1", []byte(`{"state":"retrying","attempt":2,"objects":{"csv":{"key":"old"}}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "_conn.t1.i1", []byte("fp-old")); err != nil {
		t.Fatal(err)
	}
	e, err := l.Get(ctx, "t1", "s1", "i1")
	if err != nil || e.State != event.StateRetrying || e.Objects["csv"].Key != "old" {
		t.Fatalf("legacy entry: %+v %v", e, err)
	}
	// The same fingerprint under the legacy key: no change, and it moves to
	// its new key.
	if changed, err := l.SwapFingerprint(ctx, "t1", "i1", "fp-old"); err != nil || changed {
		t.Fatalf("legacy fingerprint: changed %v %v", changed, err)
	}
	if v, err := kv.Get(ctx, "c.t1.i1"); err != nil || string(v.Value()) != "fp-old" {
		t.Fatalf("fingerprint not copied to its new key: %v", err)
	}
	// A write goes to the new key and wins over the legacy one.
	e.State = event.StateSucceeded
	if err := l.Put(ctx, "t1", "s1", "i1", e); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Get(ctx, "t1", "s1", "i1"); got.State != event.StateSucceeded {
		t.Fatalf("after a write: %+v", got)
	}
	// Delete and Forget remove both.
	if err := l.Delete(ctx, "t1", "s1", "i1"); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Get(ctx, "t1", "s1", "i1"); err != nil || got.State != "" {
		t.Fatalf("after delete: %+v %v", got, err)
	}
	if err := l.ForgetFingerprint(ctx, "t1", "i1"); err != nil {
		t.Fatal(err)
	}
	if changed, err := l.SwapFingerprint(ctx, "t1", "i1", "fp-old"); err != nil || !changed {
		t.Fatalf("after forget: changed %v %v", changed, err)
	}
}

func TestACorruptEntryIsReportedNotReadAsEmpty(t *testing.T) {
	l, kv := newLedger(t)
	ctx := context.Background()
	if _, err := kv.Put(ctx, ledger.Key("t1", "s1", "i1"), []byte(`{"state":`)); err != nil {
		t.Fatal(err)
	}
	e, err := l.Get(ctx, "t1", "s1", "i1")
	if !errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("err %v, want ErrCorrupt", err)
	}
	if e.State != "" || e.Objects != nil {
		t.Errorf("entry %+v, want zero beside the error", e)
	}
	if _, err := kv.Put(ctx, ledger.DeferralsKey(7), []byte("many")); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Deferrals(ctx, 7); !errors.Is(err, ledger.ErrCorrupt) || n != 0 {
		t.Fatalf("deferrals %d %v, want ErrCorrupt", n, err)
	}
}

func TestDeferralsPerMessage(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	if n, err := l.Deferrals(ctx, 42); err != nil || n != 0 {
		t.Fatalf("never deferred: %d %v", n, err)
	}
	if err := l.SetDeferrals(ctx, 42, 3); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Deferrals(ctx, 42); err != nil || n != 3 {
		t.Fatalf("%d %v", n, err)
	}
	if n, _ := l.Deferrals(ctx, 43); n != 0 {
		t.Fatalf("another message: %d", n)
	}
}

func TestLedgerUnavailable(t *testing.T) {
	l, kv := newLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = kv
	if _, err := l.Get(ctx, "t1", "s1", "i1"); err == nil || errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("get on a canceled context: %v", err)
	}
	if err := l.Put(ctx, "t1", "s1", "i1", ledger.Entry{}); err == nil {
		t.Fatal("put on a canceled context succeeded")
	}
	if err := l.SetDeferrals(ctx, 1, 1); err == nil {
		t.Fatal("set deferrals on a canceled context succeeded")
	}
	if _, err := l.SwapFingerprint(ctx, "t1", "i1", "x"); err == nil {
		t.Fatal("swap on a canceled context succeeded")
	}
}
