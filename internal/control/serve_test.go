package control

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// startNATS runs an embedded nats-server with JetStream (milliseconds to
// start) and returns a connection to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// handlerFunc is a Handler made of a function.
type handlerFunc func(ctx context.Context, scope, op string, data []byte) any

func (f handlerFunc) Handle(ctx context.Context, scope, op string, data []byte) any {
	return f(ctx, scope, op, data)
}

// runServer runs srv until the test ends (or stop is called) and returns a
// stop that waits for Run to return.
func runServer(t *testing.T, srv *Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func request(t *testing.T, nc *nats.Conn, subject, body string) map[string]any {
	t.Helper()
	m, err := nc.Request(subject, []byte(body), 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var out map[string]any
	if err := json.Unmarshal(m.Data, &out); err != nil {
		t.Fatalf("%s: reply %q: %v", subject, m.Data, err)
	}
	return out
}

// waitSubscribed waits until the server answers on subject.
func waitSubscribed(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := nc.Request(subject, []byte(`{}`), 200*time.Millisecond); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing answers on %s", subject)
		}
	}
}

func TestServerRoutesEverySubject(t *testing.T) {
	nc := startNATS(t)
	type call struct{ scope, op, body string }
	var mu sync.Mutex
	var calls []call
	srv := &Server{NC: nc, Prefix: "pfx", Global: true, Log: zap.NewNop(),
		Handler: handlerFunc(func(ctx context.Context, scope, op string, data []byte) any {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("a request without a time limit")
			}
			mu.Lock()
			calls = append(calls, call{scope, op, string(data)})
			mu.Unlock()
			return map[string]string{"scope": scope, "op": op}
		})}
	if got, want := srv.Subjects(), []string{
		"pfx.control.*.integrations.test", "pfx.control.integrations.test",
		"pfx.control.*.integrations.get", "pfx.control.integrations.get",
		"pfx.control.*.integrations.list",
		"pfx.control.*.exports.replay", "pfx.control.exports.replay",
	}; !slices.Equal(got, want) {
		t.Fatalf("subjects %v, want %v", got, want)
	}
	runServer(t, srv)
	waitSubscribed(t, nc, "pfx.control.exports.replay")
	mu.Lock()
	calls = nil
	mu.Unlock()
	for _, tc := range []struct{ subject, scope, op string }{
		{"pfx.control.t1.integrations.test", "t1", event.OpTest},
		{"pfx.control.integrations.test", "", event.OpTest},
		{"pfx.control.t1.integrations.get", "t1", event.OpGet},
		{"pfx.control.integrations.get", "", event.OpGet},
		{"pfx.control.t1.integrations.list", "t1", event.OpList},
		{"pfx.control.t1.exports.replay", "t1", event.OpReplay},
		{"pfx.control.exports.replay", "", event.OpReplay},
		// A tenant named like an operation's first token.
		{"pfx.control.integrations.integrations.get", "integrations", event.OpGet},
	} {
		got := request(t, nc, tc.subject, `{"x":1}`)
		if got["scope"] != tc.scope || got["op"] != tc.op {
			t.Errorf("%s routed to %v", tc.subject, got)
		}
	}
	if len(calls) != 8 || calls[0].body != `{"x":1}` {
		t.Errorf("calls %+v", calls)
	}
}

func TestServerWithoutGlobalSubjects(t *testing.T) {
	nc := startNATS(t)
	srv := &Server{NC: nc, Prefix: "prowler", Global: false, Log: zap.NewNop(),
		Handler: handlerFunc(func(context.Context, string, string, []byte) any { return map[string]bool{"ok": true} })}
	for _, s := range srv.Subjects() {
		if _, _, err := event.ParseControlSubject("prowler", s); err != nil || !slices.Contains([]int{5}, len(splitDots(s))) {
			t.Errorf("subject %s is not tenant-scoped", s)
		}
	}
	runServer(t, srv)
	waitSubscribed(t, nc, "prowler.control.t1.integrations.get")
	if _, err := nc.Request("prowler.control.integrations.get", []byte(`{}`), 300*time.Millisecond); err == nil {
		t.Error("a tenant-less subject answered with S3EXPORTER_GLOBAL_CONTROL=false")
	}
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestServerStopWaitsForRequestsInFlight: a request being served when the
// server is told to stop is answered before Run returns.
func TestServerStopWaitsForRequestsInFlight(t *testing.T) {
	nc := startNATS(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := &Server{NC: nc, Prefix: "prowler", Log: zap.NewNop(),
		Handler: handlerFunc(func(_ context.Context, _, op string, data []byte) any {
			if string(data) == "slow" {
				close(entered)
				<-release
			}
			return map[string]string{"op": op}
		})}
	stop := runServer(t, srv)
	waitSubscribed(t, nc, "prowler.control.t1.integrations.get")

	reply := make(chan *nats.Msg, 1)
	go func() {
		m, err := nc.Request("prowler.control.t1.integrations.test", []byte("slow"), 20*time.Second)
		if err != nil {
			t.Errorf("the request in flight: %v", err)
		}
		reply <- m
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a request was being served")
	case <-reply:
		t.Fatal("answered before release")
	case <-time.After(100 * time.Millisecond):
		// Not an assertion on speed: a Run that did not wait would have
		// returned by now, and one that does is still waiting either way.
	}
	close(release)
	<-stopped
	if m := <-reply; m == nil || string(m.Data) != `{"op":"integrations.test"}` {
		t.Errorf("reply %v", m)
	}
}

func TestServerAnswersAReplyItCannotEncode(t *testing.T) {
	nc := startNATS(t)
	srv := &Server{NC: nc, Prefix: "prowler", Log: zap.NewNop(),
		Handler: handlerFunc(func(context.Context, string, string, []byte) any { return func() {} })}
	runServer(t, srv)
	waitSubscribed(t, nc, "prowler.control.t1.integrations.get")
	got := request(t, nc, "prowler.control.t1.integrations.get", `{}`)
	if e, _ := got["error"].(map[string]any); e == nil || e["code"] != string(errcode.InternalError) {
		t.Errorf("reply %v", got)
	}
}

func TestServerAnswersAReplyTooLargeForNATS(t *testing.T) {
	nc := startNATS(t)
	srv := &Server{NC: nc, Prefix: "prowler", Log: zap.NewNop(),
		Handler: handlerFunc(func(context.Context, string, string, []byte) any {
			return map[string]string{"big": strings.Repeat("x", int(nc.MaxPayload()))}
		})}
	runServer(t, srv)
	waitSubscribed(t, nc, "prowler.control.t1.integrations.get")
	got := request(t, nc, "prowler.control.t1.integrations.list", `{}`)
	if e, _ := got["error"].(map[string]any); e == nil || e["code"] != string(errcode.InternalError) ||
		!strings.Contains(e["message"].(string), "max_payload") {
		t.Errorf("reply %v", got)
	}
}

// TestServerBoundsEachTenant: one tenant's slow requests take at most its
// share of the slots; its next request is answered at once, and another
// tenant's is served meanwhile.
func TestServerBoundsEachTenant(t *testing.T) {
	nc := startNATS(t)
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	srv := &Server{NC: nc, Prefix: "prowler", Global: true, MaxInFlight: 8, Log: zap.NewNop(),
		Handler: handlerFunc(func(_ context.Context, scope, _ string, data []byte) any {
			if string(data) == "slow" {
				entered <- struct{}{}
				<-release
			}
			return map[string]string{"scope": scope}
		})}
	if srv.perTenant() != 2 {
		t.Fatalf("per-tenant bound %d, want 2 (a quarter of 8)", srv.perTenant())
	}
	runServer(t, srv)
	waitSubscribed(t, nc, "prowler.control.t1.integrations.get")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := nc.Request("prowler.control.t1.integrations.test", []byte("slow"), 20*time.Second); err != nil {
				t.Errorf("a slow request: %v", err)
			}
		})
	}
	<-entered
	<-entered
	got := request(t, nc, "prowler.control.t1.integrations.get", `{}`)
	if e, _ := got["error"].(map[string]any); e == nil || !strings.Contains(e["message"].(string), "tenant t1 has 2 control requests in flight") {
		t.Errorf("t1's third request: %v", got)
	}
	if got := request(t, nc, "prowler.control.t2.integrations.get", `{}`); got["scope"] != "t2" {
		t.Errorf("t2's request while t1 is at its bound: %v", got)
	}
	// The tenant-less subjects (a trusted backend) are not bound per tenant.
	if got := request(t, nc, "prowler.control.integrations.get", `{}`); got["scope"] != "" || got["error"] != nil {
		t.Errorf("a tenant-less request: %v", got)
	}
	close(release)
	wg.Wait()
	if got := request(t, nc, "prowler.control.t1.integrations.get", `{}`); got["scope"] != "t1" {
		t.Errorf("t1's request once its others are answered: %v", got)
	}
}

// TestTenantScopedServiceOverNATS runs the Service behind the Server: a
// tenant's subject serves that tenant only.
func TestTenantScopedServiceOverNATS(t *testing.T) {
	nc := startNATS(t)
	w := newWorld(t, saved("t1", "a", "bucket-a", "p1"), saved("t2", "b", "bucket-b", "p1"))
	srv := &Server{NC: nc, Prefix: "prowler", Global: true, Handler: w.service(), Log: zap.NewNop()}
	runServer(t, srv)
	waitSubscribed(t, nc, "prowler.control.t1.integrations.list")
	got := request(t, nc, "prowler.control.t1.integrations.list", `{}`)
	if l, _ := got["integrations"].([]any); len(l) != 1 {
		t.Errorf("t1's list: %v", got)
	}
	got = request(t, nc, "prowler.control.t1.integrations.get", `{"tenant_id":"t2","integration_id":"b"}`)
	if e, _ := got["error"].(map[string]any); e == nil || e["code"] != string(errcode.InvalidRequest) {
		t.Errorf("t1 read t2's integration: %v", got)
	}
	got = request(t, nc, "prowler.control.t2.integrations.get", `{"integration_id":"b"}`)
	if ig, _ := got["integration"].(map[string]any); ig == nil || ig["id"] != "b" {
		t.Errorf("t2's get: %v", got)
	}
}

func TestStatusesLoadTheLastOfEachThenFollow(t *testing.T) {
	nc := startNATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROWLER_STATUS",
		Subjects: []string{"prowler.integrations.status.>", "prowler.exports.status.>"}}); err != nil {
		t.Fatal(err)
	}
	at := func(min int) time.Time { return time.Date(2026, 12, 1, 10, min, 0, 0, time.UTC) }
	publish := func(st event.ConnectionStatus) {
		t.Helper()
		if _, err := js.Publish(ctx, "prowler.integrations.status."+st.TenantID+"."+st.IntegrationID, js2(t, st)); err != nil {
			t.Fatal(err)
		}
	}
	publish(event.ConnectionStatus{TenantID: "t1", IntegrationID: "a", Connected: true, LastCheckedAt: at(1)})
	publish(event.ConnectionStatus{TenantID: "t1", IntegrationID: "a", Connected: false, LastCheckedAt: at(2)})
	publish(event.ConnectionStatus{TenantID: "t2", IntegrationID: "b", Connected: true, LastCheckedAt: at(3)})
	if _, err := js.Publish(ctx, "prowler.exports.status.t1.a", []byte(`{"tenant_id":"t1","integration_id":"a","state":"succeeded"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "prowler.integrations.status.t1.junk", []byte(`not json`)); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	held := map[string]event.ConnectionStatus{}
	loaded := 0
	s := &Statuses{NC: nc, Subject: "prowler.integrations.status.>", Log: zap.NewNop(),
		Load: func(ctx context.Context) ([]event.ConnectionStatus, error) {
			return LoadLast(ctx, js, "PROWLER_STATUS", "prowler.integrations.status.>")
		},
		Current: func(tenant, id string) (event.ConnectionStatus, bool) {
			mu.Lock()
			defer mu.Unlock()
			st, ok := held[k(tenant, id)]
			return st, ok
		},
		Set: func(st event.ConnectionStatus) {
			mu.Lock()
			defer mu.Unlock()
			held[k(st.TenantID, st.IntegrationID)] = st
		},
		Loaded: func() { loaded++ },
	}
	runCtx, cancel := context.WithCancel(ctx)
	done, ready := make(chan error), make(chan struct{})
	go func() { done <- s.Run(runCtx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	mu.Lock()
	a, b := held[k("t1", "a")], held[k("t2", "b")]
	n := len(held)
	mu.Unlock()
	if loaded != 1 || n != 2 || a.Connected || !a.LastCheckedAt.Equal(at(2)) || !b.Connected {
		t.Fatalf("loaded %d times: %d statuses, a=%+v b=%+v", loaded, n, a, b)
	}

	// Live: a newer status replaces, an older one (late) does not.
	publish(event.ConnectionStatus{TenantID: "t1", IntegrationID: "a", Connected: false, LastCheckedAt: at(0)})
	publish(event.ConnectionStatus{TenantID: "t1", IntegrationID: "a", Connected: true, LastCheckedAt: at(9)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		a = held[k("t1", "a")]
		mu.Unlock()
		if a.LastCheckedAt.Equal(at(9)) {
			break
		}
		if !a.LastCheckedAt.Equal(at(2)) {
			t.Fatalf("an older status replaced a newer one: %+v", a)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live status never came: %+v", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !a.Connected {
		t.Errorf("live status %+v", a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLoadLastOfAnEmptyStream(t *testing.T) {
	nc := startNATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	sts, err := LoadLast(t.Context(), js, "S", "s.>")
	if err != nil || len(sts) != 0 {
		t.Fatalf("%v, %v", sts, err)
	}
	if _, err := LoadLast(t.Context(), js, "MISSING", "s.>"); err == nil {
		t.Error("no error for a missing stream")
	}
}

func js2(t *testing.T, v any) []byte { return js(t, v) }

// With NATS down, stopping does not wait for subscriptions to drain (which
// needs the server): before, every shutdown during an outage waited out
// nats.go's flush timeout (10 s) or the daemon's grace.
func TestServerStopsWhileNATSIsDown(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	core, logs := observer.New(zap.InfoLevel)
	srv := &Server{NC: nc, Prefix: "prowler", Log: zap.New(core), Base: context.Background(),
		Handler: handlerFunc(func(context.Context, string, string, []byte) any { return map[string]string{} })}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() {}) }()
	waitSubscribed(t, nc, "prowler.control.t1.integrations.get")

	ns.Shutdown()
	ns.WaitForShutdown()
	for nc.IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		// A hang detector, not a speed check: Run waits for a drain that
		// cannot happen unless it skips it.
		t.Fatal("Run still waiting for its subscriptions to drain with NATS down")
	}
	// The drain, which waits out nats.go's 10 s flush with NATS down, was
	// skipped for every subscription.
	if n, want := logs.FilterMessageSnippet("closed without a drain").Len(), len(srv.Subjects()); n != want {
		t.Errorf("%d subscriptions closed without a drain, want all %d", n, want)
	}
}
