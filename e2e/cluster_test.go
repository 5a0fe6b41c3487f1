package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/prowler-cloud/s3-exporter/event"
)

var smallFormats = []string{event.FormatCSV, event.FormatHTML, event.FormatOCSF}

// TestTwoReplicasShareTheWorkOnAThreeNodeCluster: two exporter processes
// share the durable consumer on a three-node cluster with R3 streams; 300
// scans for two integrations all land, both replicas work, and each (scan,
// integration) gets exactly one succeeded status.
func TestTwoReplicasShareTheWorkOnAThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a NATS cluster and two exporter processes")
	}
	t.Parallel() // a world of its own: a NATS cluster, processes, buckets
	bin := buildExporter(t)
	e, _ := newClusterEnv(t)
	b1, b2 := e.bucket("scaleout-a"), e.bucket("scaleout-b")
	e.put(e.integration("tenant-a", "first", b1, "prov-1"))
	e.put(e.integration("tenant-a", "second", b2, "prov-1"))
	env := replicaEnv(e.cfg.NATSURL, e.s3.Endpoint(), map[string]string{"S3EXPORTER_STREAM_REPLICAS": "3"})
	replicas := []*replica{startReplica(t, "replica-1", bin, env), startReplica(t, "replica-2", bin, env)}
	tally := followExports(t, e.cl.JS)

	scans := loadScans("scaleout", 300, smallFormats, 0, 0)
	start := time.Now()
	if err := publishLoad(e.cl, scans, 4, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d scans in %v", len(scans), time.Since(start).Round(time.Millisecond))
	if !tally.waitSettled(2*len(scans), 3*time.Minute) {
		ok, failed := tally.settled()
		t.Fatalf("%d of %d exports succeeded, %d failed %v; logs:\n%s\n%s", ok, 2*len(scans), failed, tally.failures(), replicas[0].notable(30), replicas[1].notable(30))
	}
	t.Logf("%d exports succeeded %v after the first publish", 2*len(scans), time.Since(start).Round(time.Millisecond))

	checkObjects(t, e.s3, b1, wantObjects(scans, "output"), 25)
	checkObjects(t, e.s3, b2, wantObjects(scans, "output"), 25)
	consumerIdle(t, e.cl.JS, 15*time.Second)
	sc := readExportStatuses(t, e.cl.JS)
	if dups := sc.checkSucceeded(t, scans, "first", "second"); dups != 0 {
		t.Errorf("%d duplicate succeeded statuses without any failure", dups)
	}
	if n := dlqCount(t, e.cl.JS); n != 0 {
		t.Errorf("%d dead letters", n)
	}

	// Both replicas did part of the work, and the parts add up.
	total := 0
	for _, r := range replicas {
		n := r.count("export finished")
		m, err := r.metrics()
		if err != nil {
			t.Fatal(err)
		}
		if got := metricSum(m, `s3exporter_exports_total{result="succeeded"}`); int(got) != n {
			t.Errorf("%s logged %d finished exports but counts %v succeeded", r.name, n, got)
		}
		t.Logf("%s: %d exports", r.name, n)
		if n == 0 {
			t.Errorf("%s did no work", r.name)
		}
		total += n
	}
	if total != 2*len(scans) {
		t.Errorf("the replicas finished %d exports, want %d", total, 2*len(scans))
	}
}

// TestExportersRideOutTheLossOfANATSNode: mid-load, the NATS server a replica
// is connected to — made leader of the scans stream and its consumer first —
// is shut down; the replicas reconnect and every scan is exported.
func TestExportersRideOutTheLossOfANATSNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a NATS cluster and two exporter processes")
	}
	t.Parallel() // a world of its own: a NATS cluster, processes, buckets
	bin := buildExporter(t)
	e, servers := newClusterEnv(t)
	b := e.bucket("nodeloss")
	e.put(e.integration("tenant-a", "steady", b, "prov-1"))
	env := replicaEnv(e.cfg.NATSURL, e.s3.Endpoint(), map[string]string{
		"S3EXPORTER_STREAM_REPLICAS": "3",
		// An ack lost in the leader change is redelivered after this.
		"S3EXPORTER_ACK_WAIT": "5s",
	})
	replicas := []*replica{startReplica(t, "replica-1", bin, env), startReplica(t, "replica-2", bin, env)}
	tally := followExports(t, e.cl.JS)

	// The victim: the server replica-1 is connected to.
	connected := replicas[0].logField("exporter ready", "nats")
	var victim *server.Server
	for _, s := range servers {
		if s.ClientURL() == connected {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("replica-1 is connected to %q, not one of the servers", connected)
	}
	// Make it leader of what the replicas use most, so losing it costs the
	// most: the scans stream and the durable consumer.
	stepDownTo(t, e, "$JS.API.STREAM.LEADER.STEPDOWN.PROWLER_SCANS", victim.Name())
	stepDownTo(t, e, "$JS.API.CONSUMER.LEADER.STEPDOWN.PROWLER_SCANS.s3-exporter", victim.Name())
	waitLeader(t, e, victim.Name())

	scans := loadScans("nodeloss", 240, smallFormats, 0, 0)
	pubErr := make(chan error, 1)
	go func() { pubErr <- publishLoad(e.cl, scans, 4, 0) }()
	for {
		if ok, _ := tally.settled(); ok >= len(scans)/4 {
			break
		}
		select {
		case err := <-pubErr:
			if err != nil {
				t.Fatal(err)
			}
			pubErr <- nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	ok, _ := tally.settled()
	t.Logf("shutting down NATS server %s (replica-1's, leader of the scans stream and consumer) after %d of %d exports", victim.Name(), ok, len(scans))
	lost := time.Now()
	victim.Shutdown()
	victim.WaitForShutdown()
	// The follower started before may be reading through the lost node,
	// and its ordered consumer takes some 10 s of missed heartbeats to
	// notice; a fresh one reads every status again through the others.
	tally = followExports(t, e.cl.JS)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	if !tally.waitSettled(len(scans), time.Minute) {
		ok, failed := tally.settled()
		msg := fmt.Sprintf("%d of %d exports succeeded, %d failed %v; missing %v; %s; logs:\n%s\n%s", ok, len(scans), failed,
			tally.failures(), tally.missing(scans, "steady"), consumerState(e.cl.JS), replicas[0].notable(60), replicas[1].notable(60))
		for _, r := range replicas { // where a stuck replica waits
			t.Logf("%s goroutines:\n%s", r.name, r.stacks())
		}
		t.Fatal(msg)
	}
	t.Logf("every export succeeded %v after the node was lost", time.Since(lost).Round(time.Millisecond))

	checkObjects(t, e.s3, b, wantObjects(scans, "output"), 25)
	consumerIdle(t, e.cl.JS, 30*time.Second)
	sc := readExportStatuses(t, e.cl.JS)
	dups := sc.checkSucceeded(t, scans, "steady")
	if n := dlqCount(t, e.cl.JS); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	for _, r := range replicas {
		t.Logf("%s: %d exports, %d disconnections, %d reconnections, %d fetch errors", r.name, r.count("export finished"),
			r.count("NATS disconnected"), r.count("NATS reconnected"), r.count("fetching scans"))
	}
	if replicas[0].count("NATS reconnected") == 0 {
		t.Errorf("replica-1 lost its server but logged no reconnection:\n%s", replicas[0].notable(30))
	}
	t.Logf("%d duplicate succeeded statuses (at-least-once), %d retrying statuses", dups, sc.retrying)
	explainDuplicates(t, sc, replicas...)
}

// stepDownTo asks the leader of a stream or consumer to hand over to the
// server named preferred.
func stepDownTo(t *testing.T, e *env, api, preferred string) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	// A request made while the cluster moves a leader may get no answer:
	// ask again soon (the move asked for is then done or still to do)
	// rather than wait long for it.
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		msg, err := e.nc.RequestWithContext(ctx, api, req)
		cancel()
		if err == nil {
			err = json.Unmarshal(msg.Data, &resp)
		}
		switch {
		case err == nil && resp.Success:
			return
		case err == nil && resp.Error != nil && strings.Contains(resp.Error.Description, "already leader"):
			return
		case attempt == 40:
			t.Fatalf("%s to %s: %v %+v", api, preferred, err, resp.Error)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitLeader waits until the server named name leads the scans stream and
// its durable consumer.
func waitLeader(t *testing.T, e *env, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var streamLeader, consumerLeader string
		if s, err := e.cl.JS.Stream(ctx, "PROWLER_SCANS"); err == nil {
			if si, err := s.Info(ctx); err == nil && si.Cluster != nil {
				streamLeader = si.Cluster.Leader
			}
		}
		if c, err := e.cl.JS.Consumer(ctx, "PROWLER_SCANS", "s3-exporter"); err == nil {
			if ci, err := c.Info(ctx); err == nil && ci.Cluster != nil {
				consumerLeader = ci.Cluster.Leader
			}
		}
		cancel()
		if streamLeader == name && consumerLeader == name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders: stream %q, consumer %q; want %q", streamLeader, consumerLeader, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
