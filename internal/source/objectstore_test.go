package source_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

const bucket = "PROWLER_OUTPUTS"

// objectStore starts an embedded JetStream server and returns a client and
// an object store holding objects.
func objectStore(t *testing.T, objects map[string][]byte) jetstream.JetStream {
	t.Helper()
	js := natstest.StartJetStream(t)
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

// putLinkMeta publishes a link's meta as a raw message, as anyone allowed to
// write the store can: nats.go's AddLink refuses a link to a link, the
// server does not.
func putLinkMeta(t *testing.T, js jetstream.JetStream, store, name, toBucket, toName string) {
	t.Helper()
	meta, err := json.Marshal(jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{
			Link: &jetstream.ObjectLink{Bucket: toBucket, Name: toName}}},
		Bucket: store, NUID: nuid.Next(),
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("$O." + store + ".M." + base64.URLEncoding.EncodeToString([]byte(name)))
	msg.Header.Set("Nats-Rollup", "sub")
	msg.Data = meta
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// A link is followed only within the same store and the event's
// <tenant>/<scan>/ prefix (contract v1.1 §3): B's bytes never come out of
// an A source.
func TestObjectStoreLinks(t *testing.T) {
	inside := []byte("t1's own findings")
	secret := []byte("t2's findings")
	js := objectStore(t, map[string][]byte{
		"t1/s1/out.csv": inside,
		"t2/s2/out.csv": secret,
		"t1/s2/out.csv": []byte("another scan of t1"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	other, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "OTHER"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.PutBytes(ctx, "t1/s1/out.csv", secret); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) {
		t.Helper()
		info, err := store.GetInfo(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.AddLink(ctx, name, info); err != nil {
			t.Fatal(err)
		}
	}
	link("t1/s1/link-in.csv", "t1/s1/out.csv")
	link("t1/s1/link-out.csv", "t2/s2/out.csv")
	link("t1/s1/link-scan.csv", "t1/s2/out.csv")
	oinfo, err := other.GetInfo(ctx, "t1/s1/out.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddLink(ctx, "t1/s1/link-store.csv", oinfo); err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddBucketLink(ctx, "t1/s1/link-bucket", other); err != nil {
		t.Fatal(err)
	}
	putLinkMeta(t, js, bucket, "t1/s1/link-dots.csv", bucket, "t1/s1/../../t2/s2/out.csv")
	putLinkMeta(t, js, bucket, "t1/s1/link-link.csv", bucket, "t1/s1/link-in.csv")
	putLinkMeta(t, js, bucket, "t1/s1/link-link-out.csv", bucket, "t1/s1/link-out.csv")
	putLinkMeta(t, js, bucket, "t1/s1/loop-a", bucket, "t1/s1/loop-b")
	putLinkMeta(t, js, bucket, "t1/s1/loop-b", bucket, "t1/s1/loop-a")

	o, err := source.NewOpener(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := func(name string) (*source.Opened, error) {
		return o.Open(ctx, scan, event.Artifact{Format: "csv", Source: "nats-os://" + bucket + "/" + name})
	}
	for _, name := range []string{"t1/s1/link-in.csv", "t1/s1/link-link.csv"} {
		op, err := open(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := readAll(t, op); err != nil || !bytes.Equal(got, inside) {
			t.Fatalf("%s: read %q, %v", name, got, err)
		}
	}
	for _, name := range []string{
		"t1/s1/link-out.csv",      // to another tenant
		"t1/s1/link-scan.csv",     // to another scan of the same tenant
		"t1/s1/link-store.csv",    // to another store, even under the same name
		"t1/s1/link-bucket",       // to a whole store
		"t1/s1/link-dots.csv",     // a target name that only looks inside
		"t1/s1/link-link-out.csv", // through a link inside to one outside
		"t1/s1/loop-a",            // a loop
	} {
		for range 2 { // the second time through the cached store handle
			op, err := open(name)
			if err == nil {
				got, _ := readAll(t, op)
				t.Fatalf("%s: opened, read %q", name, got)
			}
			wantCode(t, name, err, errcode.SourceRefused, false)
			if strings.Contains(err.Error(), string(secret)) {
				t.Fatalf("%s: the refusal leaks content: %v", name, err)
			}
		}
	}
}

// An object of one chunk comes whole from its direct get: Whole hands its
// bytes over, checked as reading them would check them (size and sha256,
// the same ChecksumMismatch), and the reader is then at its end; so does one
// of several chunks, fetched with one batched direct get. Anything else (a
// reader already read from, a file) says "read it".
func TestObjectStoreSourceWhole(t *testing.T) {
	small := bytes.Repeat([]byte("compliance;row\n"), 1300) // 19.5 KB: one chunk
	large := bytes.Repeat([]byte("0123456789abcdef"), 3*8192+77)
	js := objectStore(t, map[string][]byte{"t1/s1/small.csv": small, "t1/s1/large.json": large})
	o, err := source.NewOpener(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(obj, sha string, n *int64) *source.Opened {
		t.Helper()
		op, err := o.Open(ctx, scan, event.Artifact{Format: "csv", Source: "nats-os://" + bucket + "/" + obj, SHA256: sha, Size: n})
		if err != nil {
			t.Fatalf("Open(%s): %v", obj, err)
		}
		t.Cleanup(func() { op.Close() })
		return op
	}

	for _, verify := range []bool{true, false} {
		var sum string
		var n *int64
		if verify {
			sum, n = strings.ToUpper(sha(small)), size(len(small))
		}
		op := open("t1/s1/small.csv", sum, n)
		chunks, ok, err := op.Whole()
		if b := bytes.Join(chunks, nil); !ok || err != nil || len(chunks) != 1 || !bytes.Equal(b, small) {
			t.Fatalf("verify=%v: Whole = %d chunks, %d bytes, %v, %v; want the object", verify, len(chunks), len(b), ok, err)
		}
		if n, err := op.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Errorf("verify=%v: Read after Whole = %d, %v; want 0, EOF", verify, n, err)
		}
	}

	op := open("t1/s1/small.csv", sha(large), nil)
	if _, ok, err := op.Whole(); !ok {
		t.Error("a wrong sha256: Whole did not take the object")
	} else {
		wantCode(t, "wrong sha256", err, errcode.ChecksumMismatch, false)
	}
	if _, err := op.Read(make([]byte, 10)); err == nil || err == io.EOF {
		t.Errorf("Read after a failed Whole: %v; want the mismatch again", err)
	}

	// Several chunks (one batched direct get) come whole too, chunk by chunk.
	op = open("t1/s1/large.json", sha(large), size(len(large)))
	if chunks, ok, err := op.Whole(); !ok || err != nil || len(chunks) != 4 || !bytes.Equal(bytes.Join(chunks, nil), large) {
		t.Errorf("several chunks: Whole = %d chunks, %v, %v; want the object's 4", len(chunks), ok, err)
	}
	op = open("t1/s1/large.json", sha(small), nil)
	if _, ok, err := op.Whole(); !ok {
		t.Error("several chunks, a wrong sha256: Whole did not take the object")
	} else {
		wantCode(t, "several chunks, wrong sha256", err, errcode.ChecksumMismatch, false)
	}
	op = open("t1/s1/small.csv", sha(small), nil)
	if _, err := op.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := op.Whole(); ok {
		t.Error("Whole after a Read took the object")
	}
	rest, err := io.ReadAll(op)
	if err != nil || !bytes.Equal(rest, small[1:]) {
		t.Errorf("reading on after Whole declined: %d bytes, %v", len(rest), err)
	}
}

// The infos of a scan's artifacts are fetched together, with one direct get
// on the first open: each open then asks for its chunks only. They are
// hints: an object replaced or deleted since is read, or reported missing,
// as it is now.
func TestObjectStorePrefetchedInfos(t *testing.T) {
	files := map[string][]byte{}
	var arts []event.Artifact
	for i := range 5 {
		name := fmt.Sprintf("t1/s1/compliance/f%d.csv", i)
		files[name] = bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
		arts = append(arts, event.Artifact{Format: "compliance", Source: "nats-os://" + bucket + "/" + name})
	}
	files["t1/s1/big.json"] = bytes.Repeat([]byte("several chunks "), 30000)
	files["t2/s2/x"] = []byte("another tenant's")
	arts = append(arts, event.Artifact{Format: "ocsf", Source: "nats-os://" + bucket + "/t1/s1/big.json"},
		event.Artifact{Format: "csv", Source: "nats-os://" + bucket + "/t2/s2/x"}) // refused, never asked for
	js := objectStore(t, files)
	sc := &event.ScanCompleted{ScanID: "s1", TenantID: "t1", Artifacts: arts}

	// What reaches the store's direct get, by kind.
	var mu sync.Mutex
	asked := map[string]int{}
	spy, err := js.Conn().Subscribe("$JS.API.DIRECT.GET.OBJ_"+bucket+".>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.Contains(m.Subject, ".M."):
			asked["info"]++
		case strings.Contains(m.Subject, ".C."):
			asked["chunk"]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Unsubscribe()
	batches, err := js.Conn().Subscribe("$JS.API.DIRECT.GET.OBJ_"+bucket, func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case bytes.Contains(m.Data, []byte(`"multi_last"`)) && bytes.Contains(m.Data, []byte(".C.")):
			asked["small chunks"]++
		case bytes.Contains(m.Data, []byte(`"multi_last"`)):
			asked["infos"]++
			if bytes.Contains(m.Data, []byte(base64.URLEncoding.EncodeToString([]byte("t2/s2/x")))) {
				t.Error("another tenant's object was asked for")
			}
		case bytes.Contains(m.Data, []byte(`"next_by_subj"`)):
			asked["chunks"]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer batches.Unsubscribe()

	o, err := source.NewOpener(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := func(a event.Artifact) ([]byte, error) {
		op, err := o.Open(ctx, sc, a)
		if err != nil {
			return nil, err
		}
		defer op.Close()
		return io.ReadAll(op)
	}
	var wg sync.WaitGroup
	for _, a := range arts[:6] {
		wg.Add(1)
		go func() { // at once, as a scan's uploads open them
			defer wg.Done()
			name := strings.TrimPrefix(a.Source, "nats-os://"+bucket+"/")
			if got, err := read(a); err != nil || !bytes.Equal(got, files[name]) {
				t.Errorf("%s: read %d bytes, %v", name, len(got), err)
			}
		}()
	}
	wg.Wait()
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := map[string]int{"chunks": 1, "infos": 1, "small chunks": 1}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("direct gets %v, want %v (one for every info, one for the small objects' bytes, one for the large one's chunks; none per object)", asked, want)
	}
	mu.Unlock()
	if n := o.Prefetched(); n != 0 {
		t.Errorf("%d prefetched bytes held after every object was opened", n)
	}

	// Replaced since: its new chunks are read; deleted since: missing.
	store, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	replaced := []byte("the same name, new bytes, more of them")
	if _, err := store.PutBytes(ctx, "t1/s1/compliance/f0.csv", replaced); err != nil {
		t.Fatal(err)
	}
	if got, err := read(arts[0]); err != nil || !bytes.Equal(got, replaced) {
		t.Errorf("replaced: read %q, %v; want the new bytes", got, err)
	}
	if err := store.Delete(ctx, "t1/s1/compliance/f1.csv"); err != nil {
		t.Fatal(err)
	}
	_, err = read(arts[1])
	wantCode(t, "deleted since", err, errcode.SourceNotFound, false)
	if _, err := store.PutBytes(ctx, "t1/s1/big.json", replaced); err != nil {
		t.Fatal(err)
	}
	if got, err := read(arts[5]); err != nil || !bytes.Equal(got, replaced) {
		t.Errorf("several chunks, replaced: read %d bytes, %v; want the new bytes", len(got), err)
	}
	_, err = read(arts[6])
	wantCode(t, "another tenant's", err, errcode.SourceRefused, false)
}

// The small objects' bytes fetched with their scan's infos are bounded per
// scan (1 MiB): the rest are read one by one; the bytes are held until
// their object is opened, then handed out once.
func TestObjectStorePrefetchedBytesAreBounded(t *testing.T) {
	files := map[string][]byte{}
	var arts []event.Artifact
	for i := range 30 {
		name := fmt.Sprintf("t1/s1/compliance/f%02d.csv", i)
		files[name] = bytes.Repeat([]byte{byte('a' + i%26)}, 60_000)
		arts = append(arts, event.Artifact{Format: "compliance", Source: "nats-os://" + bucket + "/" + name})
	}
	js := objectStore(t, files)
	sc := &event.ScanCompleted{ScanID: "s1", TenantID: "t1", Artifacts: arts}
	o, err := source.NewOpener(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, a := range arts {
		op, err := o.Open(ctx, sc, a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(op)
		op.Close()
		name := strings.TrimPrefix(a.Source, "nats-os://"+bucket+"/")
		if err != nil || !bytes.Equal(got, files[name]) {
			t.Fatalf("%s: read %d bytes, %v", name, len(got), err)
		}
		if n := o.Prefetched(); n > 1<<20 {
			t.Fatalf("after %d opens %d bytes prefetched, over the scan's 1 MiB", i+1, n)
		}
		if i == 0 && o.Prefetched() < 15*60_000 {
			t.Errorf("after the first open only %d bytes prefetched, want some 16 objects' (1 MiB)", o.Prefetched())
		}
	}
	if n := o.Prefetched(); n != 0 {
		t.Errorf("%d prefetched bytes held after every object was opened", n)
	}
}
