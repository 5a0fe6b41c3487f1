package natstest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prowler-cloud/s3-exporter/testutil"
)

// natsReadyTimeout bounds how long RunNATS waits for a server to accept
// connections, and StartNATSCluster for the JetStream meta leader.
const (
	natsReadyTimeout    = 10 * time.Second
	clusterReadyTimeout = 30 * time.Second
)

// NATSOptions configures an embedded NATS server. The zero value is a
// JetStream-enabled server on a random port of 127.0.0.1 with a fresh store in
// a new temporary directory.
type NATSOptions struct {
	// Port is the client port; 0 or -1 picks a random free one. Pin it (to
	// the port of a previous server) to restart a server where clients
	// expect it.
	Port int
	// StoreDir is the JetStream store. Empty makes a new temporary
	// directory, which RunNATS does not remove. Reuse the directory of a
	// stopped server to restart it with its streams and consumers.
	StoreDir string
	// ServerName defaults to a name made by the server.
	ServerName string
	// Logf, if set, receives the server's warnings and errors (and notices
	// when Verbose is set). t.Logf fits.
	Logf    func(format string, args ...any)
	Verbose bool
}

// RunNATS starts an embedded NATS server with JetStream and returns once it
// accepts connections. The caller shuts it down with Shutdown and
// WaitForShutdown.
func RunNATS(opts NATSOptions) (*server.Server, error) {
	storeDir := opts.StoreDir
	if storeDir == "" {
		dir, err := os.MkdirTemp("", "nats-js-")
		if err != nil {
			return nil, fmt.Errorf("nats store dir: %w", err)
		}
		storeDir = dir
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName: opts.ServerName,
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		NoLog:      opts.Logf == nil,
	}
	return startNATS(sopts, opts.Logf, opts.Verbose, natsReadyTimeout)
}

func startNATS(sopts *server.Options, logf func(string, ...any), verbose bool, timeout time.Duration) (*server.Server, error) {
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if logf != nil {
		s.SetLoggerV2(natsLogger{logf: logf, verbose: verbose}, verbose, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(timeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("nats server %s not ready for connections after %v", sopts.ServerName, timeout)
	}
	return s, nil
}

// StartNATS starts a JetStream server with its store in t.TempDir() and shuts
// it down when the test ends.
func StartNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := RunNATS(NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// StartJetStream starts an embedded JetStream server (StartNATS) and
// returns a JetStream client connected to it; both end with the test.
func StartJetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	srv := StartNATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// RunNATSCluster starts n clustered JetStream servers on 127.0.0.1 with stores
// under baseDir (one sub-directory each) and returns once the JetStream meta
// leader is elected and knows every peer, so an R-n stream can be placed at
// once. On error every started server has been shut down.
func RunNATSCluster(baseDir string, n int, logf func(string, ...any)) ([]*server.Server, error) {
	if n < 1 {
		return nil, fmt.Errorf("nats cluster: need at least one server, got %d", n)
	}
	var lastErr error
	// The cluster ports are picked free and released before the servers bind
	// them, so another process can take one in between: try again then.
	for attempt := 1; attempt <= 3; attempt++ {
		servers, err := runNATSCluster(baseDir, attempt, n, logf)
		if err == nil {
			return servers, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func runNATSCluster(baseDir string, attempt, n int, logf func(string, ...any)) ([]*server.Server, error) {
	ports, err := testutil.FreePorts(n)
	if err != nil {
		return nil, err
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(p))}
	}
	clusterName := fmt.Sprintf("test-cluster-%d", attempt)
	servers := make([]*server.Server, 0, n)
	shutdown := func() {
		for _, s := range servers {
			s.Shutdown()
		}
		for _, s := range servers {
			s.WaitForShutdown()
		}
	}
	for i := range n {
		name := fmt.Sprintf("n%d-a%d", i+1, attempt)
		storeDir := filepath.Join(baseDir, name)
		if err := os.MkdirAll(storeDir, 0o755); err != nil {
			shutdown()
			return nil, fmt.Errorf("nats store dir: %w", err)
		}
		var slogf func(string, ...any)
		if logf != nil {
			slogf = func(format string, args ...any) { logf("["+name+"] "+format, args...) }
		}
		sopts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   storeDir,
			NoSigs:     true,
			NoLog:      logf == nil,
			Cluster: server.ClusterOpts{
				Name: clusterName,
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		}
		s, err := startNATS(sopts, slogf, false, natsReadyTimeout)
		if err != nil {
			shutdown()
			return nil, err
		}
		servers = append(servers, s)
	}
	if err := waitClusterReady(servers, clusterReadyTimeout); err != nil {
		shutdown()
		return nil, err
	}
	return servers, nil
}

// waitClusterReady waits until every server routes to all others, exactly one
// is the JetStream meta leader, every follower is current, and the leader has
// JetStream stats from every peer (needed to place replicated streams).
func waitClusterReady(servers []*server.Server, timeout time.Duration) error {
	n := len(servers)
	deadline := time.Now().Add(timeout)
	for {
		var leader *server.Server
		leaders, routed, current := 0, 0, 0
		for _, s := range servers {
			if s.NumRoutes() >= n-1 {
				routed++
			}
			if s.JetStreamIsLeader() {
				leaders++
				leader = s
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		peers := 0
		if leader != nil {
			peers = len(leader.JetStreamClusterPeers())
		}
		if routed == n && leaders == 1 && current == n && (n == 1 || peers == n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats cluster not ready after %v: %d/%d routed, %d leaders, %d/%d current, leader sees %d peers",
				timeout, routed, n, leaders, current, n, peers)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartNATSCluster starts n (use 3) clustered JetStream servers whose stores
// live in t.TempDir(), waits for the meta leader, and shuts them all down when
// the test ends. Connect with ClusterURLs.
func StartNATSCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	servers, err := RunNATSCluster(t.TempDir(), n, nil)
	if err != nil {
		t.Fatalf("start nats cluster: %v", err)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
		}
		for _, s := range servers {
			s.WaitForShutdown()
		}
	})
	return servers
}

// ClusterURLs returns the client URLs of servers, comma-separated, as
// nats.Connect accepts them.
func ClusterURLs(servers []*server.Server) string {
	urls := make([]string, 0, len(servers))
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// natsLogger adapts a printf function to server.Logger.
type natsLogger struct {
	logf    func(string, ...any)
	verbose bool
}

func (l natsLogger) Noticef(format string, v ...any) {
	if l.verbose {
		l.logf("nats: "+format, v...)
	}
}
func (l natsLogger) Warnf(format string, v ...any)  { l.logf("nats WARN: "+format, v...) }
func (l natsLogger) Fatalf(format string, v ...any) { l.logf("nats FATAL: "+format, v...) }
func (l natsLogger) Errorf(format string, v ...any) { l.logf("nats ERROR: "+format, v...) }
func (l natsLogger) Debugf(format string, v ...any) {
	if l.verbose {
		l.logf("nats DEBUG: "+format, v...)
	}
}
func (l natsLogger) Tracef(string, ...any) {}
