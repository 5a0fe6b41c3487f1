package consumer

import (
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
)

// igM is igA with write_manifest.
var igM = &integration.Integration{ID: "a", TenantID: "t1", Enabled: true, OutputDirectory: "out", WriteManifest: true}

// withManifest appends the manifest's outcome to a result, as the exporter
// does: landed (err nil) or failed with err.
func withManifest(r exporter.Result, err *errcode.Error) exporter.Result {
	scan := testScan()
	ar := exporter.ArtifactResult{Artifact: event.Artifact{Format: exporter.FormatManifest},
		Key: exporter.ManifestKey(r.Integration.OutputDirectory, scan.Provider.UID, scan.StartedAt)}
	if err != nil {
		ar.Err = err
	} else {
		ar.Object = &event.ObjectRecord{Format: exporter.FormatManifest, Key: ar.Key, Size: 5, ETag: "m"}
	}
	r.Artifacts = append(r.Artifacts, ar)
	return r
}

func manifestError(t *testing.T, o Outcome) *errcode.Error {
	t.Helper()
	for _, a := range o.Result.Artifacts {
		if a.Artifact.Format == exporter.FormatManifest {
			return a.Err
		}
	}
	t.Fatalf("no manifest in the result: %+v", o.Result.Artifacts)
	return nil
}

// A manifest write that fails keeps the export from succeeding: retrying
// (retryable) or failed (permanent), like an artifact. The files that
// landed go into the ledger, so the redelivery is a job with every file
// done: only the manifest is left to write.
func TestDecideManifestFailure(t *testing.T) {
	s := decide(base(func(f *facts) {
		f.Integrations = []*integration.Integration{igM}
		f.Exported, f.Results = true, []exporter.Result{withManifest(exported(igM), transient)}
	}))
	if s.Fate != fateRetry || s.Outcomes[0].State != event.StateRetrying {
		t.Fatalf("retryable manifest failure: fate %v, state %s", s.Fate, s.Outcomes[0].State)
	}
	e := s.Outcomes[0].Entry
	if _, ok := e.Objects[exporter.FormatManifest]; ok {
		t.Error("a manifest that failed is in the ledger")
	}
	if len(e.Failed) != 0 {
		t.Errorf("retryable manifest failure remembered as permanent: %v", e.Failed)
	}
	e.State = event.StateRetrying
	next := decide(base(func(f *facts) {
		f.Attempt = 2
		f.Integrations = []*integration.Integration{igM}
		f.Entries = map[string]ledger.Entry{"a": e}
	}))
	if next.Fate != fateExport || len(next.Jobs) != 1 {
		t.Fatalf("redelivery: %+v", next)
	}
	for _, ar := range exporter.Plan(testScan(), next.Jobs[0]) {
		if !ar.Skipped || ar.Object == nil {
			t.Errorf("redelivery would upload %s again", ar.Artifact.Name())
		}
	}

	s = decide(base(func(f *facts) {
		f.Integrations = []*integration.Integration{igM}
		f.Exported, f.Results = true, []exporter.Result{withManifest(exported(igM), denied)}
	}))
	if s.Fate != fateAck || s.Outcomes[0].State != event.StateFailed {
		t.Errorf("permanent manifest failure: fate %v, state %s", s.Fate, s.Outcomes[0].State)
	}

	s = decide(base(func(f *facts) {
		f.Integrations = []*integration.Integration{igM}
		f.Exported, f.Results = true, []exporter.Result{withManifest(exported(igM), nil)}
	}))
	if s.Fate != fateAck || s.Outcomes[0].State != event.StateSucceeded {
		t.Errorf("manifest written: fate %v, state %s", s.Fate, s.Outcomes[0].State)
	}
	if rec, ok := s.Outcomes[0].Entry.Objects[exporter.FormatManifest]; !ok || rec.ETag != "m" {
		t.Errorf("manifest not in the ledger: %v", s.Outcomes[0].Entry.Objects)
	}
}

// Attempts that ran out after every file landed: succeeded only when the
// ledger shows the manifest too; otherwise failed (and dead-lettered) with
// a manifest error, never succeeded without it.
func TestGiveUpManifest(t *testing.T) {
	scan := testScan()
	files := allLanded(igM)
	s := decide(base(func(f *facts) {
		f.Attempt = 4
		f.Integrations = []*integration.Integration{igM}
		f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying, Objects: files}}
	}))
	if s.Fate != fateDeadLetter || s.Outcomes[0].State != event.StateFailed {
		t.Fatalf("files landed, manifest not: fate %v, state %s", s.Fate, s.Outcomes[0].State)
	}
	if err := manifestError(t, s.Outcomes[0]); err == nil || err.Retryable {
		t.Errorf("manifest error %v, want a permanent one", err)
	}

	withM := map[string]event.ObjectRecord{exporter.FormatManifest: {Format: exporter.FormatManifest,
		Key: exporter.ManifestKey("out", scan.Provider.UID, scan.StartedAt), Size: 5, ETag: "m"}}
	for k, v := range files {
		withM[k] = v
	}
	s = decide(base(func(f *facts) {
		f.Attempt = 4
		f.Integrations = []*integration.Integration{igM}
		f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying, Objects: withM}}
	}))
	if s.Fate != fateAck || s.Outcomes[0].State != event.StateSucceeded {
		t.Fatalf("files and manifest landed: fate %v, state %s", s.Fate, s.Outcomes[0].State)
	}
	if err := manifestError(t, s.Outcomes[0]); err != nil {
		t.Errorf("manifest error %v", err)
	}

	// Without write_manifest nothing changes: succeeded with the files.
	s = decide(base(func(f *facts) {
		f.Attempt = 4
		f.Entries = map[string]ledger.Entry{"a": {State: event.StateRetrying, Objects: allLanded(igA)}}
	}))
	if s.Outcomes[0].State != event.StateSucceeded || len(s.Outcomes[0].Result.Artifacts) != len(scan.Artifacts) {
		t.Errorf("no manifest asked: state %s, %d results", s.Outcomes[0].State, len(s.Outcomes[0].Result.Artifacts))
	}
}
