package source_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// FuzzResolve feeds arbitrary sources, tenants and scans to the resolver,
// the one place that decides what an event's source may open. It must never
// panic, refuse only with a permanent SourceRefused, and whatever it allows
// must lie within the event's own tenant and scan: an object name under
// "<tenant>/<scan>/", a file below <root>/<tenant>/<scan>/ of an allowed root.
func FuzzResolve(f *testing.F) {
	roots := []source.FileRoot{
		{Given: "/srv/prowler", Real: "/data/prowler"}, // a root given through a symlink
		{Given: "/r", Real: "/r"},
	}
	for _, seed := range []struct{ src, tenant, scan string }{
		{"nats-os://PROWLER_OUTPUTS/t1/s1/out.csv", "t1", "s1"},
		{"nats-os://PROWLER_OUTPUTS/t1/s1/../../t2/s2/x", "t1", "s1"},
		{"nats-os://B/t1/s1", "t1", "s1"},
		{"nats-os://B/t1x/s1/x", "t1", "s1"},
		{"file:///r/t1/s1/out.csv", "t1", "s1"},
		{"file:///r/t1/s1/compliance/cis.csv", "t1", "s1"},
		{"file:///srv/prowler/t1/s1/x", "t1", "s1"},
		{"file:///data/prowler/t1/s1/x", "t1", "s1"},
		{"file:///r/t1/s1/../../t2/s2/x", "t1", "s1"},
		{"file:///r/t1/s1", "t1", "s1"},
		{"file:///r/t1/s1/", "t1", "s1"},
		{"file:///rx/t1/s1/x", "t1", "s1"},
		{"file:///r/../etc/passwd", "t1", "s1"},
		{"file:///r/t1/s1/x", "..", "s1"},
		{"file:///r/./s1/x", ".", "s1"},
		{"file:///r//s1/x", "", "s1"},
		{"file://r/t1/s1/x", "t1", "s1"},
		{"ftp://x/y", "t1", "s1"},
	} {
		f.Add(seed.src, seed.tenant, seed.scan)
	}
	f.Fuzz(func(t *testing.T, raw, tenant, scan string) {
		tg, err := source.Resolve(raw, tenant, scan, roots)
		if err != nil {
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code != errcode.SourceRefused || e.Retryable {
				t.Fatalf("Resolve(%q, %q, %q): %v (%T), want a permanent SourceRefused", raw, tenant, scan, err, err)
			}
			return
		}
		if !event.ValidID(tenant) || !event.ValidID(scan) {
			t.Fatalf("allowed %q for tenant %q, scan %q", raw, tenant, scan)
		}
		switch tg.Source.Scheme {
		case event.SchemeObjectStore:
			prefix := tenant + "/" + scan + "/"
			if tg.Prefix != prefix || !event.CleanObjectName(tg.Source.Object) || !strings.HasPrefix(tg.Source.Object, prefix) ||
				len(tg.Source.Object) == len(prefix) {
				t.Fatalf("allowed object %q (prefix %q) for %s/%s", tg.Source.Object, tg.Prefix, tenant, scan)
			}
		case event.SchemeFile:
			if tg.Tenant != tenant || tg.Scan != scan || tg.Rel == "" || !filepath.IsLocal(tg.Rel) {
				t.Fatalf("allowed %q as %+v", raw, tg)
			}
			matched := false
			for _, r := range roots {
				if tg.Root != r.Real {
					continue
				}
				for _, name := range []string{r.Given, r.Real} {
					if filepath.Join(name, tenant, scan, filepath.FromSlash(tg.Rel)) == tg.Source.Path {
						matched = true
					}
				}
			}
			if !matched {
				t.Fatalf("allowed %q as %+v: not <root>/%s/%s/<rel>", raw, tg, tenant, scan)
			}
		default:
			t.Fatalf("allowed scheme %q", tg.Source.Scheme)
		}
	})
}
