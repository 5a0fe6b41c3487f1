package testutil

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// deployedMetricRE finds metric names in the deployment artifacts: the
// exporter's own and the standard collectors' (go_*, process_*).
var deployedMetricRE = regexp.MustCompile(`\b(?:s3exporter|go|process)_[a-z0-9_:]*[a-z0-9]\b`)

// DeployedMetricNames returns, for each deployment artifact that names
// metrics (the alert rules, the Grafana dashboard, the Helm chart's
// templates, copies and values) under the repository root, the metric names
// it uses, sorted and without repeats.
func DeployedMetricNames(t testing.TB, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, pattern := range []string{
		"deploy/prometheus/alerts.yml",
		"deploy/grafana/*.json",
		"deploy/helm/s3-exporter/templates/*",
		"deploy/helm/s3-exporter/files/*",
		"deploy/helm/s3-exporter/values.yaml",
	} {
		paths, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			names := deployedMetricRE.FindAllString(string(raw), -1)
			slices.Sort(names)
			if names = slices.Compact(names); len(names) > 0 {
				out[p] = names
			}
		}
	}
	return out
}

// ServedMetricNames returns the metric names in a Prometheus text
// exposition (/metrics): every sample's name and every family's (so a
// histogram counts by its base name too).
func ServedMetricNames(exposition string) map[string]bool {
	served := map[string]bool{}
	for line := range strings.Lines(exposition) {
		if fam, ok := strings.CutPrefix(line, "# TYPE "); ok {
			served[strings.Fields(fam)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		served[line[:strings.IndexAny(line, "{ ")]] = true
	}
	return served
}

// UnservedDeployedMetrics compares the deployment artifacts under root with
// a /metrics exposition: it returns "<artifact> names <metric>" for each
// metric an artifact names that the exposition does not serve, and how many
// names the artifacts hold in all (a check that found none proves nothing).
func UnservedDeployedMetrics(t testing.TB, root, exposition string) (unserved []string, named int) {
	t.Helper()
	served := ServedMetricNames(exposition)
	for path, names := range DeployedMetricNames(t, root) {
		for _, n := range names {
			named++
			if !served[n] {
				unserved = append(unserved, path+" names "+n)
			}
		}
	}
	slices.Sort(unserved)
	return unserved, named
}
