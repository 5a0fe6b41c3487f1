package integration_test

import (
	"slices"
	"testing"

	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// Select serves a selection kept up to date on every change: enabling,
// disabling and deleting show at once, and the caller may change the slice
// it gets without changing the cache.
func TestCacheSelectionFollowsChanges(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	c.Put(ig("t", "b", true, "p"))
	c.Put(ig("t", "a", false, "p"))
	if got := ids(c.Select("t", "p")); !slices.Equal(got, []string{"t/b"}) {
		t.Fatalf("Select = %v, want the enabled one", got)
	}
	c.Put(ig("t", "a", true, "p"))
	if got := ids(c.Select("t", "p")); !slices.Equal(got, []string{"t/a", "t/b"}) {
		t.Fatalf("after enabling a: %v", got)
	}
	got := c.Select("t", "p")
	got[0] = &integration.Integration{ID: "x", TenantID: "t"}
	if got := ids(c.Select("t", "p")); !slices.Equal(got, []string{"t/a", "t/b"}) {
		t.Fatalf("changing a returned slice changed the cache: %v", got)
	}
	c.Put(ig("t", "b", false, "p"))
	if got := ids(c.Select("t", "p")); !slices.Equal(got, []string{"t/a"}) {
		t.Fatalf("after disabling b: %v", got)
	}
	c.Delete("t", "a")
	if got := c.Select("t", "p"); len(got) != 0 {
		t.Fatalf("after deleting a: %v", ids(got))
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (b, disabled)", c.Len())
	}
}
