package e2e

import (
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil"
)

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
	t.Parallel() // a world of its own: its NATS server, its buckets
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
	unserved, named := testutil.UnservedDeployedMetrics(t, "..", body)
	for _, u := range unserved {
		t.Errorf("%s, which the running exporter's /metrics does not serve", u)
	}
	if named < 20 {
		t.Errorf("the deployment artifacts name only %d metrics", named)
	}
}
