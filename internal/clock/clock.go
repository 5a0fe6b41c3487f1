// Package clock holds the context-aware sleep that retries, backoffs and
// polling loops share, so that it exists once.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends, whichever comes first, and reports
// whether the whole of d passed. Unlike time.After it frees its timer at
// once when ctx ends first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
