package daemon

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/control"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
)

// scanStore is control's view of the scans stream.
type scanStore struct {
	js   jetstream.JetStream
	topo streams.Topology
}

func (s scanStore) Find(ctx context.Context, tenant, scan string) (string, []byte, error) {
	subject, payload, err := streams.FindScan(ctx, s.js, s.topo, tenant, scan)
	if errors.Is(err, streams.ErrScanNotFound) {
		return "", nil, control.ErrScanNotFound
	}
	return subject, payload, err
}

func (s scanStore) Republish(ctx context.Context, subject string, payload []byte) error {
	_, err := s.js.Publish(ctx, subject, payload)
	return err
}

func testResult(r exporter.ConnectionResult) control.TestResult {
	return control.TestResult{Connected: r.Connected, Region: r.Region, CheckedAt: r.CheckedAt, Err: r.Err}
}
