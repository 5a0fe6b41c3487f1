package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// chunkWindow bounds the bytes of an object-store object fetched ahead of
// the reader.
//
// The object store's own Get streams the chunks through a flow-controlled
// push consumer whose window nats-server grows to 32 MiB, and fills it: when
// S3 is slower than NATS all of it waits in this process, per object being
// read. A pull consumer asked for at most chunkWindow bytes at a time holds
// that much instead (docs/BENCHMARKS.md, workload 2: a 1 GiB upload peaked at
// about 145 MiB RSS through Get and about 100 MiB through this reader).
// Smaller windows were measured too: with 1 or 4 MiB the next pull arrived
// late on a busy machine and nats-server spent more CPU per byte on the many
// small pulls, and a large upload ran at half to three quarters of the speed.
const chunkWindow = 16 << 20

// chunkReader streams the chunks of one object-store object.
type chunkReader struct {
	ctx    context.Context
	js     jetstream.JetStream
	stream string
	cons   jetstream.Consumer // nil: the object's one chunk came with a direct get
	it     jetstream.MessagesContext
	size   int64
	got    int64
	buf    []byte
	next   [][]byte  // chunks fetched ahead (a batched direct get), in order
	all    [][]byte  // every chunk, when fetched with direct gets
	out    int64     // bytes handed out by Read
	digest hash.Hash // nil: not checked
	want   []byte
	err    error
}

// maxLinkHops bounds how many links are followed from one source: nats.go
// refuses a link to a link, but a link's meta is a plain message anyone with
// write access to the store can publish.
const maxLinkHops = 4

// openChunks opens an object for streaming. It checks the object store's
// own digest only when checkDigest is set (the caller verifies the event's
// sha256 itself otherwise: hashing twice would cost CPU for nothing).
//
// A link is followed only to an object of the same store whose name is clean
// and starts with prefix (contract v1.1 §3): the store's own Get would follow
// a link anywhere, to another tenant's object or another store, and the
// prefix check on the link's own name would then prove nothing. Any other
// link is a permanent SourceRefused.
//
// An object of one chunk (most of a scan's artifacts: the compliance CSVs
// are tens of kilobytes, the store's chunks 128 KiB) is fetched with one
// direct get of that chunk through stream, the store's stream, when it is
// not nil: a consumer costs three requests (create, pull, delete) and
// nats-server's work to set it up and tear it down (docs/BENCHMARKS.md,
// workload 1). A chunk that the direct get does not find, or finds of
// another size, is read through a consumer after all: direct gets may be
// answered by any replica, and one that lags has not stored it yet; the
// consumer reads from the stream's leader.
//
// hint, when not nil, is the object's info as prefetched with the rest of
// its scan (prefetch.go), used instead of asking for it. The object may have
// been replaced since: when the chunks it names are not there whole,
// openChunks returns errStaleHint, and the caller asks again without one.
// data, when not nil, is the one chunk the hint names, prefetched with it.
func openChunks(ctx context.Context, js jetstream.JetStream, store jetstream.ObjectStore, stream jetstream.Stream, bucket, name, prefix string, checkDigest bool, hint *jetstream.ObjectInfo, data []byte) (io.ReadCloser, int64, error) {
	info, hinted := hint, hint != nil
	if !hinted {
		var err error
		if info, err = objectInfo(ctx, js, store, bucket, name); err != nil {
			return nil, 0, err
		}
	}
	var err error
	for hops := 0; info.Opts != nil && info.Opts.Link != nil; hops++ {
		link := info.Opts.Link
		if err := checkLink(bucket, name, prefix, link, hops); err != nil {
			return nil, 0, err
		}
		name, hinted = link.Name, false
		if info, err = objectInfo(ctx, js, store, bucket, name); err != nil {
			return nil, 0, err
		}
	}
	size := int64(info.Size)
	if size == 0 {
		return io.NopCloser(bytes.NewReader(nil)), 0, nil
	}
	r := &chunkReader{ctx: ctx, js: js, stream: "OBJ_" + bucket, size: size}
	if checkDigest {
		if r.want, err = jetstream.DecodeObjectDigest(info.Digest); err != nil {
			return nil, 0, err
		}
		r.digest = sha256.New()
	}
	chunks := "$O." + bucket + ".C." + info.NUID
	if hinted && info.Chunks == 1 && data != nil && int64(len(data)) == size {
		r.buf, r.got, r.all = data, size, [][]byte{data}
		if r.digest != nil {
			r.digest.Write(data)
		}
		return r, size, nil
	}
	if stream != nil && info.Chunks == 1 {
		m, err := stream.GetLastMsgForSubject(ctx, chunks)
		switch {
		case err == nil && int64(len(m.Data)) == size:
			// The whole object is in hand: the reader only hands it out
			// (and checks the digest at its end).
			r.buf, r.got, r.all = m.Data, size, [][]byte{m.Data}
			if r.digest != nil {
				r.digest.Write(m.Data)
			}
			return r, size, nil
		case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, 0, err
		case hinted:
			return nil, 0, errStaleHint
		}
	}
	if stream != nil && info.Chunks > 1 && size <= chunkWindow && stream.CachedInfo().Config.AllowDirect {
		got, err := batchChunks(ctx, js, stream.CachedInfo().Config.Name, chunks, int(info.Chunks), size)
		if err != nil {
			return nil, 0, err
		}
		if got != nil {
			for _, c := range got {
				if r.digest != nil {
					r.digest.Write(c)
				}
			}
			r.buf, r.next, r.got, r.all = got[0], got[1:], size, got
			return r, size, nil
		}
	}
	if hinted {
		// A consumer is made only for an object whose info was just read:
		// one that follows chunks replaced since would wait for them.
		return nil, 0, errStaleHint
	}
	r.cons, err = js.OrderedConsumer(ctx, r.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{chunks},
		InactiveThreshold: time.Minute, // in case Close cannot delete it
	})
	if err != nil {
		return nil, 0, err
	}
	// PullMaxBytes would do, but it sizes the client's message channel for a
	// million messages (megabytes per object); ask for whole chunks instead.
	chunk := int64(128 << 10) // the object store's default
	if info.Opts != nil && info.Opts.ChunkSize > 0 {
		chunk = int64(info.Opts.ChunkSize)
	}
	batch := int(min(max(chunkWindow/chunk, 2), 128))
	if r.it, err = r.cons.Messages(jetstream.PullMaxMessages(batch)); err != nil {
		r.deleteConsumer()
		return nil, 0, err
	}
	return r, size, nil
}

// batchRequest is a batched direct get: the first batch messages of
// subject, without headers.
type batchRequest struct {
	NextFor   string `json:"next_by_subj"`
	Batch     int    `json:"batch"`
	MaxBytes  int    `json:"max_bytes"`
	NoHeaders bool   `json:"no_hdr"`
}

// batchChunks fetches the n chunks of an object of size bytes (at most
// chunkWindow) with one batched direct get: one request, answered with the
// chunks and an end-of-batch status, where a consumer costs three requests
// and nats-server's work to set it up, feed it and tear it down
// (docs/BENCHMARKS.md, workload 1: the CSV, HTML and OCSF files of a scan
// are a few chunks each). It returns nil and no error when the answer is not
// the whole object (a replica that lags may answer a direct get): the
// caller reads through a consumer, from the stream's leader, instead. stream
// is the stream whose direct get is asked (it must allow direct gets).
func batchChunks(ctx context.Context, js jetstream.JetStream, stream, subject string, n int, size int64) ([][]byte, error) {
	nc := js.Conn()
	inbox := nc.NewInbox()
	// Room for the answer (the chunks and the end-of-batch status), no
	// more: SubscribeSync would make a channel of 64k messages (512 KiB)
	// for every object read. A server that sent more would find it full
	// and the extra messages dropped, which the counts below catch.
	answers := make(chan *nats.Msg, n+1)
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, err := json.Marshal(batchRequest{NextFor: subject, Batch: n, MaxBytes: 2 * chunkWindow, NoHeaders: true})
	if err != nil {
		return nil, err
	}
	if err := nc.PublishRequest(apiPrefix(js)+"DIRECT.GET."+stream, inbox, req); err != nil {
		return nil, err
	}
	chunks := make([][]byte, 0, n)
	var got int64
	for {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if status := m.Header.Get("Status"); status != "" {
			// The end of the batch, with every chunk; or fewer, none
			// (404), nobody serving direct gets (503): the consumer then.
			if status == "204" && len(chunks) == n && got == size {
				return chunks, nil
			}
			return nil, nil
		}
		got += int64(len(m.Data))
		if len(chunks) == n || got > size {
			return nil, nil // more than the object: not this object's chunks
		}
		chunks = append(chunks, m.Data)
	}
}

// objectInfo reads an object's info; a "not found" is confirmed with the
// stream's leader (a replica that lags may not have the object yet).
func objectInfo(ctx context.Context, js jetstream.JetStream, store jetstream.ObjectStore, bucket, name string) (*jetstream.ObjectInfo, error) {
	info, err := store.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		info, err = leaderObjectInfo(ctx, js, bucket, name)
	}
	return info, err
}

// checkLink decides whether the link at name may be followed: only to an
// object (not a whole store) of the same store, whose name is clean and
// under the event's prefix, within maxLinkHops.
func checkLink(bucket, name, prefix string, link *jetstream.ObjectLink, hops int) error {
	switch {
	case hops >= maxLinkHops:
		return errcode.Permanentf(errcode.SourceRefused,
			"object %q: more than %d links in a row", name, maxLinkHops)
	case link.Bucket != bucket:
		return errcode.Permanentf(errcode.SourceRefused,
			"object %q is a link to another object store (%q): links are followed only within %q", name, link.Bucket, bucket)
	case link.Name == "":
		return errcode.Permanentf(errcode.SourceRefused, "object %q is a link to a whole object store", name)
	case !event.CleanObjectName(link.Name) || !strings.HasPrefix(link.Name, prefix):
		return errcode.Permanentf(errcode.SourceRefused,
			"object %q is a link to %q, outside %q (the event's tenant and scan)", name, link.Name, prefix)
	}
	return nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if len(r.next) > 0 {
			r.buf, r.next = r.next[0], r.next[1:]
			continue
		}
		if r.got == r.size {
			r.err = io.EOF
			if r.digest != nil && !bytes.Equal(r.digest.Sum(nil), r.want) {
				r.err = jetstream.ErrDigestMismatch
			}
			return 0, r.err
		}
		msg, err := r.it.Next(jetstream.NextContext(r.ctx))
		if err != nil {
			r.err = err
			return 0, err
		}
		data := msg.Data()
		r.got += int64(len(data))
		if r.got > r.size {
			r.err = fmt.Errorf("object chunks hold more than its %d bytes", r.size)
			return 0, r.err
		}
		if r.digest != nil {
			r.digest.Write(data)
		}
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.out += int64(n)
	r.all = nil // read, not handed over whole: each chunk goes once read
	return n, nil
}

// whole hands over the object's chunks when they came with direct gets and
// nothing was read yet (ok false otherwise: read it), with the store's
// digest checked as Read checks it at the end. The reader is then at its
// end.
func (r *chunkReader) whole() (_ [][]byte, ok bool, _ error) {
	if r.all == nil || r.err != nil || r.out != 0 {
		return nil, false, nil
	}
	all := r.all
	r.buf, r.next, r.all, r.err = nil, nil, nil, io.EOF
	if r.digest != nil && !bytes.Equal(r.digest.Sum(nil), r.want) {
		r.err = jetstream.ErrDigestMismatch
		return nil, true, r.err
	}
	return all, true, nil
}

// Close stops fetching and deletes the consumer.
func (r *chunkReader) Close() error {
	if r.cons == nil { // read with a direct get
		return nil
	}
	r.it.Stop()
	r.deleteConsumer()
	return nil
}

func (r *chunkReader) deleteConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, r.stream, r.cons.CachedInfo().Name)
}
