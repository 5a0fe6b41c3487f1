package event_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

// benchScan returns a scan-completed payload with n compliance files besides
// the csv, html and json-ocsf outputs, every artifact with sha256 and size.
func benchScan(b *testing.B, n int) []byte {
	b.Helper()
	size := int64(204800)
	src := func(name string) string { return "nats-os://PROWLER_OUTPUTS/t1/s1/" + name }
	arts := []event.Artifact{
		{Format: event.FormatCSV, Source: src("out.csv"), SHA256: sha, Size: &size},
		{Format: event.FormatHTML, Source: src("out.html"), SHA256: sha, Size: &size},
		{Format: event.FormatOCSF, Source: src("out.ocsf.json"), SHA256: sha, Size: &size},
	}
	for i := range n {
		fw := fmt.Sprintf("framework_%02d_aws", i)
		arts = append(arts, event.Artifact{Format: event.FormatCompliance, Framework: fw, Source: src(fw + ".csv"), SHA256: sha, Size: &size})
	}
	m := validScan()
	m["artifacts"] = arts
	data, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkDecodeScan decodes and validates a scan-completed event, as the
// scan consumer does for every message: 4 artifacts (a small scan) and 43
// (BENCHMARKS.md workload 1).
func BenchmarkDecodeScan(b *testing.B) {
	for _, n := range []int{1, 40} {
		data := benchScan(b, n)
		b.Run(fmt.Sprintf("artifacts=%d", n+3), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				s, err := event.DecodeScan(prefix, scanSubject, data)
				if err != nil || len(s.Artifacts) != n+3 {
					b.Fatalf("DecodeScan: %v", err)
				}
			}
		})
	}
}
