package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

func TestOperationsGuideListsEveryMetric(t *testing.T) {
	doc := string(readFile(t, operationsDoc()))
	exposed := exposedMetricNames(t)
	// The standard collectors' families are client_golang's to document;
	// the guide names them as go_* and process_*.
	for _, std := range []string{"`go_*`", "`process_*`"} {
		if !strings.Contains(doc, std) {
			t.Errorf("docs/operations.md does not mention %s", std)
		}
	}
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

// TestDocsLinkOnlyInsideTheRepository walks every Markdown file of the
// repository: a relative link must name a file of the repository (never a
// path beside the clone, such as ../shared, which users do not have), and an
// anchor into a Markdown file must be one of its headings.
func TestDocsLinkOnlyInsideTheRepository(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "dist", ".devstack", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 5 {
		t.Fatalf("found only %d Markdown files under %s", len(docs), root)
	}
	for _, doc := range docs {
		rel, _ := filepath.Rel(root, doc)
		for _, m := range mdLinkRE.FindAllStringSubmatch(string(readFile(t, doc)), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(link, "#")
			target := doc
			if file != "" {
				if filepath.IsAbs(file) {
					t.Errorf("%s: link %s is absolute", rel, link)
					continue
				}
				target = filepath.Join(filepath.Dir(doc), file)
				if r, err := filepath.Rel(root, target); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
					t.Errorf("%s: link %s leads outside the repository", rel, link)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s: link %s: %v", rel, link, err)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !markdownAnchors(t, target)[anchor] {
				t.Errorf("%s: link %s: no heading #%s", rel, link, anchor)
			}
		}
	}
}

// TestReadmeIsForUsers keeps the README a user's page: short, with the two
// commands a newcomer runs first, and links to where the rest went.
func TestReadmeIsForUsers(t *testing.T) {
	doc := string(readFile(t, filepath.Join(repoRoot, "README.md")))
	if n := strings.Count(doc, "\n"); n > 300 {
		t.Errorf("README.md has %d lines, want at most 300: design goes to docs/design.md, development to CONTRIBUTING.md", n)
	}
	for _, want := range []string{"make demo", "make test", "docs/configuration.md", "docs/design.md", "CONTRIBUTING.md", "docs/contract.md"} {
		if !strings.Contains(doc, want) {
			t.Errorf("README.md does not mention %s", want)
		}
	}
}

// TestContractDocIsComplete pins docs/contract.md to the whole of v1.1: every
// subject, stream, error code and setting the contract names.
func TestContractDocIsComplete(t *testing.T) {
	doc := string(readFile(t, filepath.Join(repoRoot, "docs", "contract.md")))
	for _, want := range []string{
		"v1.1",
		"prowler.integrations.changed.<tenant_id>.<integration_id>",
		"prowler.scans.completed.<tenant_id>.<provider_id>",
		"prowler.exports.status.<tenant_id>.<integration_id>",
		"prowler.integrations.status.<tenant_id>.<integration_id>",
		"prowler.dlq.scans.<tenant_id>",
		"prowler.control.integrations.test", "prowler.control.integrations.get", "prowler.control.exports.replay",
		"prowler.control.<tenant_id>.integrations.list", "prowler.control.<tenant_id>.exports.replay",
		"PROWLER_SCANS", "PROWLER_INTEGRATIONS", "PROWLER_STATUS", "PROWLER_DLQ", "PROWLER_EXPORTS",
		"Prowler-Dlq-Reason", "Prowler-Original-Subject", "Nats-Msg-Id",
		"`compliance-ocsf`", "x-amz-meta-prowler-scan-id", "write_manifest", "test-prowler-connection.txt",
		"`^[A-Za-z0-9_=-]{1,128}$`", "`InvalidRequest`", "`InternalError`",
		"S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS", "S3EXPORTER_GLOBAL_CONTROL", "S3EXPORTER_CREDENTIALS_KEY",
		"Trust model", "256 artifacts", "1 MiB",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/contract.md does not state %s", want)
		}
	}
	for _, c := range errcode.All {
		if !strings.Contains(doc, "`"+string(c)+"`") {
			t.Errorf("docs/contract.md does not list error code %s", c)
		}
	}
}
