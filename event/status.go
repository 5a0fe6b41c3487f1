package event

import "time"

// Export states (contract §6).
const (
	StateSucceeded = "succeeded"
	StateRetrying  = "retrying"
	StateFailed    = "failed"
)

// ExportStatus is published on prowler.exports.status.<tenant>.<integration>
// once per (scan, integration) outcome.
type ExportStatus struct {
	TenantID      string         `json:"tenant_id"`
	IntegrationID string         `json:"integration_id"`
	ScanID        string         `json:"scan_id"`
	ProviderID    string         `json:"provider_id"`
	State         string         `json:"state"`
	Attempt       int            `json:"attempt"`
	Objects       []ObjectRecord `json:"objects"`
	Errors        []ExportError  `json:"errors"`
	StartedAt     time.Time      `json:"started_at"`
	FinishedAt    time.Time      `json:"finished_at"`
}

// ObjectRecord is one object written to the bucket.
type ObjectRecord struct {
	Format    string `json:"format"`
	Framework string `json:"framework"`
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	ETag      string `json:"etag"`
	// SHA256 (lower-case hex) of the object's bytes, kept for the objects of
	// an integration with write_manifest (its manifest lists it, and a
	// redelivery must list the same): the event's when it gave one, else
	// computed while the bytes streamed to S3.
	SHA256 string `json:"sha256,omitempty"`
}

// ExportError is one artifact that could not be written.
type ExportError struct {
	Format    string `json:"format"`
	Framework string `json:"framework,omitempty"`
	Key       string `json:"key"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// ConnectionStatus is published on
// prowler.integrations.status.<tenant>.<integration>.
type ConnectionStatus struct {
	TenantID      string     `json:"tenant_id"`
	IntegrationID string     `json:"integration_id"`
	Connected     bool       `json:"connected"`
	LastCheckedAt time.Time  `json:"last_checked_at"`
	BucketRegion  string     `json:"bucket_region"`
	Error         *ErrorBody `json:"error"`
	// Breaker is the circuit breaker of the integration's destination when
	// it changed: BreakerOpen (uploads fail fast after repeated timeouts or
	// throttling) or BreakerClosed (a probe succeeded). Omitted otherwise: an
	// optional addition to the contract, which consumers that do not know
	// it ignore.
	Breaker string `json:"breaker,omitempty"`
}

// Values of ConnectionStatus.Breaker.
const (
	BreakerOpen   = "open"
	BreakerClosed = "closed"
)

// ErrorBody is a coded error in a reply or status event.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Dead-letter headers (contract §6).
const (
	HeaderDLQReason       = "Prowler-Dlq-Reason"
	HeaderOriginalSubject = "Prowler-Original-Subject"
)
