package consumer

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

func result(id string, errs ...*errcode.Error) exporter.Result {
	r := exporter.Result{Integration: &integration.Integration{ID: id}}
	r.Artifacts = append(r.Artifacts, exporter.ArtifactResult{Object: &event.ObjectRecord{Key: "ok"}})
	for _, e := range errs {
		r.Artifacts = append(r.Artifacts, exporter.ArtifactResult{Err: e})
	}
	return r
}

var (
	transient = errcode.Retryable(errcode.S3ClientError, errors.New("503 SlowDown"))
	denied    = errcode.Permanent(errcode.S3BucketAccessDenied, errors.New("AccessDenied"))
)

func TestJudge(t *testing.T) {
	tests := []struct {
		name       string
		results    []exporter.Result
		attempt    int
		maxDeliver int
		states     []string
		fate       fate
		ranOut     bool
	}{
		{"all uploaded", []exporter.Result{result("a"), result("b")}, 1, 10,
			[]string{"succeeded", "succeeded"}, fateAck, false},
		{"a permanent failure is not retried", []exporter.Result{result("a", denied)}, 1, 10,
			[]string{"failed"}, fateAck, false},
		{"a transient failure is retried", []exporter.Result{result("a", transient)}, 1, 10,
			[]string{"retrying"}, fateRetry, false},
		{"one broken integration does not fail the other", []exporter.Result{result("good"), result("bad", transient)}, 3, 10,
			[]string{"succeeded", "retrying"}, fateRetry, false},
		{"transient and permanent in one integration: retried", []exporter.Result{result("a", denied, transient)}, 1, 10,
			[]string{"retrying"}, fateRetry, false},
		{"retries run out at max deliver", []exporter.Result{result("a", transient)}, 10, 10,
			[]string{"failed"}, fateDeadLetter, true},
		{"ran out beside a permanent failure", []exporter.Result{result("a", denied), result("b", transient)}, 5, 5,
			[]string{"failed", "failed"}, fateDeadLetter, true},
		{"permanent only at the last delivery is not dead-lettered", []exporter.Result{result("a", denied)}, 5, 5,
			[]string{"failed"}, fateAck, false},
		{"no limit", []exporter.Result{result("a", transient)}, 1000, 0,
			[]string{"retrying"}, fateRetry, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := judge(tc.results, tc.attempt, tc.maxDeliver)
			if !slices.Equal(v.States, tc.states) || v.Fate != tc.fate || (v.RanOut != nil) != tc.ranOut {
				t.Fatalf("got states %v fate %d ranOut %v, want %v %d %v", v.States, v.Fate, v.RanOut, tc.states, tc.fate, tc.ranOut)
			}
		})
	}
}

// String names a fate in test failures.
func (f fate) String() string {
	switch f {
	case fateAck:
		return "ack"
	case fateRetry:
		return "retry"
	case fateDeadLetter:
		return "dead-letter"
	case fateDefer:
		return "defer"
	case fateExport:
		return "export"
	}
	return fmt.Sprintf("fate(%d)", int(f))
}
