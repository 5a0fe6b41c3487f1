package consumer

import (
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

// fate is what becomes of a scan message.
type fate int

const (
	fateAck        fate = iota // every selected integration is settled
	fateRetry                  // NakWithDelay: some integration will be tried again
	fateDeadLetter             // retries ran out: dead-letter, then terminate
)

// verdict is the one outcome value the consumer acts on: a state per
// integration (same order as the results) and the message's fate.
type verdict struct {
	States []string
	Fate   fate
	// RanOut is the first retryable failure when retries ran out.
	RanOut *errcode.Error
}

// judge decides, from the results of one delivery (attempt, 1-based), the
// state of each integration and the fate of the message. A permanent
// failure is never retried; a retryable one is, until maxDeliver deliveries
// (0: no limit), after which it is failed and the event dead-lettered.
func judge(results []exporter.Result, attempt, maxDeliver int) verdict {
	exhausted := maxDeliver > 0 && attempt >= maxDeliver
	v := verdict{States: make([]string, len(results)), Fate: fateAck}
	for i, r := range results {
		state := event.StateSucceeded
		for _, a := range r.Failed() {
			switch {
			case a.Err.Retryable && !exhausted:
				state = event.StateRetrying
			case a.Err.Retryable && exhausted:
				if v.RanOut == nil {
					v.RanOut = a.Err
				}
				state = event.StateFailed
			case state != event.StateRetrying:
				state = event.StateFailed
			}
		}
		v.States[i] = state
		if state == event.StateRetrying {
			v.Fate = fateRetry
		}
	}
	if v.Fate != fateRetry && v.RanOut != nil {
		v.Fate = fateDeadLetter
	}
	return v
}
