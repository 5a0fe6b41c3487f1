package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Status is one status event: exactly one of Export and Connection is set.
type Status struct {
	Subject    string
	Export     *event.ExportStatus
	Connection *event.ConnectionStatus
}

// WatchStatus follows the status stream from new messages on (or from the
// start when fromStart) and calls fn for each event until ctx ends or fn
// returns false. Filter by tenant when tenant is not empty.
func (c *Client) WatchStatus(ctx context.Context, tenant string, fromStart bool, fn func(Status) bool) error {
	// One filter for a tenant, prowler.*.status.<tenant>.*: the server then
	// names it in the consumer-create subject, which is what lets NATS
	// permissions confine a tenant's reader to its own statuses
	// (docs/security.md). The status stream holds nothing else of that shape.
	filters := []string{c.Prefix + ".*.status.*.*"}
	if tenant != "" {
		filters = []string{c.Prefix + ".*.status." + tenant + ".*"}
	}
	policy := jetstream.DeliverNewPolicy
	if fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	stream := strings.ToUpper(c.Prefix) + "_STATUS"
	cons, err := c.JS.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  policy,
	})
	if err != nil {
		return fmt.Errorf("following %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	done := make(chan struct{})
	defer close(done)
	defer it.Stop()
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-done:
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s := Status{Subject: msg.Subject()}
		if strings.HasPrefix(msg.Subject(), c.Prefix+"."+event.ExportsStatus+".") {
			s.Export = &event.ExportStatus{}
			err = json.Unmarshal(msg.Data(), s.Export)
		} else {
			s.Connection = &event.ConnectionStatus{}
			err = json.Unmarshal(msg.Data(), s.Connection)
		}
		if err != nil {
			continue
		}
		if !fn(s) {
			return nil
		}
	}
}
