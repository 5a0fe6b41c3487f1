package event_test

import (
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
)

func TestParseSource(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want event.Source
	}{
		{"nats-os://PROWLER_OUTPUTS/t1/s1/out.csv", event.Source{Scheme: "nats-os", Bucket: "PROWLER_OUTPUTS", Object: "t1/s1/out.csv"}},
		// The shape only: the tenant prefix and clean names are the source package's checks.
		{"nats-os://B/t1/s1/../../t2/x", event.Source{Scheme: "nats-os", Bucket: "B", Object: "t1/s1/../../t2/x"}},
		{"nats-os://B/x", event.Source{Scheme: "nats-os", Bucket: "B", Object: "x"}},
		{"file:///var/lib/prowler/out.csv", event.Source{Scheme: "file", Path: "/var/lib/prowler/out.csv"}},
		{"file:///var/lib/prowler/../x//y/./z", event.Source{Scheme: "file", Path: "/var/lib/x/y/z"}},
		{"file:///", event.Source{Scheme: "file", Path: "/"}},
		{"s3://prowler-outputs/t1/s1/x.zip", event.Source{Scheme: "s3", Bucket: "prowler-outputs", Object: "t1/s1/x.zip"}},
		{"s3://b/t1/s1/../t2/x", event.Source{Scheme: "s3", Bucket: "b", Object: "t1/s1/../t2/x"}},
	} {
		got, err := event.ParseSource(tc.raw)
		if err != nil {
			t.Errorf("ParseSource(%q): %v", tc.raw, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSource(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

func TestParseSourceRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, why string }{
		{"", "want nats-os"},
		{"out.csv", "want nats-os"},
		{"/abs/out.csv", "want nats-os"},
		{"nats-os:/B/x", "want nats-os"},
		{"nats-os://", "want nats-os://<bucket>/<object name>"},
		{"nats-os://B", "want nats-os://<bucket>/<object name>"},
		{"nats-os://B/", "want nats-os://<bucket>/<object name>"},
		{"nats-os:///x", "want nats-os://<bucket>/<object name>"},
		{"file://relative/x", "absolute path"},
		{"file://", "absolute path"},
		{"s3://b", "want s3://<bucket>/<key>"},
		{"s3:///k", "want s3://<bucket>/<key>"},
		{"s3://b/", "want s3://<bucket>/<key>"},
		{"S3://b/k", "unknown scheme"},
		{"NATS-OS://B/x", "unknown scheme"},
		{"http://h/x", "unknown scheme"},
		{"nats-os://B/t1/s1/a\x00b", "control characters"},
		{"file:///a\tb", "control characters"},
		{"file:///a\x7fb", "control characters"},
	} {
		_, err := event.ParseSource(tc.raw)
		if err == nil {
			t.Errorf("ParseSource(%q) accepted", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseSource(%q) = %v, want it to say %q", tc.raw, err, tc.why)
		}
	}
}

func TestSourceString(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"nats-os://B/t1/s1/x.csv", "file:///var/x.csv"} {
		s, err := event.ParseSource(raw)
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != raw {
			t.Errorf("String() = %q, want %q", s.String(), raw)
		}
	}
}

func TestCleanObjectName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"t1/s1/x.csv":         true,
		"t1/s1/dir/x.csv":     true,
		"x":                   true,
		"t1/s1/../../t2/s2/x": false,
		"t1/s1/./x":           false,
		"t1//s1/x":            false,
		"t1/s1/x/":            false,
		"/t1/s1/x":            false,
		".":                   false,
		"..":                  false,
		"../x":                false,
		"":                    false,
	} {
		if got := event.CleanObjectName(name); got != want {
			t.Errorf("CleanObjectName(%q) = %v, want %v", name, got, want)
		}
	}
}
