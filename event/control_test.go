package event_test

import (
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

func TestControlSubjects(t *testing.T) {
	for _, tc := range []struct {
		subject, tenant, op string
	}{
		{"prowler.control.integrations.test", "", event.OpTest},
		{"prowler.control.integrations.get", "", event.OpGet},
		{"prowler.control.exports.replay", "", event.OpReplay},
		{"prowler.control.t1.integrations.test", "t1", event.OpTest},
		{"prowler.control.t1.integrations.get", "t1", event.OpGet},
		{"prowler.control.t1.integrations.list", "t1", event.OpList},
		{"prowler.control.t1.exports.replay", "t1", event.OpReplay},
		{"prowler.control.exports.exports.replay", "exports", event.OpReplay},
	} {
		tenant, op, err := event.ParseControlSubject("prowler", tc.subject)
		if err != nil || tenant != tc.tenant || op != tc.op {
			t.Errorf("ParseControlSubject(%s) = %q, %q, %v", tc.subject, tenant, op, err)
		}
		if got := event.ControlSubject("prowler", tc.tenant, tc.op); got != tc.subject {
			t.Errorf("ControlSubject(%q, %q) = %s, want %s", tc.tenant, tc.op, got, tc.subject)
		}
	}
	if event.ControlSubject("prowler", "", event.OpTest) != event.Subject("prowler", event.ControlTest) {
		t.Error("the tenant-less subjects moved")
	}
	for _, bad := range []string{
		"prowler.control.integrations.list", // list is tenant-scoped only
		"prowler.control.t1.integrations.delete",
		"prowler.control.t1.integrations",
		"prowler.control.a.b.integrations.get",
		"prowler.control..integrations.get",
		"other.control.t1.integrations.get",
		"prowler.scans.completed.t1.p1",
	} {
		if tenant, op, err := event.ParseControlSubject("prowler", bad); err == nil {
			t.Errorf("ParseControlSubject(%s) = %q, %q, want an error", bad, tenant, op)
		}
	}
}
