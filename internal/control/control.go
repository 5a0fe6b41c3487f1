// Package control answers the exporter's control plane (contract §7): a
// connection test, the cached state of one integration or of a tenant's
// integrations, and a scan replay; and it reacts once to each integration
// change (the automatic connection test, deduplicated by a fingerprint of
// what the test depends on).
//
// Service holds decisions only. Everything it reads or writes goes through
// the small ports below, which the daemon fills with the integration cache,
// the ledger, the status publisher, the scans stream and the S3 clients,
// and which the tests fill with functions. Server serves the control
// subjects, ChangeConsumer hands each integration change to one replica's
// Service, and Statuses follows the connection statuses every replica
// publishes.
package control

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// Cache reads the integration cache.
type Cache interface {
	Get(tenant, id string) (*integration.Integration, bool)
	List(tenant string) []*integration.Integration
	Select(tenant, provider string) []*integration.Integration
	Status(tenant, id string) (event.ConnectionStatus, bool)
}

// Ledger is what control needs of the export ledger: forgetting a scan's
// progress (a replay) and the fingerprint of the last tested configuration
// of each integration.
type Ledger interface {
	Delete(ctx context.Context, tenant, scan, integration string) error
	// SwapFingerprint stores fp and reports whether it differs from the
	// stored one.
	SwapFingerprint(ctx context.Context, tenant, integration, fp string) (bool, error)
	ForgetFingerprint(ctx context.Context, tenant, integration string) error
}

// Scans finds a stored scan event and puts it back on its stream
// (streams.Scans is one).
type Scans interface {
	// Find returns the subject and payload of the last event of tenant
	// whose scan_id is scan, or streams.ErrScanNotFound.
	Find(ctx context.Context, tenant, scan string) (subject string, payload []byte, err error)
	Republish(ctx context.Context, subject string, payload []byte) error
}

// TestResult is the outcome of one connection test (contract §5).
type TestResult struct {
	Region    string
	CheckedAt time.Time
	// Err is why the bucket could not be used (nil: connected).
	Err *errcode.Error
}

// Ports are control's dependencies. Every one is required except Metrics.
type Ports struct {
	Cache  Cache
	Ledger Ledger
	Scans  Scans
	// Test runs a connection test with the integration's credentials.
	Test func(ctx context.Context, ig *integration.Integration) TestResult
	// Build validates an unsaved integration as a saved one would be.
	Build func(in event.IntegrationPayload) (*integration.Integration, error)
	// Publish publishes a connection status and records it with the cached
	// integration (every replica learns it from the status subject).
	Publish func(ctx context.Context, st event.ConnectionStatus)
	// CatchUp waits for this replica's cache to hold what the integrations
	// stream holds now.
	CatchUp func(ctx context.Context, timeout time.Duration) error
	// Changed is told after each integration change was handled (the
	// integrations gauge is refreshed from it).
	Changed func()
	// Tested counts a connection test by its result (connected or not).
	Tested func(connected bool)
}

// Defaults of the options that are settings of the daemon too
// (S3EXPORTER_SUBJECT_PREFIX, S3EXPORTER_CONNECTION_TEST_TIMEOUT):
// internal/daemon's TestPackageDefaultsAreTheSettingsDefaults holds them equal to
// config.Default's.
const (
	DefaultPrefix      = "prowler"
	DefaultTestTimeout = 20 * time.Second
)

// Options tune the service.
type Options struct {
	// Prefix is the subject prefix (stored scan events are decoded with it;
	// default DefaultPrefix).
	Prefix string
	// TestTimeout bounds one connection test (default DefaultTestTimeout).
	TestTimeout time.Duration
	// Global serves the tenant-less subjects (S3EXPORTER_GLOBAL_CONTROL).
	Global bool
	// CatchUpTimeout bounds the wait for the cache before a change's test.
	CatchUpTimeout time.Duration
}

// Service answers control requests and reacts to integration changes.
type Service struct {
	p    Ports
	opts Options
	log  *zap.Logger
	now  func() time.Time
}

// New returns a Service.
func New(p Ports, opts Options, log *zap.Logger) *Service {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.TestTimeout <= 0 {
		opts.TestTimeout = DefaultTestTimeout
	}
	if opts.CatchUpTimeout <= 0 {
		opts.CatchUpTimeout = 5 * time.Second
	}
	if p.Changed == nil {
		p.Changed = func() {}
	}
	if p.Tested == nil {
		p.Tested = func(bool) {}
	}
	return &Service{p: p, opts: opts, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Handle answers one request on a control operation. scope is the tenant of
// a tenant-scoped subject, "" on a tenant-less one. The reply is a value to
// encode as JSON: the operation's reply or an event.ErrorReply.
func (s *Service) Handle(ctx context.Context, scope, op string, data []byte) any {
	if scope == "" && !s.opts.Global {
		// Not subscribed then; a request can still reach this replica if
		// an older one subscribed the subject in the same queue group.
		return badRequest("the tenant-less control subjects are off (S3EXPORTER_GLOBAL_CONTROL=false); use %s", event.ControlSubject("<prefix>", "<tenant_id>", op))
	}
	if scope != "" && !event.ValidID(scope) {
		return badRequest("the subject's tenant token %q is not an id (letters, digits, '_', '=' and '-')", scope)
	}
	switch op {
	case event.OpTest:
		return s.test(ctx, scope, data)
	case event.OpGet:
		return s.get(scope, data)
	case event.OpList:
		if scope == "" {
			return badRequest("integrations.list exists only on the tenant-scoped subject")
		}
		return s.list(scope, data)
	case event.OpReplay:
		return s.replay(ctx, scope, data)
	}
	return badRequest("unknown control operation %q", op)
}
