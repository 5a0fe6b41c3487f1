package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func parseCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(body))
	r.Comma = ';'
	recs, err := r.ReadAll() // also checks every row has the header's field count
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	return recs
}

func TestFindingsCSV(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := FindingsCSV(&b, 7, "123456789012", 50); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte(FindingsCSVHeader+"\r\n")) {
		t.Fatalf("header line: %q", strings.SplitN(b.String(), "\n", 2)[0])
	}
	recs := parseCSV(t, b.Bytes())
	if len(recs) != 51 || len(recs[0]) != 44 {
		t.Fatalf("%d records of %d columns, want 51 of 44", len(recs), len(recs[0]))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	statuses := map[string]int{}
	for _, rec := range recs[1:] {
		if rec[col["ACCOUNT_UID"]] != "123456789012" || rec[col["PROVIDER"]] != "aws" || rec[col["PROWLER_VERSION"]] != ProwlerVersion {
			t.Fatalf("row: %q", rec)
		}
		if !strings.HasPrefix(rec[col["FINDING_UID"]], "prowler-aws-"+rec[col["CHECK_ID"]]+"-123456789012-") {
			t.Fatalf("finding uid %q", rec[col["FINDING_UID"]])
		}
		if _, err := time.Parse("2006-01-02 15:04:05.000000", rec[col["TIMESTAMP"]]); err != nil {
			t.Fatal(err)
		}
		statuses[rec[col["STATUS"]]]++
	}
	if statuses["PASS"] == 0 || statuses["FAIL"] == 0 {
		t.Fatalf("statuses = %v, want both PASS and FAIL", statuses)
	}

	// Deterministic from the seed, different across seeds.
	var again, other bytes.Buffer
	_ = FindingsCSV(&again, 7, "123456789012", 50)
	_ = FindingsCSV(&other, 8, "123456789012", 50)
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Fatal("same seed gave different bytes")
	}
	if bytes.Equal(b.Bytes(), other.Bytes()) {
		t.Fatal("different seeds gave the same bytes")
	}
}

func TestOCSFJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := OCSFJSON(&b, 3, "210987654321", 20); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "[\n    {\n        \"message\": ") {
		t.Fatalf("not indented by 4: %q", b.String()[:40])
	}
	var findings []map[string]any
	if err := json.Unmarshal(b.Bytes(), &findings); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if len(findings) != 20 {
		t.Fatalf("%d findings", len(findings))
	}
	for _, key := range []string{"message", "metadata", "severity_id", "severity", "status", "status_code", "status_detail",
		"status_id", "unmapped", "activity_name", "activity_id", "finding_info", "resources", "category_name", "category_uid",
		"class_name", "class_uid", "cloud", "remediation", "risk_details", "time", "time_dt", "type_uid", "type_name"} {
		if _, ok := findings[0][key]; !ok {
			t.Errorf("finding lacks %q", key)
		}
	}
	f := findings[0]
	if f["class_uid"] != 2004.0 || f["type_uid"] != 200401.0 || f["category_uid"] != 2.0 {
		t.Fatalf("class/type/category = %v %v %v", f["class_uid"], f["type_uid"], f["category_uid"])
	}
	if f["metadata"].(map[string]any)["version"] != "1.3.0" {
		t.Fatalf("metadata = %v", f["metadata"])
	}
	if acc := f["cloud"].(map[string]any)["account"].(map[string]any); acc["uid"] != "210987654321" {
		t.Fatalf("cloud.account = %v", acc)
	}

	// The formats of one seed describe the same findings.
	var c bytes.Buffer
	_ = FindingsCSV(&c, 3, "210987654321", 20)
	recs := parseCSV(t, c.Bytes())
	for i, f := range findings {
		uid := f["finding_info"].(map[string]any)["uid"]
		if recs[i+1][8] != uid {
			t.Fatalf("finding %d: csv uid %q, ocsf uid %q", i, recs[i+1][8], uid)
		}
	}
}

func TestASFFJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := ASFFJSON(&b, 3, "210987654321", 10); err != nil {
		t.Fatal(err)
	}
	var findings []struct {
		SchemaVersion string
		AwsAccountId  string
		Compliance    struct{ Status string }
	}
	if err := json.Unmarshal(b.Bytes(), &findings); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	if len(findings) != 10 || findings[0].SchemaVersion != "2018-10-08" || findings[0].AwsAccountId != "210987654321" || findings[0].Compliance.Status == "" {
		t.Fatalf("findings = %+v", findings)
	}
}

func TestHTMLReport(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := HTMLReport(&b, 5, "123456789012", 30); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "<!DOCTYPE html>") || !strings.HasSuffix(s, "</html>\n") {
		t.Fatal("not a complete HTML page")
	}
	if n := strings.Count(s, "<tr class="); n != 30 {
		t.Fatalf("%d finding rows, want 30", n)
	}
	if !strings.Contains(s, "<b>AWS Account:</b> 123456789012") {
		t.Fatal("no account in summary")
	}
}

func TestComplianceCSV(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		framework, header, name string
	}{
		{"cis_5.0_aws", CISComplianceCSVHeader, "CIS Amazon Web Services Foundations Benchmark v5.0.0"},
		{"iso27001_2022_aws", ComplianceCSVHeader, "ISO/IEC 27001 Information Security Management Standard 2022"},
		{"custom_1.0_aws", ComplianceCSVHeader, "custom_1.0_aws"},
	} {
		var b bytes.Buffer
		if err := ComplianceCSV(&b, 1, tc.framework, "123456789012", 25); err != nil {
			t.Fatal(err)
		}
		recs := parseCSV(t, b.Bytes())
		want := strings.Split(tc.header, ";")
		if len(recs) != 26 || strings.Join(recs[0], ";") != tc.header || len(recs[1]) != len(want) {
			t.Fatalf("%s: %d records, header %q", tc.framework, len(recs), recs[0])
		}
		last := recs[1][len(want)-1]
		if tc.header == CISComplianceCSVHeader && last != tc.name {
			t.Fatalf("%s: Name = %q", tc.framework, last)
		}
		if tc.header == ComplianceCSVHeader && recs[1][19] != tc.name {
			t.Fatalf("%s: Name = %q", tc.framework, recs[1][19])
		}
	}
}

func TestProwlerOutputs(t *testing.T) {
	t.Parallel()
	files := ProwlerOutputs(11, "123456789012", 15, []string{"cis_5.0_aws", "soc2_aws"})
	want := map[string]string{
		"out.csv": "text/csv", "out.html": "text/html", "out.ocsf.json": "application/json",
		"out.asff.json": "application/json", "cis_5.0_aws.csv": "text/csv", "soc2_aws.csv": "text/csv",
	}
	if len(files) != len(want) {
		t.Fatalf("%d files", len(files))
	}
	for _, f := range files {
		if want[f.FileName] != f.ContentType || len(f.Body) == 0 {
			t.Fatalf("file %s (%s, %s, %d bytes)", f.FileName, f.Format, f.ContentType, len(f.Body))
		}
		if strings.HasSuffix(f.FileName, ".json") && !json.Valid(f.Body) {
			t.Fatalf("%s is not valid JSON", f.FileName)
		}
		if strings.HasSuffix(f.FileName, ".csv") {
			parseCSV(t, f.Body)
		}
	}
	start := ScanStart(11)
	ts := start.UTC().Format("20060102150405")
	if got := ProwlerFileName("arn:aws:iam::123/x", start, files[0]); got != "prowler-output-arn-aws-iam--123-x-"+ts+".csv" {
		t.Fatalf("csv name %q", got)
	}
	if got := ProwlerFileName("123456789012", start, files[4]); got != "compliance/prowler-output-123456789012-"+ts+"_cis_5.0_aws.csv" {
		t.Fatalf("compliance name %q", got)
	}
	if got := ProwlerFileName("123456789012", start, files[2]); !strings.HasSuffix(got, ts+".ocsf.json") {
		t.Fatalf("ocsf name %q", got)
	}
}

func TestSizedReaderExactAndValid(t *testing.T) {
	t.Parallel()
	for _, format := range []string{FormatCSV, FormatOCSF, FormatASFF, FormatHTML, FormatCompliance} {
		for _, size := range []int64{0, 5, 300, 4096, 10_000, 1 << 20, 3<<20 + 17} {
			body, err := io.ReadAll(SizedReader(format, size, 42))
			if err != nil {
				t.Fatalf("%s/%d: %v", format, size, err)
			}
			if int64(len(body)) != size {
				t.Fatalf("%s: got %d bytes, want %d", format, len(body), size)
			}
			if size < 10_000 { // may be too small for a header and a record
				continue
			}
			switch format {
			case FormatOCSF, FormatASFF:
				var arr []json.RawMessage
				if err := json.Unmarshal(body, &arr); err != nil || len(arr) == 0 {
					t.Fatalf("%s/%d: invalid JSON array (%d elements): %v", format, size, len(arr), err)
				}
			case FormatCSV, FormatCompliance:
				recs := parseCSV(t, body)
				if len(recs) < 2 {
					t.Fatalf("%s/%d: %d records", format, size, len(recs))
				}
			case FormatHTML:
				if !bytes.HasPrefix(body, []byte("<!DOCTYPE html>")) || !bytes.HasSuffix(body, []byte("</html>\n")) {
					t.Fatalf("html/%d: not a complete page", size)
				}
			}
		}
	}
}

func TestSizedReaderDeterministic(t *testing.T) {
	t.Parallel()
	const size = 5<<20 + 123 // several cycles of records
	a, err := SizedSHA256(FormatOCSF, size, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SizedSHA256(FormatOCSF, size, 1)
	c, _ := SizedSHA256(FormatOCSF, size, 2)
	if a != b {
		t.Fatal("same seed, different digest")
	}
	if a == c {
		t.Fatal("different seeds, same digest")
	}
	// The digest is that of the bytes read, even with odd read sizes.
	h := sha256.New()
	r := SizedReader(FormatOCSF, size, 1)
	buf := make([]byte, 7777)
	var n int64
	for {
		k, err := r.Read(buf[:1+int(n%7777)])
		h.Write(buf[:k])
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != a {
		t.Fatalf("read %d bytes with digest %x, want %d and %s", n, h.Sum(nil), int64(size), a)
	}
	// A prefix of a larger stream starts the same way.
	small, _ := io.ReadAll(io.LimitReader(SizedReader(FormatCSV, 1<<20, 9), 1000))
	large, _ := io.ReadAll(io.LimitReader(SizedReader(FormatCSV, 1<<30, 9), 1000))
	if !bytes.Equal(small, large) {
		t.Fatal("streams of one seed differ at the start")
	}
}

func TestSizedReaderUnknownFormat(t *testing.T) {
	t.Parallel()
	if _, err := SizedSHA256("pdf", 10, 1); err == nil {
		t.Fatal("unknown format accepted")
	}
}
