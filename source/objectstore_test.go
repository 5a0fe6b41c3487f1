package source_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/source"
	"github.com/prowler-cloud/s3-exporter/testutil"
)

const bucket = "PROWLER_OUTPUTS"

// objectStore starts an embedded JetStream server and returns a client and
// an object store holding objects.
func objectStore(t *testing.T, objects map[string][]byte) jetstream.JetStream {
	t.Helper()
	js := testutil.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range objects {
		if _, err := store.PutBytes(ctx, name, data); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	return js
}

func TestObjectStoreSource(t *testing.T) {
	small := []byte("AUTH_METHOD;TIMESTAMP\nprofile;2025-08-05\n")
	// Several 128 KiB chunks, with a tail.
	large := bytes.Repeat([]byte("0123456789abcdef"), 3*8192+77)
	js := objectStore(t, map[string][]byte{
		"t1/s1/out.csv":       small,
		"t1/s1/big/out.json":  large,
		"t2/s2/x":             []byte("tenant two's file"),
		"t1x/s1/x":            []byte("a tenant whose id starts with t1"),
		"t1/s1x/x":            []byte("a scan whose id starts with s1"),
		"t1/s2/x":             []byte("another scan of t1"),
		"t1/s1/empty.csv":     {},
		"t1/s1/../../t2/s2/x": []byte("a name with dots"),
	})
	o, err := source.NewOpener(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(obj string, sha string, n *int64) (*source.Opened, error) {
		return o.Open(ctx, scan, event.Artifact{Format: "csv", Source: "nats-os://" + bucket + "/" + obj, SHA256: sha, Size: n})
	}

	t.Run("streams", func(t *testing.T) {
		for name, data := range map[string][]byte{"t1/s1/out.csv": small, "t1/s1/big/out.json": large, "t1/s1/empty.csv": {}} {
			for _, verify := range []bool{false, true} {
				var sum string
				var n *int64
				if verify {
					sum, n = sha(data), size(len(data))
				}
				op, err := open(name, sum, n)
				if err != nil {
					t.Fatalf("Open(%s): %v", name, err)
				}
				if op.Size != int64(len(data)) {
					t.Errorf("%s: Size = %d, want %d", name, op.Size, len(data))
				}
				got, err := readAll(t, op)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: read %d bytes, %v", name, len(got), err)
				}
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, name := range []string{
			"t2/s2/x",             // another tenant's object
			"t1/s2/x",             // another scan of the same tenant
			"t1/s1/../../t2/s2/x", // dot-dot out of the prefix (the object even exists)
			"t1/s1/./out.csv",     // not a clean name
			"t1/s1//out.csv",
			"t1x/s1/x", // starts with the tenant id, not with "<tenant>/"
			"t1/s1x/x",
			"t1/s1",
			"t1/s1/",
			"/t1/s1/out.csv",
			"../t1/s1/out.csv",
		} {
			_, err := open(name, "", nil)
			wantCode(t, name, err, errcode.SourceRefused, false)
		}
		// The bucket is not part of the tenant check, but the prefix still is.
		_, err := o.Open(ctx, scan, event.Artifact{Format: "csv", Source: "nats-os://OTHER/t2/s2/x"})
		wantCode(t, "other bucket", err, errcode.SourceRefused, false)
	})

	t.Run("not found", func(t *testing.T) {
		_, err := open("t1/s1/missing.csv", "", nil)
		wantCode(t, "missing object", err, errcode.SourceNotFound, false)
		_, err = o.Open(ctx, scan, event.Artifact{Format: "csv", Source: "nats-os://NO_SUCH_BUCKET/t1/s1/out.csv"})
		wantCode(t, "missing bucket", err, errcode.SourceNotFound, false)
	})

	t.Run("checksum mismatch", func(t *testing.T) {
		// A wrong digest fails the Read that would have returned EOF.
		op, err := open("t1/s1/big/out.json", sha(small), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, op)
		wantCode(t, "wrong sha256", err, errcode.ChecksumMismatch, false)
		if len(got) > len(large) {
			t.Errorf("read %d bytes of a %d-byte object", len(got), len(large))
		}
		// A wrong size fails at once: the store knows the object's size.
		_, err = open("t1/s1/out.csv", "", size(len(small)-1))
		wantCode(t, "wrong size", err, errcode.ChecksumMismatch, false)
		_, err = open("t1/s1/out.csv", sha(small), size(len(small)+1))
		wantCode(t, "wrong size, right digest", err, errcode.ChecksumMismatch, false)
	})

	t.Run("no connection", func(t *testing.T) {
		off, err := source.NewOpener(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = off.Open(ctx, scan, event.Artifact{Format: "csv", Source: "nats-os://" + bucket + "/t1/s1/out.csv"})
		wantCode(t, "nil JetStream", err, errcode.SourceRefused, false)
	})
}
