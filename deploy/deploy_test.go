package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/prowler-cloud/s3-exporter/metrics"
)

// repoRoot is the module root; tests run in deploy/.
const repoRoot = ".."

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exposedMetricNames returns every series name of the exporter's own that a
// fresh metrics.New exposes: counters and gauges by name, histograms with
// _bucket, _sum and _count too. The standard go_* and process_* collectors
// on the same registry are left out: they are not ours to document or chart.
func exposedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics.New(reg, metrics.BuildInfo{Version: "test", Revision: "test"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), metrics.Namespace+"_") {
			continue
		}
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("metrics.New exposed nothing")
	}
	return names
}

// familyOf maps a series name to its metric family (histogram suffixes off).
func familyOf(name string, exposed map[string]bool) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && exposed[base] {
			return base
		}
	}
	return name
}

// exporterMetricRE matches an exporter metric name in PromQL. Label names
// never start with the prefix, and template variables ($job) are not
// identifiers, so every match is a metric name.
var exporterMetricRE = regexp.MustCompile(`\b` + metrics.Namespace + `_[A-Za-z0-9_:]+`)

// metricNamesIn returns the exporter metric names an expression refers to.
func metricNamesIn(expr string) []string {
	names := exporterMetricRE.FindAllString(expr, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// unknownMetrics returns the names in expr that the exporter does not expose.
func unknownMetrics(expr string, exposed map[string]bool) []string {
	var bad []string
	for _, n := range metricNamesIn(expr) {
		if !exposed[n] {
			bad = append(bad, n)
		}
	}
	return bad
}

func TestUnknownMetricsCatchesTypos(t *testing.T) {
	exposed := exposedMetricNames(t)
	for expr, want := range map[string][]string{
		`sum(rate(s3exporter_uploads_total{format="csv"}[5m]))`:                                       nil,
		`histogram_quantile(0.99, sum by (le) (rate(s3exporter_upload_duration_seconds_bucket[5m])))`: nil,
		`rate(s3exporter_upload_total[5m])`:                                                           {"s3exporter_upload_total"},
		`s3exporter_exports_total_bucket + s3exporter_cache_ready`:                                    {"s3exporter_exports_total_bucket"},
		`max(s3exporter_integrations{connected="false"}) > 0 and s3exporter_nats_conected == 0`:       {"s3exporter_nats_conected"},
	} {
		if got := unknownMetrics(expr, exposed); !slices.Equal(got, want) {
			t.Errorf("unknownMetrics(%q) = %v, want %v", expr, got, want)
		}
	}
}

// promtool returns promtool's path, or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (Debian: apt-get install prometheus); CI installs it")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

// markdownAnchors returns the GitHub anchors of a markdown file's headings.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	inFence := false
	for line := range strings.Lines(string(readFile(t, path))) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		anchors[githubAnchor(title)] = true
	}
	return anchors
}

// githubAnchor is GitHub's heading slug: lower case, punctuation dropped,
// spaces to hyphens.
func githubAnchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestGithubAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"S3ExporterExportsFailing":   "s3exporterexportsfailing",
		"Scaling out":                "scaling-out",
		"IAM: cross-account buckets": "iam-cross-account-buckets",
	} {
		if got := githubAnchor(in); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", in, got, want)
		}
	}
}

func operationsDoc() string { return filepath.Join(repoRoot, "docs", "operations.md") }
