package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/consumer"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/integration"
	"github.com/prowler-cloud/s3-exporter/metrics"
)

// controlQueue is the queue group of the control subscriptions: one replica
// answers each request.
const controlQueue = "s3-exporter"

// maxControlInFlight bounds control requests served at once.
const maxControlInFlight = 8

// startControl subscribes the control subjects (contract §7), follows the
// connection statuses every replica publishes, and binds the shared consumer
// of integration changes.
func (d *Daemon) startControl(ctx context.Context) error {
	sem := make(chan struct{}, maxControlInFlight)
	serve := func(kind string, h func(context.Context, []byte) any) error {
		sub, err := d.nc.QueueSubscribe(d.topo.Subject(kind), controlQueue, func(m *nats.Msg) {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				rctx, cancel := context.WithTimeout(context.Background(), d.cfg.ConnectionTestTimeout+5*time.Second)
				defer cancel()
				b, err := json.Marshal(h(rctx, m.Data))
				if err != nil {
					b, _ = json.Marshal(event.ErrorReply{Error: event.ErrorBody{Code: string(errcode.InternalError), Message: err.Error()}})
				}
				if m.Reply != "" {
					_ = m.Respond(b)
				}
			}()
		})
		if err != nil {
			return fmt.Errorf("subscribing %s: %w", d.topo.Subject(kind), err)
		}
		d.control = append(d.control, sub)
		return nil
	}
	if err := serve(event.ControlTest, d.handleTest); err != nil {
		return err
	}
	if err := serve(event.ControlGet, d.handleGet); err != nil {
		return err
	}
	if err := serve(event.ControlReplay, d.handleReplay); err != nil {
		return err
	}
	// Every replica learns every connection status, whoever published it.
	sub, err := d.nc.Subscribe(d.topo.Subject(event.IntegrationsStatus, ">"), func(m *nats.Msg) {
		var st event.ConnectionStatus
		if json.Unmarshal(m.Data, &st) == nil && st.TenantID != "" {
			d.cache.SetStatus(st)
		}
	})
	if err != nil {
		return err
	}
	d.control = append(d.control, sub)
	d.changes, err = consumer.StartChangeConsumer(ctx, d.js, d.topo, d.cfg.ConsumerName+"-integrations", d.parser, d.onIntegrationChange, d.log)
	return err
}

func internalError(format string, args ...any) event.ErrorReply {
	return event.ErrorReply{Error: event.ErrorBody{Code: string(errcode.InternalError), Message: fmt.Sprintf(format, args...)}}
}

func badRequest(format string, args ...any) event.ErrorReply {
	return event.ErrorReply{Error: event.ErrorBody{Code: string(errcode.InvalidRequest), Message: fmt.Sprintf(format, args...)}}
}

func (d *Daemon) handleTest(ctx context.Context, data []byte) any {
	var req event.TestRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return badRequest("invalid JSON: %v", err)
	}
	var ig *integration.Integration
	switch {
	case req.Integration != nil:
		if !event.ValidID(req.Integration.TenantID) || !event.ValidID(req.Integration.ID) {
			return badRequest("integration.tenant_id and integration.id are required (letters, digits, '_', '=' and '-')")
		}
		var err error
		ig, err = d.parser.Build(*req.Integration)
		if err != nil {
			// Rejected before any request to S3; the status event says so,
			// as it does after every connection test.
			e := errcode.From(err)
			st := d.connectionStatus(req.Integration.TenantID, req.Integration.ID, exporterResultErr(e))
			d.reporter.Connection(ctx, st)
			return event.TestReply{Connected: false, CheckedAt: st.LastCheckedAt, Error: st.Error}
		}
	case req.TenantID != "" && req.IntegrationID != "":
		var ok bool
		ig, ok = d.cache.Get(req.TenantID, req.IntegrationID)
		if !ok {
			return badRequest("integration %s of tenant %s is not known to the exporter", req.IntegrationID, req.TenantID)
		}
	default:
		return badRequest("send {\"tenant_id\", \"integration_id\"} or {\"integration\": {...}}")
	}
	st := d.runConnectionTest(ctx, ig)
	return event.TestReply{Connected: st.Connected, BucketRegion: st.BucketRegion, CheckedAt: st.LastCheckedAt, Error: st.Error}
}

func exporterResultErr(e *errcode.Error) *event.ErrorBody {
	return &event.ErrorBody{Code: string(e.Code), Message: e.Message()}
}

// connectionStatus builds a failed status without a test (a rejected
// configuration).
func (d *Daemon) connectionStatus(tenant, id string, body *event.ErrorBody) event.ConnectionStatus {
	return event.ConnectionStatus{TenantID: tenant, IntegrationID: id, Connected: false,
		LastCheckedAt: time.Now().UTC(), Error: body}
}

// runConnectionTest tests an integration, publishes the connection status and
// counts it.
func (d *Daemon) runConnectionTest(ctx context.Context, ig *integration.Integration) event.ConnectionStatus {
	tctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectionTestTimeout)
	defer cancel()
	res := d.exporter.Clients().TestConnection(tctx, ig)
	st := event.ConnectionStatus{TenantID: ig.TenantID, IntegrationID: ig.ID, Connected: res.Connected,
		LastCheckedAt: res.CheckedAt, BucketRegion: res.Region}
	result := metrics.ConnectionConnected
	if res.Err != nil {
		st.Error = exporterResultErr(res.Err)
		result = metrics.ConnectionDisconnected
	}
	d.metrics.ConnectionTests.WithLabelValues(result).Inc()
	d.log.Info("connection test", zap.String("tenant_id", ig.TenantID), zap.String("integration_id", ig.ID),
		zap.Bool("connected", st.Connected), zap.String("code", codeOf(st.Error)))
	if event.ValidID(ig.TenantID) && event.ValidID(ig.ID) {
		d.reporter.Connection(ctx, st)
	}
	return st
}

func codeOf(e *event.ErrorBody) string {
	if e == nil {
		return ""
	}
	return e.Code
}

func (d *Daemon) handleGet(_ context.Context, data []byte) any {
	var req event.GetRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return badRequest("invalid JSON: %v", err)
	}
	if req.TenantID == "" || req.IntegrationID == "" {
		return badRequest("tenant_id and integration_id are required")
	}
	ig, ok := d.cache.Get(req.TenantID, req.IntegrationID)
	if !ok {
		return badRequest("integration %s of tenant %s is not known to the exporter", req.IntegrationID, req.TenantID)
	}
	rep := event.GetReply{Integration: ig.Redacted()}
	if st, ok := d.cache.Status(req.TenantID, req.IntegrationID); ok {
		rep.Status = &st
	}
	return rep
}

func (d *Daemon) handleReplay(ctx context.Context, data []byte) any {
	var req event.ReplayRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return badRequest("invalid JSON: %v", err)
	}
	if !event.ValidID(req.TenantID) || !event.ValidID(req.ScanID) || (req.IntegrationID != "" && !event.ValidID(req.IntegrationID)) {
		return badRequest("tenant_id and scan_id are required (and integration_id, when given, must be an id)")
	}
	subject, payload, err := consumer.FindScan(ctx, d.js, d.topo, req.TenantID, req.ScanID)
	if errors.Is(err, consumer.ErrScanNotFound) {
		return badRequest("scan %s of tenant %s is not in %s (never published, or older than its max age)", req.ScanID, req.TenantID, d.topo.ScansStream())
	}
	if err != nil {
		return internalError("reading %s: %v", d.topo.ScansStream(), err)
	}
	scan, err := event.DecodeScan(d.topo.Prefix, subject, payload)
	if err != nil {
		return badRequest("the stored scan event is malformed: %v", err)
	}
	var targets []*integration.Integration
	if req.IntegrationID != "" {
		ig, ok := d.cache.Get(req.TenantID, req.IntegrationID)
		if !ok || !ig.HasProvider(scan.Provider.ID) {
			return badRequest("integration %s of tenant %s does not export provider %s", req.IntegrationID, req.TenantID, scan.Provider.ID)
		}
		targets = []*integration.Integration{ig}
	} else {
		targets = d.cache.Select(req.TenantID, scan.Provider.ID)
	}
	// Forget the ledger of the targets, then put the event back on the
	// stream: the scan consumer exports it with the usual retries, and the
	// integrations not replayed skip it (their ledger says done).
	for _, ig := range targets {
		if err := d.ledger.Delete(ctx, req.TenantID, req.ScanID, ig.ID); err != nil {
			return internalError("clearing the ledger: %v", err)
		}
	}
	if _, err := d.js.Publish(ctx, subject, payload); err != nil {
		return internalError("re-publishing the scan: %v", err)
	}
	d.log.Info("scan replay accepted", zap.String("tenant_id", req.TenantID), zap.String("scan_id", req.ScanID),
		zap.Int("integrations", len(targets)))
	return event.ReplayReply{Accepted: true}
}

// onIntegrationChange runs once per change (in one replica): a rejected
// payload gets a disconnected status saying why; a new integration, or one
// whose bucket or credentials changed, gets a connection test.
func (d *Daemon) onIntegrationChange(ctx context.Context, ch integration.Change, err error) {
	switch {
	case err != nil:
		if event.ValidID(ch.TenantID) && event.ValidID(ch.ID) {
			// The rejection dropped the integration: a valid state published
			// next is new and gets tested, even if it equals the last tested.
			_ = d.ledger.ForgetFingerprint(ctx, ch.TenantID, ch.ID)
			e := errcode.From(err)
			d.reporter.Connection(ctx, d.connectionStatus(ch.TenantID, ch.ID, exporterResultErr(e)))
		}
	case ch.Action == event.ActionDelete || ch.Ignored:
		_ = d.ledger.ForgetFingerprint(ctx, ch.TenantID, ch.ID)
	case ch.Integration != nil:
		changed, ferr := d.ledger.SwapFingerprint(ctx, ch.TenantID, ch.ID, fingerprint(ch.Integration))
		if ferr != nil {
			d.log.Warn("reading the tested-configuration fingerprint", zap.Error(ferr))
			changed = true
		}
		if changed {
			// The status is kept with the cached integration: let this
			// replica's cache hold the change before the status comes.
			if err := d.follower.CatchUp(ctx, 5*time.Second); err != nil {
				d.log.Debug("integration cache behind the change tested", zap.Error(err))
			}
			d.runConnectionTest(ctx, ch.Integration)
		}
	}
	d.reporter.RefreshIntegrations()
}

// fingerprint identifies what a connection test depends on (the hashing is
// shared with the S3 client cache keys, in package integration).
func fingerprint(ig *integration.Integration) string { return ig.Fingerprint() }
