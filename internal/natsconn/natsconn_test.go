package natsconn_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/prowler-cloud/s3-exporter/internal/natsconn"
)

// passwordServer is a NATS server (no JetStream) that wants a user and a
// password.
func passwordServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Username: "exporter", Password: "right-password"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func TestConnectWithAPasswordInTheURL(t *testing.T) {
	s := passwordServer(t)
	port := s.Addr().(interface{ String() string }).String()
	url := func(pass string) string { return fmt.Sprintf("nats://exporter:%s@%s", pass, port) }

	nc, err := natsconn.Connect(url("right-password"), "test", natsconn.Auth{})
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	if got := nc.Opts.Name; got != "test" {
		t.Errorf("connection name %q", got)
	}
	nc.Close()

	// Refused: the message names the server, not the password, and the
	// library's error is still there to test.
	const canary = "canary-password-7f3a"
	_, err = natsconn.Connect(url(canary), "test", natsconn.Auth{}, nats.Timeout(2*time.Second))
	if err == nil {
		t.Fatal("a wrong password connected")
	}
	if strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), port) {
		t.Errorf("the error shows the password, or does not name the server: %v", err)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("errors.Is(err, nats.ErrAuthorization) is false for %v", err)
	}
	// A list of servers, none of which lets us in.
	_, err = natsconn.Connect(" nats://127.0.0.1:1, "+url(canary), "test", natsconn.Auth{}, nats.Timeout(2*time.Second))
	if err == nil || strings.Contains(err.Error(), canary) {
		t.Errorf("two servers: %v", err)
	}
}

func TestAuthOptions(t *testing.T) {
	if opts, err := (natsconn.Auth{}).Options(); err != nil || len(opts) != 0 {
		t.Errorf("no settings: %d options, %v", len(opts), err)
	}
	missing := filepath.Join(t.TempDir(), "no-such.nk")
	if _, err := (natsconn.Auth{NKeySeed: missing}).Options(); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing seed file: %v, want an error naming it", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.nk")
	if err := os.WriteFile(bad, []byte("not a seed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (natsconn.Auth{NKeySeed: bad}).Options(); err == nil {
		t.Error("a file with no seed was accepted")
	}
	opts, err := (natsconn.Auth{Creds: "x.creds", TLSCert: "c.pem", TLSKey: "k.pem", TLSCA: "ca.pem"}).Options()
	if err != nil || len(opts) != 3 {
		t.Errorf("creds, client certificate and CA: %d options, %v; want 3", len(opts), err)
	}
}
