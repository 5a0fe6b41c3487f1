package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/integration"
)

// ChangeHandler reacts once to an integration change (err is the rejection
// of an invalid payload).
type ChangeHandler func(ctx context.Context, ch integration.Change, err error)

// ChangeConsumer hands every new integration change to exactly one replica
// (a durable consumer they share), so that side effects such as the automatic
// connection test or a rejection status run once, not once per replica.
type ChangeConsumer struct {
	cc jetstream.ConsumeContext
}

// StartChangeConsumer binds the shared durable consumer durable on the
// integrations stream. It starts at new messages when first created.
func StartChangeConsumer(ctx context.Context, js jetstream.JetStream, topo Topology, durable string,
	parser *integration.Parser, handle ChangeHandler, log *zap.Logger) (*ChangeConsumer, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, topo.IntegrationsStream(), jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "s3-exporter: one reaction per integration change",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2 * time.Minute,
		MaxDeliver:    3,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubject: topo.Subject(event.IntegrationsChanged, ">"),
	})
	if err != nil {
		return nil, fmt.Errorf("integration changes consumer %q: %w", durable, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		ch, perr := parser.ParseChange(msg.Subject(), msg.Data())
		hctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_ = msg.InProgress()
		handle(hctx, ch, perr)
		_ = msg.Ack()
	}, jetstream.PullMaxMessages(4), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			log.Debug("integration changes consumer", zap.Error(err))
		}
	}))
	if err != nil {
		return nil, err
	}
	return &ChangeConsumer{cc: cc}, nil
}

// Stop stops consuming.
func (c *ChangeConsumer) Stop() {
	if c != nil && c.cc != nil {
		c.cc.Stop()
	}
}

// ErrScanNotFound says a replayed scan is not in the scans stream.
var ErrScanNotFound = errors.New("scan not found in the scans stream")

// FindScan reads the scans stream for the last event of tenant whose scan_id
// is scanID, and returns its subject and payload.
func FindScan(ctx context.Context, js jetstream.JetStream, topo Topology, tenant, scanID string) (string, []byte, error) {
	cons, err := js.OrderedConsumer(ctx, topo.ScansStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topo.Subject(event.ScansCompleted, tenant, "*")},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return "", nil, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return "", nil, err
	}
	if info.NumPending == 0 {
		return "", nil, ErrScanNotFound
	}
	// Read up to the last message (NumPending 0) and stop there: a Fetch
	// would wait out its MaxWait for a full batch on every replay.
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return "", nil, err
	}
	defer it.Stop()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var subject string
	var data []byte
	for {
		msg, err := it.Next(jetstream.NextContext(rctx))
		if err != nil {
			return "", nil, fmt.Errorf("reading %s: %w", topo.ScansStream(), err)
		}
		var probe struct {
			ScanID string `json:"scan_id"`
		}
		if json.Unmarshal(msg.Data(), &probe) == nil && probe.ScanID == scanID {
			subject, data = msg.Subject(), msg.Data()
		}
		md, err := msg.Metadata()
		if err != nil {
			return "", nil, err
		}
		if md.NumPending == 0 {
			break
		}
	}
	if data == nil {
		return "", nil, ErrScanNotFound
	}
	return subject, data, nil
}
