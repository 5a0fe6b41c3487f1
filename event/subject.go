// Package event holds the wire types of the exporter's contract (v1): what scan
// engines and integration admins publish, what the exporter publishes back, and
// the decoding and validation of incoming payloads. It knows nothing of NATS
// connections; it reads subjects as strings.
package event

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Subject kinds, relative to the configured prefix.
const (
	ScansCompleted      = "scans.completed"
	IntegrationsChanged = "integrations.changed"
	ExportsStatus       = "exports.status"
	IntegrationsStatus  = "integrations.status"
	DLQScans            = "dlq.scans"
	ControlTest         = "control.integrations.test"
	ControlGet          = "control.integrations.get"
	ControlReplay       = "control.exports.replay"
)

// Control subjects (contract §7): <prefix>.control.<op> for a trusted admin
// backend (tenant-less, the tenant is in the payload), and
// <prefix>.control.<tenant_id>.<op> (v1.1), which NATS permissions can grant
// per tenant.
const (
	Control       = "control"
	OpTest        = "integrations.test"
	OpGet         = "integrations.get"
	OpList        = "integrations.list"
	OpReplay      = "exports.replay"
	controlPrefix = Control + "."
)

// ControlOps lists the control operations; OpList exists only on the
// tenant-scoped subjects.
var ControlOps = []string{OpTest, OpGet, OpList, OpReplay}

// ControlSubject is the subject of a control operation: tenant-scoped when
// tenant is set, else the tenant-less one.
func ControlSubject(prefix, tenant, op string) string {
	if tenant == "" {
		return prefix + "." + controlPrefix + op
	}
	return prefix + "." + controlPrefix + tenant + "." + op
}

// ParseControlSubject reads a control subject: its tenant token ("" on a
// tenant-less subject) and its operation. The two shapes differ in their
// number of tokens, so a tenant named like an operation's first token is
// still read right.
func ParseControlSubject(prefix, subject string) (tenant, op string, err error) {
	head := prefix + "." + controlPrefix
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return "", "", fmt.Errorf("subject %q does not start with %q", subject, head)
	}
	toks := strings.Split(rest, ".")
	switch len(toks) {
	case 2:
		op = toks[0] + "." + toks[1]
	case 3:
		tenant, op = toks[0], toks[1]+"."+toks[2]
		if tenant == "" {
			return "", "", fmt.Errorf("subject %q has an empty tenant", subject)
		}
	default:
		return "", "", fmt.Errorf("subject %q is not a control subject", subject)
	}
	if !slices.Contains(ControlOps, op) || (tenant == "" && op == OpList) {
		return "", "", fmt.Errorf("subject %q: unknown control operation %q", subject, op)
	}
	return tenant, op, nil
}

// idPattern is what an identifier used as a subject token or key-value key may
// hold: UUIDs, slugs and the like. It excludes '.', '*', '>' and white space,
// which would change the meaning of a subject.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

// ValidID reports whether s can be used as a tenant, scan, provider or
// integration identifier (one subject token, one key-value key segment).
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Subject joins a prefix, a kind and tokens: Subject("prowler", ExportsStatus, "t", "i").
func Subject(prefix, kind string, tokens ...string) string {
	parts := append([]string{prefix, kind}, tokens...)
	return strings.Join(parts, ".")
}

// SubjectTokens returns the n tokens that follow prefix.kind in subject, or an
// error when the subject does not have exactly that shape.
func SubjectTokens(subject, prefix, kind string, n int) ([]string, error) {
	head := prefix + "." + kind + "."
	if !strings.HasPrefix(subject, head) {
		return nil, fmt.Errorf("subject %q does not start with %q", subject, head)
	}
	toks := strings.Split(strings.TrimPrefix(subject, head), ".")
	if len(toks) != n {
		return nil, fmt.Errorf("subject %q: want %d tokens after %q, got %d", subject, n, head, len(toks))
	}
	for _, t := range toks {
		if t == "" {
			return nil, fmt.Errorf("subject %q has an empty token", subject)
		}
	}
	return toks, nil
}
