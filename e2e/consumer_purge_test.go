package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
)

// TestAReplicaStartsAndExportsAfterTheLastIntegrationChangeWasPurged: an
// operator removed the integrations stream's last message (nats stream rmm).
// A replica started afterwards becomes ready and exports; before, it waited
// for that message for up to 24 hours, and scans for it until they ran out.
func TestAReplicaStartsAndExportsAfterTheLastIntegrationChangeWasPurged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an exporter")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnvFull(t, s3Server(t), nil, false)
	b := e.bucket("kept")
	e.put(e.integration("tenant-a", "kept", b, "prov-1"))
	e.put(e.integration("tenant-a", "removed", e.bucket("removed"), "prov-1"))
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "PROWLER_INTEGRATIONS")
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetLastMsgForSubject(ctx, "prowler.integrations.changed.tenant-a.removed")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, last.Sequence); err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.LastSeq != last.Sequence {
		t.Fatalf("the stream's LastSeq should still name the removed message: %+v %v", info, err)
	}

	e.start() // fails the test unless the exporter is ready within 30 s
	files, _ := prowlerFiles(41, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-after-purge", files)
	if got := e.waitExport("scan-after-purge", "kept"); got.State != event.StateSucceeded || got.Attempt != 1 {
		t.Fatalf("%s at attempt %d %+v", got.State, got.Attempt, got.Errors)
	}
	if n := len(e.exports("scan-after-purge", "removed")); n != 0 {
		t.Errorf("%d statuses for the integration whose change was removed", n)
	}
	if got := len(e.objects(b)); got != len(files) {
		t.Errorf("%d objects, want %d", got, len(files))
	}
}
