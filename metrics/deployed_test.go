package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prowler-cloud/s3-exporter/testutil"
)

// TestDeployedArtifactsNameServedMetrics: every metric that the alert rules,
// the Grafana dashboard or the Helm chart name is served on /metrics by the
// exporter's metrics server (issue 13), so no panel stays empty and no alert
// watches a series that never exists. The files are read from deploy/, the
// chart's copies of the rules and dashboard included.
func TestDeployedArtifactsNameServedMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, CurrentBuild())
	s := NewServer("127.0.0.1:0", reg, nil, nil)
	if err := s.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.shutdown(ctx)
	})
	code, body := get(t, "http://"+s.Addr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	unserved, named := testutil.UnservedDeployedMetrics(t, "..", body)
	for _, u := range unserved {
		t.Errorf("%s, which /metrics does not serve", u)
	}
	if named < 15 {
		t.Errorf("the deployment artifacts name only %d metrics", named)
	}
}
