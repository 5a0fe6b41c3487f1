package schemas

import (
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

// TestV12MatchesCode keeps the v1.2 additions of the schemas equal to the
// exporter's: the archive format (an artifact's, and an export error's for
// a refused archive) and the s3:// scheme of sources.
func TestV12MatchesCode(t *testing.T) {
	set := loadSchemas(t)
	artifact := pointer(t, set, "scan-completed.json", "$defs", "artifact", "properties", "format", "anyOf").([]any)
	if got := artifact[1].(map[string]any)["const"]; got != event.FormatArchive {
		t.Errorf("scan-completed artifact format: schema says %v, the exporter uses %s", got, event.FormatArchive)
	}
	errFormat := pointer(t, set, "export-status.json", "$defs", "error", "properties", "format", "anyOf").([]any)
	if got := errFormat[2].(map[string]any)["const"]; got != event.FormatArchive {
		t.Errorf("export-status error format: schema says %v, the exporter uses %s", got, event.FormatArchive)
	}
	src := pointer(t, set, "scan-completed.json", "$defs", "artifact", "properties", "source", "allOf").([]any)[0].(map[string]any)["pattern"].(string)
	if !strings.Contains(src, event.SchemeS3+"://") {
		t.Errorf("the source pattern %s has no %s://", src, event.SchemeS3)
	}
}
