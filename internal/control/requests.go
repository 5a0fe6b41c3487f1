package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/status"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

func errorReply(code errcode.Code, format string, args ...any) event.ErrorReply {
	return event.ErrorReply{Error: event.ErrorBody{Code: string(code), Message: fmt.Sprintf(format, args...)}}
}

func badRequest(format string, args ...any) event.ErrorReply {
	return errorReply(errcode.InvalidRequest, format, args...)
}

func internalError(format string, args ...any) event.ErrorReply {
	return errorReply(errcode.InternalError, format, args...)
}

// tenantOf resolves the tenant a request acts on: the subject's on a
// tenant-scoped subject (the payload may repeat it, never name another),
// the payload's on a tenant-less one.
func tenantOf(scope, payload string) (string, *event.ErrorReply) {
	if scope == "" {
		return payload, nil
	}
	if payload != "" && payload != scope {
		r := badRequest("tenant_id %q is not the subject's tenant %q", payload, scope)
		return "", &r
	}
	return scope, nil
}

func decode(data []byte, v any) *event.ErrorReply {
	if err := json.Unmarshal(data, v); err != nil {
		r := badRequest("invalid JSON: %v", err)
		return &r
	}
	return nil
}

func (s *Service) test(ctx context.Context, scope string, data []byte) any {
	var req event.TestRequest
	if e := decode(data, &req); e != nil {
		return *e
	}
	if req.Integration != nil {
		return s.testUnsaved(ctx, scope, *req.Integration)
	}
	tenant, e := tenantOf(scope, req.TenantID)
	if e != nil {
		return *e
	}
	if tenant == "" || req.IntegrationID == "" {
		return badRequest(`send {"tenant_id", "integration_id"} or {"integration": {...}}`)
	}
	ig, ok := s.p.Cache.Get(tenant, req.IntegrationID)
	if !ok {
		return notKnown(tenant, req.IntegrationID)
	}
	st := s.runTest(ctx, ig, true)
	return event.TestReply{Connected: st.Connected, BucketRegion: st.BucketRegion, CheckedAt: st.LastCheckedAt, Error: st.Error}
}

// testUnsaved tests an integration before it is saved. It answers the
// request only (contract §7, v1.1): no connection status is published and
// nothing of a saved integration of the same id changes, so an admin trying
// a new bucket cannot mark the working integration disconnected.
func (s *Service) testUnsaved(ctx context.Context, scope string, in event.IntegrationPayload) any {
	if scope != "" {
		if in.TenantID == "" {
			in.TenantID = scope
		}
		if in.TenantID != scope {
			return badRequest("integration.tenant_id %q is not the subject's tenant %q", in.TenantID, scope)
		}
	}
	if !event.ValidID(in.TenantID) || !event.ValidID(in.ID) {
		return badRequest("integration.tenant_id and integration.id are required (letters, digits, '_', '=' and '-')")
	}
	ig, err := s.p.Build(in)
	if err != nil {
		// Refused before any request to S3, with the code a saved
		// integration would get.
		e := errcode.From(err)
		return event.TestReply{Connected: false, CheckedAt: s.now(), Error: errorBody(e)}
	}
	st := s.runTest(ctx, ig, false)
	return event.TestReply{Connected: st.Connected, BucketRegion: st.BucketRegion, CheckedAt: st.LastCheckedAt, Error: st.Error}
}

func errorBody(e *errcode.Error) *event.ErrorBody {
	return &event.ErrorBody{Code: string(e.Code), Message: e.Message()}
}

func notKnown(tenant, id string) event.ErrorReply {
	return badRequest("integration %s of tenant %s is not known to the exporter", id, tenant)
}

// runTest tests an integration and counts it; a saved integration's status
// is published (publish).
func (s *Service) runTest(ctx context.Context, ig *integration.Integration, publish bool) event.ConnectionStatus {
	tctx, cancel := context.WithTimeout(ctx, s.opts.TestTimeout)
	defer cancel()
	res := s.p.Test(tctx, ig)
	at := res.CheckedAt
	if at.IsZero() {
		at = s.now()
	}
	st := status.Connection(ig.TenantID, ig.ID, at, res.Region, res.Err)
	s.p.Tested(st.Connected)
	s.log.Info("connection test", zap.String("tenant_id", ig.TenantID), zap.String("integration_id", ig.ID),
		zap.Bool("saved", publish), zap.Bool("connected", st.Connected), zap.String("code", codeOf(st.Error)))
	if publish {
		s.p.Publish(ctx, st)
	}
	return st
}

func codeOf(e *event.ErrorBody) string {
	if e == nil {
		return ""
	}
	return e.Code
}

func (s *Service) get(scope string, data []byte) any {
	var req event.GetRequest
	if e := decode(data, &req); e != nil {
		return *e
	}
	tenant, e := tenantOf(scope, req.TenantID)
	if e != nil {
		return *e
	}
	if tenant == "" || req.IntegrationID == "" {
		return badRequest("tenant_id and integration_id are required")
	}
	ig, ok := s.p.Cache.Get(tenant, req.IntegrationID)
	if !ok {
		return notKnown(tenant, req.IntegrationID)
	}
	return s.describe(ig)
}

func (s *Service) describe(ig *integration.Integration) event.GetReply {
	rep := event.GetReply{Integration: ig.Redacted()}
	if st, ok := s.p.Cache.Status(ig.TenantID, ig.ID); ok {
		rep.Status = &st
	}
	return rep
}

func (s *Service) list(scope string, data []byte) any {
	var req event.ListRequest
	if len(data) > 0 {
		if e := decode(data, &req); e != nil {
			return *e
		}
	}
	tenant, e := tenantOf(scope, req.TenantID)
	if e != nil {
		return *e
	}
	rep := event.ListReply{Integrations: []event.GetReply{}}
	for _, ig := range s.p.Cache.List(tenant) {
		rep.Integrations = append(rep.Integrations, s.describe(ig))
	}
	return rep
}

func (s *Service) replay(ctx context.Context, scope string, data []byte) any {
	var req event.ReplayRequest
	if e := decode(data, &req); e != nil {
		return *e
	}
	tenant, e := tenantOf(scope, req.TenantID)
	if e != nil {
		return *e
	}
	if !event.ValidID(tenant) || !event.ValidID(req.ScanID) || (req.IntegrationID != "" && !event.ValidID(req.IntegrationID)) {
		return badRequest("tenant_id and scan_id are required (and integration_id, when given, must be an id)")
	}
	subject, payload, err := s.p.Scans.Find(ctx, tenant, req.ScanID)
	if errors.Is(err, streams.ErrScanNotFound) {
		return badRequest("scan %s of tenant %s is not in the scans stream (never published, or older than its max age)", req.ScanID, tenant)
	}
	if err != nil {
		return internalError("reading the scans stream: %v", err)
	}
	scan, err := event.DecodeScan(s.opts.Prefix, subject, payload)
	if err != nil {
		return badRequest("the stored scan event is malformed: %v", err)
	}
	if scan.TenantID != tenant {
		// Find filters on the tenant's subjects; a payload naming another
		// tenant is refused when it is decoded, so this is a broken port.
		return internalError("the stored scan %s belongs to another tenant", req.ScanID)
	}
	var targets []*integration.Integration
	if req.IntegrationID != "" {
		ig, ok := s.p.Cache.Get(tenant, req.IntegrationID)
		if !ok || !ig.HasProvider(scan.Provider.ID) {
			return badRequest("integration %s of tenant %s does not export provider %s", req.IntegrationID, tenant, scan.Provider.ID)
		}
		targets = []*integration.Integration{ig}
	} else {
		targets = s.p.Cache.Select(tenant, scan.Provider.ID)
	}
	// Forget the ledger of the targets, then put the event back on the
	// stream: the scan consumer exports it with the usual retries, and the
	// integrations not replayed skip it (their ledger says done).
	for _, ig := range targets {
		if err := s.p.Ledger.Delete(ctx, tenant, req.ScanID, ig.ID); err != nil {
			return internalError("clearing the ledger: %v", err)
		}
	}
	if err := s.p.Scans.Republish(ctx, subject, payload); err != nil {
		return internalError("re-publishing the scan: %v", err)
	}
	s.log.Info("scan replay accepted", zap.String("tenant_id", tenant), zap.String("scan_id", req.ScanID),
		zap.Int("integrations", len(targets)))
	return event.ReplayReply{Accepted: true}
}
