// Package source opens a scan's artifacts: objects in a JetStream object store
// (nats-os://), files under allowed roots (file://), objects of the
// platform's own buckets read with the exporter's own identity (s3://, v1.2)
// and the members of zip archives (v1.2, archive.go). Every refusal and
// failure is classified here, where it is first seen, as an *errcode.Error.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// Opened is an artifact ready to be streamed.
type Opened struct {
	io.ReadCloser
	// Size is the artifact's size in bytes, or -1 when unknown.
	Size int64
}

// Whole returns the artifact's bytes when the source holds all of them in
// memory already (an object-store object of up to 16 MiB, fetched with
// direct gets), in the chunks they came in, checked as reading them would
// check them: size and sha256, a mismatch being the same permanent
// ChecksumMismatch error. Nothing is copied. ok is false when the source
// streams (or was read from, or its reader was wrapped): read it instead.
// After ok, the reader is at its end.
func (o *Opened) Whole() (chunks [][]byte, ok bool, err error) {
	w, isWhole := o.ReadCloser.(wholeReader)
	if !isWhole {
		return nil, false, nil
	}
	return w.whole()
}

// wholeReader is a reader that may hold its whole content in memory.
type wholeReader interface {
	whole() (chunks [][]byte, ok bool, err error)
}

// Opener opens the artifacts of scans.
type Opener struct {
	js    jetstream.JetStream
	roots []FileRoot
	// s3 reads s3:// sources (nil: off); archiveMax bounds what an
	// archive's exported members may expand to in all.
	s3         *S3Reader
	archiveMax int64
	small      smallArchives // small s3 archives read whole (smallzip.go)

	// stores caches object-store handles by bucket: looking one up is a
	// stream info request, which would otherwise come once per artifact.
	mu     sync.Mutex
	stores map[string]objectStore

	// metas are the object infos of scans' artifacts, fetched together
	// (prefetch.go).
	metaMu sync.Mutex
	metas  map[metaKey]*scanMetas
	// prefetched is the bytes of small objects fetched with their scan's
	// infos and not yet opened (prefetch.go).
	prefetched atomic.Int64
}

// objectStore is a cached object store and its stream (nil if looking the
// stream up failed: its objects are then read through consumers only).
type objectStore struct {
	jetstream.ObjectStore
	stream jetstream.Stream
}

// Option configures an Opener.
type Option func(*Opener)

// WithS3 turns s3:// sources on, read by r (S3EXPORTER_S3_SOURCE_BUCKETS).
func WithS3(r *S3Reader) Option { return func(o *Opener) { o.s3 = r } }

// WithArchiveMaxBytes sets S3EXPORTER_ARCHIVE_MAX_BYTES (default
// DefaultArchiveMaxBytes).
func WithArchiveMaxBytes(n int64) Option {
	return func(o *Opener) {
		if n > 0 {
			o.archiveMax = n
		}
	}
}

// NewOpener returns an Opener reading object stores through js and files under
// roots (none: file sources are off). Roots that do not exist are an error.
func NewOpener(js jetstream.JetStream, roots []string, opts ...Option) (*Opener, error) {
	o := &Opener{js: js, archiveMax: DefaultArchiveMaxBytes}
	for _, opt := range opts {
		opt(o)
	}
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("file source root %q is not absolute", r)
		}
		real, err := filepath.EvalSymlinks(r)
		if err != nil {
			return nil, fmt.Errorf("file source root %q: %w", r, err)
		}
		if st, err := os.Stat(real); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("file source root %q is not a folder", r)
		}
		o.roots = append(o.roots, FileRoot{Given: filepath.Clean(r), Real: filepath.Clean(real)})
	}
	return o, nil
}

// Open opens artifact a of scan. The returned reader verifies the artifact's
// sha256 and size, when the event gives them, while it is read: a mismatch
// is a permanent ChecksumMismatch error from Read, before the final EOF.
func (o *Opener) Open(ctx context.Context, scan *event.ScanCompleted, a event.Artifact) (*Opened, error) {
	tg, err := o.resolve(a.Source, scan)
	if err != nil {
		return nil, err
	}
	src := tg.Source
	var op *Opened
	switch {
	case a.Member != nil:
		op, err = o.openMember(ctx, tg, a)
	case a.Format == event.FormatArchive:
		return nil, errcode.Permanentf(errcode.InternalError, "source %s: an archive is expanded into its members, not opened", src)
	case src.Scheme == event.SchemeObjectStore:
		op, err = o.openObject(ctx, scan, tg, a.SHA256 == "")
	case src.Scheme == event.SchemeS3:
		var rc io.ReadCloser
		var size int64
		rc, size, err = o.s3.Open(ctx, src.Bucket, src.Object, "", 0, -1)
		if err == nil {
			op = &Opened{ReadCloser: rc, Size: size}
		}
	default:
		op, err = openFile(tg)
	}
	if err != nil {
		return nil, err
	}
	want := a.Size
	if want == nil && op.Size >= 0 {
		// Trust the store's size only to detect truncation; the event's size
		// (if any) is what is verified.
		s := op.Size
		want = &s
	}
	if a.Size != nil && op.Size >= 0 && *a.Size != op.Size {
		op.Close()
		return nil, errcode.Permanentf(errcode.ChecksumMismatch,
			"source %s: the event says %d bytes but the source holds %d", src, *a.Size, op.Size)
	}
	op.ReadCloser = newVerifier(op.ReadCloser, src.String(), a.SHA256, want)
	return op, nil
}

// resolve is Resolve, and for an s3 source the bucket's check: only the
// buckets of S3EXPORTER_S3_SOURCE_BUCKETS.
func (o *Opener) resolve(raw string, scan *event.ScanCompleted) (Target, error) {
	tg, err := Resolve(raw, scan.TenantID, scan.ScanID, o.roots)
	if err != nil {
		return Target{}, err
	}
	if src := tg.Source; src.Scheme == event.SchemeS3 {
		switch {
		case o.s3 == nil || len(o.s3.buckets) == 0:
			return Target{}, errcode.Permanentf(errcode.SourceRefused, "source %s: s3 sources are off (S3EXPORTER_S3_SOURCE_BUCKETS is empty)", src)
		case !o.s3.Allowed(src.Bucket):
			return Target{}, errcode.Permanentf(errcode.SourceRefused, "source %s: bucket %q is not in S3EXPORTER_S3_SOURCE_BUCKETS", src, src.Bucket)
		}
	}
	return tg, nil
}

// openObject opens an object-store object. The store's own digest is
// checked only when checkDigest is set: the verifier checks the event's
// sha256, when it has one, over the same bytes.
func (o *Opener) openObject(ctx context.Context, scan *event.ScanCompleted, tg Target, checkDigest bool) (*Opened, error) {
	src, prefix := tg.Source, tg.Prefix
	if o.js == nil {
		return nil, errcode.Permanentf(errcode.SourceRefused, "source %s: no object store connection", src)
	}
	// A replica of the store's stream that lags (after a NATS fail-over)
	// may answer "not found" for an object that exists: the store's leader
	// is asked before an object is called missing (openChunks).
	rc, size, err := o.get(ctx, scan, src.Bucket, src.Object, prefix, checkDigest)
	if err != nil {
		var refused *errcode.Error
		switch {
		case errors.As(err, &refused): // a link that may not be followed
			return nil, &errcode.Error{Code: refused.Code, Retryable: refused.Retryable, Err: fmt.Errorf("source %s: %w", src, refused.Err)}
		case errors.Is(err, jetstream.ErrObjectNotFound):
			return nil, errcode.Permanentf(errcode.SourceNotFound, "source %s: object not found", src)
		case errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, errcode.Permanentf(errcode.SourceNotFound, "source %s: object store %q not found", src, src.Bucket)
		}
		return nil, errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: %w", src, err))
	}
	return &Opened{ReadCloser: &objectReader{rc: rc, src: src.String()}, Size: size}, nil
}

// objectReader classifies read errors of an object-store object (a digest
// mismatch reported by the store, a lost connection) as retryable.
type objectReader struct {
	rc  io.ReadCloser
	src string
}

func (r *objectReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: %w", r.src, err))
	}
	return n, err
}

func (r *objectReader) whole() ([][]byte, bool, error) {
	w, isWhole := r.rc.(wholeReader)
	if !isWhole {
		return nil, false, nil
	}
	b, ok, err := w.whole()
	if err != nil {
		err = errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: %w", r.src, err))
	}
	return b, ok, err
}

func (r *objectReader) Close() error { return r.rc.Close() }

// maxStores bounds the cache of object-store handles.
const maxStores = 1024

// get opens an object. The object store's handle is cached (looking it up is
// a stream info request, which would otherwise come once per artifact); a
// cached handle that fails is looked up afresh once, in case the store was
// deleted or re-created since.
func (o *Opener) get(ctx context.Context, scan *event.ScanCompleted, bucket, name, prefix string, checkDigest bool) (io.ReadCloser, int64, error) {
	open := func(st objectStore) (io.ReadCloser, int64, error) {
		if hint, data := o.hint(ctx, st, scan, bucket, name); hint != nil {
			rc, size, err := openChunks(ctx, o.js, st.ObjectStore, st.stream, bucket, name, prefix, checkDigest, hint, data)
			if !errors.Is(err, errStaleHint) {
				return rc, size, err
			}
		}
		return openChunks(ctx, o.js, st.ObjectStore, st.stream, bucket, name, prefix, checkDigest, nil, nil)
	}
	o.mu.Lock()
	st, cached := o.stores[bucket]
	o.mu.Unlock()
	if cached {
		rc, size, err := open(st)
		var refused *errcode.Error
		if err == nil || errors.Is(err, jetstream.ErrObjectNotFound) || errors.As(err, &refused) {
			return rc, size, err
		}
		o.mu.Lock()
		if o.stores[bucket] == st {
			delete(o.stores, bucket)
		}
		o.mu.Unlock()
	}
	store, err := o.js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, 0, err
	}
	st = objectStore{ObjectStore: store}
	if s, err := o.js.Stream(ctx, "OBJ_"+bucket); err == nil {
		st.stream = s
	}
	o.mu.Lock()
	if o.stores == nil || len(o.stores) >= maxStores {
		o.stores = map[string]objectStore{}
	}
	o.stores[bucket] = st
	o.mu.Unlock()
	return open(st)
}
