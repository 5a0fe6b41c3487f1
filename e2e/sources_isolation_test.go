package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// Contract v1.1 §3, tried as a hostile tenant would: tenant A announces
// sources that lead to what is not A's, and nothing but A's own bytes ever
// lands in A's bucket.

// wantRefused checks that an export failed with exactly the given artifacts
// refused, permanently, and that no refusal quotes forbidden content.
func wantRefused(t *testing.T, st event.ExportStatus, forbidden []byte, formats ...string) {
	t.Helper()
	if st.State != event.StateFailed || len(st.Errors) != len(formats) {
		t.Fatalf("want failed with %d SourceRefused, got %s %+v", len(formats), st.State, st.Errors)
	}
	var got []string
	for _, er := range st.Errors {
		got = append(got, er.Format)
		if er.Code != string(errcode.SourceRefused) || er.Retryable {
			t.Errorf("want a permanent SourceRefused, got %+v", er)
		}
		if len(forbidden) > 0 && strings.Contains(er.Message, string(forbidden)) {
			t.Errorf("the refusal quotes the forbidden content: %q", er.Message)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(formats))
	if !slices.Equal(got, want) {
		t.Errorf("refused %v, want %v", got, want)
	}
}

// noForeignBytes fails if any object of bucket holds forbidden.
func (e *env) noForeignBytes(t *testing.T, bucket string, forbidden []byte) map[string]object {
	t.Helper()
	got := e.objects(bucket)
	for k, o := range got {
		if bytes.Contains(o.Body, forbidden) {
			t.Fatalf("%s/%s holds another tenant's bytes", bucket, k)
		}
	}
	return got
}

func TestSourcesLinkOutOfThePrefixIsRefused(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	ctx := context.Background()
	bA := e.bucket("links-a")
	e.putAndWaitConn(e.integration("tenant-a", "a-s3", bA, "prov-a"))

	// Tenant B's scan, in the same object store, exported by nobody here.
	secret := []byte("tenant-b findings: SECRET-B\n")
	arts, err := e.cl.PutArtifacts(ctx, "", "tenant-b", "scan-b", []client.File{{Format: "csv", Name: "out.csv", Body: bytes.NewReader(secret)}})
	if err != nil {
		t.Fatal(err)
	}
	_ = arts
	// Another store, under the very name A may read.
	other, err := e.cl.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "OTHER_OUTPUTS"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.PutBytes(ctx, "tenant-a/scan-a/elsewhere.csv", secret); err != nil {
		t.Fatal(err)
	}

	// Tenant A's own files, and links A writes into its own prefix.
	own := []byte("tenant-a findings\n")
	if _, err := e.cl.PutArtifacts(ctx, "", "tenant-a", "scan-a", []client.File{{Format: "csv", Name: "own.csv", Body: bytes.NewReader(own)}}); err != nil {
		t.Fatal(err)
	}
	store, err := e.cl.JS.ObjectStore(ctx, client.DefaultObjectStore)
	if err != nil {
		t.Fatal(err)
	}
	link := func(name string, from jetstream.ObjectStore, target string) {
		t.Helper()
		info, err := from.GetInfo(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.AddLink(ctx, name, info); err != nil {
			t.Fatal(err)
		}
	}
	link("tenant-a/scan-a/to-b.csv", store, "tenant-b/scan-b/out.csv")
	link("tenant-a/scan-a/to-other-store.csv", other, "tenant-a/scan-a/elsewhere.csv")
	link("tenant-a/scan-a/inside.csv", store, "tenant-a/scan-a/own.csv")

	src := func(name string) string { return "nats-os://" + client.DefaultObjectStore + "/tenant-a/scan-a/" + name }
	e.publish(event.ScanCompleted{ScanID: "scan-a", TenantID: "tenant-a",
		Provider: event.Provider{ID: "prov-a", Type: "aws", UID: "111122223333"}, StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC),
		Artifacts: []event.Artifact{
			{Format: "csv", Source: src("to-b.csv")},
			{Format: "json-ocsf", Source: src("to-other-store.csv")},
			{Format: "html", Source: src("inside.csv")}, // a link inside the prefix still works
		}})
	st := e.waitExport("scan-a", "a-s3")
	wantRefused(t, st, secret, "csv", "json-ocsf")
	got := e.noForeignBytes(t, bA, secret)
	if o, ok := got["output/html/prowler-output-111122223333-20250805120000.html"]; !ok || !bytes.Equal(o.Body, own) || len(got) != 1 {
		t.Fatalf("want only the link inside the prefix exported, with A's bytes; got %v", keysOf(got))
	}
}

// fileRootEnv starts an exporter with one file source root and the
// integration "a-s3" of tenant-a (provider prov-a), and returns the root and
// the bucket.
func fileRootEnv(t *testing.T) (*env, string, string) {
	root := t.TempDir()
	e := newEnv(t, func(c *config.Config) { c.FileSourceRoots = []string{root} })
	b := e.bucket("files-a")
	e.putAndWaitConn(e.integration("tenant-a", "a-s3", b, "prov-a"))
	return e, root, b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileScan(scanID, uid string, arts ...event.Artifact) event.ScanCompleted {
	return event.ScanCompleted{ScanID: scanID, TenantID: "tenant-a",
		Provider:  event.Provider{ID: "prov-a", Type: "aws", UID: uid},
		StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC), Artifacts: arts}
}

// Another tenant's file, another scan's, and files that are under the root
// but not at <root>/<tenant>/<scan>/ (the v1 layout among them) are all
// refused; A's file at its place lands.
func TestSourcesFileOutsideTheTenantsScanFolderIsRefused(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, root, b := fileRootEnv(t)
	secret := []byte("SECRET not tenant-a's scan-f\n")
	own := []byte("tenant-a scan-f findings\n")
	writeFile(t, filepath.Join(root, "tenant-a/scan-f/out.csv"), own)
	for _, p := range []string{"tenant-b/scan-b/out.csv", "tenant-a/scan-other/out.csv", "scan-f/out.csv", "tenant-a/out.csv", "out.csv"} {
		writeFile(t, filepath.Join(root, p), secret)
	}
	// Links from A's scan folder to B's, inside the root.
	if err := os.Symlink("../../tenant-b/scan-b/out.csv", filepath.Join(root, "tenant-a/scan-f/b.csv")); err != nil {
		t.Fatal(err)
	}
	// A tenant folder that is a link to another tenant's.
	if err := os.Symlink("tenant-b", filepath.Join(root, "tenant-c")); err != nil {
		t.Fatal(err)
	}

	f := func(p string) string { return "file://" + filepath.Join(root, p) }
	e.publish(fileScan("scan-f", "111122223333",
		event.Artifact{Format: "csv", Source: f("tenant-a/scan-f/out.csv")},
		event.Artifact{Format: "html", Source: f("tenant-b/scan-b/out.csv")},
		event.Artifact{Format: "json-ocsf", Source: f("tenant-a/scan-other/out.csv")},
		event.Artifact{Format: "json-asff", Source: f("scan-f/out.csv")},
		event.Artifact{Format: "compliance", Framework: "a", Source: f("tenant-a/out.csv")},
		event.Artifact{Format: "compliance", Framework: "b", Source: f("out.csv")},
		event.Artifact{Format: "compliance", Framework: "c", Source: f("tenant-a/scan-f/b.csv")},
		event.Artifact{Format: "compliance", Framework: "d", Source: f("tenant-a/scan-f/../../tenant-b/scan-b/out.csv")},
	))
	st := e.waitExport("scan-f", "a-s3")
	wantRefused(t, st, secret, "html", "json-ocsf", "json-asff", "compliance", "compliance", "compliance", "compliance")

	got := e.noForeignBytes(t, b, secret)
	if o, ok := got["output/csv/prowler-output-111122223333-20250805120000.csv"]; !ok || !bytes.Equal(o.Body, own) || len(got) != 1 {
		t.Fatalf("want only A's own file exported; got %v", keysOf(got))
	}

	// Tenant C, whose tenant folder is a link to B's.
	bC := e.bucket("files-c")
	e.putAndWaitConn(e.integration("tenant-c", "c-s3", bC, "prov-c"))
	e.publish(event.ScanCompleted{ScanID: "scan-b", TenantID: "tenant-c",
		Provider:  event.Provider{ID: "prov-c", Type: "aws", UID: "111122223333"},
		StartedAt: time.Now().UTC(), Artifacts: []event.Artifact{{Format: "csv", Source: f("tenant-c/scan-b/out.csv")}}})
	wantRefused(t, e.waitExport("scan-b", "c-s3"), secret, "csv")
	if got := e.objects(bC); len(got) != 0 {
		t.Fatalf("tenant-c's bucket got %v", keysOf(got))
	}
}

// An event over the limits (257 artifacts; more than 1 MiB on a server
// whose max_payload lets it through) is malformed: dead-lettered on its
// first delivery, never retried, nothing exported.
func TestSourcesEventOverTheLimitsIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	ns := startNATSWithMaxPayload(t, 4<<20)
	e := newEnvOn(t, ns, ns.ClientURL(), s3Server(t), nil, true)
	b := e.bucket("limits")
	e.putAndWaitConn(e.integration("tenant-a", "a-s3", b, "prov-a"))
	files, _ := prowlerFiles(21, "111122223333")
	ok := e.publishScan("tenant-a", "prov-a", "111122223333", "within", files)

	many := ok
	many.ScanID = "too-many"
	many.Artifacts = nil
	for i := range event.MaxScanArtifacts + 1 {
		fw := fmt.Sprintf("fw_%03d", i)
		many.Artifacts = append(many.Artifacts, event.Artifact{Format: "compliance", Framework: fw, Source: ok.Artifacts[0].Source})
	}
	e.publish(many)

	big := ok
	big.ScanID = "too-big"
	big.Provider.Type = strings.Repeat("x", event.MaxScanBytes) // an unknown field's worth of bytes would do too
	e.publish(big)

	if st := e.waitExport("within", "a-s3"); st.State != event.StateSucceeded {
		t.Fatalf("the scan within the limits: %s %v", st.State, st.Errors)
	}
	reasons := map[string]string{}
	for _, m := range e.dlqMessages(t, 2) {
		var s struct {
			ScanID string `json:"scan_id"`
		}
		_ = json.Unmarshal(m.Data, &s)
		reasons[s.ScanID] = m.Header.Get(event.HeaderDLQReason)
	}
	for scan, want := range map[string]string{"too-many": "257 artifacts", "too-big": "over the limit of 1048576"} {
		if r := reasons[scan]; !strings.HasPrefix(r, "MalformedEvent") || !strings.Contains(r, want) {
			t.Errorf("%s: dead letter reason %q, want MalformedEvent saying %q", scan, r, want)
		}
	}
	// At once: terminated on the first delivery, never redelivered, no status.
	cons, err := e.cl.JS.Consumer(context.Background(), "PROWLER_SCANS", e.cfg.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ci, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumRedelivered != 0 {
			t.Fatalf("%d events were redelivered", ci.NumRedelivered)
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d pending, %d ack-pending", ci.NumPending, ci.NumAckPending)
		}
	}
	for _, scan := range []string{"too-many", "too-big"} {
		if st := e.exports(scan, "a-s3"); len(st) != 0 {
			t.Errorf("%s: export statuses %+v", scan, st)
		}
	}
	for k := range e.objects(b) {
		if !strings.Contains(k, "111122223333-20250805120000") {
			t.Errorf("unexpected object %s", k)
		}
	}
}

// startNATSWithMaxPayload starts a JetStream server whose max_payload is
// larger than the default 1 MiB, so that an event over the contract's limit
// reaches the exporter at all.
func startNATSWithMaxPayload(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}
