package source

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
)

func TestAPIPrefixFollowsTheJetStream(t *testing.T) {
	srv := natstest.StartNATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	plain, _ := jetstream.New(nc)
	inDomain, _ := jetstream.NewWithDomain(nc, "hub")
	imported, _ := jetstream.NewWithAPIPrefix(nc, "$JS.acme.API")
	for _, c := range []struct {
		js   jetstream.JetStream
		want string
	}{{plain, "$JS.API."}, {inDomain, "$JS.hub.API."}, {imported, "$JS.acme.API."}} {
		if got := apiPrefix(c.js); got != c.want {
			t.Errorf("apiPrefix = %q, want %q", got, c.want)
		}
	}
}

// The leader's message-get request is a raw API request: from a leaf node
// it must go to the hub's domain, where the object store lives, as every
// other request of the same JetStream does.
func TestLeaderObjectInfoFromALeafNode(t *testing.T) {
	hub, leaf := natstest.StartHubAndLeaf(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(url string) *nats.Conn {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	leafNC := connect(leaf.ClientURL())
	js, err := jetstream.NewWithDomain(leafNC, natstest.HubDomain)
	if err != nil {
		t.Fatal(err)
	}
	// The hub's interest crosses the leaf connection asynchronously.
	for {
		if _, err := js.AccountInfo(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("the hub's JetStream never answered through the leaf: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	const bucket = "PROWLER_OUTPUTS"
	os, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("finding "), 1000)
	if _, err := os.PutBytes(ctx, "t1/scan.ocsf.json", body); err != nil {
		t.Fatal(err)
	}

	info, err := leaderObjectInfo(ctx, js, bucket, "t1/scan.ocsf.json")
	if err != nil {
		t.Fatalf("leaderObjectInfo through the leaf: %v", err)
	}
	if info.Size != uint64(len(body)) || info.Name != "t1/scan.ocsf.json" {
		t.Errorf("info = %+v, want %d bytes", info, len(body))
	}
	if _, err := leaderObjectInfo(ctx, js, bucket, "t1/missing.csv"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("missing object: err = %v, want ErrObjectNotFound", err)
	}

	// The store is the hub's: the leaf's own JetStream does not have it.
	hubJS, _ := jetstream.New(connect(hub.ClientURL()))
	if _, err := hubJS.ObjectStore(ctx, bucket); err != nil {
		t.Errorf("the hub has no %s: %v", bucket, err)
	}
	leafJS, _ := jetstream.New(leafNC)
	if _, err := leafJS.ObjectStore(ctx, bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the leaf's JetStream: err = %v, want ErrBucketNotFound", err)
	}
}
