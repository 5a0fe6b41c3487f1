package exporter

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/sched"
)

// destKey identifies an integration's destination for the scheduler: its
// tenant, bucket and credentials (hashed, never in clear). Two integrations
// of a tenant writing to one bucket with the same credentials share a limit
// and a breaker: S3 sees them as one client.
func destKey(tenant string, ig *integration.Integration) string {
	return tenant + "/" + ig.Bucket + "/" + ig.SigningKey()
}

// region returns the bucket's region. Discovering it (not yet cached) is a
// request to the destination like an upload, so it runs under a grant: a
// black hole fails it fast once its breaker is open, and its timeouts count
// towards opening it.
func (e *Exporter) region(ctx context.Context, tenant string, ig *integration.Integration) (string, *errcode.Error) {
	if r, ok := e.clients.CachedRegion(ig); ok {
		return r, nil
	}
	var region string
	err := e.underGrant(ctx, ig, sched.Request{Tenant: tenant, Dest: destKey(tenant, ig)}, false, func() (bool, *errcode.Error) {
		_, r, err := e.clients.Client(ctx, ig)
		if err != nil {
			return true, classify("finding the bucket region", err)
		}
		region = r
		return true, nil
	})
	return region, err
}

// underGrant runs work once the scheduler grants req (the tenant's fair
// share, the destination's limit and breaker, the byte budget), and tells
// the scheduler what its result says about the destination; a breaker that
// changed state is logged and reported (breakerChanged). work returns its
// error and whether it reached the destination (opened: a source that
// failed to open says nothing about the bucket). timed says work was one
// request, whose time is a round trip: the limit's latency signal. A grant
// refused is returned as work's error would be (refused).
func (e *Exporter) underGrant(ctx context.Context, ig *integration.Integration, req sched.Request, timed bool, work func() (opened bool, err *errcode.Error)) *errcode.Error {
	g, err := e.sched.Acquire(ctx, req)
	if err != nil {
		return e.refused(err, ig)
	}
	opened, werr := work()
	e.breakerChanged(ig, g.Done(signal(ctx, werr, opened), timed), werr)
	return werr
}

// refused classifies an upload the scheduler did not let run. A breaker
// fail-fast is retryable, with the code of the failure that opened the
// breaker (Timeout for a black hole, S3ClientError for throttling or 5xx,
// S3TestConnectionError for refused connections), so that the scan goes
// retrying with the redelivery backoff and its status names the cause;
// errors.Is(err, sched.ErrOpen) tells it apart.
func (e *Exporter) refused(err error, ig *integration.Integration) *errcode.Error {
	if errors.Is(err, sched.ErrOpen) {
		code := errcode.Timeout
		if c, ok := e.causes.Load(e.causeKey(ig)); ok {
			code = c.(errcode.Code)
		}
		return errcode.Retryable(code, fmt.Errorf("not sent: %w", err))
	}
	return classify("waiting for an upload slot", err)
}

func (e *Exporter) causeKey(ig *integration.Integration) string { return destKey(ig.TenantID, ig) }

// signal is what a request's result says about its destination.
func signal(ctx context.Context, err *errcode.Error, opened bool) sched.Signal {
	switch {
	case err == nil:
		return sched.Succeeded
	case ctx.Err() != nil || !opened:
		// Canceled (shutdown), or the source failed before S3 was asked.
		return sched.Abandoned
	}
	switch err.Code {
	case errcode.Timeout, errcode.S3ClientError, errcode.S3TestConnectionError:
		if err.Retryable {
			return sched.Overloaded
		}
	case errcode.SourceNotFound, errcode.SourceRefused, errcode.ChecksumMismatch:
		return sched.Abandoned
	}
	return sched.Answered
}

// breakerChanged logs a breaker's change of state and tells OnBreaker.
func (e *Exporter) breakerChanged(ig *integration.Integration, tr sched.Transition, cause *errcode.Error) {
	switch tr {
	case sched.Opened:
		code := errcode.Timeout
		if cause != nil {
			code = cause.Code
		}
		e.causes.Store(e.causeKey(ig), code)
		e.log.Warn("circuit breaker opened: uploads to this destination fail fast until a probe succeeds",
			zap.String("tenant_id", ig.TenantID), zap.String("integration_id", ig.ID), zap.String("code", string(code)), zap.Error(cause))
		if e.opts.OnBreaker != nil {
			e.opts.OnBreaker(ig, true, cause)
		}
	case sched.ClosedAgain:
		e.causes.Delete(e.causeKey(ig))
		e.log.Info("circuit breaker closed: the destination answered",
			zap.String("tenant_id", ig.TenantID), zap.String("integration_id", ig.ID))
		if e.opts.OnBreaker != nil {
			e.opts.OnBreaker(ig, false, nil)
		}
	}
}
