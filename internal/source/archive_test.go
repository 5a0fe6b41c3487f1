package source_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/prowlerout"
	"github.com/prowler-cloud/s3-exporter/internal/source"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
)

// prowlerFiles lists the files of a Prowler output folder by their path
// relative to it (slash-separated).
func prowlerFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// A real Prowler 5 output folder zipped as Prowler App zips it, by Python's
// zipfile, read from an s3 bucket: every output file is a member artifact
// with the format and framework its name gives, and reads back byte for
// byte (the empty compliance CSV and the compliance OCSF file included);
// the member list is read with ranged GETs, never the whole archive.
func TestArchiveOfARealProwler5OutputFromS3(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	dir := fixtures.Prowler5Output(t)
	zipped, err := os.ReadFile(fixtures.ZipFolder(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	key := "t1/s1/prowler-output-123456789012-20261201085125.zip"
	w.put(t, key, zipped)
	sum := sha256.Sum256(zipped)
	size := int64(len(zipped))
	for _, withSum := range []bool{false, true} {
		a := event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key}
		if withSum {
			a.SHA256, a.Size = hex.EncodeToString(sum[:]), &size
		}
		before := len(w.proxy.Requests())
		exp, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), a)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range w.proxy.Requests()[before:] {
			if r.Method != "GET" || r.Path != "/"+w.bucket+"/"+key {
				continue
			}
			rng := r.Header.Get("Range")
			if rng == "" {
				t.Errorf("a GET of the whole archive: %s", r.Path)
			}
			// The first GET, of the archive's end, learns its ETag; every
			// other is pinned to it.
			if r.Header.Get("If-Match") == "" && !strings.HasPrefix(rng, "bytes=-") {
				t.Errorf("a ranged GET without If-Match: %s", rng)
			}
		}
		files := prowlerFiles(t, dir)
		want := map[string]prowlerout.Output{}
		for rel := range files {
			if o, ok, _ := prowlerout.Classify(rel); ok {
				want[rel] = o
			}
		}
		if len(exp.Artifacts) != len(want) || len(want) != 10 {
			t.Fatalf("%d members exported, want %d (10: every file but PROVENANCE.md)", len(exp.Artifacts), len(want))
		}
		if strings.Join(exp.Skipped, ",") != "PROVENANCE.md,compliance/" {
			t.Errorf("skipped %q", exp.Skipped)
		}
		sawEmpty, sawOCSF := false, false
		for _, a := range exp.Artifacts {
			o, ok := want[a.Member.Name]
			if !ok || o.Format != a.Format || o.Framework != a.Framework || a.Source != "s3://"+w.bucket+"/"+key || a.SHA256 != "" {
				t.Errorf("member %q: %+v, want %+v", a.Member.Name, a, o)
				continue
			}
			op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"), a)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(op)
			op.Close()
			if err != nil || !bytes.Equal(got, files[a.Member.Name]) {
				t.Errorf("member %q: %d bytes, want %d; %v", a.Member.Name, len(got), len(files[a.Member.Name]), err)
			}
			sawEmpty = sawEmpty || len(got) == 0
			sawOCSF = sawOCSF || a.Format == event.FormatComplianceOCSF
		}
		if !sawEmpty || !sawOCSF {
			t.Errorf("the empty CSV (%v) or the compliance OCSF file (%v) was not read", sawEmpty, sawOCSF)
		}
	}
	// The event's size and sha256 are the archive's.
	bad := strings.Repeat("0", 64)
	_, err = w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key, SHA256: bad})
	wantCode(t, "a wrong sha256", err, errcode.ChecksumMismatch, false)
	wrong := size + 1
	_, err = w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key, Size: &wrong})
	wantCode(t, "a wrong size", err, errcode.ChecksumMismatch, false)
}

func rangeLen(t testing.TB, rng string) int {
	if n, ok := strings.CutPrefix(rng, "bytes=-"); ok {
		v, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("Range %q", rng)
		}
		return v
	}
	from, to, ok := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
	a, err1 := strconv.Atoi(from)
	b, err2 := strconv.Atoi(to)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("Range %q", rng)
	}
	return b - a + 1
}

// The member list of a large archive is read with a few ranged GETs of its
// end and of the exported members' local headers, never the archive.
func TestArchiveMemberListIsReadByRangedGETs(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	big := randomBytes(t, 8<<20)
	key := "t1/s1/big.zip"
	w.put(t, key, zipOf(t,
		rawMember{zip.FileHeader{Name: "prowler-output-1-20250805120000.csv", Method: zip.Store, CompressedSize64: uint64(len(big)), UncompressedSize64: uint64(len(big)), CRC32: crc32.ChecksumIEEE(big)}, big},
		"prowler-output-1-20250805120000.html", "compliance/prowler-output-1-20250805120000_cis.csv"))
	before := len(w.proxy.Requests())
	exp, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key})
	if err != nil || len(exp.Artifacts) != 3 {
		t.Fatalf("%v, %v", exp, err)
	}
	fetched := 0
	for _, r := range w.proxy.Requests()[before:] {
		if r.Method == "GET" && r.Path == "/"+w.bucket+"/"+key {
			rng := r.Header.Get("Range")
			if rng == "" {
				t.Fatal("a GET of the whole archive")
			}
			fetched += rangeLen(t, rng)
		}
	}
	if fetched > 512<<10 {
		t.Errorf("reading the member list of an 8 MiB archive fetched %d bytes", fetched)
	}
	op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"), exp.Artifacts[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(op)
	op.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("the stored member: %d bytes, %v", len(got), err)
	}
}

// zipOf builds an archive with Go's writer; raw entries carry a header as
// given, over compressed bytes as given (a header that lies).
func zipOf(t testing.TB, entries ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		switch e := e.(type) {
		case string: // a member named e, with a line of text
			fw, err := zw.Create(e)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(fw, "%s\n", e)
		case rawMember:
			fw, err := zw.CreateRaw(&e.head)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(e.comp)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type rawMember struct {
	head zip.FileHeader
	comp []byte
}

// zeros returns n zero bytes deflated (what a zip bomb is made of).
func zeros(t testing.TB, n int64) []byte {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	bw := bufio.NewWriterSize(fw, 1<<20)
	chunk := make([]byte, 1<<20)
	for n > 0 {
		c := min(n, int64(len(chunk)))
		bw.Write(chunk[:c])
		n -= c
	}
	bw.Flush()
	fw.Close()
	return buf.Bytes()
}

// Hostile archives are refused as a whole, before any member is exported,
// with a permanent SourceRefused that says why.
func TestArchiveHostileArchivesAreRefused(t *testing.T) {
	t.Parallel()
	w := newS3World(t, source.WithArchiveMaxBytes(1<<20))
	var many []any
	for i := range 300 {
		many = append(many, fmt.Sprintf("compliance/prowler-output-1-20250805120000_fw%03d.csv", i))
	}
	bomb := zeros(t, 8<<20)
	for _, tc := range []struct {
		name string
		zip  []byte
		why  string
	}{
		{"not a zip", []byte("PK\x03\x04 but nothing a zip reader can read"), "not a zip"},
		{"an empty object", []byte{}, "not a zip"},
		{"a member that climbs out", zipOf(t, "prowler-output-1-20250805120000.csv", "../../t2/s1/x.csv"), `holds ".."`},
		{"an absolute name", zipOf(t, "/etc/prowler-output-1-20250805120000.csv"), "is absolute"},
		{"duplicate names", zipOf(t, "prowler-output-1-20250805120000.csv", "prowler-output-1-20250805120000.csv"), "the same key"},
		{"two members for one key", zipOf(t, "a.csv", "b.csv"), "the same key"},
		{"300 members", zipOf(t, many...), "more than 256 members"},
		{"a zip bomb (8 MiB of zeros)", zipOf(t,
			rawMember{zip.FileHeader{Name: "a.csv", Method: zip.Deflate, CompressedSize64: uint64(len(bomb)), UncompressedSize64: 8 << 20}, bomb}),
			"over 1000 times"},
		{"members past S3EXPORTER_ARCHIVE_MAX_BYTES", zipOf(t,
			rawMember{zip.FileHeader{Name: "a.csv", Method: zip.Store, CompressedSize64: 700 << 10, UncompressedSize64: 700 << 10}, randomBytes(t, 700<<10)},
			rawMember{zip.FileHeader{Name: "a.html", Method: zip.Store, CompressedSize64: 700 << 10, UncompressedSize64: 700 << 10}, randomBytes(t, 700<<10)}),
			"more than 1048576 bytes"},
		{"a member over 1000 times its size", zipOf(t,
			rawMember{zip.FileHeader{Name: "a.csv", Method: zip.Deflate, CompressedSize64: 10, UncompressedSize64: 10001}, bomb[:10]}),
			"over 1000 times"},
	} {
		key := "t1/s1/" + strings.ReplaceAll(tc.name, " ", "-") + ".zip"
		w.put(t, key, tc.zip)
		_, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key})
		wantCode(t, tc.name, err, errcode.SourceRefused, false)
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.why)
		}
	}
	// An archive in an object store has no random access: refused.
	_, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "nats-os://PROWLER_OUTPUTS/t1/s1/x.zip"})
	wantCode(t, "an object-store archive", err, errcode.SourceRefused, false)
}

// A header that says less than the member holds: the member list passes
// (nothing in it is out of bounds), but the member's read stops one byte
// past what its header declares, with SourceRefused; the exporter never
// inflates the rest (here half a GiB of zeros from half a MiB), so its
// peak memory stays flat.
func TestArchiveMemberLyingAboutItsSizeIsCutShort(t *testing.T) {
	w := newS3World(t)
	bomb := zeros(t, 512<<20)
	key := "t1/s1/liar.zip"
	w.put(t, key, zipOf(t, rawMember{zip.FileHeader{Name: "prowler-output-1-20250805120000.csv", Method: zip.Deflate,
		CompressedSize64: uint64(len(bomb)), UncompressedSize64: 1 << 20}, bomb}))
	exp, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key})
	if err != nil {
		t.Fatal(err)
	}
	before := peakRSS(t)
	op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"), exp.Artifacts[0])
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, op)
	op.Close()
	wantCode(t, "a member longer than its header", err, errcode.SourceRefused, false)
	if n > 1<<20 {
		t.Errorf("%d bytes came out, over the declared %d", n, 1<<20)
	}
	if grew := peakRSS(t) - before; grew > 32<<20 {
		t.Errorf("peak RSS grew by %d MiB reading a lying member", grew>>20)
	}
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// An archive under a file source root reads like one in a bucket.
func TestArchiveFromAFileSource(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "t1", "s1"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := fixtures.Prowler5Output(t)
	zipped, err := os.ReadFile(fixtures.ZipFolder(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "t1", "s1", "out.zip")
	if err := os.WriteFile(path, zipped, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := source.NewOpener(nil, []string{root})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := o.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "file://" + path})
	if err != nil {
		t.Fatal(err)
	}
	files := prowlerFiles(t, dir)
	for _, a := range exp.Artifacts {
		op, err := o.Open(context.Background(), scanOf("t1", "s1"), a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(op)
		op.Close()
		if err != nil || !bytes.Equal(got, files[a.Member.Name]) {
			t.Errorf("member %q: %d bytes, %v", a.Member.Name, len(got), err)
		}
	}
	if len(exp.Artifacts) != 10 {
		var names []string
		for _, a := range exp.Artifacts {
			names = append(names, a.Member.Name)
		}
		t.Errorf("%d members: %q (skipped %q)", len(exp.Artifacts), names, exp.Skipped)
	}
	// Another tenant's archive path is refused.
	_, err = o.Expand(context.Background(), scanOf("t2", "s1"), event.Artifact{Format: "archive", Source: "file://" + path})
	wantCode(t, "another tenant's file", err, errcode.SourceRefused, false)
}

// A small archive (at most 256 KiB, as most Prowler output zips) is read
// whole by the GET of its end; its members are then read from that copy,
// with no more requests, and a replaced archive (another ETag) is read
// afresh.
func TestSmallArchiveIsReadOnce(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	key := "t1/s1/small.zip"
	w.put(t, key, zipOf(t, "prowler-output-1-20250805120000.csv", "prowler-output-1-20250805120000.html",
		"compliance/prowler-output-1-20250805120000_cis.csv"))
	a := event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key}
	gets := func() int {
		n := 0
		for _, r := range w.proxy.Requests() {
			if r.Method == "GET" && r.Path == "/"+w.bucket+"/"+key {
				n++
			}
		}
		return n
	}
	read := func(exp *source.Expansion) {
		t.Helper()
		for _, m := range exp.Artifacts {
			op, err := w.opener.Open(context.Background(), scanOf("t1", "s1"), m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(op)
			op.Close()
			if err != nil || string(got) != m.Member.Name+"\n" {
				t.Errorf("member %s: %q, %v", m.Member.Name, got, err)
			}
		}
	}
	exp, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), a)
	if err != nil || len(exp.Artifacts) != 3 {
		t.Fatalf("%v, %v", exp, err)
	}
	read(exp)
	if n := gets(); n != 1 {
		t.Errorf("%d GETs of a small archive and its 3 members, want 1", n)
	}
	// Replaced: a new expansion reads the new archive, and its members.
	w.put(t, key, zipOf(t, "prowler-output-1-20250805120000.csv", "prowler-output-1-20250805120000.ocsf.json"))
	exp2, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), a)
	if err != nil || len(exp2.Artifacts) != 2 || exp2.Artifacts[1].Format != "json-ocsf" {
		t.Fatalf("the replaced archive: %v, %v", exp2, err)
	}
	read(exp2)
	if n := gets(); n != 2 {
		t.Errorf("%d GETs after the archive was replaced, want 2", n)
	}
}

// The GET of an archive's end that breaks midway is read on by a ranged GET
// pinned to the ETag of its first answer, within the same expansion.
func TestArchiveTailReadResumes(t *testing.T) {
	t.Parallel()
	w := newS3World(t)
	zipped, err := os.ReadFile(fixtures.ZipFolder(t, fixtures.Prowler5Output(t)))
	if err != nil {
		t.Fatal(err)
	}
	key := "t1/s1/prowler-output.zip"
	w.put(t, key, zipped)
	w.proxy.BreakBodies("/"+w.bucket+"/"+key, 100<<10, 1)
	exp, err := w.opener.Expand(context.Background(), scanOf("t1", "s1"), event.Artifact{Format: "archive", Source: "s3://" + w.bucket + "/" + key})
	if err != nil || len(exp.Artifacts) != 10 {
		t.Fatalf("%v, %v", exp, err)
	}
	if w.proxy.Stats().Broken != 1 {
		t.Fatalf("%d bodies broken, want 1", w.proxy.Stats().Broken)
	}
	var rngs []string
	for _, r := range w.proxy.Requests() {
		if r.Method == "GET" && r.Path == "/"+w.bucket+"/"+key {
			rngs = append(rngs, r.Header.Get("Range")+" "+r.Header.Get("If-Match"))
		}
	}
	first := len(zipped) - archiveTailLen + 100<<10
	if len(rngs) < 2 || !strings.HasPrefix(rngs[0], "bytes=-") || !strings.HasPrefix(rngs[1], fmt.Sprintf("bytes=%d-", first)) || strings.HasSuffix(rngs[1], " ") {
		t.Errorf("GETs %q, want the end, then from byte %d with If-Match", rngs, first)
	}
}

// archiveTailLen is what the first GET of an archive reads of its end.
const archiveTailLen = 256 << 10
