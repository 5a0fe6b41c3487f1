package prowlerout_test

import (
	"testing"

	"github.com/prowler-cloud/s3-exporter/internal/prowlerout"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for rel, want := range map[string]prowlerout.Output{
		"x.ocsf.json": {Format: "json-ocsf"}, "x.asff.json": {Format: "json-asff"}, "x.html": {Format: "html"},
		"X.CSV": {Format: "csv"},
		"prowler-output-111122223333-20250805120000.csv":      {Format: "csv", UID: "111122223333", TS: "20250805120000"},
		"prowler-output-arn-aws-x-1-20250805120000.ocsf.json": {Format: "json-ocsf", UID: "arn-aws-x-1", TS: "20250805120000"},
		"compliance/prowler-output-111122223333-20250805120000_cis_5.0_aws.csv": {Format: "compliance", Framework: "cis_5.0_aws",
			UID: "111122223333", TS: "20250805120000"},
		"compliance/prowler-output-my-acct_id-20250805120000_iso27001_2013_aws.csv": {Format: "compliance", Framework: "iso27001_2013_aws",
			UID: "my-acct_id", TS: "20250805120000"},
		"compliance/prowler-output-a-20250805120000_prowler-output-b-20250805120000_x.csv": {Format: "compliance", Framework: "x",
			UID: "a-20250805120000_prowler-output-b", TS: "20250805120000"},
		"compliance/cis_5.0_aws.csv":                      {Format: "compliance", Framework: "cis_5.0_aws"},
		"compliance/prowler-output-nodate_cis.csv":        {Format: "compliance", Framework: "prowler-output-nodate_cis"},
		"compliance/prowler-output-1-2025080512000_a.csv": {Format: "compliance", Framework: "prowler-output-1-2025080512000_a"},
		"compliance/sub/x_csa_ccm_4.0.ocsf.json":          {Format: "compliance-ocsf", Framework: "x_csa_ccm_4.0"},
	} {
		got, ok, err := prowlerout.Classify(rel)
		if err != nil || !ok || got != want {
			t.Errorf("Classify(%q) = %+v, %v, %v; want %+v", rel, got, ok, err, want)
		}
	}
}

func TestClassifySkips(t *testing.T) {
	t.Parallel()
	for _, rel := range []string{
		"x.json", "x.csv.gz", "x.htm", "PROVENANCE.md", "other/x.csv", "compliance/x.html", "compliance/x.asff.json",
		"Compliance/x.csv", "compliance", "",
	} {
		if got, ok, err := prowlerout.Classify(rel); ok || err != nil {
			t.Errorf("Classify(%q) = %+v, %v, %v; want skipped", rel, got, ok, err)
		}
	}
	if _, _, err := prowlerout.Classify("compliance/prowler-output-1-20250805120000_a b.csv"); err == nil {
		t.Error("a framework with a space was accepted")
	}
}
