package source_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

// A hostile writer under the root swaps, in a loop, an allowed entry with a
// symlink leading out (renameat2(RENAME_EXCHANGE): no moment where neither
// exists) while the exporter opens it. The outside bytes never come out:
// each open yields the allowed bytes or a refusal. Three places are raced:
// the file itself, a folder on its path, and the scan's own folder.
func TestFileSourceSwappedSymlinkNeverLeadsOut(t *testing.T) {
	if testing.Short() {
		t.Skip("a race loop")
	}
	base := t.TempDir()
	data := []byte("t1's findings\n")
	secret := []byte("SECRET outside the root\n")
	write(t, filepath.Join(base, "outside/out.csv"), secret)
	write(t, filepath.Join(base, "outside/sub/out.csv"), secret)
	write(t, filepath.Join(base, "root/t1/s1/out.csv"), data)
	write(t, filepath.Join(base, "root/t1/s1/sub/out.csv"), data)
	write(t, filepath.Join(base, "root/t1/s9/out.csv"), data)
	symlink(t, "../../../outside/out.csv", filepath.Join(base, "root/t1/s1/swap-file"))
	symlink(t, "../../../outside/sub", filepath.Join(base, "root/t1/s1/swap-dir"))
	symlink(t, filepath.Join(base, "outside"), filepath.Join(base, "root/t1/swap-scan"))
	o, err := source.NewOpener(nil, []string{filepath.Join(base, "root")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, scan, path, a, b string }{
		{"file", "s1", "root/t1/s1/out.csv", "root/t1/s1/out.csv", "root/t1/s1/swap-file"},
		{"folder", "s1", "root/t1/s1/sub/out.csv", "root/t1/s1/sub", "root/t1/s1/swap-dir"},
		{"scan folder", "s9", "root/t1/s9/out.csv", "root/t1/s9", "root/t1/swap-scan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var swaps int
			var swapErr error
			wg.Go(func() {
				swaps, swapErr = fixtures.ExchangeLoop(ctx, filepath.Join(base, tc.a), filepath.Join(base, tc.b))
			})
			sc := *scan
			sc.ScanID = tc.scan
			a := event.Artifact{Format: "csv", Source: "file://" + filepath.Join(base, tc.path)}
			var ok, refused int
			// At least 2,000 opens, and until both outcomes were seen many
			// times: the loop then has certainly raced the opens (a bound
			// keeps a broken swapper from spinning forever). The v1 opener
			// (EvalSymlinks, then os.Open of the result) read the outside
			// file in about 3.5% of such opens.
			for i := 0; i < 200_000 && (i < 2000 || ok < 50 || refused < 50); i++ {
				op, err := o.Open(context.Background(), &sc, a)
				if err != nil {
					var e *errcode.Error
					if !errors.As(err, &e) || e.Retryable || (e.Code != errcode.SourceRefused && e.Code != errcode.SourceNotFound) {
						t.Fatalf("open %d: %v", i, err)
					}
					refused++
					continue
				}
				got, err := readAll(t, op)
				if bytes.Contains(got, []byte("SECRET")) {
					t.Fatalf("open %d read the outside file: %q", i, got)
				}
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("open %d: read %q, %v", i, got, err)
				}
				ok++
			}
			cancel()
			wg.Wait()
			if swapErr != nil {
				t.Fatalf("swapping: %v", swapErr)
			}
			t.Logf("%d swaps, %d opens read the allowed file, %d were refused", swaps, ok, refused)
			if ok == 0 || refused == 0 {
				t.Fatalf("the swaps never raced the opens (%d read, %d refused)", ok, refused)
			}
		})
	}
}
