package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemoExportsAScan runs the dev stack once, as `make demo` does, and
// checks that the demo scan's files are listed in the bucket.
func TestDemoExportsAScan(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS, versitygw and the exporter")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--once", "--dir", t.TempDir(), "--nats-port", "0", "--s3-port", "0", "--metrics-addr", "127.0.0.1:0"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("devstack exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"status           succeeded",
		"prowler-findings/csv/prowler-output-111122223333-",
		"prowler-findings/html/prowler-output-111122223333-",
		"prowler-findings/json-ocsf/prowler-output-111122223333-",
		"prowler-findings/json-asff/prowler-output-111122223333-",
		"_cis_5.0_aws.csv",
		"_aws_foundational_security_best_practices_aws.csv",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
