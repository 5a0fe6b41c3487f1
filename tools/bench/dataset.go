package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

// frameworks are 40 AWS compliance frameworks of Prowler 5: one compliance
// CSV each in a workload-1 scan.
var frameworks = []string{
	"aws_account_security_onboarding_aws", "aws_audit_manager_control_tower_guardrails_aws",
	"aws_foundational_security_best_practices_aws", "aws_foundational_technical_review_aws",
	"aws_well_architected_framework_reliability_pillar_aws", "aws_well_architected_framework_security_pillar_aws",
	"c5_aws", "ccc_aws", "cis_1.4_aws", "cis_1.5_aws", "cis_2.0_aws", "cis_3.0_aws", "cis_4.0_aws", "cis_5.0_aws",
	"cisa_aws", "ens_rd2022_aws", "fedramp_low_revision_4_aws", "fedramp_moderate_revision_4_aws", "ffiec_aws",
	"gdpr_aws", "gxp_21_cfr_part_11_aws", "gxp_eu_annex_11_aws", "hipaa_aws", "iso27001_2013_aws",
	"iso27001_2022_aws", "kisa_isms_p_2023_aws", "kisa_isms_p_2023_korean_aws", "mitre_attack_aws",
	"nis2_aws", "nist_800_171_revision_2_aws", "nist_800_53_revision_4_aws", "nist_800_53_revision_5_aws",
	"nist_csf_1.1_aws", "pci_3.2.1_aws", "pci_4.0_aws", "prowler_threatscore_aws",
	"rbi_cyber_security_framework_aws", "secnumcloud_3.2_aws", "soc2_aws", "cis_6.0_aws",
}

// fileSpec is one output file of a benchmark scan.
type fileSpec struct {
	Format, Framework, Name string
	Size                    int64
}

// smallScanFiles is one scan of workload 1: 1 CSV (200 KB), 1 HTML (300 KB),
// 1 OCSF JSON (1 MB) and 40 compliance CSVs (20 KB each).
func smallScanFiles() []fileSpec {
	fs := []fileSpec{
		{Format: event.FormatCSV, Name: "out.csv", Size: 200_000},
		{Format: event.FormatHTML, Name: "out.html", Size: 300_000},
		{Format: event.FormatOCSF, Name: "out.ocsf.json", Size: 1_000_000},
	}
	for _, f := range frameworks {
		fs = append(fs, fileSpec{Format: event.FormatCompliance, Framework: f, Name: f + ".csv", Size: 20_000})
	}
	return fs
}

// latencyScanFiles is one scan of workload 4: four small files.
func latencyScanFiles() []fileSpec {
	return []fileSpec{
		{Format: event.FormatCSV, Name: "out.csv", Size: 200_000},
		{Format: event.FormatHTML, Name: "out.html", Size: 300_000},
		{Format: event.FormatCompliance, Framework: "cis_5.0_aws", Name: "cis_5.0_aws.csv", Size: 20_000},
		{Format: event.FormatCompliance, Framework: "soc2_aws", Name: "soc2_aws.csv", Size: 20_000},
	}
}

// dataset is a set of scans whose artifacts are in the object store.
type dataset struct {
	Tenant string    `json:"tenant"`
	UID    string    `json:"uid"` // provider uid (the AWS account)
	Scans  []scanDef `json:"scans"`
}

type scanDef struct {
	ID string `json:"id"`
	// Started differs from scan to scan (keys hold it, so that scans of the
	// same account do not overwrite each other).
	Started   time.Time        `json:"started"`
	Artifacts []event.Artifact `json:"artifacts"`
}

func (d dataset) objects() int {
	n := 0
	for _, s := range d.Scans {
		n += len(s.Artifacts)
	}
	return n
}

func (d dataset) bytes() int64 {
	var n int64
	for _, s := range d.Scans {
		for _, a := range s.Artifacts {
			n += *a.Size
		}
	}
	return n
}

// head returns the dataset cut to its first n scans.
func (d dataset) head(n int) dataset {
	if n < len(d.Scans) {
		d.Scans = d.Scans[:n]
	}
	return d
}

// event returns scan i as a scan-completed event for provider.
func (d dataset) event(i int, provider string) event.ScanCompleted {
	sc := d.Scans[i]
	done := sc.Started.Add(41 * time.Minute)
	return event.ScanCompleted{
		ScanID: sc.ID, TenantID: d.Tenant,
		Provider:  event.Provider{ID: provider, Type: "aws", UID: d.UID},
		StartedAt: sc.Started, CompletedAt: &done, Artifacts: sc.Artifacts,
	}
}

// storeScans puts n scans of files into the object store, each under
// <tenant>/<scan id>/, parallel scans at a time. Files up to 4 MB are
// rendered once and shared by every scan; larger ones are streamed.
func storeScans(ctx context.Context, js jetstream.JetStream, tenant, idPrefix string, n int, files []fileSpec, parallel int) (dataset, error) {
	d := dataset{Tenant: tenant, UID: "123456789012", Scans: make([]scanDef, n)}
	first := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: objectStore, Description: "benchmark scan outputs"}); err != nil {
		return d, fmt.Errorf("object store %s: %w", objectStore, err)
	}
	bodies := make([][]byte, len(files))
	for i, f := range files {
		if f.Size > 4<<20 {
			continue
		}
		b, err := io.ReadAll(fixtures.SizedReader(f.Format, f.Size, int64(i+1)))
		if err != nil {
			return d, err
		}
		bodies[i] = b
	}
	cl := &client.Client{JS: js}
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range n {
		id := fmt.Sprintf("%s-%04d", idPrefix, i+1)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfs := make([]client.File, len(files))
			for j, f := range files {
				var body io.Reader
				if bodies[j] != nil {
					body = bytes.NewReader(bodies[j])
				} else {
					body = fixtures.SizedReader(f.Format, f.Size, int64(j+1))
				}
				cfs[j] = client.File{Format: f.Format, Framework: f.Framework, Name: f.Name, Body: body}
			}
			arts, err := cl.PutArtifacts(ctx, objectStore, tenant, id, cfs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("scan %s: %w", id, err))
				return
			}
			d.Scans[i] = scanDef{ID: id, Started: first.Add(time.Duration(i) * time.Hour), Artifacts: arts}
		}()
	}
	wg.Wait()
	return d, errors.Join(errs...)
}
