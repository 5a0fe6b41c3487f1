package testutil

import (
	"fmt"
	"strings"
	"testing"
)

// TestSeedIsStablePerTestAndFixedByTheEnvironment: one test gets one seed
// however often it asks, the variable fixes it, and the same seed draws the
// same numbers.
func TestSeedIsStablePerTestAndFixedByTheEnvironment(t *testing.T) {
	t.Setenv(SeedEnv, "12345")
	if s := Seed(t); s != 12345 {
		t.Fatalf("Seed = %d with %s=12345", s, SeedEnv)
	}
	if s := Seed(t); s != 12345 {
		t.Fatalf("second Seed = %d", s)
	}
	a, b := Rand(t), Rand(t)
	for i := 0; i < 8; i++ {
		if x, y := a.Uint64(), b.Uint64(); x != y {
			t.Fatalf("draw %d: %d != %d from the same seed", i, x, y)
		}
	}
	t.Run("fresh", func(t *testing.T) {
		t.Setenv(SeedEnv, "")
		first := Seed(t)
		if Seed(t) != first {
			t.Fatal("a test's seed changed between calls")
		}
	})
}

func TestSeedRefusesAGarbledVariable(t *testing.T) {
	t.Setenv(SeedEnv, "not-a-number")
	r := &recordingTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		Seed(r)
	}()
	if !strings.Contains(r.fatal, SeedEnv) {
		t.Fatalf("fatal message = %q, want one naming %s", r.fatal, SeedEnv)
	}
}

// recordingTB records Fatalf instead of failing the test.
type recordingTB struct {
	testing.TB
	fatal string
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	panic("fatal")
}
