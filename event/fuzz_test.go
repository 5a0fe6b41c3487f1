package event_test

import (
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
)

// FuzzDecodeScan feeds arbitrary subjects and payloads to DecodeScan. It must
// never panic, and whatever it accepts must be safe to build object keys from.
// Seeds beyond these are in testdata/fuzz/FuzzDecodeScan.
func FuzzDecodeScan(f *testing.F) {
	valid := string(mustJSON(f, validScan()))
	f.Add(scanSubject, []byte(valid))
	f.Add(scanSubject, []byte(valid+"}"))
	f.Add("prowler.scans.completed.t2.p1", []byte(valid))
	f.Add(scanSubject, []byte(`{"scan_id":"s1","tenant_id":"t1","provider":{"id":"p1","uid":"arn:aws:iam::123:root"},`+
		`"started_at":"2025-08-05T14:00:00+02:00","artifacts":[{"format":"compliance","framework":"..","source":"nats-os://B/t1/s1/x"}]}`))
	f.Add(scanSubject, []byte(`{"scan_id":"s1","tenant_id":"t1","provider":{"id":"p1","uid":"../../x"},`+
		`"started_at":"2025-08-05T12:00:00Z","artifacts":[{"format":"compliance","framework":"a.b","source":"file:///a/../../x"}]}`))
	f.Add(scanSubject, []byte(`null`))
	f.Add("prowler.scans.completed.*.>", []byte(`{"scan_id":"s","tenant_id":"*","provider":{"id":">","uid":"u"}}`))

	dirs := []string{"output", "a/b/c", "prowler-findings"}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		s, err := event.DecodeScan(prefix, subject, data)
		if err != nil {
			if s != nil {
				t.Fatal("an error came with a scan")
			}
			if !isMalformed(err) {
				t.Fatalf("error %v (%T) is not a *MalformedError", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted a payload that is not one JSON value: %q", data)
		}
		for _, id := range []string{s.ScanID, s.TenantID, s.Provider.ID} {
			if !event.ValidID(id) {
				t.Fatalf("accepted an invalid id %q", id)
			}
		}
		if want := event.Subject(prefix, event.ScansCompleted, s.TenantID, s.Provider.ID); subject != want {
			t.Fatalf("accepted on subject %q a scan of %q", subject, want)
		}
		if s.Provider.UID == "" || s.StartedAt.IsZero() || len(s.Artifacts) == 0 {
			t.Fatalf("accepted a scan without a required field: %+v", s)
		}
		names := map[string]bool{}
		for _, a := range s.Artifacts {
			if !slices.Contains(event.Formats, a.Format) {
				t.Fatalf("accepted format %q", a.Format)
			}
			if event.IsCompliance(a.Format) != (a.Framework != "") {
				t.Fatalf("format %q with framework %q", a.Format, a.Framework)
			}
			if strings.ContainsAny(a.Framework, "/\\ ") || strings.Trim(a.Framework, ".") == "" && a.Framework != "" {
				t.Fatalf("accepted framework %q", a.Framework)
			}
			if names[a.Name()] {
				t.Fatalf("accepted %s twice", a.Name())
			}
			names[a.Name()] = true
			src, err := event.ParseSource(a.Source)
			if err != nil {
				t.Fatalf("accepted source %q: %v", a.Source, err)
			}
			if src.Scheme != event.SchemeObjectStore && src.Scheme != event.SchemeFile {
				t.Fatalf("accepted scheme %q", src.Scheme)
			}
			if a.SHA256 != "" {
				if b, err := hex.DecodeString(a.SHA256); err != nil || len(b) != 32 {
					t.Fatalf("accepted sha256 %q", a.SHA256)
				}
			}
			if a.Size != nil && *a.Size < 0 {
				t.Fatalf("accepted size %d", *a.Size)
			}
			for _, dir := range dirs {
				checkKey(t, dir, exporter.ObjectKey(dir, a, s.Provider.UID, s.StartedAt))
			}
		}
	})
}

// checkKey asserts that key is a file two levels under dir (the format's
// folder, then the file) with no empty, "." or ".." segment.
func checkKey(t *testing.T, dir, key string) {
	t.Helper()
	if !strings.HasPrefix(key, dir+"/") {
		t.Fatalf("key %q is not under %q", key, dir)
	}
	segs := strings.Split(key, "/")
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			t.Fatalf("key %q has a %q segment", key, seg)
		}
	}
	if want := strings.Count(dir, "/") + 3; len(segs) != want {
		t.Fatalf("key %q has %d segments, want %d", key, len(segs), want)
	}
	if !strings.HasPrefix(segs[len(segs)-1], "prowler-output-") {
		t.Fatalf("key %q: file name %q", key, segs[len(segs)-1])
	}
}

// FuzzParseSource checks that whatever ParseSource accepts has the documented
// shape and prints back to a source that parses to the same thing.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		"nats-os://PROWLER_OUTPUTS/t1/s1/out.csv",
		"nats-os://B/t1/s1/../../t2/s2/x",
		"nats-os://B/",
		"nats-os:///x",
		"file:///var/lib/prowler/out.csv",
		"file:///var/lib/../../../etc/passwd",
		"file://relative",
		"file:///a\x00b",
		"s3://b/k",
		"://",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		src, err := event.ParseSource(raw)
		if err != nil {
			return
		}
		if strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted control characters in %q", raw)
		}
		switch src.Scheme {
		case event.SchemeObjectStore, event.SchemeS3:
			if src.Bucket == "" || strings.Contains(src.Bucket, "/") || src.Object == "" || src.Path != "" {
				t.Fatalf("ParseSource(%q) = %+v", raw, src)
			}
			if src.String() != raw {
				t.Fatalf("String() = %q, want %q", src.String(), raw)
			}
		case event.SchemeFile:
			if !filepath.IsAbs(src.Path) || filepath.Clean(src.Path) != src.Path || src.Bucket != "" || src.Object != "" {
				t.Fatalf("ParseSource(%q) = %+v", raw, src)
			}
			for _, seg := range strings.Split(src.Path, "/") {
				if seg == ".." || seg == "." {
					t.Fatalf("ParseSource(%q) path %q has a %q segment", raw, src.Path, seg)
				}
			}
		default:
			t.Fatalf("ParseSource(%q) accepted scheme %q", raw, src.Scheme)
		}
		again, err := event.ParseSource(src.String())
		if err != nil || again != src {
			t.Fatalf("ParseSource(%q).String() = %q parses to %+v, %v", raw, src.String(), again, err)
		}
	})
}
