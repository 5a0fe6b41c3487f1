package consumer

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
)

// The ports through which the consumer does its I/O. They are defined
// here, where they are used, and are as small as the consumer needs: unit
// tests give fakes, the daemon gives the real parts (*ledger.Ledger,
// jetstream.JetStream, *integration.Cache, *integration.Follower,
// *status.Publisher).

// Ledger reads and writes export progress and deferral counts.
type Ledger interface {
	Get(ctx context.Context, tenant, scan, integration string) (ledger.Entry, error)
	Put(ctx context.Context, tenant, scan, integration string, e ledger.Entry) error
	// Deferrals returns how many times the scan message at stream sequence
	// seq was deferred (0 when never).
	Deferrals(ctx context.Context, seq uint64) (int, error)
	// SetDeferrals records n deferrals of the scan message at seq.
	SetDeferrals(ctx context.Context, seq uint64, n int) error
}

// Publisher stores messages on JetStream streams (jetstream.JetStream is one).
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Connections publishes connection statuses (*status.Publisher is one).
type Connections interface {
	Publish(ctx context.Context, st event.ConnectionStatus)
}

// Catalog selects the integrations a scan exports to (*integration.Cache is one).
type Catalog interface {
	Select(tenant, provider string) []*integration.Integration
}

// CatchUpper brings the catalog up to date with its stream
// (*integration.Follower is one).
type CatchUpper interface {
	CatchUp(ctx context.Context, timeout time.Duration) error
}
