package exporter_test

import (
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

var benchStarted = time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)

// BenchmarkObjectKey builds the key of one artifact, as the exporter does for
// every artifact of every selected integration.
func BenchmarkObjectKey(b *testing.B) {
	for _, bc := range []struct {
		name string
		a    event.Artifact
		uid  string
	}{
		{"csv", event.Artifact{Format: event.FormatCSV}, "111122223333"},
		{"compliance", event.Artifact{Format: event.FormatCompliance, Framework: "cis_5.0_aws"}, "111122223333"},
		{"compliance-arn-uid", event.Artifact{Format: event.FormatCompliance, Framework: "aws_foundational_security_best_practices_aws"},
			"arn:aws:organizations::111122223333:organization/o-a1b2c3d4e5"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n += len(exporter.ObjectKey("prowler-findings", bc.a, bc.uid, benchStarted))
			}
			if n == 0 {
				b.Fatal("empty keys")
			}
		})
	}
}

// BenchmarkScanKeys builds the 43 keys of one scan of BENCHMARKS.md workload
// 1 (csv, html, json-ocsf and 40 compliance files).
func BenchmarkScanKeys(b *testing.B) {
	arts := []event.Artifact{{Format: event.FormatCSV}, {Format: event.FormatHTML}, {Format: event.FormatOCSF}}
	for i := range 40 {
		arts = append(arts, event.Artifact{Format: event.FormatCompliance, Framework: "framework_" + string(rune('a'+i%26)) + "_aws"})
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, a := range arts {
			if exporter.ObjectKey("output", a, "111122223333", benchStarted) == "" {
				b.Fatal("empty key")
			}
		}
	}
}
