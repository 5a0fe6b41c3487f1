package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons of s3exporter_redeliveries_total besides the errcode codes: the
// scan is redelivered although no upload failed.
const (
	RedeliveryStatusUnpublished = "StatusUnpublished" // an export status did not reach the stream
	RedeliveryLedgerUnavailable = "LedgerUnavailable" // the ledger could not be read
)

// Reasons of s3exporter_scans_deferred_total (consumer.Defer…).
var deferReasons = []string{"tenant_limit", "catching_up", "shutdown"}

// RedeliveryReasons returns the values of the "reason" label of
// s3exporter_redeliveries_total.
func RedeliveryReasons() []string {
	return append(Codes(), RedeliveryStatusUnpublished, RedeliveryLedgerUnavailable)
}

// ConsumerMetrics are the scan consumer's: retries in process and
// redeliveries kept apart (one is S3 trouble absorbed within a delivery, the
// other a scan that waits for its next attempt), deferrals for fairness, and
// the scans a replica holds.
type ConsumerMetrics struct {
	// UploadRetries counts uploads retried within one delivery
	// (S3EXPORTER_INPROCESS_RETRIES), by error code.
	UploadRetries *prometheus.CounterVec
	// Redeliveries counts scan events returned to the stream for another
	// attempt (one attempt used), by the code of the failure that asked for
	// it or a Redelivery… reason.
	Redeliveries *prometheus.CounterVec
	// ScansDeferred counts scan events returned to the stream without using
	// an attempt, by reason.
	ScansDeferred *prometheus.CounterVec
	// ScansHeld is the scan messages this replica holds (exporting or
	// waiting); ScansWaiting those waiting for an export slot.
	ScansHeld    prometheus.Gauge
	ScansWaiting prometheus.Gauge
	// LedgerCorrupt counts ledger entries that did not decode.
	LedgerCorrupt prometheus.Counter
}

func newConsumerMetrics(f promauto.Factory) ConsumerMetrics {
	m := ConsumerMetrics{
		UploadRetries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "upload_retries_total",
			Help:      "Uploads retried within one delivery of a scan after a retryable failure, by error code.",
		}, []string{"code"}),
		Redeliveries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "redeliveries_total",
			Help:      "Scan events returned to the stream for another attempt, by reason (the error code that asked for it).",
		}, []string{"reason"}),
		ScansDeferred: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "scans_deferred_total",
			Help:      "Scan events returned to the stream without using an attempt, by reason (tenant_limit, catching_up, shutdown).",
		}, []string{"reason"}),
		ScansHeld: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "scans_held",
			Help:      "Scan events this replica holds unacknowledged (exporting or waiting for a slot).",
		}),
		ScansWaiting: f.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "scans_waiting",
			Help:      "Scan events this replica holds that wait for an export slot (their tenant has its share).",
		}),
		LedgerCorrupt: f.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "ledger_corrupt_entries_total",
			Help:      "Ledger entries that did not decode (the export started over).",
		}),
	}
	for _, c := range Codes() {
		m.UploadRetries.WithLabelValues(c)
	}
	for _, r := range RedeliveryReasons() {
		m.Redeliveries.WithLabelValues(r)
	}
	for _, r := range deferReasons {
		m.ScansDeferred.WithLabelValues(r)
	}
	return m
}
