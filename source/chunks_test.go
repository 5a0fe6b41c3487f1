package source

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/testutil"
)

func chunkStore(t *testing.T) (jetstream.JetStream, jetstream.ObjectStore) {
	t.Helper()
	srv := testutil.StartNATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "CHUNKS"})
	if err != nil {
		t.Fatal(err)
	}
	return js, store
}

// A slow reader holds about chunkWindow bytes ahead of it, not the whole
// object (the store's own Get would let nats-server push up to 32 MiB), and
// Close removes the consumer.
func TestChunkReaderWindow(t *testing.T) {
	js, store := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<20/16) // 64 MiB: 512 chunks of 128 KiB
	if _, err := store.PutBytes(ctx, "big", data); err != nil {
		t.Fatal(err)
	}
	rc, size, err := openChunks(ctx, js, store, "CHUNKS", "big", true)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) {
		t.Fatalf("size %d, want %d", size, len(data))
	}
	first := make([]byte, 1000)
	if _, err := io.ReadFull(rc, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server would push everything now if it could
	info, err := rc.(*chunkReader).cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 20 MiB: the window and some, far below the 64 MiB object (the
	// store's Get lets nats-server push 32 MiB and more).
	if info.Delivered.Consumer > 160 {
		t.Errorf("%d chunks of 128 KiB delivered to a reader that took 1, want at most 160", info.Delivered.Consumer)
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading on: %v", err)
	}
	if !bytes.Equal(append(first, rest...), data) {
		t.Fatal("the bytes differ")
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "OBJ_CHUNKS")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Consumers; n != 0 {
		t.Errorf("%d consumers left on the object store after Close", n)
	}
}

// Without the event's sha256, the store's digest is checked: a mismatch
// fails the read that would have returned EOF.
func TestChunkReaderDigest(t *testing.T) {
	js, store := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("x"), 300<<10)
	info, err := store.PutBytes(ctx, "obj", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []bool{true, false} {
		rc, _, err := openChunks(ctx, js, store, "CHUNKS", "obj", check)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("check=%v: read %d bytes, %v", check, len(got), err)
		}
	}

	// Replace the metadata with a wrong digest (ADR-20 layout: the meta
	// message of a name is the last one on $O.<bucket>.M.<base64url(name)>).
	info.Digest = "SHA-256=" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	meta, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("$O.CHUNKS.M." + base64.URLEncoding.EncodeToString([]byte("obj")))
	msg.Data = meta
	msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	rc, _, err := openChunks(ctx, js, store, "CHUNKS", "obj", true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, jetstream.ErrDigestMismatch) {
		t.Fatalf("read %d bytes, err %v; want ErrDigestMismatch", len(got), err)
	}
	// The caller that verifies the event's sha256 instead skips the store's.
	rc, _, err = openChunks(ctx, js, store, "CHUNKS", "obj", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("without the store's digest: read %d bytes, %v", len(got), err)
	}
	rc.Close()
}
