package consumer

import (
	"fmt"
	"time"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// fate is what becomes of a scan message.
type fate int

const (
	fateAck        fate = iota // every selected integration is settled
	fateRetry                  // NakWithDelay: some integration will be tried again (an attempt is used)
	fateDeadLetter             // retries ran out: dead-letter, then terminate
	fateDefer                  // NakWithDelay, recorded as a deferral: no attempt is used
	fateExport                 // not a message fate: export Jobs, then decide again with the results
)

// Reasons a scan is deferred (the deferred metric's label).
const (
	DeferTenantLimit = "tenant_limit" // its tenant has its share of this replica's scans
	DeferCatchingUp  = "catching_up"  // the integration cache is behind its stream
	DeferShutdown    = "shutdown"     // the replica stops; the scan goes to another one now
)

// facts is everything the consumer knows about one delivery of a scan when
// it decides. The shell gathers them (ledger, cache, follower, exporter) and
// calls decide: once before exporting (Exported false) and, when that says
// fateExport, once more with the results.
type facts struct {
	Scan *event.ScanCompleted
	// Attempt is the export attempt of this delivery (1-based): deliveries
	// minus deferrals (attemptOf).
	Attempt    int
	MaxDeliver int       // attempts before giving up (0: no limit)
	Deferrals  int       // deferrals recorded before this delivery
	Started    time.Time // this delivery began
	Published  time.Time // the event reached its stream
	Now        time.Time
	Backoff    func(attempt int) time.Duration

	// Refused: the tenant gate refused the scan (the tenant has its share).
	Refused bool
	// Progressing: the refused scan's tenant finished a scan moments ago.
	Progressing bool
	// CatchUpErr: the integration cache did not catch up with its stream.
	CatchUpErr error
	// LedgerErr: the ledger could not be read.
	LedgerErr error
	// Integrations selected for the scan, and their ledger entries by id.
	Integrations []*integration.Integration
	Entries      map[string]ledger.Entry

	// Exported: Results hold the outcome of the export (one per job, in
	// order). Shutdown: the export was cut short by the replica stopping.
	Exported bool
	Results  []exporter.Result
	Shutdown bool
}

// step is the decision the shell carries out for one delivery.
type step struct {
	Fate  fate
	Delay time.Duration // fateRetry, fateDefer
	// DeferReason labels a deferral (DeferTenantLimit…).
	DeferReason string
	// RetryReason labels a redelivery (fateRetry): an errcode code or a
	// metrics.Redelivery… reason.
	RetryReason string
	// Jobs to export (fateExport).
	Jobs []exporter.Job
	// Outcomes: the statuses to publish and ledger entries to write, one per
	// integration, in order. Quiet outcomes only write the ledger.
	Outcomes []Outcome
	Quiet    bool
	// Code and Reason of the dead letter (fateDeadLetter).
	Code, Reason string
	// Why, for the log; Warn: worth a warning.
	Why  string
	Warn bool
}

// attemptOf is the export attempt of a delivery: the deliveries JetStream
// counts minus those the ledger shows were deferrals (which exported
// nothing). A consumer recreated since (its delivery count starting over)
// can make the difference smaller than 1.
func attemptOf(delivered, deferrals int) int { return max(delivered-deferrals, 1) }

// deferDelay is the delay before a scan deferred for fairness comes back
// while its tenant makes no progress: short at first, doubling to 30 s (a
// tenant whose scans are stuck is asked about less often). A tenant whose
// scans are moving gets 1 s whatever the count (decide).
func deferDelay(deferrals int) time.Duration {
	return min(time.Second<<min(max(deferrals, 0), 5), 30*time.Second)
}

// decide returns what to do with one delivery of a scan. It is a function
// of its facts only; every case is in verdict_test.go.
func decide(f facts) step {
	switch {
	case f.Refused:
		delay := deferDelay(f.Deferrals)
		if f.Progressing {
			// Its scans are moving: room comes within seconds, and a long
			// delay would leave the replica idle once they are done (one
			// tenant's backlog of 200 scans ran at a sixth of the speed).
			delay = time.Second
		}
		return step{Fate: fateDefer, Delay: delay, DeferReason: DeferTenantLimit,
			Why: "tenant has its share of this replica's scans"}
	case f.CatchUpErr != nil:
		// Not an attempt: nothing was tried. The backoff schedule, by
		// deferral, spaces the retries of a cache that stays behind.
		return step{Fate: fateDefer, Delay: f.Backoff(f.Deferrals + 1), DeferReason: DeferCatchingUp,
			Why: "integration cache behind its stream: " + f.CatchUpErr.Error()}
	case f.LedgerErr != nil:
		return step{Fate: fateRetry, Delay: f.Backoff(f.Attempt), RetryReason: metrics.RedeliveryLedgerUnavailable,
			Why: "ledger unavailable: " + f.LedgerErr.Error()}
	}
	var jobs []exporter.Job
	for _, ig := range f.Integrations {
		e := f.Entries[ig.ID]
		if settled(e) {
			continue
		}
		// A redelivery, or a ledger entry from an earlier try (a replay):
		// uploads may have been left behind.
		jobs = append(jobs, exporter.Job{Integration: ig, Done: e.Objects, Failed: e.Failed, Retry: f.Attempt > 1 || e.State != ""})
	}
	if len(jobs) == 0 {
		return step{Fate: fateAck, Why: "nothing to export"}
	}
	if f.MaxDeliver > 0 && f.Attempt > f.MaxDeliver {
		return giveUpStep(f.Scan, jobs, f.Attempt-1, f.Entries, f.Published, f.Now)
	}
	if !f.Exported {
		return step{Fate: fateExport, Jobs: jobs}
	}
	if f.Shutdown {
		// Keep what landed and say nothing yet: the scan goes to another
		// replica at once, without using up an attempt.
		s := step{Fate: fateDefer, DeferReason: DeferShutdown, Quiet: true, Why: "interrupted by shutdown"}
		for _, r := range f.Results {
			e := f.Entries[r.Integration.ID]
			e.Objects = landed(e.Objects, r)
			e.State, e.Attempt, e.UpdatedAt = event.StateRetrying, f.Attempt, f.Now
			s.Outcomes = append(s.Outcomes, Outcome{Scan: f.Scan, Result: r, State: event.StateRetrying,
				Attempt: f.Attempt, Started: f.Started, Entry: e})
		}
		return s
	}
	v := judge(f.Results, f.Attempt, f.MaxDeliver)
	s := step{Fate: v.Fate}
	for i, r := range f.Results {
		e := f.Entries[r.Integration.ID]
		e.Objects = landed(e.Objects, r)
		e.Failed = permanentFailures(r)
		e.UpdatedAt = f.Now
		s.Outcomes = append(s.Outcomes, Outcome{Scan: f.Scan, Result: r, State: v.States[i], Attempt: f.Attempt,
			Started: f.Started, Entry: e})
	}
	switch v.Fate {
	case fateRetry:
		s.Delay, s.Why, s.RetryReason = f.Backoff(f.Attempt), "an export will be retried", firstRetryable(f.Results)
	case fateDeadLetter:
		s.Code = string(v.RanOut.Code)
		s.Reason = fmt.Sprintf("retries ran out after %d deliveries: %s", f.Attempt, v.RanOut.Message())
		s.Why = "retries ran out"
	default:
		s.Why = "exports settled"
	}
	return s
}

// afterPublish adjusts a step to the statuses that reached the stream
// (published[i] for s.Outcomes[i]). A status that did not would be lost
// with an ack: the scan is redelivered instead, which publishes it (the
// ledger keeps the objects, so nothing is uploaded again; entryAfter leaves
// that export unsettled).
func afterPublish(s step, published []bool, backoff func(int) time.Duration) step {
	for i, ok := range published {
		if !ok && s.Fate == fateAck {
			s.Fate, s.Delay, s.RetryReason = fateRetry, backoff(s.Outcomes[i].Attempt), metrics.RedeliveryStatusUnpublished
			s.Why = "export status not published; the scan is redelivered to publish it"
			break
		}
	}
	return s
}

// entryAfter is the ledger entry to write for o once its status was
// published (or not). The status goes out before the ledger settles the
// export: a replica killed in between leaves the ledger unsettled, so the
// redelivery exports again and publishes again (a duplicate status). The
// other way round, the redelivery would find the export settled and the
// status would never be published. For the same reason an export whose
// status could not be published is not settled.
func entryAfter(o Outcome, published bool) ledger.Entry {
	e := o.Entry
	e.State, e.Attempt = o.State, o.Attempt
	if !published {
		e.State = event.StateRetrying
	}
	return e
}

// firstRetryable is the code of the first retryable failure in results.
func firstRetryable(results []exporter.Result) string {
	for _, r := range results {
		for _, a := range r.Failed() {
			if a.Err.Retryable {
				return string(a.Err.Code)
			}
		}
	}
	return ""
}

func settled(e ledger.Entry) bool {
	return e.State == event.StateSucceeded || e.State == event.StateFailed
}

// giveUpStep settles a scan whose attempts ran out without a verdict (the
// replicas that held it stopped, or hung past the ack wait, attempts times;
// started is when its event reached the stream, the first moment any
// replica could have begun):
// a final status for every unsettled job — failed with the files that did
// not land, or succeeded if the ledger shows every file landed — and a dead
// letter when one failed (contract §6: an event whose retries ran out).
func giveUpStep(scan *event.ScanCompleted, jobs []exporter.Job, attempts int, entries map[string]ledger.Entry, started, now time.Time) step {
	reason := fmt.Sprintf("delivered %d times and never acknowledged: every delivery ended without a verdict "+
		"(the replica processing it stopped, or hung past the ack wait)", attempts)
	s := step{Fate: fateAck, Warn: true, Why: "ran out of deliveries after its exports had landed"}
	for _, job := range jobs {
		ig := job.Integration
		// What the ledger settled keeps its object or error; the rest
		// never landed. Every file may have landed, the status of the last
		// delivery being what was lost: that export succeeded.
		r, state := exporter.Result{Integration: ig, Artifacts: exporter.Plan(scan, job)}, event.StateSucceeded
		for i := range r.Artifacts {
			ar := &r.Artifacts[i]
			if ar.Object == nil && ar.Err == nil {
				ar.Err, ar.Skipped = errcode.Permanentf(errcode.Timeout, "%s", reason), true
			}
			if ar.Err != nil {
				state = event.StateFailed
			}
		}
		if state == event.StateSucceeded && ig.WriteManifest {
			// Every file landed, but the export succeeded only if its
			// manifest did too (contract v1.1 §4).
			state = settleManifest(scan, job, &r, reason)
		}
		if state == event.StateFailed {
			s.Fate, s.Code, s.Reason, s.Why, s.Warn = fateDeadLetter, string(errcode.Timeout), reason, "ran out of deliveries", false
		}
		e := entries[ig.ID]
		e.UpdatedAt = now
		s.Outcomes = append(s.Outcomes, Outcome{Scan: scan, Result: r, State: state, Attempt: attempts, Started: started, Entry: e})
	}
	return s
}

// verdict is the outcome of one export: a state per integration (same
// order as the results) and the message's fate.
type verdict struct {
	States []string
	Fate   fate
	// RanOut is the first retryable failure when retries ran out.
	RanOut *errcode.Error
}

// judge decides, from the results of one export (attempt, 1-based), the
// state of each integration and the fate of the message. A permanent
// failure is never retried; a retryable one is, until maxDeliver attempts
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

// landed merges the objects a result shows in the bucket into done.
func landed(done map[string]event.ObjectRecord, r exporter.Result) map[string]event.ObjectRecord {
	out := make(map[string]event.ObjectRecord, len(done)+len(r.Artifacts))
	for k, v := range done {
		out[k] = v
	}
	for _, a := range r.Artifacts {
		if a.Object != nil {
			out[a.Artifact.Name()] = *a.Object
		}
	}
	return out
}

// permanentFailures lists the artifacts that failed for good, so a
// redelivery (for another artifact's retryable failure) does not try them again.
func permanentFailures(r exporter.Result) map[string]event.ExportError {
	var out map[string]event.ExportError
	for _, a := range r.Failed() {
		if a.Err.Retryable {
			continue
		}
		if out == nil {
			out = map[string]event.ExportError{}
		}
		out[a.Artifact.Name()] = event.ExportError{Format: a.Artifact.Format, Framework: a.Artifact.Framework,
			Key: a.Key, Code: string(a.Err.Code), Message: a.Err.Message()}
	}
	return out
}

// settleManifest adds the manifest of a given-up export whose files all
// landed to its result: from the ledger when it was written (succeeded),
// else as a failure (failed): a missing manifest tells downstream jobs
// the scan is not there, so the status must not say succeeded.
func settleManifest(scan *event.ScanCompleted, job exporter.Job, r *exporter.Result, reason string) string {
	ar := exporter.ArtifactResult{Artifact: event.Artifact{Format: exporter.FormatManifest}, Skipped: true,
		Key: exporter.ManifestKey(job.Integration.OutputDirectory, scan.Provider.UID, scan.StartedAt)}
	ar.Object = exporter.LedgerManifest(scan, job)
	state := event.StateSucceeded
	if ar.Object == nil {
		ar.Err, state = errcode.Permanentf(errcode.Timeout, "manifest not written: %s", reason), event.StateFailed
	}
	r.Artifacts = append(r.Artifacts, ar)
	return state
}
