package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// Linux only: renameat2(RENAME_EXCHANGE) and FIFOs.

// While the exporter reads A's scans, a writer under the root swaps, in a
// loop, each scan's file with a symlink to a file outside the root
// (renameat2(RENAME_EXCHANGE), so the name always exists). Each artifact
// lands with A's bytes or is refused; the outside bytes never land.
func TestSourcesSymlinkSwappedInALoopNeverExportsTheOutsideFile(t *testing.T) {
	if testing.Short() {
		// A still link out of the root is refused under -short too:
		// TestRefusedSourcesUploadNothing, TestSourcesFileOutsideTheTenantsScanFolderIsRefused.
		t.Skip("chaos: a writer swaps symlinks in a tight loop for the whole export")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, root, b := fileRootEnv(t)
	outside := filepath.Join(t.TempDir(), "secret.csv")
	secret := []byte("SECRET outside every root\n")
	writeFile(t, outside, secret)
	own := []byte("tenant-a findings\n")
	const scans = 20
	var pairs [][2]string
	for i := range scans {
		dir := filepath.Join(root, "tenant-a", fmt.Sprintf("swap-%d", i))
		for _, name := range []string{"out.csv", "out.html"} {
			writeFile(t, filepath.Join(dir, name), own)
			if err := os.Symlink(outside, filepath.Join(dir, name+".evil")); err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, [2]string{filepath.Join(dir, name), filepath.Join(dir, name+".evil")})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var swaps int
	var swapErr error
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, p := range pairs {
				if err := unix.Renameat2(unix.AT_FDCWD, p[0], unix.AT_FDCWD, p[1], unix.RENAME_EXCHANGE); err != nil {
					swapErr = err
					return
				}
				swaps++
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	for i := range scans {
		dir := filepath.Join(root, "tenant-a", fmt.Sprintf("swap-%d", i))
		e.publish(fileScan(fmt.Sprintf("swap-%d", i), fmt.Sprintf("1111%08d", i),
			event.Artifact{Format: "csv", Source: "file://" + filepath.Join(dir, "out.csv")},
			event.Artifact{Format: "html", Source: "file://" + filepath.Join(dir, "out.html")}))
	}
	landed, refused := 0, 0
	for i := range scans {
		st := e.waitExport(fmt.Sprintf("swap-%d", i), "a-s3")
		landed += len(st.Objects)
		for _, er := range st.Errors {
			if er.Code != string(errcode.SourceRefused) || er.Retryable {
				t.Errorf("scan %d: want landed or a permanent SourceRefused, got %+v", i, er)
			}
			refused++
		}
	}
	cancel()
	wg.Wait()
	if swapErr != nil {
		t.Fatalf("swapping: %v", swapErr)
	}
	got := e.noForeignBytes(t, b, secret)
	for k, o := range got {
		if !bytes.Equal(o.Body, own) {
			t.Errorf("%s holds %q", k, o.Body)
		}
	}
	t.Logf("%d swaps; %d artifacts landed, %d refused", swaps, landed, refused)
	if len(got) != landed || landed+refused != 2*scans {
		t.Fatalf("%d objects in the bucket, %d landed and %d refused of %d artifacts", len(got), landed, refused, 2*scans)
	}
}

// A FIFO under the root fails its artifact with SourceRefused at once (an
// open that waited for a writer would hold the export, with heartbeats,
// forever), and the daemon, a process here, still stops on SIGTERM.
func TestSourcesFIFOIsRefusedAndSIGTERMStillStopsTheDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the exporter as a process")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	bin := buildExporter(t)
	root := t.TempDir()
	e := newEnvNoExporter(t)
	b := e.bucket("fifo")
	p := startProcess(t, bin, map[string]string{
		"S3EXPORTER_NATS_URL":                    e.ns.ClientURL(),
		"S3EXPORTER_S3_ENDPOINT":                 e.s3.Endpoint(),
		"S3EXPORTER_S3_FORCE_PATH_STYLE":         "true",
		"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS": "true",
		"S3EXPORTER_METRICS_ADDR":                "127.0.0.1:0",
		"S3EXPORTER_SHUTDOWN_GRACE":              "1s",
		"S3EXPORTER_FILE_SOURCE_ROOTS":           root,
	})
	e.put(e.integration("tenant-a", "a-s3", b, "prov-a"))
	own := []byte("tenant-a findings\n")
	for _, scan := range []string{"fifo-1", "fifo-2"} {
		dir := filepath.Join(root, "tenant-a", scan)
		writeFile(t, filepath.Join(dir, "out.csv"), own)
		if err := syscall.Mkfifo(filepath.Join(dir, "out.html"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.publish(fileScan(scan, "111122223333",
			event.Artifact{Format: "html", Source: "file://" + filepath.Join(dir, "out.html")},
			event.Artifact{Format: "csv", Source: "file://" + filepath.Join(dir, "out.csv")}))
	}
	for _, scan := range []string{"fifo-1", "fifo-2"} {
		st := e.waitExport(scan, "a-s3")
		wantRefused(t, st, nil, "html")
		if !strings.Contains(st.Errors[0].Message, "FIFO") {
			t.Errorf("the refusal does not say why: %q", st.Errors[0].Message)
		}
	}
	// (The automatic connection test may be writing its own object.)
	if got := keysOf(e.objects(b)); !slices.Equal(slices.DeleteFunc(got, func(k string) bool { return !strings.HasPrefix(k, "output/") }),
		[]string{"output/csv/prowler-output-111122223333-20250805120000.csv"}) {
		t.Fatalf("want the csv only, got %v", got)
	}

	// A third FIFO scan in flight when SIGTERM comes.
	dir := filepath.Join(root, "tenant-a", "fifo-3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "out.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.publish(fileScan("fifo-3", "111122223333", event.Artifact{Format: "csv", Source: "file://" + filepath.Join(dir, "out.csv")}))
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Generous: the point is that it exits at all (issue 11.7: still
	// running 40 s after SIGTERM); the grace is 1 s.
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exporter exited with %v; log:\n%s", err, p.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("exporter still running 30 s after SIGTERM (grace 1 s); log:\n%s", p.log)
	}
}
