package metrics

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// deployedMetricRE finds metric names in the deployment artifacts: ours and
// the standard collectors' (go_*, process_*).
var deployedMetricRE = regexp.MustCompile(`\b(?:s3exporter|go|process)_[a-z0-9_:]*[a-z0-9]\b`)

// TestDeployedArtifactsNameServedMetrics: every metric that the alert rules,
// the Grafana dashboard or the Helm chart name is served on /metrics by the
// exporter's metrics server (issue 13), so no panel stays empty and no alert
// watches a series that never exists. The files are read from deploy/, the
// chart's copies of the rules and dashboard included.
func TestDeployedArtifactsNameServedMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, CurrentBuild())
	s := NewServer("127.0.0.1:0", reg, nil, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	code, body := get(t, "http://"+s.Addr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	served := map[string]bool{}
	for line := range strings.Lines(body) {
		if fam, ok := strings.CutPrefix(line, "# TYPE "); ok { // a family: histograms by their base name
			served[strings.Fields(fam)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		served[name] = true
	}

	var files []string
	for _, pattern := range []string{
		"../deploy/prometheus/alerts.yml",
		"../deploy/grafana/*.json",
		"../deploy/helm/s3-exporter/templates/*",
		"../deploy/helm/s3-exporter/files/*",
		"../deploy/helm/s3-exporter/values.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	var named int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names := deployedMetricRE.FindAllString(string(b), -1)
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			named++
			if !served[n] {
				t.Errorf("%s names %s, which /metrics does not serve", f, n)
			}
		}
	}
	if named < 15 {
		t.Errorf("the deployment artifacts name only %d metrics", named)
	}
}
