package iox

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCountingReaderCountsWhatWasRead(t *testing.T) {
	t.Parallel()
	c := NewCountingReader(iotest.OneByteReader(strings.NewReader("hello, world")))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello, world" {
		t.Fatalf("read %q, %v", b, err)
	}
	if c.N != int64(len("hello, world")) {
		t.Fatalf("N = %d, want %d", c.N, len("hello, world"))
	}
	// Bytes read before an error count; the error is passed on.
	boom := errors.New("boom")
	c = NewCountingReader(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)))
	if _, err := io.ReadAll(c); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if c.N != 3 {
		t.Fatalf("N = %d after an error, want 3", c.N)
	}
}

func TestChunksReaderReadsAndSeeksTheWhole(t *testing.T) {
	t.Parallel()
	chunks := [][]byte{[]byte("hello"), nil, []byte(", "), []byte("world"), {}}
	r := NewChunksReader(chunks)
	if r.Size() != 12 || r.Len() != 12 {
		t.Fatalf("size %d, len %d", r.Size(), r.Len())
	}
	if err := iotest.TestReader(r, []byte("hello, world")); err != nil {
		t.Fatal(err) // reads of every size, Seek, ReadAt-free
	}
	if _, err := r.Seek(3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if n, err := r.WriteTo(&b); err != nil || n != 9 || b.String() != "lo, world" {
		t.Fatalf("WriteTo from 3: %d %q %v", n, b.String(), err)
	}
	if n, err := r.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("at the end: %d, %v", n, err)
	}
	if pos, err := r.Seek(-5, io.SeekEnd); err != nil || pos != 7 {
		t.Fatalf("seek from the end: %d, %v", pos, err)
	}
	if rest, err := io.ReadAll(r); err != nil || string(rest) != "world" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Error("a negative position was accepted")
	}
	if n, err := NewChunksReader(nil).Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("no chunks: %d, %v", n, err)
	}
}
