package consumer

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

var (
	t0        = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	published = t0.Add(-time.Hour)
	igA       = &integration.Integration{ID: "a", TenantID: "t1", Enabled: true, OutputDirectory: "out", Providers: []string{"p1"}}
	igB       = &integration.Integration{ID: "b", TenantID: "t1", Enabled: true, OutputDirectory: "out", Providers: []string{"p1"}}
)

func testScan() *event.ScanCompleted {
	return &event.ScanCompleted{ScanID: "s1", TenantID: "t1", Provider: event.Provider{ID: "p1", UID: "123456789012"},
		StartedAt: t0.Add(-2 * time.Hour), Artifacts: []event.Artifact{
			{Format: "csv", Source: "nats-os://B/t1/s1/out.csv"},
			{Format: "html", Source: "nats-os://B/t1/s1/out.html"},
		}}
}

// backoff makes each delay name its attempt.
func backoff(n int) time.Duration { return time.Duration(n) * time.Minute }

// exported is a result where each artifact of testScan landed, unless errs
// gives its error (by artifact index).
func exported(ig *integration.Integration, errs ...*errcode.Error) exporter.Result {
	r := exporter.Result{Integration: ig, Artifacts: exporter.Plan(testScan(), exporter.Job{Integration: ig})}
	for i := range r.Artifacts {
		a := &r.Artifacts[i]
		if i < len(errs) && errs[i] != nil {
			a.Err = errs[i]
			continue
		}
		a.Object = &event.ObjectRecord{Format: a.Artifact.Format, Key: a.Key, Size: 10}
	}
	return r
}

func allLanded(ig *integration.Integration) map[string]event.ObjectRecord {
	out := map[string]event.ObjectRecord{}
	for _, a := range exporter.Plan(testScan(), exporter.Job{Integration: ig}) {
		out[a.Artifact.Name()] = event.ObjectRecord{Format: a.Artifact.Format, Key: a.Key, Size: 1}
	}
	return out
}

func base(mod func(*facts)) facts {
	f := facts{Scan: testScan(), Attempt: 1, MaxDeliver: 3, Started: t0, Published: published, Now: t0, Backoff: backoff,
		Integrations: []*integration.Integration{igA}, Entries: map[string]ledger.Entry{}}
	mod(&f)
	return f
}

func TestDecide(t *testing.T) {
	type want struct {
		fate     fate
		delay    time.Duration
		reason   string   // DeferReason, RetryReason or dead-letter Code
		states   []string // one per outcome
		attempts int      // attempt of every outcome (0: none)
		jobs     []string // integration ids to export
		quiet    bool
		why      string // part of Why or of the dead-letter Reason
	}
	tests := []struct {
		name string
		f    facts
		want want
	}{
		// Before exporting.
		{"tenant at its limit: deferred, first quickly", base(func(f *facts) { f.Refused = true }),
			want{fate: fateDefer, delay: time.Second, reason: DeferTenantLimit}},
		{"deferred again: the delay doubles", base(func(f *facts) { f.Refused, f.Deferrals = true, 3 }),
			want{fate: fateDefer, delay: 8 * time.Second, reason: DeferTenantLimit}},
		{"deferred often: at most 30s", base(func(f *facts) { f.Refused, f.Deferrals = true, 40 }),
			want{fate: fateDefer, delay: 30 * time.Second, reason: DeferTenantLimit}},
		{"deferred often, but its tenant's scans are moving: 1s", base(func(f *facts) { f.Refused, f.Deferrals, f.Progressing = true, 40, true }),
			want{fate: fateDefer, delay: time.Second, reason: DeferTenantLimit}},
		{"refused even past its attempts: the gate is asked first", base(func(f *facts) { f.Refused, f.Attempt = true, 9 }),
			want{fate: fateDefer, delay: time.Second, reason: DeferTenantLimit}},
		{"cache behind: deferred on the backoff schedule by deferral", base(func(f *facts) { f.CatchUpErr, f.Deferrals = errors.New("behind"), 2 }),
			want{fate: fateDefer, delay: 3 * time.Minute, reason: DeferCatchingUp, why: "behind"}},
		{"ledger unreadable: retried, using an attempt", base(func(f *facts) { f.LedgerErr, f.Attempt = errors.New("kv down"), 2 }),
			want{fate: fateRetry, delay: 2 * time.Minute, reason: metrics.RedeliveryLedgerUnavailable, why: "kv down"}},
		{"no integration: acked", base(func(f *facts) { f.Integrations = nil }),
			want{fate: fateAck, why: "nothing to export"}},
		{"every integration settled: acked", base(func(f *facts) {
			f.Integrations = []*integration.Integration{igA, igB}
			f.Entries = map[string]ledger.Entry{"a": {State: event.StateSucceeded}, "b": {State: event.StateFailed}}
		}), want{fate: fateAck, why: "nothing to export"}},
		{"unsettled: export", base(func(f *facts) {}), want{fate: fateExport, jobs: []string{"a"}}},
		{"a settled integration is not exported again", base(func(f *facts) {
			f.Integrations = []*integration.Integration{igA, igB}
			f.Entries = map[string]ledger.Entry{"a": {State: event.StateSucceeded}, "b": {State: event.StateRetrying}}
		}), want{fate: fateExport, jobs: []string{"b"}}},
		{"no limit: exported whatever the attempt", base(func(f *facts) { f.MaxDeliver, f.Attempt = 0, 500 }),
			want{fate: fateExport, jobs: []string{"a"}}},
		{"last attempt: still exported", base(func(f *facts) { f.Attempt = 3 }),
			want{fate: fateExport, jobs: []string{"a"}}},
		{"attempts ran out without a verdict, nothing landed: failed and dead-lettered", base(func(f *facts) { f.Attempt = 4 }),
			want{fate: fateDeadLetter, reason: string(errcode.Timeout), states: []string{"failed"}, attempts: 3,
				why: "delivered 3 times and never acknowledged"}},
		{"attempts ran out after every file landed: succeeded, acked", base(func(f *facts) {
			f.Attempt = 4
			f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying, Objects: allLanded(igA)}}
		}), want{fate: fateAck, states: []string{"succeeded"}, attempts: 3, why: "after its exports had landed"}},
		{"attempts ran out, one integration landed, one did not", base(func(f *facts) {
			f.Attempt = 4
			f.Integrations = []*integration.Integration{igA, igB}
			f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying, Objects: allLanded(igA)}}
		}), want{fate: fateDeadLetter, reason: string(errcode.Timeout), states: []string{"succeeded", "failed"}, attempts: 3}},

		// After exporting.
		{"uploaded: succeeded, acked", base(func(f *facts) { f.Exported, f.Results = true, []exporter.Result{exported(igA)} }),
			want{fate: fateAck, states: []string{"succeeded"}, attempts: 1}},
		{"transient failure: retrying, redelivered on the backoff schedule", base(func(f *facts) {
			f.Attempt, f.Exported, f.Results = 2, true, []exporter.Result{exported(igA, transient)}
		}), want{fate: fateRetry, delay: 2 * time.Minute, reason: string(errcode.S3ClientError), states: []string{"retrying"}, attempts: 2}},
		{"transient failure at the last attempt: failed, dead-lettered", base(func(f *facts) {
			f.Attempt, f.Exported, f.Results = 3, true, []exporter.Result{exported(igA, nil, transient)}
		}), want{fate: fateDeadLetter, reason: string(errcode.S3ClientError), states: []string{"failed"}, attempts: 3,
			why: "retries ran out after 3 deliveries"}},
		{"permanent failure: failed, acked", base(func(f *facts) {
			f.Exported, f.Results = true, []exporter.Result{exported(igA, denied)}
		}), want{fate: fateAck, states: []string{"failed"}, attempts: 1}},
		{"one broken integration does not hold the other back", base(func(f *facts) {
			f.Integrations = []*integration.Integration{igA, igB}
			f.Exported, f.Results = true, []exporter.Result{exported(igA), exported(igB, transient)}
		}), want{fate: fateRetry, delay: time.Minute, reason: string(errcode.S3ClientError), states: []string{"succeeded", "retrying"}, attempts: 1}},
		{"shutdown: what landed is kept, quietly, and the scan goes back at once", base(func(f *facts) {
			f.Attempt, f.Exported, f.Shutdown, f.Results = 2, true, true, []exporter.Result{exported(igA, transient)}
		}), want{fate: fateDefer, reason: DeferShutdown, quiet: true, states: []string{"retrying"}, attempts: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := decide(tc.f)
			w := tc.want
			if s.Fate != w.fate || s.Delay != w.delay || s.Quiet != w.quiet {
				t.Fatalf("fate %v delay %v quiet %v (%s), want %v %v %v", s.Fate, s.Delay, s.Quiet, s.Why, w.fate, w.delay, w.quiet)
			}
			reason := map[fate]string{fateDefer: s.DeferReason, fateRetry: s.RetryReason, fateDeadLetter: s.Code}[s.Fate]
			if reason != w.reason {
				t.Errorf("reason %q, want %q", reason, w.reason)
			}
			if w.why != "" && !strings.Contains(s.Why+" "+s.Reason, w.why) {
				t.Errorf("why %q / reason %q lacks %q", s.Why, s.Reason, w.why)
			}
			var jobs []string
			for _, j := range s.Jobs {
				jobs = append(jobs, j.Integration.ID)
			}
			if fmt.Sprint(jobs) != fmt.Sprint(w.jobs) {
				t.Errorf("jobs %v, want %v", jobs, w.jobs)
			}
			if len(s.Outcomes) != len(w.states) {
				t.Fatalf("%d outcomes, want %d", len(s.Outcomes), len(w.states))
			}
			for i, o := range s.Outcomes {
				if o.State != w.states[i] || o.Attempt != w.attempts || o.Scan != tc.f.Scan {
					t.Errorf("outcome %d: %s attempt %d, want %s attempt %d", i, o.State, o.Attempt, w.states[i], w.attempts)
				}
			}
		})
	}
}

func TestDecideLedgerWrites(t *testing.T) {
	t.Run("objects that landed are merged into the entry, permanent failures kept", func(t *testing.T) {
		prior := map[string]event.ObjectRecord{"old": {Key: "k-old"}}
		s := decide(base(func(f *facts) {
			f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying, Objects: prior}}
			f.Exported, f.Results = true, []exporter.Result{exported(igA, nil, denied)}
		}))
		e := s.Outcomes[0].Entry
		if _, ok := e.Objects["old"]; !ok || e.Objects["csv"].Key == "" || len(e.Objects) != 2 {
			t.Errorf("objects %v, want the prior one and csv", e.Objects)
		}
		if fe, ok := e.Failed["html"]; !ok || fe.Code != string(errcode.S3BucketAccessDenied) {
			t.Errorf("failed %v, want html AccessDenied", e.Failed)
		}
		if !e.UpdatedAt.Equal(t0) {
			t.Errorf("updated_at %v", e.UpdatedAt)
		}
		if len(prior) != 1 {
			t.Error("the prior entry's map was changed")
		}
	})
	t.Run("a retryable failure is not remembered as failed", func(t *testing.T) {
		s := decide(base(func(f *facts) { f.Exported, f.Results = true, []exporter.Result{exported(igA, transient)} }))
		if len(s.Outcomes[0].Entry.Failed) != 0 {
			t.Errorf("failed %v", s.Outcomes[0].Entry.Failed)
		}
	})
	t.Run("shutdown writes retrying entries with what landed", func(t *testing.T) {
		s := decide(base(func(f *facts) {
			f.Attempt, f.Exported, f.Shutdown, f.Results = 2, true, true, []exporter.Result{exported(igA, transient)}
		}))
		e := s.Outcomes[0].Entry
		if e.State != event.StateRetrying || e.Attempt != 2 || len(e.Objects) != 1 {
			t.Errorf("entry %+v", e)
		}
	})
	t.Run("a give-up starts when the event reached its stream and names each missing file", func(t *testing.T) {
		s := decide(base(func(f *facts) {
			f.Attempt = 4
			f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying,
				Objects: map[string]event.ObjectRecord{"csv": allLanded(igA)["csv"]}}}
		}))
		o := s.Outcomes[0]
		if !o.Started.Equal(published) {
			t.Errorf("started %v, want %v", o.Started, published)
		}
		var missing []string
		for _, a := range o.Result.Artifacts {
			if a.Err != nil {
				missing = append(missing, a.Artifact.Name())
				if a.Err.Code != errcode.Timeout || a.Err.Retryable || a.Key == "" {
					t.Errorf("error %+v", a.Err)
				}
			}
		}
		if fmt.Sprint(missing) != "[html]" {
			t.Errorf("missing %v, want [html]", missing)
		}
	})
}

func TestAfterPublish(t *testing.T) {
	two := func(fa fate) step {
		return step{Fate: fa, Outcomes: []Outcome{{State: event.StateSucceeded, Attempt: 2}, {State: event.StateFailed, Attempt: 2}}}
	}
	tests := []struct {
		name      string
		s         step
		published []bool
		fate      fate
		reason    string
	}{
		{"all published: acked", two(fateAck), []bool{true, true}, fateAck, ""},
		{"one unpublished: redelivered to publish it", two(fateAck), []bool{true, false}, fateRetry, metrics.RedeliveryStatusUnpublished},
		{"unpublished while retrying anyway", step{Fate: fateRetry, RetryReason: "X", Outcomes: []Outcome{{Attempt: 2}}}, []bool{false}, fateRetry, "X"},
		{"unpublished at a dead letter: still dead-lettered", two(fateDeadLetter), []bool{false, false}, fateDeadLetter, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := afterPublish(tc.s, tc.published, backoff)
			if s.Fate != tc.fate || s.RetryReason != tc.reason {
				t.Fatalf("fate %v reason %q, want %v %q", s.Fate, s.RetryReason, tc.fate, tc.reason)
			}
			if s.Fate == fateRetry && tc.s.Fate == fateAck && s.Delay != 2*time.Minute {
				t.Errorf("delay %v, want the backoff of attempt 2", s.Delay)
			}
		})
	}
}

func TestEntryAfter(t *testing.T) {
	o := Outcome{State: event.StateSucceeded, Attempt: 3, Entry: ledger.Entry{State: event.StateRetrying, Attempt: 1}}
	if e := entryAfter(o, true); e.State != event.StateSucceeded || e.Attempt != 3 {
		t.Errorf("published: %+v", e)
	}
	if e := entryAfter(o, false); e.State != event.StateRetrying || e.Attempt != 3 {
		t.Errorf("unpublished: %+v, want retrying (left unsettled)", e)
	}
}

func TestAttemptOf(t *testing.T) {
	for _, tc := range []struct{ delivered, deferrals, want int }{
		{1, 0, 1}, {5, 0, 5}, {5, 4, 1}, {12, 9, 3}, {2, 7, 1}, {0, 0, 1},
	} {
		if got := attemptOf(tc.delivered, tc.deferrals); got != tc.want {
			t.Errorf("attemptOf(%d, %d) = %d, want %d", tc.delivered, tc.deferrals, got, tc.want)
		}
	}
}

func TestFateString(t *testing.T) {
	for f, w := range map[fate]string{fateAck: "ack", fateRetry: "retry", fateDeadLetter: "dead-letter", fateDefer: "defer", fateExport: "export", 9: "fate(9)"} {
		if f.String() != w {
			t.Errorf("%d: %s", int(f), f)
		}
	}
}
