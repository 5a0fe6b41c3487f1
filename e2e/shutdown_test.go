package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

var (
	exporterBinOnce sync.Once
	exporterBin     string
	exporterBinErr  error
)

// buildExporter builds the s3-exporter command once per test binary.
func buildExporter(t *testing.T) string {
	t.Helper()
	exporterBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "s3-exporter-bin-")
		if err != nil {
			exporterBinErr = err
			return
		}
		exporterBin = filepath.Join(dir, "s3-exporter")
		out, err := exec.Command("go", "build", "-o", exporterBin, "github.com/prowler-cloud/s3-exporter/cmd/s3-exporter").CombinedOutput()
		if err != nil {
			exporterBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if exporterBinErr != nil {
		t.Fatal(exporterBinErr)
	}
	return exporterBin
}

// process is the exporter running as a separate process.
type process struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

func startProcess(t *testing.T, bin string, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, log: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func TestSIGTERMDuringAMultipartUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the exporter as a process")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	bin := buildExporter(t)
	e := newEnvNoExporter(t)
	b := e.bucket("sigterm")
	proxy := s3test.NewFaultProxy(t, e.s3.Endpoint())
	proxy.SetFaults(s3test.Faults{BytesPerSecond: 8 << 20}) // a 48 MiB upload takes ~6 s
	env := map[string]string{
		"S3EXPORTER_NATS_URL":                    e.ns.ClientURL(),
		"S3EXPORTER_S3_ENDPOINT":                 proxy.URL(),
		"S3EXPORTER_S3_FORCE_PATH_STYLE":         "true",
		"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS": "true",
		"S3EXPORTER_METRICS_ADDR":                "127.0.0.1:0",
		"S3EXPORTER_SHUTDOWN_GRACE":              "1s",
		"S3EXPORTER_PART_SIZE":                   "5242880",
		"S3EXPORTER_MULTIPART_THRESHOLD":         "5242880",
		"S3EXPORTER_BACKOFF":                     "200ms",
	}
	p := startProcess(t, bin, env)
	e.put(e.integration("tenant-a", "interrupted", b, "prov-1"))

	big := make([]byte, 48<<20)
	for i := range big {
		big[i] = byte(i*31 + i>>12)
	}
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-sigterm",
		[]fixtures.OutputFile{{Format: "json-ocsf", FileName: "out.ocsf.json", Body: big}})

	// Wait until the multipart upload is under way.
	deadline := time.Now().Add(30 * time.Second)
	for len(e.multipartUploads(b)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no multipart upload started; exporter log:\n%s", p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exporter exited with %v; log:\n%s", err, p.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("exporter still running 15 s after SIGTERM (grace 1 s); log:\n%s", p.log)
	}
	t.Logf("exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if ups := e.multipartUploads(b); len(ups) != 0 {
		t.Fatalf("multipart uploads left open after shutdown: %v", ups)
	}

	if got := e.objects(b); len(got) != 0 {
		t.Fatalf("a partial object is visible: %v", keysOf(got))
	}

	// Restarted, the exporter gets the scan again and completes it.
	proxy.SetFaults(s3test.Faults{})
	p2 := startProcess(t, bin, env)
	st := e.waitExport("scan-sigterm", "interrupted")
	if st.State != event.StateSucceeded {
		t.Fatalf("after restart: %s %v; log:\n%s", st.State, st.Errors, p2.log)
	}
	got := e.objects(b)
	o, ok := got["output/json-ocsf/prowler-output-111122223333-20250805120000.ocsf.json"]
	if !ok || !bytes.Equal(o.Body, big) {
		t.Fatalf("after restart the object is missing or differs: %v", keysOf(got))
	}
	if ups := e.multipartUploads(b); len(ups) != 0 {
		entries, _ := e.s3.AccessLog()
		var reqs []string
		for _, en := range entries {
			if en.Bucket == b {
				reqs = append(reqs, fmt.Sprintf("%s %s %d %s %s", en.Time.Format("15:04:05.000"), en.Operation, en.Status, en.ErrorCode, en.URI))
			}
		}
		t.Fatalf("multipart uploads left open: %v; requests:\n%s", ups, strings.Join(reqs, "\n"))
	}
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-p2.done:
	case <-ctx.Done():
		t.Fatal("second exporter did not stop")
	}
}
