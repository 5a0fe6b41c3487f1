// Command devstack runs the whole exporter locally with one command: an
// embedded NATS JetStream server, an embedded versitygw S3 server (data under
// a local folder), and the exporter itself, in-process, through the same code
// the daemon runs. It then publishes a demo integration and a demo scan of
// realistic Prowler outputs, waits for the export, prints the keys that landed
// in the bucket, and stays up until Ctrl-C so you can point the nats CLI or
// exporterctl at it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/daemon"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

// Demo identities. The S3 keys are the dev server's root user: local only.
const (
	demoAccess   = "devstack"
	demoSecret   = "devstack-secret"
	demoBucket   = "prowler-demo"
	demoTenant   = "demo-tenant"
	demoProvider = "demo-aws-account"
	demoUID      = "111122223333"
	demoIntegID  = "demo-s3"
	demoRegion   = "us-east-1"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".devstack", "folder for the NATS store, the S3 data and the exporter log")
	natsPort := fs.Int("nats-port", 4222, "NATS client port on 127.0.0.1 (0: any free port)")
	s3Port := fs.Int("s3-port", 7070, "S3 port on 127.0.0.1 (0: any free port)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9090", "exporter /metrics, /healthz, /readyz address")
	once := fs.Bool("once", false, "exit after the demo export instead of staying up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := demo(ctx, *dir, *natsPort, *s3Port, *metricsAddr, *once, stdout); err != nil {
		fmt.Fprintf(stderr, "devstack: %v\n", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, dir string, natsPort, s3Port int, metricsAddr string, once bool, out io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "s3"), 0o755); err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	ns, err := natstest.RunNATS(natstest.NATSOptions{Port: natsPort, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return fmt.Errorf("starting NATS: %w", err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	natsURL := ns.ClientURL()
	say("NATS JetStream   %s (store %s)", natsURL, filepath.Join(dir, "nats"))

	if s3Port == 0 {
		if s3Port, err = freePort(); err != nil {
			return err
		}
	}
	s3ctx, stopS3 := context.WithCancel(context.Background())
	defer stopS3()
	endpoint, err := runEmbeddedS3(s3ctx, filepath.Join(dir, "s3"), fmt.Sprintf("127.0.0.1:%d", s3Port), demoAccess, demoSecret)
	if err != nil {
		return fmt.Errorf("starting versitygw: %w", err)
	}
	say("S3 (versitygw)   %s (data %s, access key %q, secret %q)", endpoint, filepath.Join(dir, "s3"), demoAccess, demoSecret)

	s3c := s3.New(s3.Options{
		Region: demoRegion, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(demoAccess, demoSecret, ""),
	})
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(demoBucket)}); err != nil && !alreadyExists(err) {
		return fmt.Errorf("creating bucket %s: %w", demoBucket, err)
	}

	logPath := filepath.Join(dir, "exporter.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logFile), zap.InfoLevel))

	cfg := config.Default()
	cfg.NATSURL = natsURL
	cfg.S3Endpoint = endpoint
	cfg.S3ForcePathStyle = true
	cfg.AllowPlaintextCredentials = true
	// A single-tenant demo: an integration without credentials may write
	// with the exporter's own identity (contract v1.1 §2).
	cfg.AllowAmbientCredentials = true
	cfg.MetricsAddr = metricsAddr
	d := daemon.New(cfg, log, nil)
	if err := d.Start(ctx); err != nil {
		return fmt.Errorf("starting the exporter: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		defer cancel()
		_ = d.Shutdown(sctx)
	}()
	say("exporter         ready; metrics on http://%s/metrics, JSON log in %s", d.MetricsAddr(), logPath)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	cl, err := client.New(nc, cfg.SubjectPrefix)
	if err != nil {
		return err
	}
	if err := cl.PublishIntegration(ctx, event.IntegrationPayload{
		ID: demoIntegID, TenantID: demoTenant, Type: event.TypeAmazonS3, Providers: []string{demoProvider},
		Configuration: event.Configuration{BucketName: demoBucket, OutputDirectory: "prowler-findings"},
		Credentials:   &event.Credentials{AccessKeyID: demoAccess, SecretAccessKey: demoSecret},
	}); err != nil {
		return fmt.Errorf("publishing the demo integration: %w", err)
	}
	say("integration      %s/%s -> s3://%s/prowler-findings (provider %s)", demoTenant, demoIntegID, demoBucket, demoProvider)

	scanID := fmt.Sprintf("demo-scan-%d", time.Now().Unix())
	var files []client.File
	for _, f := range fixtures.ProwlerOutputs(time.Now().UnixNano(), demoUID, 200, []string{"cis_5.0_aws", "aws_foundational_security_best_practices_aws"}) {
		files = append(files, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
	}
	artifacts, err := cl.PutArtifacts(ctx, "", demoTenant, scanID, files)
	if err != nil {
		return err
	}
	statuses := make(chan event.ExportStatus, 8)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	// The watch reads the status stream from its start, not from new
	// messages on: a status published before the watcher's consumer exists
	// is still seen, so nothing needs to wait for it to subscribe. The scan
	// ID (unique per run) filters out earlier runs' statuses.
	go func() {
		_ = cl.WatchStatus(wctx, demoTenant, true, func(s client.Status) bool {
			if s.Export != nil && s.Export.ScanID == scanID {
				statuses <- *s.Export
			}
			return true
		})
	}()
	scan := event.ScanCompleted{
		ScanID: scanID, TenantID: demoTenant,
		Provider:  event.Provider{ID: demoProvider, Type: "aws", UID: demoUID},
		StartedAt: time.Now().UTC().Add(-40 * time.Minute).Truncate(time.Second), Artifacts: artifacts,
	}
	if err := cl.PublishScan(ctx, scan); err != nil {
		return fmt.Errorf("publishing the demo scan: %w", err)
	}
	say("scan             %s published with %d artifacts; waiting for the export…", scanID, len(artifacts))

	timeout := time.After(60 * time.Second)
wait:
	for {
		select {
		case st := <-statuses:
			say("status           %s (attempt %d, %d objects, %d errors)", st.State, st.Attempt, len(st.Objects), len(st.Errors))
			for _, e := range st.Errors {
				say("  error          %s %s: %s", e.Code, e.Key, e.Message)
			}
			if st.State != event.StateRetrying {
				if st.State != event.StateSucceeded {
					return errors.New("the demo export did not succeed")
				}
				break wait
			}
		case <-timeout:
			return errors.New("no final export status within 60s; see " + logPath)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(demoBucket)})
	if err != nil {
		return err
	}
	objs := list.Contents
	sort.Slice(objs, func(i, j int) bool { return aws.ToString(objs[i].Key) < aws.ToString(objs[j].Key) })
	say("\ns3://%s now holds:", demoBucket)
	for _, o := range objs {
		say("  %10d  %s", aws.ToInt64(o.Size), aws.ToString(o.Key))
	}
	if once {
		return nil
	}
	say(`
The stack stays up until Ctrl-C. Try:
  nats --server %[1]s sub 'prowler.exports.status.>'
  go run ./cmd/exporterctl --server %[1]s status watch
  go run ./cmd/exporterctl --server %[1]s integration test --tenant %[2]s --id %[3]s
  go run ./cmd/exporterctl --server %[1]s scan publish --tenant %[2]s --provider-id %[4]s --provider-uid %[5]s --wait <folder of Prowler outputs>
  AWS_ACCESS_KEY_ID=%[6]s AWS_SECRET_ACCESS_KEY=%[7]s aws --endpoint-url %[8]s s3 ls --recursive s3://%[9]s`,
		natsURL, demoTenant, demoIntegID, demoProvider, demoUID, demoAccess, demoSecret, endpoint, demoBucket)
	<-ctx.Done()
	say("stopping")
	return nil
}

func alreadyExists(err error) bool {
	var owned interface{ ErrorCode() string }
	if errors.As(err, &owned) {
		switch owned.ErrorCode() {
		case "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
