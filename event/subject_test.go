package event_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

func TestSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want string
	}{
		{event.Subject("prowler", event.ExportsStatus, "t", "i"), "prowler.exports.status.t.i"},
		{event.Subject("prowler", event.IntegrationsStatus, "t", "i"), "prowler.integrations.status.t.i"},
		{event.Subject("acme", event.DLQScans, "t"), "acme.dlq.scans.t"},
		{event.Subject("prowler", event.ControlTest), "prowler.control.integrations.test"},
		{event.Subject("prowler", event.ScansCompleted, ">"), "prowler.scans.completed.>"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestSubjectTokens(t *testing.T) {
	t.Parallel()
	toks, err := event.SubjectTokens("prowler.integrations.changed.t1.i1", "prowler", event.IntegrationsChanged, 2)
	if err != nil || !slices.Equal(toks, []string{"t1", "i1"}) {
		t.Fatalf("SubjectTokens = %v, %v", toks, err)
	}
	for _, tc := range []struct{ subject, why string }{
		{"prowler.integrations.changed.t1", "want 2 tokens"},
		{"prowler.integrations.changed.t1.i1.x", "want 2 tokens"},
		{"prowler.integrations.changed..i1", "empty token"},
		{"prowler.integrations.changed.t1.", "empty token"},
		{"prowler.integrations.changed", "does not start with"},
		{"prowler.scans.completed.t1.i1", "does not start with"},
		{"xprowler.integrations.changed.t1.i1", "does not start with"},
	} {
		_, err := event.SubjectTokens(tc.subject, "prowler", event.IntegrationsChanged, 2)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("SubjectTokens(%q) = %v, want an error saying %q", tc.subject, err, tc.why)
		}
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"0b7e3c1e-5a6f-4d1e-9a3b-2f4c5d6e7f80": true,
		"tenant_1":                             true,
		"YWJj==":                               true,
		strings.Repeat("a", 128):               true,
		strings.Repeat("a", 129):               false,
		"":                                     false,
		"a.b":                                  false,
		"a*":                                   false,
		">":                                    false,
		"a b":                                  false,
		"a/b":                                  false,
		"é":                                    false,
		"a\n":                                  false,
	} {
		if got := event.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
