package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestOperationsGuideListsEveryMetric(t *testing.T) {
	doc := string(readFile(t, operationsDoc()))
	exposed := exposedMetricNames(t)
	for name := range exposed {
		if fam := familyOf(name, exposed); !strings.Contains(doc, "`"+fam+"`") {
			t.Errorf("docs/operations.md does not list %s", fam)
		}
	}
	if bad := unknownMetrics(doc, exposed); len(bad) > 0 {
		t.Errorf("docs/operations.md names metrics the exporter does not expose: %v", bad)
	}
	for _, want := range []string{"AbortIncompleteMultipartUpload", `"DaysAfterInitiation": 1`, "S3EXPORTER_CONSUMER_NAME", "S3EXPORTER_STREAM_REPLICAS=3"} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/operations.md does not mention %s", want)
		}
	}
}

var mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestOperationsGuideLinksResolve checks the guide's relative links: the
// files exist and the anchors are headings.
func TestOperationsGuideLinksResolve(t *testing.T) {
	path := operationsDoc()
	for _, m := range mdLinkRE.FindAllStringSubmatch(string(readFile(t, path)), -1) {
		link := m[1]
		if strings.Contains(link, "://") {
			continue
		}
		file, anchor, _ := strings.Cut(link, "#")
		target := path
		if file != "" {
			target = filepath.Join(filepath.Dir(path), file)
			if _, err := os.Stat(target); err != nil {
				t.Errorf("link %s: %v", link, err)
				continue
			}
		}
		if anchor != "" && strings.HasSuffix(target, ".md") && !markdownAnchors(t, target)[anchor] {
			t.Errorf("link %s: no heading #%s in %s", link, anchor, target)
		}
	}
}
