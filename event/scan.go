package event

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Artifact formats (contract §3).
const (
	FormatCSV        = "csv"
	FormatHTML       = "html"
	FormatOCSF       = "json-ocsf"
	FormatASFF       = "json-asff"
	FormatCompliance = "compliance"
	// FormatComplianceOCSF (v1.1) is the OCSF JSON Prowler 5 writes, besides
	// the CSV, for provider-agnostic frameworks (compliance/…_<framework>.ocsf.json).
	FormatComplianceOCSF = "compliance-ocsf"
)

// FormatArchive (v1.2) is a zip of a scan's output folder (Prowler App's
// prowler-output-<uid>-<ts>.zip): the exporter expands it into one artifact
// per member it recognises, as exporterctl scan publish reads a folder. It
// never lands as such, so it is not in Formats.
const FormatArchive = "archive"

// Formats lists every format of an object that lands in a bucket.
var Formats = []string{FormatCSV, FormatHTML, FormatOCSF, FormatASFF, FormatCompliance, FormatComplianceOCSF}

// IsCompliance reports whether format is one of the compliance formats,
// which carry a framework.
func IsCompliance(format string) bool {
	return format == FormatCompliance || format == FormatComplianceOCSF
}

var frameworkPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// ScanCompleted is the payload of prowler.scans.completed.<tenant>.<provider>.
type ScanCompleted struct {
	ScanID      string     `json:"scan_id"`
	TenantID    string     `json:"tenant_id"`
	Provider    Provider   `json:"provider"`
	StartedAt   time.Time  `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Artifacts   []Artifact `json:"artifacts"`
}

// Provider is the scanned cloud account.
type Provider struct {
	ID   string `json:"id"`
	Type string `json:"type,omitempty"`
	UID  string `json:"uid"`
}

// Artifact is one output file of a scan.
type Artifact struct {
	Format    string `json:"format"`
	Framework string `json:"framework,omitempty"`
	Source    string `json:"source"`
	SHA256    string `json:"sha256,omitempty"`
	Size      *int64 `json:"size,omitempty"`
	// Member is set on an artifact the exporter expanded from an archive
	// (its Source is the archive's): never on the wire.
	Member *ArchiveMember `json:"-"`
}

// ArchiveMember locates one member of an archive artifact (v1.2), as read
// from the archive's central directory and its local header when the
// exporter expanded it. Opening the member reads exactly its compressed
// bytes, from the very archive that was read (ETag, size).
type ArchiveMember struct {
	// Name is the member's name in the archive.
	Name string
	// Method is the zip compression method (0 store, 8 deflate).
	Method uint16
	// DataOffset is where the member's compressed bytes start.
	DataOffset     int64
	CompressedSize int64
	// Size and CRC32 are what the central directory says of the inflated
	// bytes; neither is trusted: the bytes that come out are counted and
	// checked against them.
	Size  int64
	CRC32 uint32
	// ArchiveSize and ArchiveETag identify the archive read (the ETag for
	// an s3 source; empty for a file).
	ArchiveSize int64
	ArchiveETag string
}

// Name identifies the artifact within its scan: the format, and the framework
// for compliance files ("compliance/cis_5.0_aws", "compliance-ocsf/cis_5.0_aws").
func (a Artifact) Name() string {
	if IsCompliance(a.Format) {
		return a.Format + "/" + a.Framework
	}
	return a.Format
}

// MalformedError says why an incoming payload can't be used. Such an event is
// dead-lettered, never retried.
type MalformedError struct {
	Reason string
}

func (e *MalformedError) Error() string { return "malformed event: " + e.Reason }

// maxReason caps a reason: it quotes values from the event and travels in
// the dead letter's Prowler-Dlq-Reason header, next to the whole payload.
const maxReason = 1024

func malformed(format string, args ...any) error {
	r := fmt.Sprintf(format, args...)
	if len(r) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(r[cut]) {
			cut--
		}
		r = r[:cut] + "…"
	}
	return &MalformedError{Reason: r}
}

// Limits of a scan-completed event (contract v1.1 §3). An event over them is
// malformed: dead-lettered on its first delivery, never retried. They keep
// the export status, which lists each artifact's outcome, within one NATS
// message (about 14,000 artifacts fit in 1 MiB, and their status did not),
// and bound the work one event can ask for.
const (
	MaxScanArtifacts = 256
	MaxScanBytes     = 1 << 20
)

// DecodeScan decodes and validates a scan-completed payload received on
// subject. The subject's tenant and provider tokens are authoritative.
func DecodeScan(prefix, subject string, data []byte) (*ScanCompleted, error) {
	toks, err := SubjectTokens(subject, prefix, ScansCompleted, 2)
	if err != nil {
		return nil, malformed("%v", err)
	}
	// Before parsing: a server configured with a larger max_payload would
	// otherwise have this process decode whatever it is sent.
	if len(data) > MaxScanBytes {
		return nil, malformed("the event is %d bytes, over the limit of %d (1 MiB)", len(data), MaxScanBytes)
	}
	var s ScanCompleted
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&s); err != nil {
		return nil, malformed("invalid JSON: %v", err)
	}
	// Only white space may follow the object. (dec.More would let a stray
	// '}' or ']' through.)
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("invalid JSON: trailing data after the object")
	}
	if err := s.validate(toks[0], toks[1]); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *ScanCompleted) validate(subjTenant, subjProvider string) error {
	switch {
	case s.ScanID == "":
		return malformed("missing scan_id")
	case s.TenantID == "":
		return malformed("missing tenant_id")
	case s.Provider.ID == "":
		return malformed("missing provider.id")
	case s.Provider.UID == "":
		return malformed("missing provider.uid")
	case s.StartedAt.IsZero():
		return malformed("missing started_at")
	}
	for name, v := range map[string]string{"scan_id": s.ScanID, "tenant_id": s.TenantID, "provider.id": s.Provider.ID} {
		if !ValidID(v) {
			return malformed("%s %q: only letters, digits, '_', '=' and '-' are allowed (1-128 characters)", name, v)
		}
	}
	if s.TenantID != subjTenant {
		return malformed("tenant_id %q differs from the subject's tenant %q", s.TenantID, subjTenant)
	}
	if s.Provider.ID != subjProvider {
		return malformed("provider.id %q differs from the subject's provider %q", s.Provider.ID, subjProvider)
	}
	if len(s.Artifacts) == 0 {
		return malformed("artifacts: at least one artifact is required")
	}
	if len(s.Artifacts) > MaxScanArtifacts {
		return malformed("artifacts: %d artifacts, over the limit of %d per event", len(s.Artifacts), MaxScanArtifacts)
	}
	seen := make(map[string]bool, len(s.Artifacts))
	for i, a := range s.Artifacts {
		if err := a.validate(); err != nil {
			return malformed("artifacts[%d]: %s", i, err.(*MalformedError).Reason)
		}
		if seen[a.Name()] {
			return malformed("artifacts[%d]: %s appears more than once", i, a.Name())
		}
		seen[a.Name()] = true
	}
	return nil
}

func (a Artifact) validate() error {
	switch a.Format {
	case "":
		return malformed("missing format")
	case FormatArchive:
		if a.Framework != "" {
			return malformed("framework is not allowed for an archive (its members' names give theirs)")
		}
	case FormatCSV, FormatHTML, FormatOCSF, FormatASFF:
		if a.Framework != "" {
			return malformed("framework is only allowed for the compliance formats")
		}
	case FormatCompliance, FormatComplianceOCSF:
		if a.Framework == "" {
			return malformed("missing framework (required for %s)", a.Format)
		}
		if !frameworkPattern.MatchString(a.Framework) || strings.Trim(a.Framework, ".") == "" {
			return malformed("framework %q must match [A-Za-z0-9_.-]+", a.Framework)
		}
	default:
		return malformed("unknown format %q (want one of %s, %s)", a.Format, strings.Join(Formats, ", "), FormatArchive)
	}
	if a.Source == "" {
		return malformed("missing source")
	}
	if _, err := ParseSource(a.Source); err != nil {
		return malformed("%v", err)
	}
	if a.SHA256 != "" {
		if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 {
			return malformed("sha256 must be 64 hexadecimal characters")
		}
	}
	if a.Size != nil && *a.Size < 0 {
		return malformed("size must not be negative")
	}
	return nil
}
