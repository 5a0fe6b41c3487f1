package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/prowler-cloud/s3-exporter/internal/sched"
)

func (m *Metrics) newSched(f promauto.Factory) {
	m.UploadsQueued = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "uploads_queued",
		Help:      "Object uploads waiting for their turn in the fair queue (tenant share, destination limit, memory budget).",
	})
	m.FairShareWait = f.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "fair_share_wait_seconds",
		Help:      "Time an upload waited in the fair queue before it ran.",
		Buckets:   FairShareWaitBuckets,
	})
	m.DestinationLimits = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "destination_limits",
		Help:      "Destinations (tenant, bucket, credentials) by their adaptive concurrency limit, in classes 1, 2-3, 4-7, ... 64+.",
	}, []string{"limit"})
	m.Breakers = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "breakers",
		Help:      "Destinations by circuit breaker state (closed, open, half_open).",
	}, []string{"state"})
	m.BreakerOpens = f.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "breaker_opens_total",
		Help:      "Circuit breakers opened after repeated failures of their destination (failed probes included).",
	})
	m.UploadBytesInFlight = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "upload_bytes_in_flight",
		Help:      "Memory held by the running uploads, as the upload memory budget counts it.",
	})
	m.UploadBytesPeak = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "upload_bytes_in_flight_peak",
		Help:      "Highest s3exporter_upload_bytes_in_flight since the exporter started.",
	})
	m.UploadMemoryBudget = f.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "upload_memory_budget_bytes",
		Help:      "The byte budget of the running uploads (S3EXPORTER_UPLOAD_MEMORY, or half of GOMEMLIMIT).",
	})
}

// SchedObserver returns the observer that keeps the scheduler's metrics.
func (m *Metrics) SchedObserver() sched.Observer {
	var peak int64 // the observer runs under the scheduler's lock
	return sched.Observer{
		Queued:  func(d int) { m.UploadsQueued.Add(float64(d)) },
		Waited:  func(d time.Duration) { m.FairShareWait.Observe(d.Seconds()) },
		Running: nil, // UploadsInFlight is kept by the exporter's InFlight
		Bytes: func(n int64) {
			m.UploadBytesInFlight.Set(float64(n))
			if n > peak {
				peak = n
				m.UploadBytesPeak.Set(float64(n))
			}
		},
		Limits: func(class string, d int) { m.DestinationLimits.WithLabelValues(class).Add(float64(d)) },
		Breakers: func(st sched.State, d int) {
			m.Breakers.WithLabelValues(st.String()).Add(float64(d))
			if st == sched.Open && d > 0 {
				m.BreakerOpens.Inc()
			}
		},
	}
}
