// Package metrics holds the exporter's Prometheus metrics and the HTTP server
// that exposes them with the /healthz and /readyz probes.
//
// Every metric lives in one Metrics struct built from an injected
// prometheus.Registerer; every label combination is created up front so that
// each series reads 0 before its first event and rate()/increase() see the
// first one. No label carries a tenant, integration or scan ID: those go to
// logs and status events, not to series.
package metrics

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/sched"
)

// Namespace prefixes every metric name.
const Namespace = "s3exporter"

// Formats are the artifact formats of the contract, and "manifest" (the
// per-scan manifest of integrations with write_manifest), the values of the
// "format" label.
var Formats = []string{"csv", "html", "json-ocsf", "json-asff", "compliance", "compliance-ocsf", "manifest"}

// Values of the "result" label of s3exporter_exports_total: the contract's
// export states.
const (
	ExportSucceeded = "succeeded"
	ExportRetrying  = "retrying"
	ExportFailed    = "failed"
)

// Values of the "result" label of s3exporter_uploads_total.
const (
	UploadSuccess = "success"
	UploadFailure = "failure"
)

// Values of the "result" label of s3exporter_connection_tests_total.
const (
	ConnectionConnected    = "connected"
	ConnectionDisconnected = "disconnected"
)

// ReasonMalformedEvent is the dead-letter reason of an event that could not
// be decoded or validated. Every other reason is an errcode.Code: the code of
// the last failure when the retries ran out.
const ReasonMalformedEvent = "MalformedEvent"

// Values of the "connected" label of s3exporter_integrations, besides
// "true" and "false": no connection test or export has told yet.
const ConnectedUnknown = "unknown"

var (
	exportResults     = []string{ExportSucceeded, ExportRetrying, ExportFailed}
	uploadResults     = []string{UploadSuccess, UploadFailure}
	connectionResults = []string{ConnectionConnected, ConnectionDisconnected}
	enabledValues     = []string{"true", "false"}
	connectedValues   = []string{"true", "false", ConnectedUnknown}
)

// UploadDurationBuckets span one small object on a fast link (10ms) to a
// multi-gigabyte multipart upload (30min).
var UploadDurationBuckets = []float64{
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
}

// ExportDurationBuckets span a scan with no artifact to fetch (50ms) to a
// scan whose artifacts take an hour, waits for the integration cache
// included.
var ExportDurationBuckets = []float64{
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
}

// BuildInfo identifies the running binary (see CurrentBuild); the Go
// version, OS and architecture come from the runtime.
type BuildInfo struct {
	Version, Revision, Branch, BuildUser, BuildDate string
	// Tags are the build tags, as github.com/prometheus/common/version
	// reports them.
	Tags string
}

// Metrics are the exporter's metrics. Label values are the constants of this
// package, Formats, and errcode codes; a value outside those creates a new
// series, so callers pass only those.
type Metrics struct {
	// ScansReceived counts scan-completed events taken from the stream,
	// redeliveries included.
	ScansReceived prometheus.Counter
	// Exports counts (scan, integration) outcomes by result
	// (ExportSucceeded, ExportRetrying, ExportFailed).
	Exports *prometheus.CounterVec
	// Uploads counts object uploads by format and result
	// (UploadSuccess, UploadFailure).
	Uploads *prometheus.CounterVec
	// UploadFailures counts failed uploads by error code.
	UploadFailures *prometheus.CounterVec
	// UploadedBytes counts bytes written to buckets by format.
	UploadedBytes *prometheus.CounterVec
	// UploadDuration observes one object upload, open of the source to the
	// last part, by format.
	UploadDuration *prometheus.HistogramVec
	// ExportDuration observes a scan received to its integration outcome.
	ExportDuration prometheus.Histogram
	// S3RequestRetries counts S3 and STS requests the AWS SDK sent again
	// (throttling, 5xx answers, reset connections), by error code: the
	// retries inside one upload, which UploadRetries does not see.
	S3RequestRetries *prometheus.CounterVec
	// DeadLetters counts events sent to the dead-letter stream, by reason
	// (an errcode code or ReasonMalformedEvent).
	DeadLetters *prometheus.CounterVec
	// ConnectionTests counts connection tests by result
	// (ConnectionConnected, ConnectionDisconnected).
	ConnectionTests *prometheus.CounterVec
	// Integrations is the number of cached amazon_s3 integrations by enabled
	// ("true", "false") and connected ("true", "false", ConnectedUnknown).
	// Set every combination on each refresh; do not Reset, which would drop
	// the zero series.
	Integrations *prometheus.GaugeVec
	// UploadsInFlight is the number of object uploads running now.
	UploadsInFlight prometheus.Gauge
	// ConsumerPending is the durable scan consumer's unprocessed messages.
	ConsumerPending prometheus.Gauge
	// ConsumerAckPending is the consumer's delivered but unacknowledged
	// messages.
	ConsumerAckPending prometheus.Gauge
	// NATSConnected is 1 while the NATS connection is up.
	NATSConnected prometheus.Gauge
	// CacheReady is 1 once the integration cache has caught up with the
	// integrations stream.
	CacheReady prometheus.Gauge
	// BuildInfo is 1, labelled with the version, revision and Go version.
	BuildInfo *prometheus.GaugeVec

	// The upload scheduler (package sched): see SchedObserver.
	//
	// UploadsQueued is the uploads waiting for their turn.
	UploadsQueued prometheus.Gauge
	// FairShareWait observes an upload's wait in the fair queue.
	FairShareWait prometheus.Histogram
	// DestinationLimits is the number of destinations by their adaptive
	// concurrency limit, in the classes of sched.LimitClasses.
	DestinationLimits *prometheus.GaugeVec
	// Breakers is the number of destinations by breaker state (closed,
	// open, half_open).
	Breakers *prometheus.GaugeVec
	// BreakerOpens counts breakers opening (a failed probe included).
	BreakerOpens prometheus.Counter
	// UploadBytesInFlight is the memory held by the running uploads, as the
	// byte budget counts it; UploadBytesPeak its highest value since start;
	// UploadMemoryBudget the budget.
	UploadBytesInFlight prometheus.Gauge
	UploadBytesPeak     prometheus.Gauge
	UploadMemoryBudget  prometheus.Gauge
	// The scan consumer's metrics (metrics/consumer.go).
	ConsumerMetrics
}

// FairShareWaitBuckets span no wait (1ms) to a backlog of half an hour.
var FairShareWaitBuckets = []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// New creates the metrics, registers them with reg, together with the
// standard Go runtime and process collectors, and pre-creates every label
// combination. It panics if a metric is already registered with reg,
// as promauto does: build one Metrics per registry.
func New(reg prometheus.Registerer, build BuildInfo) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		ScansReceived: f.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "scans_received_total",
			Help:      "Scan-completed events received from the stream, redeliveries included.",
		}),
		Exports: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "exports_total",
			Help:      "Export outcomes per scan and integration, by result (succeeded, retrying, failed).",
		}, []string{"result"}),
		Uploads: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "uploads_total",
			Help:      "Object uploads by artifact format and result (success, failure).",
		}, []string{"format", "result"}),
		UploadFailures: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "upload_failures_total",
			Help:      "Failed object uploads by error code.",
		}, []string{"code"}),
		UploadedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "uploaded_bytes_total",
			Help:      "Bytes written to buckets by artifact format.",
		}, []string{"format"}),
		UploadDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "upload_duration_seconds",
			Help:      "Time to upload one object, from opening its source to the last part, by artifact format.",
			Buckets:   UploadDurationBuckets,
		}, []string{"format"}),
		ExportDuration: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "export_duration_seconds",
			Help:      "Time from receiving a scan to the outcome of its export to one integration.",
			Buckets:   ExportDurationBuckets,
		}),
		S3RequestRetries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "s3_request_retries_total",
			Help:      "S3 and STS requests the AWS SDK sent again after a retryable failure (its retryer's tries, and its request after a failed direct PUT of a small artifact), by error code.",
		}, []string{"code"}),
		DeadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "dead_letters_total",
			Help:      "Scan events sent to the dead-letter stream, by reason.",
		}, []string{"reason"}),
		ConnectionTests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "connection_tests_total",
			Help:      "Integration connection tests by result (connected, disconnected).",
		}, []string{"result"}),
		Integrations: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "integrations",
			Help:      "Cached amazon_s3 integrations by enabled and connected state.",
		}, []string{"enabled", "connected"}),
		UploadsInFlight: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "uploads_in_flight",
			Help:      "Object uploads running now.",
		}),
		ConsumerPending: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "consumer_pending_messages",
			Help:      "Messages of the scans stream not yet delivered to the durable consumer.",
		}),
		ConsumerAckPending: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "consumer_ack_pending_messages",
			Help:      "Messages delivered to the durable consumer and not yet acknowledged.",
		}),
		NATSConnected: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "nats_connected",
			Help:      "1 while the connection to NATS is up, else 0.",
		}),
		CacheReady: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "cache_ready",
			Help:      "1 once the integration cache has caught up with the integrations stream, else 0.",
		}),
		BuildInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "build_info",
			Help:      "Always 1, labelled with the version, revision, branch, Go version, OS, architecture and build tags of the exporter.",
		}, buildInfoLabels),
	}
	m.newSched(f)
	m.ConsumerMetrics = newConsumerMetrics(f)
	m.precreate()
	m.BuildInfo.WithLabelValues(build.labels()...).Set(1)
	// The runtime's and the process's standard series (go_*, process_*),
	// which every Prometheus exporter exposes: memory against GOMEMLIMIT,
	// goroutines, open file descriptors, CPU, restarts (process_start_time).
	if reg != nil { // promauto.With(nil) registers nothing; neither do we
		reg.MustRegister(
			// Plus go_gc_gomemlimit_bytes and go_gc_gogc_percent: the limit
			// the Helm chart derives from the memory limit, next to the heap
			// it bounds (not all of MetricsGC, a dozen series more).
			collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
				collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/(gomemlimit|gogc):`)},
			)),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	return m
}

// Codes returns the values of the "code" label: every errcode in errcode.All.
func Codes() []string {
	codes := make([]string, 0, len(errcode.All))
	for _, c := range errcode.All {
		codes = append(codes, string(c))
	}
	return codes
}

// DeadLetterReasons returns the values of the "reason" label of
// s3exporter_dead_letters_total.
func DeadLetterReasons() []string { return append(Codes(), ReasonMalformedEvent) }

func (m *Metrics) precreate() {
	for _, r := range exportResults {
		m.Exports.WithLabelValues(r)
	}
	for _, f := range Formats {
		for _, r := range uploadResults {
			m.Uploads.WithLabelValues(f, r)
		}
		m.UploadedBytes.WithLabelValues(f)
		m.UploadDuration.WithLabelValues(f)
	}
	for _, c := range Codes() {
		m.UploadFailures.WithLabelValues(c)
		m.S3RequestRetries.WithLabelValues(c)
	}
	for _, r := range DeadLetterReasons() {
		m.DeadLetters.WithLabelValues(r)
	}
	for _, r := range connectionResults {
		m.ConnectionTests.WithLabelValues(r)
	}
	for _, e := range enabledValues {
		for _, c := range connectedValues {
			m.Integrations.WithLabelValues(e, c)
		}
	}
	for _, c := range sched.LimitClasses {
		m.DestinationLimits.WithLabelValues(c)
	}
	for _, st := range sched.States {
		m.Breakers.WithLabelValues(st.String())
	}
}

// IntegrationState is one series of s3exporter_integrations.
type IntegrationState struct {
	Enabled bool
	// Connected is "true", "false" or ConnectedUnknown (no test or export
	// has told yet).
	Connected string
}

// SetIntegrations sets every series of s3exporter_integrations from counts;
// a state missing from counts reads 0, so a state that emptied does not keep
// its last count.
func (m *Metrics) SetIntegrations(counts map[IntegrationState]int) {
	for _, e := range enabledValues {
		for _, c := range connectedValues {
			st := IntegrationState{Enabled: e == "true", Connected: c}
			m.Integrations.WithLabelValues(e, c).Set(float64(counts[st]))
		}
	}
}
