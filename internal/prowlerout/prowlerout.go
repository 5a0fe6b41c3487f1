// Package prowlerout recognises Prowler's output files by their names. It is
// the one mapping of a file in a Prowler output folder to an artifact's
// format and framework: exporterctl scan publish reads folders with it, and
// the exporter reads archive members (contract v1.2 §3) with it, so that a
// folder and the same folder zipped export alike.
package prowlerout

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/prowler-cloud/s3-exporter/event"
)

// ComplianceDir is the folder of compliance files in an output folder.
const ComplianceDir = "compliance"

// Output is what a file's name says it is.
type Output struct {
	Format    string
	Framework string // the compliance formats only
	// UID and TS are the provider uid and the timestamp (YYYYmmddHHMMSS) in
	// the name, when Prowler named it prowler-output-<uid>-<ts>...
	UID, TS string
}

// Name is the artifact name (event.Artifact.Name) the file would have.
func (o Output) Name() string {
	return event.Artifact{Format: o.Format, Framework: o.Framework}.Name()
}

// formats is the table: by name suffix (of any case), the format of a file
// at the top of the folder and that of a file below compliance/ ("": not an
// output there).
var formats = []struct{ suffix, top, compliance string }{
	{".ocsf.json", event.FormatOCSF, event.FormatComplianceOCSF},
	{".asff.json", event.FormatASFF, ""},
	{".html", event.FormatHTML, ""},
	{".csv", event.FormatCSV, event.FormatCompliance},
}

// Prowler's names, without the suffix: prowler-output-<uid>-<YYYYmmddHHMMSS>
// for the findings files, and ..._<framework> for compliance files. The uid
// is matched greedily: it may hold '-' (a sanitised ARN), a framework never
// holds a 14-digit run after a '-'.
var (
	prowlerName       = regexp.MustCompile(`^prowler-output-(.+)-([0-9]{14})$`)
	prowlerCompliance = regexp.MustCompile(`^prowler-output-(.+)-([0-9]{14})_(.+)$`)
	frameworkPattern  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Classify says what the file at rel is: rel is its slash-separated path
// relative to the output folder. Files at the top are recognised by suffix
// (*.ocsf.json json-ocsf, *.asff.json json-asff, *.html html, *.csv csv);
// files anywhere below compliance/ are compliance (*.csv) or
// compliance-ocsf (*.ocsf.json), their framework what follows
// "prowler-output-<uid>-<YYYYmmddHHMMSS>_" in the name, or the whole name
// without its suffix. ok is false for anything else (skipped). A compliance
// file whose framework is not [A-Za-z0-9_.-]+ is an error.
func Classify(rel string) (_ Output, ok bool, _ error) {
	dir, name := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	inCompliance := dir == ComplianceDir || strings.HasPrefix(dir, ComplianceDir+"/")
	if dir != "" && !inCompliance {
		return Output{}, false, nil
	}
	lower := strings.ToLower(name)
	for _, f := range formats {
		if !strings.HasSuffix(lower, f.suffix) {
			continue
		}
		base := name[:len(name)-len(f.suffix)]
		if !inCompliance {
			if f.top == "" {
				return Output{}, false, nil
			}
			o := Output{Format: f.top}
			if m := prowlerName.FindStringSubmatch(base); m != nil {
				o.UID, o.TS = m[1], m[2]
			}
			return o, true, nil
		}
		if f.compliance == "" {
			return Output{}, false, nil
		}
		o := Output{Format: f.compliance, Framework: base}
		if m := prowlerCompliance.FindStringSubmatch(base); m != nil {
			o.Framework, o.UID, o.TS = m[3], m[1], m[2]
		}
		if !frameworkPattern.MatchString(o.Framework) || strings.Trim(o.Framework, ".") == "" {
			return Output{}, false, fmt.Errorf("compliance file %s: framework %q must match [A-Za-z0-9_.-]+", name, o.Framework)
		}
		return o, true, nil
	}
	return Output{}, false, nil
}
