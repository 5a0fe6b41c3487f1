package natstest

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Domains of the JetStreams StartHubAndLeaf starts.
const (
	HubDomain  = "hub"
	LeafDomain = "leaf"
)

// leafReadyTimeout bounds how long RunHubAndLeaf waits for the leaf node
// connection to come up on both sides.
const leafReadyTimeout = 30 * time.Second

// RunHubAndLeaf starts two JetStream servers joined as a hub and a leaf
// node, the topology of a central NATS with remote sites: the hub's
// JetStream is in domain HubDomain, the leaf's in LeafDomain, stores under
// baseDir. Both use the global account, so clients on either side share
// subjects; JetStream API requests cross the leaf connection only as
// $JS.<domain>.API.> (the server denies $JS.API.> across it since the
// domains differ). It returns once each side sees the other. On error every
// started server has been shut down.
func RunHubAndLeaf(baseDir string, logf func(string, ...any)) (hub, leaf *server.Server, err error) {
	named := func(name string) func(string, ...any) {
		if logf == nil {
			return nil
		}
		return func(format string, args ...any) { logf("["+name+"] "+format, args...) }
	}
	hubOpts := &server.Options{
		ServerName:      "hub",
		Host:            "127.0.0.1",
		Port:            server.RANDOM_PORT,
		JetStream:       true,
		JetStreamDomain: HubDomain,
		StoreDir:        filepath.Join(baseDir, "hub"),
		NoSigs:          true,
		NoLog:           logf == nil,
		LeafNode:        server.LeafNodeOpts{Host: "127.0.0.1", Port: server.RANDOM_PORT},
	}
	if err := os.MkdirAll(hubOpts.StoreDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("nats store dir: %w", err)
	}
	hub, err = startNATS(hubOpts, named("hub"), false, natsReadyTimeout)
	if err != nil {
		return nil, nil, err
	}
	// The server writes the leaf port it picked back into its options.
	hubLeafURL := &url.URL{Scheme: "nats-leaf", Host: fmt.Sprintf("127.0.0.1:%d", hubOpts.LeafNode.Port)}
	leafOpts := &server.Options{
		ServerName:      "leaf",
		Host:            "127.0.0.1",
		Port:            server.RANDOM_PORT,
		JetStream:       true,
		JetStreamDomain: LeafDomain,
		StoreDir:        filepath.Join(baseDir, "leaf"),
		NoSigs:          true,
		NoLog:           logf == nil,
		LeafNode: server.LeafNodeOpts{
			Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{hubLeafURL}}},
		},
	}
	stop := func(ss ...*server.Server) {
		for _, s := range ss {
			s.Shutdown()
		}
		for _, s := range ss {
			s.WaitForShutdown()
		}
	}
	if err := os.MkdirAll(leafOpts.StoreDir, 0o755); err != nil {
		stop(hub)
		return nil, nil, fmt.Errorf("nats store dir: %w", err)
	}
	leaf, err = startNATS(leafOpts, named("leaf"), false, natsReadyTimeout)
	if err != nil {
		stop(hub)
		return nil, nil, err
	}
	deadline := time.Now().Add(leafReadyTimeout)
	for hub.NumLeafNodes() != 1 || leaf.NumLeafNodes() != 1 {
		if time.Now().After(deadline) {
			stop(leaf, hub)
			return nil, nil, fmt.Errorf("leaf node not connected after %v: hub sees %d, leaf %d",
				leafReadyTimeout, hub.NumLeafNodes(), leaf.NumLeafNodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return hub, leaf, nil
}

// StartHubAndLeaf runs RunHubAndLeaf with stores in t.TempDir() and shuts
// both servers down when the test ends. Subscription interest crosses the
// leaf connection asynchronously: a client on one side should retry its
// first request to the other side's JetStream until it is answered.
func StartHubAndLeaf(t testing.TB) (hub, leaf *server.Server) {
	t.Helper()
	hub, leaf, err := RunHubAndLeaf(t.TempDir(), nil)
	if err != nil {
		t.Fatalf("start hub and leaf: %v", err)
	}
	t.Cleanup(func() {
		leaf.Shutdown()
		leaf.WaitForShutdown()
		hub.Shutdown()
		hub.WaitForShutdown()
	})
	return hub, leaf
}
