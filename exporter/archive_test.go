package exporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// fakeExpander expands an archive into the members listed for its source.
type fakeExpander struct {
	bytesOpener
	members map[string][]string // source -> artifact names (format or compliance/<fw>)
	err     map[string]error
}

func (f fakeExpander) Expand(_ context.Context, _ *event.ScanCompleted, a event.Artifact) (*source.Expansion, error) {
	if err := f.err[a.Source]; err != nil {
		return nil, err
	}
	exp := &source.Expansion{}
	for _, n := range f.members[a.Source] {
		m := event.Artifact{Format: n, Source: a.Source, Member: &event.ArchiveMember{Name: n + ".member"}}
		if fw, ok := cutCompliance(n); ok {
			m.Format, m.Framework = event.FormatCompliance, fw
		}
		exp.Artifacts = append(exp.Artifacts, m)
	}
	return exp, nil
}

func cutCompliance(n string) (string, bool) {
	const p = "compliance/"
	if len(n) > len(p) && n[:len(p)] == p {
		return n[len(p):], true
	}
	return "", false
}

func names(arts []event.Artifact) []string {
	var out []string
	for _, a := range arts {
		out = append(out, a.Name())
	}
	return out
}

// Archives become their members' artifacts, in place; an archive that
// cannot be expanded stays, as itself, with its error; members that would
// take another artifact's key, or push the scan past 256 objects, refuse
// their archive.
func TestExpandArchives(t *testing.T) {
	t.Parallel()
	var many []string
	for i := range 252 { // with the 5 others: 257 objects
		many = append(many, fmt.Sprintf("compliance/fw%d", i))
	}
	ex := fakeExpander{
		members: map[string][]string{
			"s3://b/t/s/ok.zip":   {"csv", "compliance/cis"},
			"s3://b/t/s/dup.zip":  {"html"},
			"s3://b/t/s/many.zip": many,
		},
		err: map[string]error{"s3://b/t/s/gone.zip": errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("not yet"))},
	}
	e := New(nil, ex, Options{}, zap.NewNop())
	scan := &event.ScanCompleted{ScanID: "s", TenantID: "t", Artifacts: []event.Artifact{
		{Format: event.FormatHTML, Source: "nats-os://B/t/s/x.html"},
		{Format: event.FormatArchive, Source: "s3://b/t/s/ok.zip"},
		{Format: event.FormatArchive, Source: "s3://b/t/s/dup.zip"},
		{Format: event.FormatArchive, Source: "s3://b/t/s/gone.zip"},
		{Format: event.FormatArchive, Source: "s3://b/t/s/many.zip"},
	}}
	out, failed := e.expand(context.Background(), scan)
	want := []string{"html", "csv", "compliance/cis", "archive", "archive", "archive"}
	if fmt.Sprint(names(out.Artifacts)) != fmt.Sprint(want) {
		t.Fatalf("expanded to %v, want %v", names(out.Artifacts), want)
	}
	for i, code := range map[int]errcode.Code{3: errcode.SourceRefused, 4: errcode.SourceNotFound, 5: errcode.SourceRefused} {
		if failed[i] == nil || failed[i].Code != code {
			t.Errorf("artifact %d: %v, want %s", i, failed[i], code)
		}
	}
	if len(failed) != 3 || !failed[4].Retryable || failed[3].Retryable || failed[5].Retryable {
		t.Errorf("failed %v", failed)
	}
	if len(scan.Artifacts) != 5 {
		t.Error("the event's scan was changed")
	}
	// Planned, a refused archive has no key and its members' keys are the
	// formats' own.
	out.Provider.UID, out.StartedAt = "111122223333", time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)
	plan := Plan(out, Job{Integration: &integration.Integration{ID: "ig", TenantID: "t", OutputDirectory: "output"}})
	if plan[3].Key != "" || plan[1].Key != "output/csv/prowler-output-111122223333-20250805120000.csv" {
		t.Errorf("keys %q, %q", plan[3].Key, plan[1].Key)
	}
	// Without an expander, archives are refused.
	e = New(nil, bytesOpener("x"), Options{}, zap.NewNop())
	if _, failed := e.expand(context.Background(), scan); len(failed) != 4 || failed[1].Code != errcode.SourceRefused {
		t.Errorf("no expander: %v", failed)
	}
}
