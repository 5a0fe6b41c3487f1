package event

import "time"

// TestRequest asks for a connection test: of a cached integration (TenantID
// and IntegrationID) or of an unsaved one (Integration). On a tenant-scoped
// subject TenantID may be left out.
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

// GetRequest asks for a cached integration. On a tenant-scoped subject
// TenantID may be left out.
type GetRequest struct {
	TenantID      string `json:"tenant_id,omitempty"`
	IntegrationID string `json:"integration_id"`
}

// GetReply is a cached integration, credentials redacted, with its last
// connection status.
type GetReply struct {
	Integration IntegrationPayload `json:"integration"`
	Status      *ConnectionStatus  `json:"status"`
}

// ListRequest asks for every cached integration of the subject's tenant
// (tenant-scoped subjects only). TenantID, when given, must be that tenant.
type ListRequest struct {
	TenantID string `json:"tenant_id,omitempty"`
}

// ListReply answers a ListRequest: the tenant's integrations, each as a
// GetReply, sorted by id.
type ListReply struct {
	Integrations []GetReply `json:"integrations"`
}

// ReplayRequest asks for a scan to be exported again. On a tenant-scoped
// subject TenantID may be left out.
type ReplayRequest struct {
	TenantID      string `json:"tenant_id,omitempty"`
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
