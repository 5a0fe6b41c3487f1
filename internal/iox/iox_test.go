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
