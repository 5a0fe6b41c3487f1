package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/ledger"
)

// securityDoc holds the permission templates the test enforces.
const securityDoc = "../docs/security.md"

const templatePassword = "template-pw"

// permissionTemplates reads the ```nats blocks of docs/security.md, by the
// role each names in its first line ("# role: NAME").
func permissionTemplates(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(securityDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```nats\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	out := map[string]string{}
	for _, b := range blocks {
		first, _, _ := strings.Cut(b[1], "\n")
		role, ok := strings.CutPrefix(first, "# role: ")
		if !ok {
			t.Fatalf("a nats block of %s does not start with \"# role: NAME\": %q", securityDoc, first)
		}
		out[strings.TrimSpace(role)] = b[1]
	}
	for _, role := range []string{"exporter", "shared-scan-engine", "shared-admin", "tenant-scan-engine", "tenant-admin", "tenant-reader"} {
		if out[role] == "" {
			t.Fatalf("%s has no template for role %s", securityDoc, role)
		}
	}
	return out
}

// fill replaces the placeholders of a template.
func fill(tmpl, tenant string) string {
	return strings.NewReplacer("<tenant>", tenant, "<password>", templatePassword).Replace(tmpl)
}

// startEnforcingNATS starts a nats-server whose users are the templates
// (the per-tenant ones once per tenant) plus "root", the test's own
// unrestricted user.
func startEnforcingNATS(t *testing.T, tenants ...string) *server.Server {
	t.Helper()
	tmpl := permissionTemplates(t)
	users := []string{fill(tmpl["exporter"], ""), fill(tmpl["shared-scan-engine"], ""), fill(tmpl["shared-admin"], ""),
		`{ user: "root", password: "root-pw" }`}
	for _, tenant := range tenants {
		for _, role := range []string{"tenant-scan-engine", "tenant-admin", "tenant-reader"} {
			users = append(users, fill(tmpl[role], tenant))
		}
	}
	dir := t.TempDir()
	conf := fmt.Sprintf("jetstream { store_dir: %q }\nauthorization {\n  users: [\n%s\n  ]\n}\n",
		filepath.Join(dir, "js"), strings.Join(users, "\n"))
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the templates of %s do not make a valid nats-server configuration: %v\n%s", securityDoc, err, conf)
	}
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// roleConn is a connection as one user, which records the permission
// violations the server reports.
type roleConn struct {
	t    *testing.T
	user string
	nc   *nats.Conn
	cl   *client.Client

	mu         sync.Mutex
	violations []string
}

func connectAs(t *testing.T, s *server.Server, user, inbox string) *roleConn {
	t.Helper()
	rc := &roleConn{t: t, user: user}
	opts := []nats.Option{nats.UserInfo(user, templatePassword), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			rc.mu.Lock()
			rc.violations = append(rc.violations, err.Error())
			rc.mu.Unlock()
		}
	})}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	if rc.cl, err = client.New(nc, "prowler"); err != nil {
		t.Fatal(err)
	}
	return rc
}

// refused reports whether the server refused the last publish (kind
// "Publish") or subscription (kind "Subscription") of subject. The server
// answers a connection's protocol in order, so its refusal arrives before
// the answer to the flush, and the client records it as the connection's
// last error at once (the error handler runs later, on another goroutine).
func (rc *roleConn) refused(kind, subject string) bool {
	rc.t.Helper()
	if err := rc.nc.Flush(); err != nil {
		rc.t.Fatalf("%s: flush: %v", rc.user, err)
	}
	err := rc.nc.LastError()
	return err != nil && errors.Is(err, nats.ErrPermissionViolation) &&
		strings.Contains(strings.ToLower(err.Error()), strings.ToLower(kind+` to "`+subject+`"`))
}

func (rc *roleConn) noViolations() {
	rc.t.Helper()
	_ = rc.nc.Flush()
	if err := rc.nc.LastError(); err != nil && errors.Is(err, nats.ErrPermissionViolation) {
		rc.t.Errorf("%s was refused something of its own flow: %v", rc.user, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.violations) > 0 {
		rc.t.Errorf("%s was refused something of its own flow: %v", rc.user, rc.violations)
	}
}

// eventually retries fn until it succeeds (the exporter applies a change
// asynchronously).
func eventually(t *testing.T, what string, fn func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// collectStatuses follows a tenant's statuses as cl, from the start.
func collectStatuses(t *testing.T, cl *client.Client, tenant string) func() []client.Status {
	var mu sync.Mutex
	var got []client.Status
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cl.WatchStatus(ctx, tenant, true, func(s client.Status) bool {
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
			return true
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watching the statuses of %s: %v", tenant, err)
		}
	})
	return func() []client.Status {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestPermissionTemplatesConfineEachTenant runs every role of
// docs/security.md on a server that enforces the templates: each tenant's
// users complete their own flow, and tenant A's users are refused every
// subject of tenant B.
func TestPermissionTemplatesConfineEachTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	tenants := []string{"tenant-a", "tenant-b"}
	s := startEnforcingNATS(t, tenants...)
	e := newEnvOn(t, s, "nats://root:root-pw@"+s.Addr().String(), s3Server(t), func(c *config.Config) {
		c.NATSURL = fmt.Sprintf("nats://s3-exporter:%s@%s", templatePassword, s.Addr().String())
	}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type users struct{ scan, admin, reader *roleConn }
	of := map[string]users{}
	for _, tenant := range tenants {
		inbox := "_INBOX_" + tenant
		of[tenant] = users{
			scan:   connectAs(t, s, "scan-"+tenant, inbox),
			admin:  connectAs(t, s, "admin-"+tenant, inbox),
			reader: connectAs(t, s, "reader-"+tenant, inbox),
		}
	}

	for _, tenant := range tenants {
		u := of[tenant]
		statuses := collectStatuses(t, u.reader.cl, tenant)

		// The admin: an integration, a test, a get, a list.
		b := e.bucket("perm-" + tenant)
		in := e.integration(tenant, "s3", b, "prov-1")
		if err := u.admin.cl.PublishIntegration(ctx, in); err != nil {
			t.Fatalf("%s: publishing its integration: %v", tenant, err)
		}
		eventually(t, tenant+" get", func(ctx context.Context) error { _, err := u.admin.cl.Get(ctx, tenant, "s3"); return err })
		if rep, err := u.admin.cl.TestConnection(ctx, tenant, "s3"); err != nil || !rep.Connected {
			t.Errorf("%s: test: %+v %v", tenant, rep, err)
		}
		if l, err := u.admin.cl.List(ctx, tenant); err != nil || len(l.Integrations) != 1 || l.Integrations[0].Integration.TenantID != tenant {
			t.Errorf("%s: list: %+v %v", tenant, l, err)
		}

		// The scan engine: its own object store, a scan, its statuses.
		files, set := prowlerFiles(61, "111122223333")
		var cf []client.File
		for _, f := range files {
			cf = append(cf, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
		}
		arts, err := u.scan.cl.PutArtifacts(ctx, "PROWLER_OUTPUTS_"+tenant, tenant, "scan-1", cf)
		if err != nil {
			t.Fatalf("%s: storing its outputs: %v", tenant, err)
		}
		scan := event.ScanCompleted{ScanID: "scan-1", TenantID: tenant, Provider: event.Provider{ID: "prov-1", Type: "aws", UID: "111122223333"},
			StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC), Artifacts: arts}
		if err := u.scan.cl.PublishScan(ctx, scan); err != nil {
			t.Fatalf("%s: publishing its scan: %v", tenant, err)
		}
		engineSaw := make(chan event.ExportStatus, 1)
		go func() {
			_ = u.scan.cl.WatchStatus(ctx, tenant, true, func(s client.Status) bool {
				if s.Export != nil && s.Export.ScanID == "scan-1" && s.Export.State != event.StateRetrying {
					engineSaw <- *s.Export
					return false
				}
				return true
			})
		}()
		select {
		case st := <-engineSaw:
			if st.State != event.StateSucceeded {
				t.Fatalf("%s: export %s %+v", tenant, st.State, st.Errors)
			}
		case <-ctx.Done():
			t.Fatalf("%s: the scan engine saw no export status: %s\n%s", tenant, e.dump(), e.logText())
		}
		if got := len(e.objects(b)); got != len(set) {
			t.Errorf("%s: %d objects in the bucket, want %d", tenant, got, len(set))
		}

		// The admin asks for a replay; a malformed event is dead-lettered.
		if r, err := u.admin.cl.Replay(ctx, tenant, "scan-1", "s3"); err != nil || !r.Accepted {
			t.Errorf("%s: replay: %+v %v", tenant, r, err)
		}
		bad := nats.NewMsg("prowler.scans.completed." + tenant + ".prov-1")
		bad.Data = []byte(`{"scan_id":"broken"}`)
		if _, err := u.scan.cl.JS.PublishMsg(ctx, bad); err != nil {
			t.Fatalf("%s: publishing a malformed scan: %v", tenant, err)
		}

		// The reader: the statuses from the stream, the dead letter from
		// its stream and live.
		live, err := u.reader.nc.SubscribeSync("prowler.dlq.scans." + tenant)
		if err != nil {
			t.Fatal(err)
		}
		dlq, err := u.reader.cl.JS.OrderedConsumer(ctx, "PROWLER_DLQ", jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{"prowler.dlq.scans." + tenant}})
		if err != nil {
			t.Fatalf("%s: reading its dead letters: %v", tenant, err)
		}
		m, err := dlq.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil || !strings.Contains(string(m.Data()), "broken") || m.Headers().Get(event.HeaderDLQReason) == "" {
			t.Fatalf("%s: its dead letter: %v", tenant, err)
		}
		_ = live.Unsubscribe()
		eventually(t, tenant+" reader statuses", func(context.Context) error {
			exports, conns := 0, 0
			for _, st := range statuses() {
				switch {
				case st.Export != nil && st.Export.TenantID == tenant && st.Export.State == event.StateSucceeded:
					exports++
				case st.Connection != nil && st.Connection.TenantID == tenant:
					conns++
				case st.Export != nil && st.Export.TenantID != tenant, st.Connection != nil && st.Connection.TenantID != tenant:
					return fmt.Errorf("another tenant's status: %+v", st)
				}
			}
			if exports < 2 || conns < 2 { // the export and its replay; the automatic and the explicit test
				return fmt.Errorf("%d succeeded exports, %d connection statuses", exports, conns)
			}
			return nil
		})
		for _, rc := range []*roleConn{u.scan, u.admin, u.reader} {
			rc.noViolations()
		}
	}

	// Shared roles act for both tenants.
	sharedAdmin := connectAs(t, s, "admin-backend", "")
	sharedScan := connectAs(t, s, "scan-engine", "")
	for _, tenant := range tenants {
		if _, err := sharedAdmin.cl.Get(ctx, tenant, "s3"); err != nil {
			t.Errorf("the shared admin, %s's subject: %v", tenant, err)
		}
		var rep event.GetReply
		m, err := sharedAdmin.nc.Request(event.Subject("prowler", event.ControlGet), []byte(`{"tenant_id":"`+tenant+`","integration_id":"s3"}`), 10*time.Second)
		if err != nil || json.Unmarshal(m.Data, &rep) != nil || rep.Integration.TenantID != tenant {
			t.Errorf("the shared admin, tenant-less subject for %s: %+v %v", tenant, rep, err)
		}
		files, _ := prowlerFiles(62, "444455556666")
		var cf []client.File
		for _, f := range files[:2] {
			cf = append(cf, client.File{Format: f.Format, Framework: f.Framework, Name: f.FileName, Body: bytes.NewReader(f.Body)})
		}
		arts, err := sharedScan.cl.PutArtifacts(ctx, "", tenant, "scan-shared", cf)
		if err != nil {
			t.Fatalf("the shared scan engine storing for %s: %v", tenant, err)
		}
		if err := sharedScan.cl.PublishScan(ctx, event.ScanCompleted{ScanID: "scan-shared", TenantID: tenant,
			Provider:  event.Provider{ID: "prov-1", Type: "aws", UID: "444455556666"},
			StartedAt: time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC), Artifacts: arts}); err != nil {
			t.Fatalf("the shared scan engine publishing for %s: %v", tenant, err)
		}
		if st := e.waitExport("scan-shared", "s3"); st.State != event.StateSucceeded {
			t.Errorf("the shared scan engine's scan for %s: %s %+v", tenant, st.State, st.Errors)
		}
		e.mu.Lock()
		e.statuses = nil // the next tenant's scan has the same ids
		e.mu.Unlock()
	}
	sharedAdmin.noViolations()
	sharedScan.noViolations()

	// Tenant A's users against tenant B's subjects: every one refused.
	const other = "tenant-b"
	publishes := []string{
		"prowler.scans.completed." + other + ".prov-1",
		"prowler.integrations.changed." + other + ".s3",
		"prowler.control." + other + ".integrations.test", "prowler.control." + other + ".integrations.get",
		"prowler.control." + other + ".integrations.list", "prowler.control." + other + ".exports.replay",
		"prowler.control.integrations.test", "prowler.control.integrations.get", "prowler.control.exports.replay",
		"prowler.exports.status." + other + ".s3", "prowler.integrations.status." + other + ".s3", "prowler.dlq.scans." + other,
		"$O.PROWLER_OUTPUTS_" + other + ".M.x", "$O.PROWLER_OUTPUTS.M.x",
		"$JS.API.STREAM.INFO.OBJ_PROWLER_OUTPUTS_" + other, "$JS.API.STREAM.PURGE.OBJ_PROWLER_OUTPUTS_" + other,
		"$JS.API.DIRECT.GET.OBJ_PROWLER_OUTPUTS_" + other + ".$O.PROWLER_OUTPUTS_" + other + ".M.x",
		"$JS.API.STREAM.MSG.GET.OBJ_PROWLER_OUTPUTS_" + other,
		"$JS.API.CONSUMER.CREATE.PROWLER_STATUS.x.prowler.*.status." + other + ".*",
		"$JS.API.CONSUMER.CREATE.PROWLER_STATUS.x.prowler.*.status.*.*",
		"$JS.API.CONSUMER.CREATE.PROWLER_STATUS.x",
		"$JS.API.CONSUMER.CREATE.PROWLER_DLQ.x.prowler.dlq.scans." + other,
		"$JS.API.CONSUMER.CREATE.PROWLER_DLQ.x.prowler.dlq.>",
		"$JS.API.CONSUMER.LIST.PROWLER_STATUS", "$JS.API.CONSUMER.NAMES.PROWLER_STATUS",
		"$JS.API.STREAM.MSG.GET.PROWLER_STATUS", "$JS.API.DIRECT.GET.PROWLER_STATUS",
		"$JS.API.STREAM.MSG.GET.PROWLER_SCANS", "$JS.API.STREAM.MSG.GET.PROWLER_INTEGRATIONS",
		"$KV.PROWLER_EXPORTS." + ledger.Key(other, "scan-1", "s3"), "$JS.API.STREAM.MSG.GET.KV_PROWLER_EXPORTS",
	}
	subscribes := []string{
		"prowler.exports.status." + other + ".>", "prowler.integrations.status." + other + ".>", "prowler.dlq.scans." + other,
		"prowler.dlq.>", "prowler.control." + other + ".>", "prowler.scans.completed." + other + ".>",
		"prowler.integrations.changed." + other + ".>", "$O.PROWLER_OUTPUTS_" + other + ".>",
		"_INBOX.>", "_INBOX_" + other + ".>", ">",
	}
	a := of["tenant-a"]
	for _, rc := range []*roleConn{a.scan, a.admin, a.reader} {
		for _, subj := range publishes {
			if err := rc.nc.Publish(subj, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			if !rc.refused("Publish", subj) {
				t.Errorf("%s may publish %s", rc.user, subj)
			}
		}
		for _, subj := range subscribes {
			sub, err := rc.nc.SubscribeSync(subj)
			if err != nil {
				t.Fatal(err)
			}
			if !rc.refused("Subscription", subj) {
				t.Errorf("%s may subscribe %s", rc.user, subj)
			}
			_ = sub.Unsubscribe()
		}
	}
	// Through the client, too: tenant B's control answers tenant A nothing.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := a.admin.cl.List(short, other); err == nil {
		t.Error("tenant A's admin listed tenant B's integrations")
	}
	if _, err := a.reader.cl.JS.OrderedConsumer(short, "PROWLER_STATUS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"prowler.*.status." + other + ".*"}}); err == nil {
		t.Error("tenant A's reader made a consumer of tenant B's statuses")
	}
}
