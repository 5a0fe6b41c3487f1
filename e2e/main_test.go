package e2e

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// minParallel is how many parallel tests run at once when -parallel is not
// given. These tests mostly wait (for NATS, versitygw, a retry's backoff),
// so the default, GOMAXPROCS, would leave a small machine idle. On 2 shared
// cores the parallel tests took about 30 s two at a time, 20 s eight at a
// time, and no less at sixteen. Each parallel test has a world of its own
// (its NATS server, its exporter, its buckets).
const minParallel = 8

// TestMain raises -parallel to minParallel unless it was given, then stops
// what the tests share once they are done: the versitygw process and its
// directory, and the binaries built for the tests that run them as
// processes.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < minParallel {
		if err := flag.Set("test.parallel", strconv.Itoa(minParallel)); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	if sharedS3 != nil {
		_ = sharedS3.Close()
	}
	if sharedMinIO != nil {
		_ = sharedMinIO.Close()
	}
	for _, bin := range []string{exporterBin, ctlBin} {
		if bin != "" {
			_ = os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}
