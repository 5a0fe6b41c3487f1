package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

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
func openChunks(ctx context.Context, js jetstream.JetStream, store jetstream.ObjectStore, stream jetstream.Stream, bucket, name, prefix string, checkDigest bool) (io.ReadCloser, int64, error) {
	info, err := objectInfo(ctx, js, store, bucket, name)
	if err != nil {
		return nil, 0, err
	}
	for hops := 0; info.Opts != nil && info.Opts.Link != nil; hops++ {
		link := info.Opts.Link
		if err := checkLink(bucket, name, prefix, link, hops); err != nil {
			return nil, 0, err
		}
		name = link.Name
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
	if stream != nil && info.Chunks == 1 {
		m, err := stream.GetLastMsgForSubject(ctx, chunks)
		switch {
		case err == nil && int64(len(m.Data)) == size:
			// The whole object is in hand: the reader only hands it out
			// (and checks the digest at its end).
			r.buf, r.got = m.Data, size
			if r.digest != nil {
				r.digest.Write(m.Data)
			}
			return r, size, nil
		case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, 0, err
		}
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
	return n, nil
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
