// Package client is the Go side of the contract for the exporter's peers: a
// scan engine storing artifacts and publishing scan-completed events, an admin
// publishing integrations and sending control requests, a dashboard following
// status events. exporterctl, the dev stack and the tests use it.
package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/iox"
)

// DefaultObjectStore is the object store the tools put artifacts in.
const DefaultObjectStore = "PROWLER_OUTPUTS"

// Client talks to the exporter through NATS.
type Client struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Prefix string
}

// Option configures New.
type Option func(*options)

type options struct{ jsDomain string }

// WithJSDomain sends the client's JetStream requests (publishing to the
// object store, reading statuses and the DLQ) to the JetStream domain
// domain, as $JS.<domain>.API.: the hub's, for a scan engine on a leaf node
// whose exporter runs at the hub. Empty: the connected server's JetStream.
func WithJSDomain(domain string) Option {
	return func(o *options) { o.jsDomain = domain }
}

// New returns a client for the subject prefix (empty: "prowler").
func New(nc *nats.Conn, prefix string, opts ...Option) (*Client, error) {
	if prefix == "" {
		prefix = "prowler"
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var js jetstream.JetStream
	var err error
	if o.jsDomain != "" {
		js, err = jetstream.NewWithDomain(nc, o.jsDomain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		return nil, err
	}
	return &Client{NC: nc, JS: js, Prefix: prefix}, nil
}

// PublishIntegration publishes an upsert of in (its full state).
func (c *Client) PublishIntegration(ctx context.Context, in event.IntegrationPayload) error {
	return c.publishChange(ctx, event.IntegrationChanged{Action: event.ActionUpsert, Integration: in})
}

// DeleteIntegration publishes a delete.
func (c *Client) DeleteIntegration(ctx context.Context, tenant, id string) error {
	return c.publishChange(ctx, event.IntegrationChanged{Action: event.ActionDelete,
		Integration: event.IntegrationPayload{ID: id, TenantID: tenant}})
}

func (c *Client) publishChange(ctx context.Context, ch event.IntegrationChanged) error {
	now := time.Now().UTC()
	ch.OccurredAt = &now
	b, err := marshalWire(ch)
	if err != nil {
		return err
	}
	_, err = c.JS.Publish(ctx, event.Subject(c.Prefix, event.IntegrationsChanged, ch.Integration.TenantID, ch.Integration.ID), b)
	return err
}

// marshalWire encodes an integration change with its credentials in clear
// (event.Credentials redacts itself everywhere else).
func marshalWire(ch event.IntegrationChanged) ([]byte, error) {
	var raw map[string]any
	b, err := json.Marshal(ch)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	if ch.Integration.Credentials != nil {
		cb, err := ch.Integration.Credentials.WireJSON()
		if err != nil {
			return nil, err
		}
		raw["integration"].(map[string]any)["credentials"] = json.RawMessage(cb)
	}
	return json.Marshal(raw)
}

// File is an output file to store for a scan.
type File struct {
	Format    string
	Framework string
	// Name is the object's name under <tenant>/<scan>/.
	Name string
	Body io.Reader
}

// PutArtifacts stores files in the object store bucket (created if missing)
// under <tenant>/<scan>/ and returns the artifacts to announce, with their
// sha256 and size.
func (c *Client) PutArtifacts(ctx context.Context, bucket, tenant, scan string, files []File) ([]event.Artifact, error) {
	if bucket == "" {
		bucket = DefaultObjectStore
	}
	store, err := c.JS.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		store, err = c.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Description: "Prowler scan outputs"})
	}
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", bucket, err)
	}
	out := make([]event.Artifact, 0, len(files))
	for _, f := range files {
		name := tenant + "/" + scan + "/" + f.Name
		h := sha256.New()
		cr := iox.NewCountingReader(io.TeeReader(f.Body, h))
		if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: name}, cr); err != nil {
			return nil, fmt.Errorf("storing %s: %w", name, err)
		}
		size := cr.N
		out = append(out, event.Artifact{
			Format: f.Format, Framework: f.Framework,
			Source: "nats-os://" + bucket + "/" + name,
			SHA256: hex.EncodeToString(h.Sum(nil)), Size: &size,
		})
	}
	return out, nil
}

// ScanMsgID is the Nats-Msg-Id of a scan event: <tenant_id>.<scan_id>.
// JetStream drops a duplicate within the stream's window whoever published
// it, so the scan id alone would let one tenant's event silence another
// tenant's with the same scan id.
func ScanMsgID(s event.ScanCompleted) string { return s.TenantID + "." + s.ScanID }

// PublishScan publishes a scan-completed event, with Nats-Msg-Id set to
// ScanMsgID so JetStream drops duplicates.
func (c *Client) PublishScan(ctx context.Context, s event.ScanCompleted) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(event.Subject(c.Prefix, event.ScansCompleted, s.TenantID, s.Provider.ID))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, ScanMsgID(s))
	_, err = c.JS.PublishMsg(ctx, msg)
	return err
}

// RequestTenant sends a control request on tenant's scoped subject (op is
// event.OpTest, ...), the one NATS permissions can grant a tenant's admin,
// and decodes the reply into reply. A reply carrying an error becomes a
// *ReplyError. (The tenant-less v1 subjects serve admin backends written
// before v1.1; this client does not use them.)
func (c *Client) RequestTenant(ctx context.Context, tenant, op string, req, reply any) error {
	if !event.ValidID(tenant) {
		return fmt.Errorf("tenant %q is not an id (letters, digits, '_', '=' and '-')", tenant)
	}
	return c.request(ctx, event.ControlSubject(c.Prefix, tenant, op), req, reply)
}

func (c *Client) request(ctx context.Context, subject string, req, reply any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	m, err := c.NC.RequestWithContext(ctx, subject, b)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	var probe struct {
		Error *event.ErrorBody `json:"error"`
	}
	if json.Unmarshal(m.Data, &probe) == nil && probe.Error != nil && (probe.Error.Code == "InvalidRequest" || probe.Error.Code == "InternalError") {
		return &ReplyError{Body: *probe.Error}
	}
	return json.Unmarshal(m.Data, reply)
}

// ReplyError is an error answered by the exporter.
type ReplyError struct{ Body event.ErrorBody }

func (e *ReplyError) Error() string { return e.Body.Code + ": " + e.Body.Message }

// The requests below use the tenant-scoped subjects (contract §7, v1.1),
// which a per-tenant admin's NATS permissions allow.

// TestConnection asks the exporter to test a cached integration.
func (c *Client) TestConnection(ctx context.Context, tenant, id string) (event.TestReply, error) {
	var r event.TestReply
	err := c.RequestTenant(ctx, tenant, event.OpTest, event.TestRequest{IntegrationID: id}, &r)
	return r, err
}

// TestUnsaved asks the exporter to test an integration that is not saved.
// The test changes nothing of a saved integration of the same id.
func (c *Client) TestUnsaved(ctx context.Context, in event.IntegrationPayload) (event.TestReply, error) {
	var r event.TestReply
	ch, err := marshalWire(event.IntegrationChanged{Integration: in})
	if err != nil {
		return r, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(ch, &raw); err != nil {
		return r, err
	}
	err = c.RequestTenant(ctx, in.TenantID, event.OpTest, map[string]json.RawMessage{"integration": raw["integration"]}, &r)
	return r, err
}

// Get asks for a cached integration (credentials redacted).
func (c *Client) Get(ctx context.Context, tenant, id string) (event.GetReply, error) {
	var r event.GetReply
	err := c.RequestTenant(ctx, tenant, event.OpGet, event.GetRequest{IntegrationID: id}, &r)
	return r, err
}

// List asks for every cached integration of tenant (credentials redacted).
func (c *Client) List(ctx context.Context, tenant string) (event.ListReply, error) {
	var r event.ListReply
	err := c.RequestTenant(ctx, tenant, event.OpList, event.ListRequest{}, &r)
	return r, err
}

// Replay asks for a scan to be exported again.
func (c *Client) Replay(ctx context.Context, tenant, scan, integration string) (event.ReplayReply, error) {
	var r event.ReplayReply
	err := c.RequestTenant(ctx, tenant, event.OpReplay, event.ReplayRequest{ScanID: scan, IntegrationID: integration}, &r)
	return r, err
}
