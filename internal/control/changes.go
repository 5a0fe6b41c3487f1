package control

import (
	"context"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/status"
)

// OnChange reacts once (in one replica) to an integration change; perr is
// the rejection of an invalid payload. A rejected payload gets a
// disconnected status saying why; a new integration, or one whose bucket or
// credentials changed, gets a connection test. A change that alters neither
// (providers, output directory, enabled) is not tested again: the
// fingerprint of the last tested configuration says so.
func (s *Service) OnChange(ctx context.Context, ch integration.Change, perr error) {
	defer s.p.Changed()
	switch {
	case perr != nil:
		if !event.ValidID(ch.TenantID) || !event.ValidID(ch.ID) {
			return // no subject to publish a status on
		}
		// The rejection dropped the integration: a valid state published
		// next is new and gets tested, even if it equals the last tested.
		if err := s.p.Ledger.ForgetFingerprint(ctx, ch.TenantID, ch.ID); err != nil {
			s.log.Warn("forgetting the tested-configuration fingerprint", zap.Error(err))
		}
		s.p.Publish(ctx, status.Connection(ch.TenantID, ch.ID, s.now(), "", errcode.From(perr)))
	case ch.Action == event.ActionDelete || ch.Ignored:
		if err := s.p.Ledger.ForgetFingerprint(ctx, ch.TenantID, ch.ID); err != nil {
			s.log.Warn("forgetting the tested-configuration fingerprint", zap.Error(err))
		}
	case ch.Integration != nil:
		changed, err := s.p.Ledger.SwapFingerprint(ctx, ch.TenantID, ch.ID, ch.Integration.Fingerprint())
		if err != nil {
			// Testing twice costs one beacon; not testing a changed bucket
			// would leave its status wrong.
			s.log.Warn("reading the tested-configuration fingerprint", zap.Error(err))
			changed = true
		}
		if !changed {
			return
		}
		// The status is kept with the cached integration: let this
		// replica's cache hold the change before the status comes.
		if err := s.p.CatchUp(ctx, s.opts.CatchUpTimeout); err != nil {
			s.log.Debug("integration cache behind the change tested", zap.Error(err))
		}
		s.runTest(ctx, ch.Integration, true)
	}
}
