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
)

// maxDeliveriesAdvisory is the part of JetStream's max-deliveries advisory
// (io.nats.jetstream.advisory.v1.max_deliver) the consumer reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// WatchGiveUps settles the scan events JetStream stops delivering because
// none of their MaxDeliver deliveries came to a verdict: the replica that
// held each one died (or hung past the ack wait) every time. The consumer
// never sees such an event again, and without this nothing would record
// its end but JetStream's advisory. Each one gets a final status for every
// integration it had not settled for — failed, with the files that did not
// land, or succeeded if the ledger shows every file landed — and, when one
// failed (or the event cannot be read), a dead letter (contract §6: an event
// whose retries ran out).
//
// The advisory is a core NATS message: the replicas share a queue group so
// that one of them handles it. One published while no replica runs is lost
// (the event stays on its stream; `exporterctl replay` sends it again).
// Call the returned function to stop watching.
func (c *ScanConsumer) WatchGiveUps() (stop func(), err error) {
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + c.topo.ScansStream() + "." + c.opts.Durable
	sub, err := c.js.Conn().QueueSubscribe(subject, c.opts.Durable+"-give-ups", func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			c.log.Warn("unreadable max-deliveries advisory", zap.ByteString("advisory", m.Data), zap.Error(err))
			return
		}
		// Not c.work: a replica shutting down may be the one told of a
		// scan it returned to the stream on its last delivery; it settles
		// it before its connection drains.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.giveUp(ctx, adv); err != nil {
			c.log.Error("a scan event ran out of deliveries and could not be dead-lettered; it stays on its stream",
				zap.Uint64("stream_seq", adv.StreamSeq), zap.Int("deliveries", adv.Deliveries), zap.Error(err))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to the max-deliveries advisories: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// giveUp settles the scan event at adv.StreamSeq as failed.
func (c *ScanConsumer) giveUp(ctx context.Context, adv maxDeliveriesAdvisory) error {
	stream, err := c.js.Stream(ctx, c.topo.ScansStream())
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("reading the event back (sequence %d): %w", adv.StreamSeq, err)
	}
	reason := fmt.Sprintf("delivered %d times and never acknowledged: every delivery ended without a verdict "+
		"(the replica processing it stopped, or hung past the ack wait)", adv.Deliveries)
	tenant := subjectTenant(c.topo, raw.Subject)
	log := c.log.With(zap.String("tenant_id", tenant), zap.Uint64("stream_seq", adv.StreamSeq), zap.Int("deliveries", adv.Deliveries))
	if scan, err := event.DecodeScan(c.topo.Prefix, raw.Subject, raw.Data); err == nil {
		log = log.With(zap.String("scan_id", scan.ScanID))
		failed, err := c.settleUnsettled(ctx, scan, raw.Time, adv.Deliveries, reason)
		if err != nil {
			return err
		}
		if failed == 0 {
			// Every export had landed; only statuses were missing.
			log.Warn("scan event ran out of deliveries after its exports had landed")
			return nil
		}
	}
	log.Error("scan event ran out of deliveries")
	return c.report.DeadLetter(ctx, tenant, raw.Subject, raw.Data, string(errcode.Timeout), reason)
}

// settleUnsettled publishes a final status for each integration of scan
// (published on its stream at published) that the ledger does not show
// settled, with the objects it shows, and returns how many failed.
func (c *ScanConsumer) settleUnsettled(ctx context.Context, scan *event.ScanCompleted, published time.Time, deliveries int, reason string) (failed int, err error) {
	for _, ig := range c.cache.Select(scan.TenantID, scan.Provider.ID) {
		e, err := c.ledger.Get(ctx, scan.TenantID, scan.ScanID, ig.ID)
		if err != nil {
			return failed, fmt.Errorf("ledger: %w", err)
		}
		if e.State == event.StateSucceeded || e.State == event.StateFailed {
			continue
		}
		// What the ledger settled keeps its object or error; the rest
		// never landed. Every file may have landed, the status of the last
		// delivery being what was lost: that export succeeded.
		r, state := exporter.Result{Integration: ig, Artifacts: exporter.Plan(scan, exporter.Job{Integration: ig, Done: e.Objects, Failed: e.Failed})}, event.StateSucceeded
		for i := range r.Artifacts {
			ar := &r.Artifacts[i]
			if ar.Object == nil && ar.Err == nil {
				ar.Err, ar.Skipped = errcode.Permanentf(errcode.Timeout, "%s", reason), true
			}
			if ar.Err != nil {
				state = event.StateFailed
			}
		}
		if state == event.StateFailed {
			failed++
		}
		// Started: when the event reached its stream, the first moment
		// any replica could have begun (the deliveries' own are unknown).
		c.report.Export(ctx, Outcome{Scan: scan, Result: r, State: state, Attempt: deliveries, Started: published, Entry: e})
	}
	return failed, nil
}
