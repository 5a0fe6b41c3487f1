package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

// deployedMetricRE finds metric names in the deployment artifacts: the
// exporter's own and the standard collectors' (go_*, process_*).
var deployedMetricRE = regexp.MustCompile(`\b(?:s3exporter|go|process)_[a-z0-9_:]*[a-z0-9]\b`)

// TestEveryDeployedMetricIsServedByARunningExporter: every metric that the
// alert rules, the Grafana dashboard or the Helm chart name is on the
// /metrics of a running exporter that has exported a scan (issue 13), so no
// panel stays empty and no alert watches a series that never exists.
// (metrics.TestDeployedArtifactsNameServedMetrics checks the same against
// the bare metrics server, in the unit tests.)
func TestEveryDeployedMetricIsServedByARunningExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the exporter")
	}
	e := newEnv(t, nil)
	b := e.bucket("deployed")
	e.put(e.integration("tenant-a", "deployed", b, "prov-1"))
	files, _ := prowlerFiles(3, "111122223333", frameworks[0])
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-deployed", files)
	if st := e.waitExport("scan-deployed", "deployed"); st.State != event.StateSucceeded {
		t.Fatalf("%s %v", st.State, st.Errors)
	}
	code, body := httpGet(t, "http://"+e.d.MetricsAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	served := map[string]bool{}
	for line := range strings.Lines(body) {
		if fam, ok := strings.CutPrefix(line, "# TYPE "); ok { // histograms by their base name
			served[strings.Fields(fam)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		served[line[:strings.IndexAny(line, "{ ")]] = true
	}

	var paths []string
	for _, pattern := range []string{
		"../deploy/prometheus/alerts.yml",
		"../deploy/grafana/*.json",
		"../deploy/helm/s3-exporter/templates/*",
		"../deploy/helm/s3-exporter/values.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	named := 0
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		names := deployedMetricRE.FindAllString(string(raw), -1)
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			named++
			if !served[n] {
				t.Errorf("%s names %s, which the running exporter's /metrics does not serve", p, n)
			}
		}
	}
	if named < 20 {
		t.Errorf("the deployment artifacts name only %d metrics (found %v)", named, paths)
	}
}
