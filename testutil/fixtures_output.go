package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"
)

// OutputFile is one output file of a Prowler scan.
type OutputFile struct {
	Format      string // FormatCSV, FormatHTML, FormatOCSF, FormatASFF or FormatCompliance
	Framework   string // compliance framework ("cis_5.0_aws"), only for FormatCompliance
	FileName    string // out.csv, out.html, out.ocsf.json, out.asff.json, {framework}.csv
	ContentType string // as Prowler uploads it: text/csv, text/html, application/json
	Body        []byte
}

// ScanStart is the start time of the scan that a seed generates: the base of
// the findings' timestamps, and what ProwlerFileName should be given.
func ScanStart(seed int64) time.Time {
	return newScanFixture(seed, "").start
}

// FindingsCSV writes a Prowler findings CSV of a scan of accountUID: the
// exact header, then findings `;`-separated CRLF-terminated rows. The same
// seed gives the same bytes, and the same findings as the other formats.
func FindingsCSV(w io.Writer, seed int64, accountUID string, findings int) error {
	return writeFindings(w, csvEncoder{}, newScanFixture(seed, accountUID), findings, nil)
}

// OCSFJSON writes Prowler's OCSF output: a JSON array, indented by 4, of OCSF
// 1.3.0 Detection Findings.
func OCSFJSON(w io.Writer, seed int64, accountUID string, findings int) error {
	return writeFindings(w, ocsfEncoder{}, newScanFixture(seed, accountUID), findings, nil)
}

// ASFFJSON writes Prowler's AWS Security Finding Format output: a JSON array
// indented by 4.
func ASFFJSON(w io.Writer, seed int64, accountUID string, findings int) error {
	return writeFindings(w, asffEncoder{}, newScanFixture(seed, accountUID), findings, nil)
}

// HTMLReport writes Prowler's HTML report: one self-contained page with an
// assessment summary and a table of the findings.
func HTMLReport(w io.Writer, seed int64, accountUID string, findings int) error {
	// Counting pass: the summary comes before the rows.
	sf := newScanFixture(seed, accountUID)
	enc := htmlEncoder{account: sf.account, assessed: sf.start.Format("2006-01-02 15:04:05")}
	for i := range findings {
		enc.count(sf.next(i))
	}
	return writeFindings(w, enc, newScanFixture(seed, accountUID), findings, nil)
}

func (e *htmlEncoder) count(f finding) {
	switch {
	case f.muted:
		e.muted++
	case f.status == "PASS":
		e.pass++
	case f.status == "FAIL":
		e.fail++
	}
}

// ComplianceCSV writes Prowler's compliance CSV for framework (a file name
// such as "cis_5.0_aws"; CIS benchmarks get the CIS column set, others the
// generic one) with rows requirement rows.
func ComplianceCSV(w io.Writer, seed int64, framework, accountUID string, rows int) error {
	enc, pool := complianceSetup(framework)
	return writeFindings(w, enc, newScanFixture(subSeed(seed, framework), accountUID), rows, pool)
}

func complianceSetup(framework string) (complianceEncoder, []*checkDef) {
	fw := lookupFramework(framework)
	var pool []*checkDef
	for i := range checkCatalog {
		if _, ok := checkCatalog[i].Compliance[fw.key]; ok {
			pool = append(pool, &checkCatalog[i])
		}
	}
	return complianceEncoder{name: framework, fw: fw}, pool
}

func writeFindings(w io.Writer, enc recordEncoder, sf *scanFixture, n int, pool []*checkDef) error {
	bw := bufio.NewWriterSize(w, 64*1024)
	_, _ = bw.Write(enc.header())
	for i := range n {
		if i > 0 {
			_, _ = bw.Write(enc.separator())
		}
		f := sf.nextFrom(i, pool)
		_, _ = bw.Write(enc.record(&f))
	}
	_, _ = bw.Write(enc.footer())
	if err := bw.Flush(); err != nil { // a bufio.Writer keeps its first error
		return fmt.Errorf("write fixture: %w", err)
	}
	return nil
}

// ProwlerOutputs returns every output file of one scan of accountUID with
// the given number of findings: out.csv, out.html, out.ocsf.json,
// out.asff.json, and one {framework}.csv per framework (DefaultFrameworks
// lists typical ones) with as many rows as findings.
func ProwlerOutputs(seed int64, accountUID string, findings int, frameworks []string) []OutputFile {
	render := func(write func(io.Writer) error) []byte {
		var b bytes.Buffer
		_ = write(&b) // a bytes.Buffer does not fail
		return b.Bytes()
	}
	files := []OutputFile{
		{Format: FormatCSV, FileName: "out.csv", ContentType: "text/csv",
			Body: render(func(w io.Writer) error { return FindingsCSV(w, seed, accountUID, findings) })},
		{Format: FormatHTML, FileName: "out.html", ContentType: "text/html",
			Body: render(func(w io.Writer) error { return HTMLReport(w, seed, accountUID, findings) })},
		{Format: FormatOCSF, FileName: "out.ocsf.json", ContentType: "application/json",
			Body: render(func(w io.Writer) error { return OCSFJSON(w, seed, accountUID, findings) })},
		{Format: FormatASFF, FileName: "out.asff.json", ContentType: "application/json",
			Body: render(func(w io.Writer) error { return ASFFJSON(w, seed, accountUID, findings) })},
	}
	for _, fw := range frameworks {
		files = append(files, OutputFile{
			Format: FormatCompliance, Framework: fw, FileName: fw + ".csv", ContentType: "text/csv",
			Body: render(func(w io.Writer) error { return ComplianceCSV(w, seed, fw, accountUID, findings) }),
		})
	}
	return files
}
