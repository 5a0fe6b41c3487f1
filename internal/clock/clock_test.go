package clock

import (
	"context"
	"testing"
	"time"
)

func TestSleepEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An hour's sleep on a cancelled context returns at once, saying so.
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full hour on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not report the full duration")
	}
}
