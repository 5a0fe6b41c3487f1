package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// The Opener caches object-store handles; a store deleted and created again
// behind its back must neither break it nor be served from a stale handle.
func TestObjectStoreHandleCache(t *testing.T) {
	js := objectStore(t, map[string][]byte{"t1/s1/out.csv": []byte("first")})
	o, err := source.NewOpener(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := event.Artifact{Format: "csv", Source: "nats-os://" + bucket + "/t1/s1/out.csv"}
	read := func() (string, error) {
		op, err := o.Open(ctx, scan, a)
		if err != nil {
			return "", err
		}
		b, err := readAll(t, op)
		return string(b), err
	}
	for range 2 { // the second read uses the cached handle
		if got, err := read(); err != nil || got != "first" {
			t.Fatalf("read %q, %v", got, err)
		}
	}

	if err := js.DeleteObjectStore(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	_, err = read()
	wantCode(t, "deleted store", err, errcode.SourceNotFound, false)

	store, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutString(ctx, "t1/s1/out.csv", "second"); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || got != "second" {
		t.Fatalf("after the store came back: read %q, %v", got, err)
	}
}
