package exporter

import (
	"strings"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
)

// TimestampLayout is the scan start time as it appears in object keys.
const TimestampLayout = "20060102150405"

// SanitizeUID replaces every character of a provider uid outside
// [A-Za-z0-9_-] with '-', as Prowler does in its file names.
func SanitizeUID(uid string) string {
	var b strings.Builder
	b.Grow(len(uid))
	for _, r := range uid {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

var suffixes = map[string]string{
	event.FormatCSV:  ".csv",
	event.FormatHTML: ".html",
	event.FormatOCSF: ".ocsf.json",
	event.FormatASFF: ".asff.json",
}

var contentTypes = map[string]string{
	event.FormatCSV:            "text/csv",
	event.FormatHTML:           "text/html",
	event.FormatOCSF:           "application/json",
	event.FormatASFF:           "application/json",
	event.FormatCompliance:     "text/csv",
	event.FormatComplianceOCSF: "application/json",
}

// ContentType returns the Content-Type of a format's objects.
func ContentType(format string) string { return contentTypes[format] }

// ObjectKey builds the key of one artifact (contract §4):
// {dir}/{format}/prowler-output-{uid}-{ts}{suffix}, with compliance files as
// {dir}/compliance/prowler-output-{uid}-{ts}_{framework}.csv and (v1.1)
// compliance OCSF files beside them as ..._{framework}.ocsf.json: the folder
// Prowler itself writes both to.
func ObjectKey(dir string, a event.Artifact, providerUID string, startedAt time.Time) string {
	name := "prowler-output-" + SanitizeUID(providerUID) + "-" + startedAt.UTC().Format(TimestampLayout)
	switch a.Format {
	case event.FormatCompliance:
		return dir + "/compliance/" + name + "_" + a.Framework + ".csv"
	case event.FormatComplianceOCSF:
		return dir + "/compliance/" + name + "_" + a.Framework + ".ocsf.json"
	}
	return dir + "/" + a.Format + "/" + name + suffixes[a.Format]
}
