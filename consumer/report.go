package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// Reporter writes the consequences of an outcome — ledger entry, status
// events, metrics, dead letters — in one place, so they never disagree.
type Reporter struct {
	js      Publisher
	topo    Topology
	ledger  Ledger
	metrics *metrics.Metrics
	cache   *integration.Cache
	log     *zap.Logger
}

// NewReporter returns a Reporter.
func NewReporter(js Publisher, topo Topology, l Ledger, m *metrics.Metrics, cache *integration.Cache, log *zap.Logger) *Reporter {
	return &Reporter{js: js, topo: topo, ledger: l, metrics: m, cache: cache, log: log}
}

// Outcome is what became of one scan for one integration in one delivery.
type Outcome struct {
	Scan    *event.ScanCompleted
	Result  exporter.Result
	State   string
	Attempt int
	Started time.Time
	// Entry is the ledger entry to write (objects so far).
	Entry ledger.Entry
}

// Export records an outcome: ledger, export status, connection status and
// metrics. It returns false when the export status could not be published;
// the export is then left unsettled in the ledger.
func (r *Reporter) Export(ctx context.Context, o Outcome) (published bool) {
	scan, ig := o.Scan, o.Result.Integration
	finished := time.Now().UTC()
	st := event.ExportStatus{
		TenantID: scan.TenantID, IntegrationID: ig.ID, ScanID: scan.ScanID, ProviderID: scan.Provider.ID,
		State: o.State, Attempt: o.Attempt, Objects: []event.ObjectRecord{}, Errors: []event.ExportError{},
		StartedAt: o.Started.UTC(), FinishedAt: finished,
	}
	var connErr *errcode.Error
	uploaded := false
	for _, a := range o.Result.Artifacts {
		for _, c := range a.Retried {
			r.metrics.UploadRetries.WithLabelValues(string(c)).Inc()
		}
		switch {
		case a.Object != nil:
			st.Objects = append(st.Objects, *a.Object)
			if !a.Skipped {
				uploaded = true
				r.metrics.Uploads.WithLabelValues(a.Artifact.Format, metrics.UploadSuccess).Inc()
				r.metrics.UploadedBytes.WithLabelValues(a.Artifact.Format).Add(float64(a.Object.Size))
				r.metrics.UploadDuration.WithLabelValues(a.Artifact.Format).Observe(a.Duration.Seconds())
			}
		case a.Err != nil:
			st.Errors = append(st.Errors, event.ExportError{
				Format: a.Artifact.Format, Framework: a.Artifact.Framework, Key: a.Key,
				Code: string(a.Err.Code), Message: a.Err.Message(), Retryable: a.Err.Retryable,
			})
			if !a.Skipped {
				r.metrics.Uploads.WithLabelValues(a.Artifact.Format, metrics.UploadFailure).Inc()
				r.metrics.UploadFailures.WithLabelValues(string(a.Err.Code)).Inc()
			}
			if reachability(a.Err.Code) && connErr == nil {
				connErr = a.Err
			}
		}
	}
	r.metrics.Exports.WithLabelValues(o.State).Inc()
	r.metrics.ExportDuration.Observe(finished.Sub(o.Started).Seconds())

	// The status goes out before the ledger settles the export (entryAfter
	// says why).
	published = r.publish(ctx, r.topo.Subject(event.ExportsStatus, scan.TenantID, ig.ID), st)
	e := entryAfter(o, published)
	e.UpdatedAt = finished
	if err := r.ledger.Put(ctx, scan.TenantID, scan.ScanID, ig.ID, e); err != nil {
		r.log.Error("ledger write failed", zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID),
			zap.String("integration_id", ig.ID), zap.Error(err))
	}

	log := r.log.With(zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID),
		zap.String("integration_id", ig.ID), zap.Int("attempt", o.Attempt), zap.String("state", o.State))
	if len(st.Errors) == 0 {
		log.Info("export finished", zap.Int("objects", len(st.Objects)))
	} else {
		log.Warn("export incomplete", zap.Int("objects", len(st.Objects)), zap.Int("errors", len(st.Errors)),
			zap.String("code", st.Errors[0].Code), zap.String("key", st.Errors[0].Key), zap.String("message", st.Errors[0].Message))
	}

	// An export shows whether the integration is reachable.
	switch {
	case connErr != nil:
		r.Connection(ctx, event.ConnectionStatus{
			TenantID: scan.TenantID, IntegrationID: ig.ID, Connected: false, LastCheckedAt: finished,
			BucketRegion: o.Result.Region, Error: &event.ErrorBody{Code: string(connErr.Code), Message: connErr.Message()},
		})
	case uploaded:
		r.Connection(ctx, event.ConnectionStatus{
			TenantID: scan.TenantID, IntegrationID: ig.ID, Connected: true, LastCheckedAt: finished,
			BucketRegion: o.Result.Region,
		})
	}
	return published
}

// reachability reports whether a failure says the integration can't be
// reached with its credentials (as opposed to a problem of one artifact).
func reachability(c errcode.Code) bool {
	switch c {
	case errcode.S3BucketNotFound, errcode.S3BucketAccessDenied, errcode.AWSInvalidCredentials,
		errcode.AWSNoCredentials, errcode.AWSAssumeRoleError, errcode.S3InvalidBucketRegion,
		errcode.S3EncryptionKeyError:
		return true
	}
	return false
}

// Connection publishes a connection status and remembers it.
func (r *Reporter) Connection(ctx context.Context, st event.ConnectionStatus) {
	r.cache.SetStatus(st)
	r.publish(ctx, r.topo.Subject(event.IntegrationsStatus, st.TenantID, st.IntegrationID), st)
	r.RefreshIntegrations()
}

// RefreshIntegrations sets the integrations gauge from the cache.
func (r *Reporter) RefreshIntegrations() {
	counts := map[metrics.IntegrationState]int{}
	for k, n := range r.cache.Counts() {
		counts[metrics.IntegrationState{Enabled: k[0] == "true", Connected: k[1]}] = n
	}
	r.metrics.SetIntegrations(counts)
}

// publish publishes a status event and reports whether JetStream stored it.
func (r *Reporter) publish(ctx context.Context, subject string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		r.log.Error("encoding status", zap.String("subject", subject), zap.Error(err))
		return false
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.js.Publish(pctx, subject, b); err != nil {
		r.log.Error("publishing status", zap.String("subject", subject), zap.Error(err))
		return false
	}
	return true
}

// DeadLetter publishes a scan event to prowler.dlq.scans.<tenant> with the
// reason headers. The caller terminates the original only if this succeeds.
func (r *Reporter) DeadLetter(ctx context.Context, tenant, originalSubject string, data []byte, code, reason string) error {
	if tenant == "" {
		tenant = "unknown"
	}
	msg := nats.NewMsg(r.topo.Subject(event.DLQScans, tenant))
	msg.Data = data
	msg.Header.Set(event.HeaderDLQReason, fmt.Sprintf("%s: %s", code, reason))
	msg.Header.Set(event.HeaderOriginalSubject, originalSubject)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.js.PublishMsg(pctx, msg); err != nil {
		return fmt.Errorf("publishing dead letter: %w", err)
	}
	r.metrics.DeadLetters.WithLabelValues(code).Inc()
	r.log.Warn("scan event dead-lettered", zap.String("tenant_id", tenant), zap.String("code", code),
		zap.String("subject", originalSubject), zap.String("reason", reason))
	return nil
}
