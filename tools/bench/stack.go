package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// objectStore is the JetStream object store the benchmark's artifacts live in.
const objectStore = "BENCH_OUTPUTS"

// stack is the servers of one run: nats-server and versitygw as their own
// processes, and the harness's connection to them.
type stack struct {
	work        string
	self        string // this program, run again for the subcommands
	exporterBin string

	nats    *child
	natsURL string
	s3      *s3test.S3Server
	s3PID   int

	nc      *nats.Conn
	js      jetstream.JetStream
	keyText string      // S3EXPORTER_CREDENTIALS_KEY
	key     *fernet.Key // encrypts the integrations' credentials

	extraEnv map[string]string // added to every exporter's environment (-exporter-env)
}

// newStack builds the exporter and starts the servers under work.
//
// versitygw closes every connection after one request unless it runs with
// --keep-alive (keepAlive, -s3-keep-alive): every client then spends about a
// tenth of its CPU on connecting and closing (docs/BENCHMARKS.md, workload
// 1). S3 endpoints keep connections alive, but every figure and target of
// BENCHMARKS.md was set without it: with it the exporter's no-delay rate in
// workload 5 nearly doubles, and so does the reference of that workload's
// ratios. It is off by default, as before.
func newStack(work string, keepAlive bool, logf func(string, ...any)) (*stack, error) {
	s := &stack{work: work}
	var err error
	if s.self, err = os.Executable(); err != nil {
		return nil, err
	}
	s.exporterBin = filepath.Join(work, "bin", "s3-exporter")
	logf("building s3-exporter")
	build := exec.Command("go", "build", "-trimpath", "-o", s.exporterBin, "github.com/prowler-cloud/s3-exporter/cmd/s3-exporter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build s3-exporter: %v\n%s", err, out)
	}
	logf("starting nats-server (own process)")
	if err := s.startNATS(); err != nil {
		return nil, err
	}
	logf("starting versitygw (own process)")
	s3opts := s3test.S3Options{Dir: filepath.Join(work, "versitygw")}
	if keepAlive {
		s3opts.ExtraArgs = []string{"--keep-alive"}
	}
	s.s3, err = s3test.RunS3(s3opts)
	if err != nil {
		s.close()
		return nil, err
	}
	if s.s3PID, err = findPID("--port", fmt.Sprintf("127.0.0.1:%d", s.s3.Port()), "posix"); err != nil {
		s.close()
		return nil, err
	}
	s.nc, err = nats.Connect(s.natsURL, nats.Name("bench-harness"))
	if err != nil {
		s.close()
		return nil, err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.close()
		return nil, err
	}
	if s.keyText, err = fernet.GenerateKey(); err != nil {
		s.close()
		return nil, err
	}
	if s.key, err = fernet.ParseKey(s.keyText); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *stack) startNATS() error {
	c, url, err := startURLChild(s.self, "nats-server", "nats://", "natsd", filepath.Join(s.work, "nats"))
	if err != nil {
		return err
	}
	s.nats, s.natsURL = c, url
	return nil
}

// runNATSD is the natsd subcommand: a JetStream server storing under dir
// that prints its URL and runs until SIGTERM.
func runNATSD(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: bench natsd <store dir>")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	srv, err := natstest.RunNATS(natstest.NATSOptions{StoreDir: args[0]})
	if err != nil {
		return err
	}
	// SIGUSR1 and SIGUSR2 start and stop a CPU profile of the server,
	// written beside its store (the profiled round of workload 1).
	stopProf, err := profileOnSignals(filepath.Join(filepath.Dir(args[0]), "nats-server.cpu.pprof"), false, false, func(err error) {
		fmt.Fprintf(os.Stderr, "bench natsd: cpu profile: %v\n", err)
	})
	if err != nil {
		return err
	}
	defer stopProf()
	fmt.Println(srv.ClientURL())
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}

func (s *stack) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.s3 != nil {
		_ = s.s3.Close()
	}
	if s.nats != nil {
		_ = s.nats.stop(15 * time.Second)
	}
}

// exporterEnv is the exporter's configuration: defaults, except where the
// servers are.
func (s *stack) exporterEnv(prefix string) map[string]string {
	env := map[string]string{
		"S3EXPORTER_NATS_URL":            s.natsURL,
		"S3EXPORTER_S3_ENDPOINT":         s.s3.Endpoint(),
		"S3EXPORTER_S3_FORCE_PATH_STYLE": "true",
		"S3EXPORTER_METRICS_ADDR":        "127.0.0.1:0",
		"S3EXPORTER_CREDENTIALS_KEY":     s.keyText,
		"S3EXPORTER_SUBJECT_PREFIX":      prefix,
	}
	for k, v := range s.extraEnv {
		env[k] = v
	}
	return env
}

// startExporter runs the built s3-exporter binary for prefix.
func (s *stack) startExporter(name, prefix string, extra map[string]string) (*exporterProc, error) {
	env := s.exporterEnv(prefix)
	for k, v := range extra {
		env[k] = v
	}
	return startExporter(name, s.exporterBin, nil, env, filepath.Join(s.work, "logs", name+".log"), 5*time.Minute)
}

// startProfiledExporter runs the same daemon inside this program (the
// exporter subcommand) with a CPU profile written to profPath on exit.
func (s *stack) startProfiledExporter(name, prefix, profPath string, fromStart bool, extra map[string]string) (*exporterProc, error) {
	env := s.exporterEnv(prefix)
	for k, v := range extra {
		env[k] = v
	}
	return startExporter(name, s.self, []string{"exporter", "-cpuprofile", profPath, fmt.Sprintf("-from-start=%v", fromStart)}, env,
		filepath.Join(s.work, "logs", name+".log"), 5*time.Minute)
}

// serverConf is how a baseline child reaches the servers.
type serverConf struct {
	NATSURL   string `json:"nats_url"`
	Endpoint  string `json:"endpoint"`
	Region    string `json:"region"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

func (s *stack) conf() serverConf {
	return serverConf{NATSURL: s.natsURL, Endpoint: s.s3.Endpoint(), Region: s.s3.Region(),
		AccessKey: s.s3.AccessKey, SecretKey: s.s3.SecretKey}
}

func (s *stack) logPath(name string) string { return filepath.Join(s.work, "logs", name+".log") }

// createBucket makes a bucket for one round.
func (s *stack) createBucket(ctx context.Context, name string) error {
	_, err := s.s3.RootClient().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

// countObjects returns the number of objects and bytes in a bucket.
func (s *stack) countObjects(ctx context.Context, bucket string) (int, int64, error) {
	p := s3.NewListObjectsV2Paginator(s.s3.RootClient(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	n, size := 0, int64(0)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, 0, err
		}
		for _, o := range out.Contents {
			n++
			size += aws.ToInt64(o.Size)
		}
	}
	return n, size, nil
}

// dropBucket removes a round's bucket from versitygw's posix directory, so
// the disk does not fill up over the rounds.
func (s *stack) dropBucket(name string) {
	_ = os.RemoveAll(filepath.Join(s.s3.DataDir(), name))
}

// client returns the peer-side client for a subject prefix.
func (s *stack) client(prefix string) (*client.Client, error) {
	return client.New(s.nc, prefix)
}

// integration returns an integration whose credentials (the S3 root keys)
// travel encrypted, as Prowler App sends them.
func (s *stack) integration(tenant, id, bucket string, providers ...string) (event.IntegrationPayload, error) {
	creds, err := event.Credentials{AccessKeyID: s.s3.AccessKey, SecretAccessKey: s.s3.SecretKey}.WireJSON()
	if err != nil {
		return event.IntegrationPayload{}, err
	}
	tok, err := s.key.Encrypt(creds, time.Now())
	if err != nil {
		return event.IntegrationPayload{}, err
	}
	enabled := true
	return event.IntegrationPayload{
		ID: id, TenantID: tenant, Type: event.TypeAmazonS3, Enabled: &enabled, Providers: providers,
		Configuration:        event.Configuration{BucketName: bucket, OutputDirectory: "prowler-findings"},
		EncryptedCredentials: string(tok),
	}, nil
}

// putIntegration publishes an integration and waits for the exporter's
// connection test of it, so that the test is not inside a timed window.
func (s *stack) putIntegration(ctx context.Context, hub *statusHub, cl *client.Client, in event.IntegrationPayload) error {
	w := hub.expectConnection(in.ID)
	if err := cl.PublishIntegration(ctx, in); err != nil {
		return err
	}
	select {
	case st := <-w:
		if !st.Connected {
			return fmt.Errorf("integration %s: connection test failed: %+v", in.ID, st.Error)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("integration %s: no connection status: %w", in.ID, ctx.Err())
	}
}

// publishScan publishes a scan-completed event. msgID is the JetStream
// de-duplication id: the scan id with a round tag, since every round
// publishes the same scans again.
func (s *stack) publishScan(ctx context.Context, prefix string, sc event.ScanCompleted, msgID string) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(event.Subject(prefix, event.ScansCompleted, sc.TenantID, sc.Provider.ID))
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	_, err = s.js.PublishMsg(ctx, msg)
	return err
}
