package testutil

import (
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
)

// SeedEnv names the environment variable that fixes the seed of every random
// test, to re-run a failure with the seed its log printed:
//
//	S3EXPORTER_TEST_SEED=12345 go test -run TestX ./e2e/
const SeedEnv = "S3EXPORTER_TEST_SEED"

// seeds keeps one seed per test, so that the helpers of one test (a fault
// proxy, the test's own draws) share the seed it logged once.
var seeds sync.Map // testing.TB -> uint64

// Seed returns the seed of t's random choices: $S3EXPORTER_TEST_SEED when
// set, else a fresh one. The first call of a test logs it. A test that
// draws from several goroutines, or whose draws depend on the order in which
// requests arrive, replays the same draws, not necessarily the same run.
func Seed(t testing.TB) uint64 {
	t.Helper()
	if s, ok := seeds.Load(t); ok {
		return s.(uint64)
	}
	seed := rand.Uint64()
	if v := os.Getenv(SeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: not an unsigned integer: %v", SeedEnv, v, err)
		}
		seed = s
	}
	if s, loaded := seeds.LoadOrStore(t, seed); loaded {
		return s.(uint64)
	}
	t.Cleanup(func() { seeds.Delete(t) })
	t.Logf("random seed %d (re-run with %s=%d)", seed, SeedEnv, seed)
	return seed
}

// Rand returns a source seeded with Seed(t). It is not safe for concurrent
// use.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	s := Seed(t)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}
