package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
)

// TestTheDocumentedNATSPermissionsAreEnough runs the exporter as a NATS user
// that has only the permissions of the exporter's template in
// docs/security.md, on a server that enforces them: it creates its streams,
// follows the integrations, exports a scan, answers control requests, and is
// never refused anything.
func TestTheDocumentedNATSPermissionsAreEnough(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	s := startEnforcingNATS(t)
	addr := s.Addr().String()
	e := newEnvOn(t, s, fmt.Sprintf("nats://root:root-pw@%s", addr), s3Server(t), func(c *config.Config) {
		c.NATSURL = fmt.Sprintf("nats://s3-exporter:%s@%s", templatePassword, addr)
	}, true)

	b := e.bucket("perms")
	e.put(e.integration("tenant-a", "perms", b, "prov-1"))
	files, set := prowlerFiles(41, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-perms", files)
	if st := e.waitExport("scan-perms", "perms"); st.State != event.StateSucceeded {
		t.Fatalf("export %s: %+v", st.State, st.Errors)
	}
	if got := len(e.objects(b)); got != len(set) {
		t.Errorf("%d objects in the bucket, want %d", got, len(set))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := e.cl.TestConnection(ctx, "tenant-a", "perms")
	if err != nil || !reply.Connected {
		t.Errorf("connection test: %+v, %v", reply, err)
	}
	if _, err := e.cl.Get(ctx, "tenant-a", "perms"); err != nil {
		t.Errorf("get: %v", err)
	}
	// A replay reads the scan back from its stream and exports it again.
	if r, err := e.cl.Replay(ctx, "tenant-a", "scan-perms", "perms"); err != nil || !r.Accepted {
		t.Fatalf("replay: %+v, %v", r, err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(e.exports("scan-perms", "perms")) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no second export after the replay: %s", e.dump())
		}
	}
	if st := e.exports("scan-perms", "perms")[1]; st.State != event.StateSucceeded {
		t.Errorf("the replayed export: %s %+v", st.State, st.Errors)
	}
	if log := e.logText(); strings.Contains(strings.ToLower(log), "permissions violation") {
		t.Errorf("the exporter was refused something:\n%s", log)
	}
}
