package streams

import (
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

// TestTopologyNames: the stream and bucket names are the upper-cased prefix
// and the kind (contract §1), the subjects the prefix and the tokens.
func TestTopologyNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{Topology{Prefix: "prowler"}.ScansStream(), "PROWLER_SCANS"},
		{Topology{Prefix: "prowler"}.LedgerBucket(), "PROWLER_EXPORTS"},
		{Topology{Prefix: "acme-prod"}.IntegrationsStream(), "ACME-PROD_INTEGRATIONS"},
		{Topology{Prefix: "acme"}.StatusStream(), "ACME_STATUS"},
		{Topology{Prefix: "acme"}.DLQStream(), "ACME_DLQ"},
		{Topology{Prefix: "prowler"}.Subject(event.ScansCompleted, ">"), "prowler.scans.completed.>"},
		{Topology{Prefix: "acme"}.Subject(event.DLQScans, "t1"), "acme.dlq.scans.t1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
