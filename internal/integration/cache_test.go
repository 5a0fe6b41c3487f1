package integration_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

func ig(tenant, id string, enabled bool, providers ...string) *integration.Integration {
	return &integration.Integration{ID: id, TenantID: tenant, Enabled: enabled, Providers: providers, Bucket: "bucket", OutputDirectory: "output"}
}

func ids(igs []*integration.Integration) []string {
	out := make([]string, len(igs))
	for i, x := range igs {
		out[i] = x.TenantID + "/" + x.ID
	}
	return out
}

func TestCacheSelect(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	c.Put(ig("t1", "b", true, "p1", "p2"))
	c.Put(ig("t1", "a", true, "p1"))
	c.Put(ig("t1", "c", false, "p1")) // disabled
	c.Put(ig("t1", "d", true, "p2"))
	c.Put(ig("t2", "a", true, "p1")) // another tenant, same provider and id
	c.Put(ig("t2", "e", true, "p1"))

	for _, tc := range []struct {
		tenant, provider string
		want             []string
	}{
		{"t1", "p1", []string{"t1/a", "t1/b"}},
		{"t1", "p2", []string{"t1/b", "t1/d"}},
		{"t2", "p1", []string{"t2/a", "t2/e"}},
		{"t2", "p2", []string{}},
		{"t3", "p1", []string{}},
		{"t1", "p3", []string{}},
		{"", "", []string{}},
	} {
		got := ids(c.Select(tc.tenant, tc.provider))
		if !slices.Equal(got, tc.want) {
			t.Errorf("Select(%s, %s) = %v, want %v", tc.tenant, tc.provider, got, tc.want)
		}
	}
	if c.Len() != 6 {
		t.Errorf("Len = %d", c.Len())
	}
	// Get returns disabled ones too, and keeps tenants apart.
	if got, ok := c.Get("t1", "c"); !ok || got.Enabled {
		t.Errorf("Get(t1, c) = %v, %v", got, ok)
	}
	if _, ok := c.Get("t2", "c"); ok {
		t.Error("Get(t2, c) found t1's integration")
	}
}

func TestCacheSelectOrder(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	want := []string{}
	for i := 20; i > 0; i-- {
		c.Put(ig("t", fmt.Sprintf("i%02d", i), true, "p"))
	}
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprintf("t/i%02d", i))
	}
	if got := ids(c.Select("t", "p")); !slices.Equal(got, want) {
		t.Errorf("Select order = %v", got)
	}
}

func TestCacheUpdateMovesProviders(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	c.Put(ig("t1", "i1", true, "p1", "p2"))
	c.Put(ig("t1", "i1", true, "p2", "p3"))
	if got := c.Select("t1", "p1"); len(got) != 0 {
		t.Errorf("after moving off p1, Select(p1) = %v", ids(got))
	}
	for _, p := range []string{"p2", "p3"} {
		if got := ids(c.Select("t1", p)); !slices.Equal(got, []string{"t1/i1"}) {
			t.Errorf("Select(%s) = %v", p, got)
		}
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d after an update", c.Len())
	}
	// The newest state is what Select returns.
	upd := ig("t1", "i1", true, "p3")
	upd.Bucket = "new-bucket"
	c.Put(upd)
	if got := c.Select("t1", "p3"); len(got) != 1 || got[0].Bucket != "new-bucket" {
		t.Errorf("Select after update = %v", got)
	}
	if got := c.Select("t1", "p2"); len(got) != 0 {
		t.Errorf("Select(p2) = %v", ids(got))
	}
	// Disabling keeps it cached but out of Select.
	c.Put(ig("t1", "i1", false, "p3"))
	if got := c.Select("t1", "p3"); len(got) != 0 {
		t.Errorf("disabled integration selected: %v", ids(got))
	}
	if _, ok := c.Get("t1", "i1"); !ok {
		t.Error("disabled integration not cached")
	}
	// An integration with no providers is cached and never selected.
	c.Put(ig("t1", "i1", true))
	if got := c.Select("t1", "p3"); len(got) != 0 {
		t.Errorf("Select = %v", ids(got))
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d", c.Len())
	}
}

func TestCacheDelete(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	c.Put(ig("t1", "i1", true, "p1"))
	c.Put(ig("t1", "i2", true, "p1"))
	c.SetStatus(event.ConnectionStatus{TenantID: "t1", IntegrationID: "i1", Connected: true})
	if !c.Delete("t1", "i1") {
		t.Error("Delete of a cached integration reported false")
	}
	if c.Delete("t1", "i1") {
		t.Error("a second Delete reported true")
	}
	if c.Delete("t2", "i2") {
		t.Error("Delete of another tenant's id reported true")
	}
	if got := ids(c.Select("t1", "p1")); !slices.Equal(got, []string{"t1/i2"}) {
		t.Errorf("Select after delete = %v", got)
	}
	if _, ok := c.Status("t1", "i1"); ok {
		t.Error("the status of a deleted integration is kept")
	}
	// A re-created integration starts without the old status.
	c.Put(ig("t1", "i1", true, "p1"))
	if _, ok := c.Status("t1", "i1"); ok {
		t.Error("a re-created integration has the old status")
	}
	c.Delete("t1", "i1")
	c.Delete("t1", "i2")
	if c.Len() != 0 || len(c.Select("t1", "p1")) != 0 || len(c.Counts()) != 0 {
		t.Errorf("cache not empty: len %d, counts %v", c.Len(), c.Counts())
	}
}

func TestCacheStatusAndCounts(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	c.Put(ig("t1", "up", true, "p"))
	c.Put(ig("t1", "down", true, "p"))
	c.Put(ig("t1", "new", true, "p"))
	c.Put(ig("t1", "off", false, "p"))
	c.Put(ig("t2", "offdown", false, "p"))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c.SetStatus(event.ConnectionStatus{TenantID: "t1", IntegrationID: "up", Connected: true, LastCheckedAt: now, BucketRegion: "eu-west-1"})
	c.SetStatus(event.ConnectionStatus{TenantID: "t1", IntegrationID: "down", Connected: false})
	c.SetStatus(event.ConnectionStatus{TenantID: "t2", IntegrationID: "offdown", Connected: false})
	// A status for an integration that is not cached is dropped.
	c.SetStatus(event.ConnectionStatus{TenantID: "t9", IntegrationID: "ghost", Connected: true})
	if _, ok := c.Status("t9", "ghost"); ok {
		t.Error("status of an uncached integration kept")
	}

	st, ok := c.Status("t1", "up")
	if !ok || !st.Connected || st.BucketRegion != "eu-west-1" || !st.LastCheckedAt.Equal(now) {
		t.Errorf("Status(t1, up) = %+v, %v", st, ok)
	}
	// An update of the integration keeps its last status.
	c.Put(ig("t1", "up", true, "p", "q"))
	if _, ok := c.Status("t1", "up"); !ok {
		t.Error("an update dropped the status")
	}

	want := map[[2]string]int{
		{"true", "true"}:     1,
		{"true", "false"}:    1,
		{"true", "unknown"}:  1,
		{"false", "unknown"}: 1,
		{"false", "false"}:   1,
	}
	got := c.Counts()
	if len(got) != len(want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("Counts[%v] = %d, want %d", k, got[k], n)
		}
	}
}

func TestCacheWaitApplied(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	ctx := context.Background()
	if !c.WaitApplied(ctx, 0, time.Millisecond) {
		t.Error("WaitApplied(0) on a new cache = false")
	}
	c.MarkApplied(5)
	c.MarkApplied(3) // never goes back
	if c.Applied() != 5 {
		t.Errorf("Applied = %d", c.Applied())
	}
	if !c.WaitApplied(ctx, 5, time.Millisecond) || !c.WaitApplied(ctx, 4, time.Millisecond) {
		t.Error("WaitApplied of a reached sequence = false")
	}

	// Times out when nothing is applied.
	if c.WaitApplied(ctx, 6, 20*time.Millisecond) {
		t.Error("WaitApplied(6) = true with 5 applied")
	}

	// Wakes when MarkApplied reaches the sequence, through intermediate steps.
	done := make(chan bool)
	go func() { done <- c.WaitApplied(ctx, 8, time.Minute) }()
	c.MarkApplied(6)
	c.MarkApplied(7)
	select {
	case r := <-done:
		t.Fatalf("WaitApplied(8) returned %v at 7", r)
	case <-time.After(10 * time.Millisecond):
	}
	c.MarkApplied(9)
	select {
	case r := <-done:
		if !r {
			t.Error("WaitApplied(8) = false after MarkApplied(9)")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitApplied did not wake on MarkApplied")
	}

	// Returns false when the context ends.
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- c.WaitApplied(cctx, 100, time.Minute) }()
	cancel()
	select {
	case r := <-done:
		if r {
			t.Error("WaitApplied = true after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitApplied ignored its context")
	}
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	const writers, n = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				id := fmt.Sprintf("i%d", i%10)
				c.Put(ig("t", id, i%3 != 0, fmt.Sprintf("p%d", (i+w)%3)))
				if i%7 == 0 {
					c.Delete("t", id)
				}
				c.SetStatus(event.ConnectionStatus{TenantID: "t", IntegrationID: id, Connected: i%2 == 0})
				c.MarkApplied(uint64(w*n + i))
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				for _, x := range c.Select("t", fmt.Sprintf("p%d", i%3)) {
					if !x.Enabled || !x.HasProvider(fmt.Sprintf("p%d", i%3)) {
						t.Errorf("Select returned %v", x)
						return
					}
				}
				c.Counts()
				c.Get("t", "i1")
				c.Status("t", "i1")
				c.WaitApplied(context.Background(), uint64(i), time.Millisecond)
			}
		}()
	}
	wg.Wait()
	// The indexes agree with the primary map at the end.
	total := 0
	for p := range 3 {
		for _, x := range c.Select("t", fmt.Sprintf("p%d", p)) {
			got, ok := c.Get("t", x.ID)
			if !ok || got != x {
				t.Errorf("Select returned %s, which Get does not", x.ID)
			}
			total++
		}
	}
	if total > c.Len() {
		t.Errorf("Select found %d, Len %d", total, c.Len())
	}
}
