package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
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

// giveUp settles the scan event at adv.StreamSeq as failed (giveUpStep).
// The consumer itself gives up from its own count of attempts; this path is
// for a durable consumer with a JetStream MaxDeliver (set by an operator).
func (c *ScanConsumer) giveUp(ctx context.Context, adv maxDeliveriesAdvisory) error {
	stream, err := c.js.Stream(ctx, c.topo.ScansStream())
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return fmt.Errorf("reading the event back (sequence %d): %w", adv.StreamSeq, err)
	}
	tenant := subjectTenant(c.topo, raw.Subject)
	log := c.log.With(zap.String("tenant_id", tenant), zap.Uint64("stream_seq", adv.StreamSeq), zap.Int("deliveries", adv.Deliveries))
	s := step{Fate: fateDeadLetter, Code: string(errcode.Timeout),
		Reason: fmt.Sprintf("delivered %d times and never acknowledged: every delivery ended without a verdict "+
			"(the replica processing it stopped, or hung past the ack wait)", adv.Deliveries)}
	if scan, err := event.DecodeScan(c.topo.Prefix, raw.Subject, raw.Data); err == nil {
		log = log.With(zap.String("scan_id", scan.ScanID))
		entries := map[string]ledger.Entry{}
		var jobs []exporter.Job
		for _, ig := range c.cache.Select(scan.TenantID, scan.Provider.ID) {
			e, err := c.ledger.Get(ctx, scan.TenantID, scan.ScanID, ig.ID)
			if errors.Is(err, ledger.ErrCorrupt) {
				c.corrupt(log, err)
			} else if err != nil {
				return fmt.Errorf("ledger: %w", err)
			}
			if settled(e) {
				continue
			}
			entries[ig.ID] = e
			jobs = append(jobs, exporter.Job{Integration: ig, Done: e.Objects, Failed: e.Failed})
		}
		if len(jobs) == 0 {
			return nil // settled meanwhile
		}
		s = giveUpStep(scan, jobs, adv.Deliveries, entries, raw.Time, c.now().UTC())
		for _, o := range s.Outcomes {
			c.report.Export(ctx, o)
		}
		if s.Fate == fateAck {
			log.Warn("scan event " + s.Why)
			return nil
		}
	}
	log.Error("scan event ran out of deliveries")
	return c.report.DeadLetter(ctx, tenant, raw.Subject, raw.Data, s.Code, s.Reason)
}
