package control

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Statuses keeps the last connection status of every cached integration in
// this replica: the last one of each integration read from the status
// stream at start (a restarted replica shows it at once, and its gauge does
// not say "unknown"), then every status any replica publishes, followed
// live.
type Statuses struct {
	NC *nats.Conn
	// Subject is the connection status subject, wildcard included
	// (prowler.integrations.status.>).
	Subject string
	// Load returns the last status of each integration (nil: none).
	Load func(ctx context.Context) ([]event.ConnectionStatus, error)
	// Current and Set read and write the status kept with an integration.
	Current func(tenant, id string) (event.ConnectionStatus, bool)
	Set     func(st event.ConnectionStatus)
	// Loaded is told once the stored statuses are applied.
	Loaded func()
	Log    *zap.Logger

	mu sync.Mutex
}

// Run subscribes, then loads the stored statuses (subscribing first leaves
// no gap in which a status is neither loaded nor received), says ready,
// and follows the statuses until ctx ends. A load that fails is logged,
// not fatal: the statuses then come with the next tests and exports.
func (s *Statuses) Run(ctx context.Context, ready func()) error {
	sub, err := s.NC.Subscribe(s.Subject, func(m *nats.Msg) {
		var st event.ConnectionStatus
		if json.Unmarshal(m.Data, &st) == nil && st.TenantID != "" && st.IntegrationID != "" {
			s.apply(st)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribing %s: %w", s.Subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if s.Load != nil {
		sts, err := s.Load(ctx)
		if err != nil {
			s.Log.Warn("loading the last connection statuses", zap.Error(err))
		}
		for _, st := range sts {
			s.apply(st)
		}
	}
	if s.Loaded != nil {
		s.Loaded()
	}
	ready()
	<-ctx.Done()
	return nil
}

// apply keeps the newer of st and the status held: the stored one loaded at
// start may arrive after a live one.
func (s *Statuses) apply(st event.ConnectionStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.Current(st.TenantID, st.IntegrationID); ok && cur.LastCheckedAt.After(st.LastCheckedAt) {
		return
	}
	s.Set(st)
}

// LoadLast reads the last message of each subject matching filter in
// stream, decoded as connection statuses (undecodable ones are skipped).
func LoadLast(ctx context.Context, js jetstream.JetStream, stream, filter string) ([]event.ConnectionStatus, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", stream, err)
	}
	if info.NumPending == 0 {
		return nil, nil
	}
	// Read up to the last message (NumPending 0) and stop there, as a
	// Fetch would wait for a full batch.
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []event.ConnectionStatus
	for {
		msg, err := it.Next(jetstream.NextContext(rctx))
		if err != nil {
			return out, fmt.Errorf("reading %s: %w", stream, err)
		}
		var st event.ConnectionStatus
		if json.Unmarshal(msg.Data(), &st) == nil && st.TenantID != "" && st.IntegrationID != "" {
			out = append(out, st)
		}
		md, err := msg.Metadata()
		if err != nil {
			return out, err
		}
		if md.NumPending == 0 {
			return out, nil
		}
	}
}
