// Package iox holds the small io helpers more than one package needs, so that
// each exists once.
package iox

import (
	"errors"
	"io"
)

// CountingReader counts the bytes read through it: the size of a streamed
// body, known only once it has been read. N is not safe to read while
// another goroutine reads through the reader.
type CountingReader struct {
	R io.Reader
	N int64
}

// NewCountingReader counts what is read from r.
func NewCountingReader(r io.Reader) *CountingReader { return &CountingReader{R: r} }

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// ChunksReader reads a sequence of byte slices as one stream, without
// copying them into one: an object that arrived in chunks. It seeks, so that
// a request can be sent again from its start.
type ChunksReader struct {
	chunks [][]byte
	size   int64
	off    int64 // position in the whole
	i      int   // chunk holding off (len(chunks) at the end)
	in     int   // offset of off within chunks[i]
}

// NewChunksReader reads chunks, in order. The slices are not copied: they
// must not change while the reader is in use.
func NewChunksReader(chunks [][]byte) *ChunksReader {
	r := &ChunksReader{chunks: chunks}
	for _, c := range chunks {
		r.size += int64(len(c))
	}
	r.locate()
	return r
}

// Len returns the bytes left to read.
func (r *ChunksReader) Len() int { return int(r.size - r.off) }

// Size returns the length of the whole.
func (r *ChunksReader) Size() int64 { return r.size }

func (r *ChunksReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.i < len(r.chunks) {
		c := copy(p[n:], r.chunks[r.i][r.in:])
		n += c
		r.off += int64(c)
		r.in += c
		if r.in == len(r.chunks[r.i]) {
			r.i, r.in = r.i+1, 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes what is left to w, chunk by chunk, without a buffer.
func (r *ChunksReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.i < len(r.chunks) {
		n, err := w.Write(r.chunks[r.i][r.in:])
		total += int64(n)
		r.off += int64(n)
		r.in += n
		if r.in == len(r.chunks[r.i]) {
			r.i, r.in = r.i+1, 0
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Seek sets the position for the next Read (io.Seeker).
func (r *ChunksReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("iox.ChunksReader.Seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("iox.ChunksReader.Seek: negative position")
	}
	r.off = min(offset, r.size)
	r.locate()
	return offset, nil
}

// locate finds the chunk and offset within it of r.off (skipping empty
// chunks).
func (r *ChunksReader) locate() {
	rest := r.off
	r.i, r.in = 0, 0
	for r.i < len(r.chunks) && rest >= int64(len(r.chunks[r.i])) {
		rest -= int64(len(r.chunks[r.i]))
		r.i++
	}
	r.in = int(rest)
}
