package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/version"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/sched"
)

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(reg, BuildInfo{Version: "1.2.3", Revision: "abc123"}), reg
}

func TestNewPrecreatesEverySeries(t *testing.T) {
	m, _ := newMetrics(t)
	codes := len(errcode.All)
	formats := len(Formats)
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want int
	}{
		{"scans_received_total", m.ScansReceived, 1},
		{"exports_total", m.Exports, 3},
		{"uploads_total", m.Uploads, formats * 2},
		{"upload_failures_total", m.UploadFailures, codes},
		{"uploaded_bytes_total", m.UploadedBytes, formats},
		{"upload_duration_seconds", m.UploadDuration, formats},
		{"export_duration_seconds", m.ExportDuration, 1},
		{"upload_retries_total", m.UploadRetries, codes},
		{"redeliveries_total", m.Redeliveries, codes + 2},
		{"scans_deferred_total", m.ScansDeferred, 3},
		{"scans_held", m.ScansHeld, 1},
		{"scans_waiting", m.ScansWaiting, 1},
		{"ledger_corrupt_entries_total", m.LedgerCorrupt, 1},
		{"dead_letters_total", m.DeadLetters, codes + 1},
		{"connection_tests_total", m.ConnectionTests, 2},
		{"integrations", m.Integrations, 6},
		{"uploads_in_flight", m.UploadsInFlight, 1},
		{"consumer_pending_messages", m.ConsumerPending, 1},
		{"consumer_ack_pending_messages", m.ConsumerAckPending, 1},
		{"nats_connected", m.NATSConnected, 1},
		{"cache_ready", m.CacheReady, 1},
		{"build_info", m.BuildInfo, 1},
		{"uploads_queued", m.UploadsQueued, 1},
		{"fair_share_wait_seconds", m.FairShareWait, 1},
		{"destination_limits", m.DestinationLimits, len(sched.LimitClasses)},
		{"breakers", m.Breakers, len(sched.States)},
		{"breaker_opens_total", m.BreakerOpens, 1},
		{"upload_bytes_in_flight", m.UploadBytesInFlight, 1},
		{"upload_bytes_in_flight_peak", m.UploadBytesPeak, 1},
		{"upload_memory_budget_bytes", m.UploadMemoryBudget, 1},
	} {
		name := Namespace + "_" + tc.name
		if got := testutil.CollectAndCount(tc.c, name); got != tc.want {
			t.Errorf("%s: %d series, want %d", name, got, tc.want)
		}
	}
}

// wantFamilies is the documented metric list (docs/operations.md): a rename
// must update the dashboard, the alerts and the docs, so it must fail here.
var wantFamilies = map[string]dto.MetricType{
	"s3exporter_scans_received_total":          dto.MetricType_COUNTER,
	"s3exporter_exports_total":                 dto.MetricType_COUNTER,
	"s3exporter_uploads_total":                 dto.MetricType_COUNTER,
	"s3exporter_upload_failures_total":         dto.MetricType_COUNTER,
	"s3exporter_uploaded_bytes_total":          dto.MetricType_COUNTER,
	"s3exporter_upload_duration_seconds":       dto.MetricType_HISTOGRAM,
	"s3exporter_export_duration_seconds":       dto.MetricType_HISTOGRAM,
	"s3exporter_upload_retries_total":          dto.MetricType_COUNTER,
	"s3exporter_redeliveries_total":            dto.MetricType_COUNTER,
	"s3exporter_scans_deferred_total":          dto.MetricType_COUNTER,
	"s3exporter_scans_held":                    dto.MetricType_GAUGE,
	"s3exporter_scans_waiting":                 dto.MetricType_GAUGE,
	"s3exporter_ledger_corrupt_entries_total":  dto.MetricType_COUNTER,
	"s3exporter_s3_request_retries_total":      dto.MetricType_COUNTER,
	"s3exporter_dead_letters_total":            dto.MetricType_COUNTER,
	"s3exporter_connection_tests_total":        dto.MetricType_COUNTER,
	"s3exporter_integrations":                  dto.MetricType_GAUGE,
	"s3exporter_uploads_in_flight":             dto.MetricType_GAUGE,
	"s3exporter_consumer_pending_messages":     dto.MetricType_GAUGE,
	"s3exporter_consumer_ack_pending_messages": dto.MetricType_GAUGE,
	"s3exporter_nats_connected":                dto.MetricType_GAUGE,
	"s3exporter_cache_ready":                   dto.MetricType_GAUGE,
	"s3exporter_build_info":                    dto.MetricType_GAUGE,
	"s3exporter_uploads_queued":                dto.MetricType_GAUGE,
	"s3exporter_fair_share_wait_seconds":       dto.MetricType_HISTOGRAM,
	"s3exporter_destination_limits":            dto.MetricType_GAUGE,
	"s3exporter_breakers":                      dto.MetricType_GAUGE,
	"s3exporter_breaker_opens_total":           dto.MetricType_COUNTER,
	"s3exporter_upload_bytes_in_flight":        dto.MetricType_GAUGE,
	"s3exporter_upload_bytes_in_flight_peak":   dto.MetricType_GAUGE,
	"s3exporter_upload_memory_budget_bytes":    dto.MetricType_GAUGE,
}

func TestEverySeriesStartsAtZero(t *testing.T) {
	_, reg := newMetrics(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue // the standard collectors: TestRuntimeAndProcessCollectors
		}
		got[name] = true
		want, ok := wantFamilies[name]
		if !ok {
			t.Errorf("unexpected metric %s", name)
			continue
		}
		if mf.GetType() != want {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), want)
		}
		if !strings.HasPrefix(name, Namespace+"_") {
			t.Errorf("%s lacks the %s_ prefix", name, Namespace)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if n := lp.GetName(); strings.Contains(n, "tenant") || strings.Contains(n, "integration") || strings.Contains(n, "scan") {
					t.Errorf("%s has a high-cardinality label %s", name, n)
				}
			}
			if name == "s3exporter_build_info" {
				continue
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount()) + m.GetHistogram().GetSampleSum()
			}
			if v != 0 {
				t.Errorf("%s%v = %v before any event, want 0", name, m.GetLabel(), v)
			}
		}
	}
	for name := range wantFamilies {
		if !got[name] {
			t.Errorf("metric %s not exposed", name)
		}
	}
}

func TestLint(t *testing.T) {
	m, reg := newMetrics(t)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	// Each collector alone, too, as the style guide asks.
	for _, c := range []prometheus.Collector{m.Exports, m.Uploads, m.UploadDuration, m.DeadLetters, m.Integrations, m.BuildInfo} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	m, _ := newMetrics(t)
	want := fmt.Sprintf(`
# HELP s3exporter_build_info Always 1, labelled with the version, revision, branch, Go version, OS, architecture and build tags of the exporter.
# TYPE s3exporter_build_info gauge
s3exporter_build_info{branch="",goarch=%q,goos=%q,goversion=%q,revision="abc123",tags="",version="1.2.3"} 1
`, runtime.GOARCH, runtime.GOOS, runtime.Version())
	if err := testutil.CollectAndCompare(m.BuildInfo, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestCurrentBuildReadsPrometheusCommonVersion(t *testing.T) {
	saved := [...]string{version.Version, version.Revision, version.Branch, version.BuildUser, version.BuildDate}
	t.Cleanup(func() {
		version.Version, version.Revision, version.Branch, version.BuildUser, version.BuildDate = saved[0], saved[1], saved[2], saved[3], saved[4]
	})
	version.Version, version.Revision, version.Branch, version.BuildUser, version.BuildDate = "1.1.0", "f00d", "main", "ci", "20261201-10:00:00"
	got := CurrentBuild()
	want := BuildInfo{Version: "1.1.0", Revision: "f00d", Branch: "main", BuildUser: "ci", BuildDate: "20261201-10:00:00", Tags: version.GetTags()}
	if got != want {
		t.Errorf("CurrentBuild() = %+v, want %+v", got, want)
	}
	// Without linker flags (go install, go test) the version is the
	// module's, never empty.
	version.Version = ""
	if got := CurrentBuild().Version; got == "" {
		t.Error("CurrentBuild().Version is empty without linker flags")
	}
}

// TestRuntimeAndProcessCollectors: the registry carries the standard go_*
// and process_* series beside the exporter's own (issue 13 point 2).
func TestRuntimeAndProcessCollectors(t *testing.T) {
	_, reg := newMetrics(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{
		"go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds", "go_gc_gomemlimit_bytes", "go_gc_gogc_percent",
		"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds",
		"s3exporter_build_info",
	} {
		if !names[want] {
			t.Errorf("registry does not expose %s", want)
		}
	}
}

func TestOneEventTouchesOneSeries(t *testing.T) {
	m, _ := newMetrics(t)
	m.Uploads.WithLabelValues("html", UploadFailure).Inc()
	m.UploadFailures.WithLabelValues(string(errcode.S3BucketAccessDenied)).Inc()
	m.UploadDuration.WithLabelValues("html").Observe(0.3)

	for _, f := range Formats {
		for _, r := range []string{UploadSuccess, UploadFailure} {
			want := 0.0
			if f == "html" && r == UploadFailure {
				want = 1
			}
			if got := testutil.ToFloat64(m.Uploads.WithLabelValues(f, r)); got != want {
				t.Errorf("uploads{%s,%s} = %v, want %v", f, r, got, want)
			}
		}
	}
	for _, c := range Codes() {
		want := 0.0
		if c == string(errcode.S3BucketAccessDenied) {
			want = 1
		}
		if got := testutil.ToFloat64(m.UploadFailures.WithLabelValues(c)); got != want {
			t.Errorf("upload_failures{%s} = %v, want %v", c, got, want)
		}
	}
	if got := testutil.CollectAndCount(m.UploadDuration); got != len(Formats) {
		t.Errorf("observing created a series: %d, want %d", got, len(Formats))
	}
}

func TestSetIntegrationsZeroesMissingStates(t *testing.T) {
	m, _ := newMetrics(t)
	m.SetIntegrations(map[IntegrationState]int{
		{Enabled: true, Connected: "true"}:            3,
		{Enabled: true, Connected: "false"}:           2,
		{Enabled: false, Connected: ConnectedUnknown}: 1,
	})
	m.SetIntegrations(map[IntegrationState]int{
		{Enabled: true, Connected: "true"}: 4,
	})
	want := `
# HELP s3exporter_integrations Cached amazon_s3 integrations by enabled and connected state.
# TYPE s3exporter_integrations gauge
s3exporter_integrations{connected="false",enabled="false"} 0
s3exporter_integrations{connected="false",enabled="true"} 0
s3exporter_integrations{connected="true",enabled="false"} 0
s3exporter_integrations{connected="true",enabled="true"} 4
s3exporter_integrations{connected="unknown",enabled="false"} 0
s3exporter_integrations{connected="unknown",enabled="true"} 0
`
	if err := testutil.CollectAndCompare(m.Integrations, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestDeadLetterReasons(t *testing.T) {
	got := DeadLetterReasons()
	if len(got) != len(errcode.All)+1 || !slices.Contains(got, ReasonMalformedEvent) {
		t.Fatalf("DeadLetterReasons() = %v", got)
	}
	for _, c := range errcode.All {
		if !slices.Contains(got, string(c)) {
			t.Errorf("reason %s missing", c)
		}
	}
}

func TestHistogramBucketsSpanTheRange(t *testing.T) {
	for name, b := range map[string][]float64{"upload": UploadDurationBuckets, "export": ExportDurationBuckets} {
		if !sort.Float64sAreSorted(b) {
			t.Errorf("%s buckets not sorted: %v", name, b)
		}
		if b[0] > 0.05 || b[len(b)-1] < 1800 {
			t.Errorf("%s buckets %v do not span 50ms..30min", name, b)
		}
	}
	if UploadDurationBuckets[0] != 0.01 {
		t.Errorf("upload buckets start at %v, want 0.01", UploadDurationBuckets[0])
	}
}

func TestNewTwiceOnOneRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, BuildInfo{})
	defer func() {
		if recover() == nil {
			t.Error("second New on the same registry did not panic")
		}
	}()
	New(reg, BuildInfo{})
}

// TestPromtoolAcceptsMetricsOutput runs `promtool check metrics` on what
// /metrics serves, after some events so histograms and labels have values.
func TestPromtoolAcceptsMetricsOutput(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (Debian: apt-get install prometheus); CI installs it")
	}
	m, reg := newMetrics(t)
	m.ScansReceived.Inc()
	m.Exports.WithLabelValues(ExportSucceeded).Inc()
	m.Uploads.WithLabelValues("csv", UploadSuccess).Inc()
	m.UploadedBytes.WithLabelValues("csv").Add(2447165)
	m.UploadDuration.WithLabelValues("csv").Observe(1.7)
	m.ExportDuration.Observe(3.2)
	m.SetIntegrations(map[IntegrationState]int{{Enabled: true, Connected: "true"}: 1})
	m.NATSConnected.Set(1)

	s := NewServer("127.0.0.1:0", reg, nil, nil)
	if err := s.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.shutdown(t.Context()) })
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("s3exporter_upload_duration_seconds_bucket")) {
		t.Fatalf("/metrics lacks the upload histogram:\n%s", body)
	}

	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The scheduler's observer keeps its gauges: destinations by limit class and
// breaker state, bytes in flight and their peak, opens counted.
func TestSchedObserver(t *testing.T) {
	m, _ := newMetrics(t)
	o := m.SchedObserver()
	o.Limits("4-7", 1)
	o.Limits("4-7", -1)
	o.Limits("2-3", 1)
	o.Breakers(sched.Closed, 1)
	o.Breakers(sched.Closed, -1)
	o.Breakers(sched.Open, 1)
	o.Bytes(300)
	o.Bytes(100)
	o.Queued(2)
	o.Queued(-1)
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"limit 4-7", testutil.ToFloat64(m.DestinationLimits.WithLabelValues("4-7")), 0},
		{"limit 2-3", testutil.ToFloat64(m.DestinationLimits.WithLabelValues("2-3")), 1},
		{"open", testutil.ToFloat64(m.Breakers.WithLabelValues("open")), 1},
		{"closed", testutil.ToFloat64(m.Breakers.WithLabelValues("closed")), 0},
		{"opens", testutil.ToFloat64(m.BreakerOpens), 1},
		{"bytes", testutil.ToFloat64(m.UploadBytesInFlight), 100},
		{"peak", testutil.ToFloat64(m.UploadBytesPeak), 300},
		{"queued", testutil.ToFloat64(m.UploadsQueued), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
