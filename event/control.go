package event

import "time"

// TestRequest asks for a connection test: of a cached integration (TenantID
// and IntegrationID) or of an unsaved one (Integration).
type TestRequest struct {
	TenantID      string              `json:"tenant_id,omitempty"`
	IntegrationID string              `json:"integration_id,omitempty"`
	Integration   *IntegrationPayload `json:"integration,omitempty"`
}

// TestReply answers a TestRequest.
type TestReply struct {
	Connected    bool       `json:"connected"`
	BucketRegion string     `json:"bucket_region"`
	CheckedAt    time.Time  `json:"checked_at"`
	Error        *ErrorBody `json:"error"`
}

// GetRequest asks for a cached integration.
type GetRequest struct {
	TenantID      string `json:"tenant_id"`
	IntegrationID string `json:"integration_id"`
}

// GetReply is a cached integration, credentials redacted, with its last
// connection status.
type GetReply struct {
	Integration IntegrationPayload `json:"integration"`
	Status      *ConnectionStatus  `json:"status"`
}

// ReplayRequest asks for a scan to be exported again.
type ReplayRequest struct {
	TenantID      string `json:"tenant_id"`
	ScanID        string `json:"scan_id"`
	IntegrationID string `json:"integration_id,omitempty"`
}

// ReplayReply answers a ReplayRequest.
type ReplayReply struct {
	Accepted bool `json:"accepted"`
}

// ErrorReply answers a request that could not be served.
type ErrorReply struct {
	Error ErrorBody `json:"error"`
}
