package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/consumer"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// env is one test's world: NATS, S3, an exporter and a client.
type env struct {
	t    testing.TB
	ns   *server.Server
	s3   *s3test.S3Server
	cfg  *config.Config
	d    *daemon.Daemon
	reg  *prometheus.Registry // the running exporter's metrics
	nc   *nats.Conn
	cl   *client.Client
	logs *observer.ObservedLogs

	mu       sync.Mutex
	statuses []client.Status
	changed  chan struct{}
}

// sharedS3 is one versitygw process for the whole test binary; each test
// uses its own buckets.
var (
	sharedS3Once sync.Once
	sharedS3     *s3test.S3Server
	sharedS3Err  error
)

func s3Server(t testing.TB) *s3test.S3Server {
	sharedS3Once.Do(func() { sharedS3, sharedS3Err = s3test.RunS3(s3test.S3Options{}) })
	if sharedS3Err != nil {
		t.Fatalf("starting versitygw: %v", sharedS3Err)
	}
	return sharedS3
}

// newEnv starts NATS and an exporter (configured by mutate) against the
// shared S3 server, and begins recording status events.
func newEnv(t testing.TB, mutate func(*config.Config)) *env {
	t.Helper()
	return newEnvWithS3(t, s3Server(t), mutate)
}

// newEnvNoExporter is newEnv without the in-process exporter (the test runs
// its own, as a process); the streams are created by it.
func newEnvNoExporter(t testing.TB) *env {
	t.Helper()
	return newEnvFull(t, s3Server(t), nil, false)
}

// newEnvWithS3 is newEnv against a given S3 server.
func newEnvWithS3(t testing.TB, s3srv *s3test.S3Server, mutate func(*config.Config)) *env {
	t.Helper()
	return newEnvFull(t, s3srv, mutate, true)
}

func newEnvFull(t testing.TB, s3srv *s3test.S3Server, mutate func(*config.Config), withExporter bool) *env {
	t.Helper()
	ns := natstest.StartNATS(t)
	return newEnvOn(t, ns, ns.ClientURL(), s3srv, mutate, withExporter)
}

// newEnvOn is newEnvFull on a given NATS server, which the test's client
// reaches at clientURL (the exporter too, unless mutate says otherwise).
func newEnvOn(t testing.TB, ns *server.Server, clientURL string, s3srv *s3test.S3Server, mutate func(*config.Config), withExporter bool) *env {
	t.Helper()
	e := &env{t: t, ns: ns, s3: s3srv, changed: make(chan struct{})}
	cfg := config.Default()
	cfg.NATSURL = clientURL
	cfg.S3Endpoint = e.s3.Endpoint()
	cfg.S3ForcePathStyle = true
	cfg.AllowPlaintextCredentials = true
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.Backoff = []time.Duration{200 * time.Millisecond}
	cfg.RetryBaseDelay = 20 * time.Millisecond
	// The SDK's own waits between the tries of one request (up to 20 s by
	// default) are what every test through a faulty S3 would sit out; the
	// tries themselves are the same.
	cfg.S3RetryMaxBackoff = 50 * time.Millisecond
	cfg.ShutdownGrace = 5 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	e.cfg = cfg
	if withExporter {
		e.start()
	} else {
		// Create the streams as the exporter would, so the test can publish
		// and watch before the exporter process starts.
		ensureStreams(t, cfg)
	}
	nc, err := nats.Connect(clientURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	e.cl, err = client.New(nc, cfg.SubjectPrefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.cl.WatchStatus(ctx, "", true, func(s client.Status) bool {
			e.mu.Lock()
			e.statuses = append(e.statuses, s)
			close(e.changed)
			e.changed = make(chan struct{})
			e.mu.Unlock()
			return true
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// start starts (or restarts) the exporter.
func (e *env) start() {
	e.t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	reg := prometheus.NewRegistry()
	d := daemon.New(e.cfg, zap.New(core), reg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		e.t.Fatalf("starting the exporter: %v", err)
	}
	e.d, e.reg = d, reg
	e.t.Cleanup(func() { e.stop() })
}

// stop shuts the exporter down (idempotent).
func (e *env) stop() {
	if e.d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.d.Shutdown(ctx); err != nil {
		e.t.Logf("shutdown: %v", err)
	}
	e.d = nil
}

var bucketSeq struct {
	sync.Mutex
	n int
}

// bucket creates a fresh bucket.
func (e *env) bucket(name string) string {
	e.t.Helper()
	bucketSeq.Lock()
	bucketSeq.n++
	name = fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1_000_000, bucketSeq.n)
	bucketSeq.Unlock()
	_, err := e.s3.RootClient().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		e.t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

// integration returns an integration payload using the S3 root credentials.
func (e *env) integration(tenant, id, bucket string, providers ...string) event.IntegrationPayload {
	return event.IntegrationPayload{
		ID: id, TenantID: tenant, Type: event.TypeAmazonS3, Providers: providers,
		Configuration: event.Configuration{BucketName: bucket, OutputDirectory: "output"},
		Credentials:   &event.Credentials{AccessKeyID: e.s3.AccessKey, SecretAccessKey: e.s3.SecretKey},
	}
}

func (e *env) put(in event.IntegrationPayload) {
	e.t.Helper()
	if err := e.cl.PublishIntegration(context.Background(), in); err != nil {
		e.t.Fatal(err)
	}
}

// fileSet is the artifacts of a scan, by artifact name.
type fileSet map[string]fixtures.OutputFile

func prowlerFiles(seed int64, uid string, frameworks ...string) ([]fixtures.OutputFile, fileSet) {
	files := fixtures.ProwlerOutputs(seed, uid, 50, frameworks)
	set := fileSet{}
	for _, f := range files {
		set[event.Artifact{Format: f.Format, Framework: f.Framework}.Name()] = f
	}
	return files, set
}

// publishScan stores files in the object store and publishes the event.
func (e *env) publishScan(tenant, provider, uid, scanID string, files []fixtures.OutputFile) event.ScanCompleted {
	e.t.Helper()
	var cf []client.File
	for _, f := range files {
		cf = append(cf, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
	}
	arts, err := e.cl.PutArtifacts(context.Background(), "", tenant, scanID, cf)
	if err != nil {
		e.t.Fatal(err)
	}
	scan := event.ScanCompleted{ScanID: scanID, TenantID: tenant,
		Provider:  event.Provider{ID: provider, Type: "aws", UID: uid},
		StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC), Artifacts: arts}
	e.publish(scan)
	return scan
}

func (e *env) publish(scan event.ScanCompleted) {
	e.t.Helper()
	if err := e.cl.PublishScan(context.Background(), scan); err != nil {
		e.t.Fatal(err)
	}
}

// waitExport waits for an export status of (scan, integration) in a final
// state (succeeded or failed) and returns it.
func (e *env) waitExport(scanID, integrationID string) event.ExportStatus {
	e.t.Helper()
	st, ok := e.waitFor(30*time.Second, func(s client.Status) bool {
		return s.Export != nil && s.Export.ScanID == scanID && s.Export.IntegrationID == integrationID &&
			s.Export.State != event.StateRetrying
	})
	if !ok {
		e.t.Fatalf("no final export status for scan %s integration %s; statuses: %s\nexporter log:\n%s", scanID, integrationID, e.dump(), e.logText())
	}
	return *st.Export
}

// waitFor waits until a recorded status satisfies match.
func (e *env) waitFor(timeout time.Duration, match func(client.Status) bool) (client.Status, bool) {
	deadline := time.After(timeout)
	for {
		e.mu.Lock()
		for _, s := range e.statuses {
			if match(s) {
				e.mu.Unlock()
				return s, true
			}
		}
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return client.Status{}, false
		}
	}
}

// exports returns the recorded export statuses of a scan and integration.
func (e *env) exports(scanID, integrationID string) []event.ExportStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event.ExportStatus
	for _, s := range e.statuses {
		if s.Export != nil && s.Export.ScanID == scanID && s.Export.IntegrationID == integrationID {
			out = append(out, *s.Export)
		}
	}
	return out
}

func (e *env) dump() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, s := range e.statuses {
		if s.Export != nil {
			fmt.Fprintf(&b, "\n  export %s/%s %s errors=%v", s.Export.ScanID, s.Export.IntegrationID, s.Export.State, s.Export.Errors)
		} else {
			fmt.Fprintf(&b, "\n  connection %s connected=%v error=%v", s.Connection.IntegrationID, s.Connection.Connected, s.Connection.Error)
		}
	}
	return b.String()
}

// object is an object read back from the S3 server.
type object struct {
	Key         string
	Body        []byte
	ContentType string
}

// objects lists and reads every object of a bucket.
func (e *env) objects(bucket string) map[string]object {
	e.t.Helper()
	return e.objectsOn(e.s3.RootClient(), bucket)
}

// objectsOn is objects through client c (another S3 server's).
func (e *env) objectsOn(c *s3.Client, bucket string) map[string]object {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]object{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			e.t.Fatalf("listing %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				e.t.Fatalf("reading %s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				e.t.Fatal(err)
			}
			out[aws.ToString(o.Key)] = object{Key: aws.ToString(o.Key), Body: b, ContentType: aws.ToString(g.ContentType)}
		}
	}
	return out
}

func keysOf(m map[string]object) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// multipartUploads lists the open multipart uploads of a bucket.
func (e *env) multipartUploads(bucket string) []string {
	e.t.Helper()
	out, err := e.s3.RootClient().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		e.t.Fatalf("listing multipart uploads of %s: %v", bucket, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key)+" (upload "+aws.ToString(u.UploadId)+", initiated "+aws.ToTime(u.Initiated).Format(time.RFC3339Nano)+")")
	}
	return keys
}

var errNotFound = errors.New("not found")

func ensureStreams(t testing.TB, cfg *config.Config) {
	t.Helper()
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	topo := consumer.Topology{Prefix: cfg.SubjectPrefix, Replicas: 1, ScanMaxAge: cfg.ScanMaxAge}
	if _, err := consumer.EnsureStreams(context.Background(), js, topo, true); err != nil {
		t.Fatal(err)
	}
}

// logText renders the exporter's log so far.
func (e *env) logText() string {
	if e.logs == nil {
		return ""
	}
	var b strings.Builder
	for _, l := range e.logs.All() {
		fmt.Fprintf(&b, "  %s %s", l.Level, l.Message)
		for k, v := range l.ContextMap() {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
