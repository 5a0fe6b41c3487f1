// Package iox holds the small io helpers more than one package needs, so that
// each exists once.
package iox

import "io"

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
