package source

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// readAheadBlock is how much a ranged GET fetches at least. A zip's end
// record and central directory are read in small pieces (1 KiB for the end
// record, bufio's 4 KiB through the directory, 30 bytes per local header):
// one 64 KiB GET from the end usually holds the end record and the whole
// directory of a Prowler output archive (about 150 bytes per member).
const readAheadBlock = 64 << 10

// rangeFetcher reads n bytes at off of one object, in one request.
type rangeFetcher func(ctx context.Context, off, n int64) ([]byte, error)

// readAheadAt is an io.ReaderAt over an object read by ranged GETs, with a
// read-ahead block: a read outside the block fetches a new one of at least
// readAheadBlock bytes from the read's offset (or ending at the object's
// end, when that is nearer). It never holds more than one block, and it
// refuses to fetch more than budget bytes in all: a hostile archive's
// directory cannot make the exporter read (or allocate for) more than that.
type readAheadAt struct {
	ctx    context.Context
	fetch  rangeFetcher
	size   int64
	block  int64
	src    string
	mu     sync.Mutex
	buf    []byte
	bufOff int64
	// budget is what may still be fetched; fetches counts the requests.
	budget  int64
	fetches int
}

func newReadAheadAt(ctx context.Context, src string, size, budget int64, fetch rangeFetcher) *readAheadAt {
	return &readAheadAt{ctx: ctx, fetch: fetch, size: size, block: readAheadBlock, src: src, budget: budget}
}

// prime makes b, the bytes at off, the current block (the tail read with
// the object's size).
func (r *readAheadAt) prime(b []byte, off int64) {
	r.mu.Lock()
	r.buf, r.bufOff = b, off
	r.mu.Unlock()
}

// setBudget sets what may still be fetched.
func (r *readAheadAt) setBudget(n int64) {
	r.mu.Lock()
	r.budget = n
	r.mu.Unlock()
}

func (r *readAheadAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading %s: negative offset", r.src)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off < r.size {
		if off < r.bufOff || off >= r.bufOff+int64(len(r.buf)) {
			if err := r.fill(off, int64(len(p)-n)); err != nil {
				return n, err
			}
		}
		c := copy(p[n:], r.buf[off-r.bufOff:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill fetches the block holding off, at least want bytes long.
func (r *readAheadAt) fill(off, want int64) error {
	n := max(want, r.block)
	start := off
	if start+n > r.size {
		// Near the end (a zip's directory): read the end's whole block.
		start = max(r.size-n, 0)
		start = min(start, off)
	}
	n = min(n, r.size-start)
	if n > r.budget {
		return errcode.Permanentf(errcode.SourceRefused,
			"source %s: refused: reading its member list needs more than %d bytes", r.src, r.budget+int64(len(r.buf)))
	}
	b, err := r.fetch(r.ctx, start, n)
	if err != nil {
		return err
	}
	if int64(len(b)) != n {
		return errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: %d bytes at %d, want %d (it changed?)", r.src, len(b), start, n))
	}
	r.budget -= n
	r.fetches++
	r.buf, r.bufOff = b, start
	return nil
}
