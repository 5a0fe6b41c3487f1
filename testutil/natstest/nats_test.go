package natstest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func connectJS(t *testing.T, urls string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatalf("connect %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

func TestStartNATSJetStream(t *testing.T) {
	t.Parallel()
	s := StartNATS(t)
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream is not enabled")
	}
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("client URL %q is not on 127.0.0.1", s.ClientURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := connectJS(t, s.ClientURL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "t.one", []byte("hello"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Sequence != 1 || ack.Stream != "T" {
		t.Fatalf("ack = %+v, want sequence 1 on T", ack)
	}
}

// A server restarted on the same port and store keeps its streams, and a
// client with reconnects enabled finds it again.
func TestRunNATSRestartKeepsStore(t *testing.T) {
	store := t.TempDir()
	s1, err := RunNATS(NATSOptions{StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	url := s1.ClientURL()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "keep.x", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s1.Shutdown()
	s1.WaitForShutdown()

	s2, err := RunNATS(NATSOptions{Port: natsPort(t, url), StoreDir: store})
	if err != nil {
		t.Fatalf("restart on same port and store: %v", err)
	}
	defer func() { s2.Shutdown(); s2.WaitForShutdown() }()
	if s2.ClientURL() != url {
		t.Fatalf("restarted at %s, want %s", s2.ClientURL(), url)
	}
	var info *jetstream.StreamInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := js.Stream(ctx, "KEEP")
		if err == nil {
			info, err = st.Info(ctx)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("stream has %d messages after restart, want 3", info.State.Msgs)
	}
}

func natsPort(t *testing.T, url string) int {
	t.Helper()
	i := strings.LastIndex(url, ":")
	var p int
	if _, err := fmt.Sscanf(url[i+1:], "%d", &p); err != nil {
		t.Fatalf("port of %q: %v", url, err)
	}
	return p
}

func TestStartNATSClusterR3(t *testing.T) {
	t.Parallel()
	servers := StartNATSCluster(t, 3)
	if len(servers) != 3 {
		t.Fatalf("got %d servers", len(servers))
	}
	names := map[string]bool{}
	leaders := 0
	for _, s := range servers {
		names[s.Name()] = true
		if s.JetStreamIsLeader() {
			leaders++
		}
		if !s.JetStreamIsClustered() {
			t.Errorf("server %s is not JetStream-clustered", s.Name())
		}
	}
	if len(names) != 3 {
		t.Fatalf("server names not unique: %v", names)
	}
	if leaders != 1 {
		t.Fatalf("%d meta leaders, want 1", leaders)
	}
	urls := ClusterURLs(servers)
	if got := len(strings.Split(urls, ",")); got != 3 {
		t.Fatalf("ClusterURLs = %q, want 3 URLs", urls)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := connectJS(t, urls)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	for i := range 5 {
		if _, err := js.Publish(ctx, "r3.msg", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5 {
		t.Fatalf("stream has %d messages, want 5", info.State.Msgs)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info = %+v, want a leader and 2 replicas", info.Cluster)
	}

	// Each server can be reached on its own and serves the stream.
	for _, s := range servers {
		js1 := connectJS(t, s.ClientURL())
		st1, err := js1.Stream(ctx, "R3")
		if err != nil {
			t.Fatalf("stream via %s: %v", s.Name(), err)
		}
		if st1.CachedInfo().Config.Replicas != 3 {
			t.Fatalf("replicas via %s = %d", s.Name(), st1.CachedInfo().Config.Replicas)
		}
	}

	// With one server down the other two keep a quorum and take writes.
	servers[2].Shutdown()
	servers[2].WaitForShutdown()
	js2 := connectJS(t, ClusterURLs(servers[:2]))
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := js2.Publish(ctx, "r3.msg", []byte("after"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish with 2 of 3 servers: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
