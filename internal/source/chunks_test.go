package source

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

func chunkStore(t *testing.T) (jetstream.JetStream, jetstream.ObjectStore, jetstream.Stream) {
	t.Helper()
	js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "CHUNKS"})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "OBJ_CHUNKS")
	if err != nil {
		t.Fatal(err)
	}
	return js, store, stream
}

// A slow reader holds about chunkWindow bytes ahead of it, not the whole
// object (the store's own Get would let nats-server push up to 32 MiB), and
// Close removes the consumer.
func TestChunkReaderWindow(t *testing.T) {
	js, store, stream := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // 64 MiB under -race on a busy machine
	defer cancel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<20/16) // 64 MiB: 512 chunks of 128 KiB
	if _, err := store.PutBytes(ctx, "big", data); err != nil {
		t.Fatal(err)
	}
	rc, size, err := openChunks(ctx, js, store, stream, "CHUNKS", "big", "", true, nil, nil)
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
// fails the read that would have returned EOF. Objects of one chunk (read
// with a direct get) and of several (read through a consumer) alike.
func TestChunkReaderDigest(t *testing.T) {
	for _, size := range []int{100, 300 << 10} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) { testChunkReaderDigest(t, size) })
	}
}

func testChunkReaderDigest(t *testing.T, size int) {
	js, store, stream := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("x"), size)
	info, err := store.PutBytes(ctx, "obj", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []bool{true, false} {
		rc, _, err := openChunks(ctx, js, store, stream, "CHUNKS", "obj", "", check, nil, nil)
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
	rc, _, err := openChunks(ctx, js, store, stream, "CHUNKS", "obj", "", true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, jetstream.ErrDigestMismatch) {
		t.Fatalf("read %d bytes, err %v; want ErrDigestMismatch", len(got), err)
	}
	// The same when an object of one chunk is handed over whole.
	if rc, _, err = openChunks(ctx, js, store, stream, "CHUNKS", "obj", "", true, nil, nil); err != nil {
		t.Fatal(err)
	}
	b, ok, err := rc.(*chunkReader).whole()
	rc.Close()
	if !ok || !errors.Is(err, jetstream.ErrDigestMismatch) {
		t.Fatalf("whole: %d chunks, %v, %v; want ErrDigestMismatch", len(b), ok, err)
	}
	// The caller that verifies the event's sha256 instead skips the store's.
	rc, _, err = openChunks(ctx, js, store, stream, "CHUNKS", "obj", "", false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("without the store's digest: read %d bytes, %v", len(got), err)
	}
	rc.Close()
}

// consumersCreated counts the consumers nats-server creates on the CHUNKS
// store's stream from now on, from its advisories.
func consumersCreated(t *testing.T, js jetstream.JetStream) func() int {
	t.Helper()
	var n atomic.Int32
	sub, err := js.Conn().Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.OBJ_CHUNKS.>", func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return func() int {
		// An advisory of a consumer created before this point has arrived
		// once a round trip to the server has.
		if err := js.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		return int(n.Load())
	}
}

// An object of one chunk is read with a direct get, and one of several
// chunks up to chunkWindow with one batched direct get, both without a
// consumer; a larger object through one.
func TestChunkReaderOneChunkDirect(t *testing.T) {
	js, store, stream := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	small := bytes.Repeat([]byte("s"), 20<<10)
	big := bytes.Repeat([]byte("b"), 300<<10)
	window := bytes.Repeat([]byte("w"), chunkWindow)
	large := bytes.Repeat([]byte("l"), chunkWindow+1)
	for name, data := range map[string][]byte{"small": small, "big": big, "window": window, "large": large} {
		if _, err := store.PutBytes(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	created := consumersCreated(t, js)
	read := func(name string, want []byte) {
		t.Helper()
		rc, size, err := openChunks(ctx, js, store, stream, "CHUNKS", name, "", true, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || size != int64(len(want)) || !bytes.Equal(got, want) {
			t.Fatalf("%s: size %d, read %d bytes, %v", name, size, len(got), err)
		}
	}
	read("small", small)
	if n := created(); n != 0 {
		t.Errorf("reading an object of one chunk created %d consumers, want 0 (a direct get)", n)
	}
	read("big", big)
	read("window", window)
	if n := created(); n != 0 {
		t.Errorf("reading objects of 3 and 128 chunks created %d consumers, want 0 (a batched direct get each)", n)
	}
	read("large", large)
	if n := created(); n != 1 {
		t.Errorf("reading an object over chunkWindow created %d consumers, want 1", n)
	}
}

// A batched direct get answered with fewer chunks than the object has, or
// other bytes than its size (a replica that lags), or "not found", is not
// taken for the object: batchChunks says so, and openChunks reads through a
// consumer instead. Here a plain subscriber answers for a fake stream.
func TestBatchChunksIncompleteAnswers(t *testing.T) {
	js := natstest.StartJetStream(t)
	nc := js.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	chunk := bytes.Repeat([]byte("c"), 100)
	status := func(code, desc string) *nats.Msg {
		m := nats.NewMsg("")
		m.Header.Set("Status", code)
		m.Header.Set("Description", desc)
		return m
	}
	for _, tc := range []struct {
		name    string
		answers []*nats.Msg
		whole   bool
	}{
		{"all", []*nats.Msg{{Data: chunk}, {Data: chunk}, {Data: chunk}, status("204", "EOB")}, true},
		{"fewer chunks", []*nats.Msg{{Data: chunk}, {Data: chunk}, status("204", "EOB")}, false},
		{"other sizes", []*nats.Msg{{Data: chunk}, {Data: chunk}, {Data: chunk[:99]}, status("204", "EOB")}, false},
		{"more chunks", []*nats.Msg{{Data: chunk}, {Data: chunk}, {Data: chunk}, {Data: chunk}, status("204", "EOB")}, false},
		{"not found", []*nats.Msg{status("404", "Message Not Found")}, false},
		{"no direct get", []*nats.Msg{status("503", "No Responders")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := nc.Subscribe("$JS.API.DIRECT.GET.FAKE", func(req *nats.Msg) {
				var r batchRequest
				if err := json.Unmarshal(req.Data, &r); err != nil || r.NextFor != "$O.FAKE.C.x" || r.Batch != 3 || !r.NoHeaders {
					t.Errorf("request %s (%v)", req.Data, err)
				}
				for _, a := range tc.answers {
					a.Subject = req.Reply
					_ = nc.PublishMsg(a)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			got, err := batchChunks(ctx, js, "FAKE", "$O.FAKE.C.x", 3, 300)
			if err != nil {
				t.Fatal(err)
			}
			if (got != nil) != tc.whole || (tc.whole && !bytes.Equal(bytes.Join(got, nil), bytes.Repeat(chunk, 3))) {
				t.Errorf("got %d chunks, want the object: %v", len(got), tc.whole)
			}
		})
	}
	// Nobody serving direct gets: the consumer then.
	if got, err := batchChunks(ctx, js, "NOBODY", "$O.FAKE.C.x", 3, 300); got != nil || err != nil {
		t.Errorf("no responders: %d chunks, %v; want a fallback", len(got), err)
	}
	// No answer at all is an error (the open fails, and is retried).
	sub, err := nc.Subscribe("$JS.API.DIRECT.GET.SILENT", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if got, err := batchChunks(short, js, "SILENT", "$O.FAKE.C.x", 3, 300); err == nil {
		t.Errorf("no answer: %d chunks, no error", len(got))
	}
}

// A batched direct get that does not find the chunks falls back to a
// consumer, as for an object of one chunk.
func TestChunkReaderBatchFallback(t *testing.T) {
	js, store, _ := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "OTHER"}); err != nil {
		t.Fatal(err)
	}
	other, err := js.Stream(ctx, "OBJ_OTHER")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("three chunks "), 300<<10/13)
	if _, err := store.PutBytes(ctx, "obj", data); err != nil {
		t.Fatal(err)
	}
	created := consumersCreated(t, js)
	// The batch goes to OBJ_OTHER's direct get, which never holds the chunks.
	rc, _, err := openChunks(ctx, js, store, other, "CHUNKS", "obj", "", true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if n := created(); n != 1 {
		t.Errorf("%d consumers created, want 1 (the fallback)", n)
	}
}

// A direct get that does not find the chunk (a lagging replica answering)
// falls back to a consumer, which reads from the stream's leader. Here the
// direct get goes to another store's stream, which never holds it.
func TestChunkReaderOneChunkFallback(t *testing.T) {
	js, store, _ := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "OTHER"}); err != nil {
		t.Fatal(err)
	}
	other, err := js.Stream(ctx, "OBJ_OTHER")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("one small chunk")
	if _, err := store.PutBytes(ctx, "obj", data); err != nil {
		t.Fatal(err)
	}
	created := consumersCreated(t, js)
	rc, _, err := openChunks(ctx, js, store, other, "CHUNKS", "obj", "", true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if n := created(); n != 1 {
		t.Errorf("%d consumers created, want 1 (the fallback)", n)
	}
}

// laggingStore is an object store whose info reads are answered by a
// replica behind its leader: every object is "not found" there.
type laggingStore struct{ jetstream.ObjectStore }

func (laggingStore) GetInfo(context.Context, string, ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	return nil, jetstream.ErrObjectNotFound
}

// An object that a lagging replica calls missing is asked of the stream's
// leader, and read; an object the leader does not hold, or holds as
// deleted, is missing.
func TestChunkReaderAsksTheLeaderBeforeCallingAnObjectMissing(t *testing.T) {
	js, store, stream := chunkStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, size := range map[string]int{"small": 100, "big": 300 << 10} {
		data := bytes.Repeat([]byte(name[:1]), size)
		if _, err := store.PutBytes(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		rc, n, err := openChunks(ctx, js, laggingStore{store}, stream, "CHUNKS", name, "", true, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || n != int64(size) || !bytes.Equal(got, data) {
			t.Fatalf("%s: size %d, read %d bytes, %v", name, n, len(got), err)
		}
	}
	if err := store.Delete(ctx, "small"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"small", "never-stored"} {
		if _, _, err := openChunks(ctx, js, laggingStore{store}, stream, "CHUNKS", name, "", true, nil, nil); !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Errorf("%s: err %v, want ErrObjectNotFound", name, err)
		}
	}
}
