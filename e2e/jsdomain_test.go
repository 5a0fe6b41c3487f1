package e2e

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// TestJSDomainLeafAndHub runs an export across a leaf node connection, both
// ways round: the streams live in the hub's JetStream domain, the exporter
// (S3EXPORTER_NATS_JS_DOMAIN=hub) and the scan engine (client.WithJSDomain,
// exporterctl's --js-domain) each sit on one side. The leaf has a JetStream
// of its own, so a client there that forgot the domain would quietly talk
// to the wrong one; the server denies $JS.API.> across the connection.
func TestJSDomainLeafAndHub(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: NATS hub and leaf, versitygw, the exporter")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	s3srv := s3Server(t)
	for _, tc := range []struct {
		name           string
		exporterOnLeaf bool
	}{
		{"scan engine on the leaf, exporter at the hub", false},
		{"exporter on the leaf, scan engine at the hub", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub, leaf := natstest.StartHubAndLeaf(t)
			exporterSrv, engineSrv := hub, leaf
			if tc.exporterOnLeaf {
				exporterSrv, engineSrv = leaf, hub
			}
			// The hub's JetStream API reaches the leaf once the hub's
			// interest has crossed the connection; the exporter would
			// otherwise start against a JetStream that does not answer yet.
			waitJetStream(t, leaf.ClientURL(), natstest.HubDomain)

			e := newDomainEnv(t, exporterSrv.ClientURL(), engineSrv.ClientURL(), s3srv)
			bucket := e.bucket("jsdomain")
			in := e.integration("tenant-a", "integ-1", "s3://"+bucket, "prov-1")
			putUntilStored(t, e, in)
			files, set := prowlerFiles(7, "111122223333", frameworks...)
			e.publishScan("tenant-a", "prov-1", "111122223333", "scan-1", files)

			st := e.waitExport("scan-1", "integ-1")
			if st.State != event.StateSucceeded || len(st.Errors) != 0 {
				t.Fatalf("export state %s, errors %v", st.State, st.Errors)
			}
			got := e.objects(bucket)
			want := wantKeys("output")
			if len(got) != len(want) || len(st.Objects) != len(want) {
				t.Fatalf("bucket holds %v, status lists %d objects; want %d", keysOf(got), len(st.Objects), len(want))
			}
			for name, key := range want {
				if o, ok := got[key]; !ok || !bytes.Equal(o.Body, set[name].Body) {
					t.Errorf("%s at %s: missing or not the artifact's bytes (bucket holds %v)", name, key, keysOf(got))
				}
			}

			// Everything lives at the hub: the streams, the object store
			// and the ledger bucket were made through the domain, not in
			// the leaf's own JetStream.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			hubJS, leafJS := plainJetStream(t, hub), plainJetStream(t, leaf)
			topo := streams.Topology{Prefix: e.cfg.SubjectPrefix}
			for _, stream := range []string{
				topo.ScansStream(), topo.IntegrationsStream(), topo.StatusStream(),
				"KV_" + topo.LedgerBucket(), "OBJ_" + client.DefaultObjectStore,
			} {
				if _, err := hubJS.Stream(ctx, stream); err != nil {
					t.Errorf("the hub has no stream %s: %v", stream, err)
				}
				if _, err := leafJS.Stream(ctx, stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Errorf("the leaf's JetStream, stream %s: err = %v, want not found", stream, err)
				}
			}
		})
	}
}

// newDomainEnv is newEnvOn for two servers: the exporter connects to
// exporterURL, the scan engine's client to engineURL, both with the hub's
// domain.
func newDomainEnv(t *testing.T, exporterURL, engineURL string, s3srv *s3test.S3Server) *env {
	t.Helper()
	e := &env{t: t, s3: s3srv, changed: make(chan struct{})}
	cfg := config.Default()
	cfg.NATSURL = exporterURL
	cfg.NATSJSDomain = natstest.HubDomain
	cfg.S3Endpoint = s3srv.Endpoint()
	cfg.S3ForcePathStyle = true
	cfg.AllowPlaintextCredentials = true
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.Backoff = []time.Duration{200 * time.Millisecond}
	cfg.RetryBaseDelay = 20 * time.Millisecond
	cfg.ShutdownGrace = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	e.start()

	nc, err := nats.Connect(engineURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	if e.cl, err = client.New(nc, cfg.SubjectPrefix, client.WithJSDomain(natstest.HubDomain)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := e.cl.WatchStatus(ctx, "", true, func(s client.Status) bool {
			e.mu.Lock()
			e.statuses = append(e.statuses, s)
			close(e.changed)
			e.changed = make(chan struct{})
			e.mu.Unlock()
			return true
		})
		if err != nil && ctx.Err() == nil {
			t.Errorf("watching statuses through the domain: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// waitJetStream waits until the JetStream of domain answers a client of
// url.
func waitJetStream(t *testing.T, url, domain string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, domain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := js.AccountInfo(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("JetStream domain %s never answered at %s: %v", domain, url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putUntilStored publishes the integration, again while no stream answers:
// the interest of the streams the exporter just made at the hub reaches a
// leaf asynchronously. (A scan engine meets the same at its first publish
// after a leaf connection comes up; JetStream publishes are idempotent per
// message ID, and an integration upsert is idempotent anyway.)
func putUntilStored(t *testing.T, e *env, in event.IntegrationPayload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := e.cl.PublishIntegration(ctx, in)
		if err == nil {
			return
		}
		if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			t.Fatalf("publishing the integration: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func plainJetStream(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
