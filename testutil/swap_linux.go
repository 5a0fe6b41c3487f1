package testutil

import (
	"context"

	"golang.org/x/sys/unix"
)

// ExchangeLoop swaps the directory entries a and b atomically
// (renameat2(RENAME_EXCHANGE)), over and over, until ctx ends: what a hostile
// writer under a file source root does to win a race between the exporter's
// check of a path and its open. It returns how many swaps were made, and
// the first error that stopped it (nil when ctx ended).
func ExchangeLoop(ctx context.Context, a, b string) (int, error) {
	n := 0
	for ctx.Err() == nil {
		if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
