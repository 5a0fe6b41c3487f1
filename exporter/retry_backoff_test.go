package exporter

import (
	"context"
	"testing"
	"time"

	"github.com/aws/smithy-go"
)

// TestRetryMaxBackoffCapsTheSDKsDelay: with RetryMaxBackoff the SDK waits
// at most that long between the tries of a request answered 503 SlowDown;
// without it, its own delays (up to 2 s before the third try) stay.
func TestRetryMaxBackoffCapsTheSDKsDelay(t *testing.T) {
	slowDown := &smithy.GenericAPIError{Code: "SlowDown", Message: "Please reduce your request rate."}
	longest := func(opts ClientOptions) time.Duration {
		t.Helper()
		c, err := NewClients(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		r := c.base.Retryer()
		var most time.Duration
		for range 200 {
			d, err := r.RetryDelay(2, slowDown)
			if err != nil {
				t.Fatal(err)
			}
			most = max(most, d)
		}
		return most
	}
	const limit = 30 * time.Millisecond
	if got := longest(ClientOptions{RetryMaxBackoff: limit}); got > limit {
		t.Errorf("with RetryMaxBackoff %v the SDK waited up to %v", limit, got)
	}
	// 200 draws in [0, 2 s): all under 30 ms has a chance of about 1e-365.
	if got := longest(ClientOptions{}); got <= limit {
		t.Errorf("without RetryMaxBackoff the SDK waited at most %v: the option is not what caps it", got)
	}
}
