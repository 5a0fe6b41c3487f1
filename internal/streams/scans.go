package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
)

// ErrScanNotFound says a replayed scan is not in the scans stream.
var ErrScanNotFound = errors.New("scan not found in the scans stream")

// Scans reads stored scan events and puts them back on the scans stream
// (control's replay).
type Scans struct {
	JS   jetstream.JetStream
	Topo Topology
}

// Republish stores payload on subject again.
func (s Scans) Republish(ctx context.Context, subject string, payload []byte) error {
	_, err := s.JS.Publish(ctx, subject, payload)
	return err
}

// Find reads the scans stream for the last event of tenant whose scan_id
// is scanID, and returns its subject and payload, or ErrScanNotFound.
func (s Scans) Find(ctx context.Context, tenant, scanID string) (string, []byte, error) {
	js, topo := s.JS, s.Topo
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
