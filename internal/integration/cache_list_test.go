package integration_test

import (
	"slices"
	"testing"

	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

func TestCacheListHoldsOneTenantOnlySortedByID(t *testing.T) {
	t.Parallel()
	c := integration.NewCache()
	c.Put(ig("t1", "b", true, "p1"))
	c.Put(ig("t1", "a", false)) // disabled and without providers: still listed
	c.Put(ig("t2", "c", true, "p1"))
	c.Put(ig("t10", "d", true, "p1")) // a tenant whose id starts like t1's
	if got, want := ids(c.List("t1")), []string{"t1/a", "t1/b"}; !slices.Equal(got, want) {
		t.Errorf("List(t1) = %v, want %v", got, want)
	}
	c.Delete("t1", "a")
	if got, want := ids(c.List("t1")), []string{"t1/b"}; !slices.Equal(got, want) {
		t.Errorf("after a delete, List(t1) = %v, want %v", got, want)
	}
	if got := c.List("nobody"); len(got) != 0 {
		t.Errorf("List of an unknown tenant = %v", ids(got))
	}
}
