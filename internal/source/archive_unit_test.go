package source

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// memArchive is an archive held in memory, for the unit tests and the fuzz
// target; fetches counts the read-ahead's requests.
func memArchive(b []byte, fetches *int) *archiveFile {
	r := bytes.NewReader(b)
	return &archiveFile{
		src: "mem://x.zip", size: int64(len(b)),
		at: func(budget int64) io.ReaderAt {
			return newReadAheadAt(context.Background(), "mem://x.zip", int64(len(b)), budget, func(_ context.Context, off, n int64) ([]byte, error) {
				if fetches != nil {
					*fetches++
				}
				out := make([]byte, n)
				_, err := r.ReadAt(out, off)
				return out, err
			})
		},
		section: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(r, off, n)), nil
		},
		close: func() {},
	}
}

type zipEntry struct {
	name string
	body []byte
	// raw, when set, writes the header as given with body as its
	// compressed bytes (a header that lies).
	raw *zip.FileHeader
}

func buildZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		var w io.Writer
		var err error
		if e.raw != nil {
			w, err = zw.CreateRaw(e.raw)
		} else {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflated(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	if _, err := fw.Write(b); err != nil {
		t.Fatal(err)
	}
	fw.Close()
	return buf.Bytes()
}

func readMember(t testing.TB, ar *archiveFile, a event.Artifact) ([]byte, error) {
	t.Helper()
	op, err := openMemberOf(context.Background(), ar, a.Member)
	if err != nil {
		return nil, err
	}
	defer op.Close()
	return io.ReadAll(op)
}

func TestReadAheadAtFetchesBlocks(t *testing.T) {
	t.Parallel()
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var fetches int
	ar := memArchive(data, &fetches)
	at := ar.at(1 << 20)
	// A read near the end fetches the end's whole block: the reads that
	// follow there cost nothing.
	p := make([]byte, 1024, 4096)
	if n, err := at.ReadAt(p, int64(len(data)-1024)); n != 1024 || err != nil || !bytes.Equal(p, data[len(data)-1024:]) {
		t.Fatalf("ReadAt end: %d, %v", n, err)
	}
	if n, err := at.ReadAt(p[:30], int64(len(data)-60<<10)); n != 30 || err != nil || !bytes.Equal(p[:30], data[len(data)-60<<10:][:30]) {
		t.Fatalf("ReadAt in the end block: %d, %v", n, err)
	}
	if fetches != 1 {
		t.Errorf("%d fetches for two reads within the last 64 KiB, want 1", fetches)
	}
	// Small sequential reads elsewhere: one fetch per block.
	for off := int64(0); off < 128<<10; off += 4096 {
		if n, err := at.ReadAt(p[:4096], off); n != 4096 || err != nil || !bytes.Equal(p[:4096], data[off:off+4096]) {
			t.Fatalf("ReadAt(%d): %d, %v", off, n, err)
		}
	}
	if fetches != 3 {
		t.Errorf("%d fetches, want 3 (the end block, then two 64 KiB blocks)", fetches)
	}
	// A read larger than a block, and one past the end.
	big := make([]byte, 100<<10)
	if n, err := at.ReadAt(big, 150<<10); n != len(big) || err != nil || !bytes.Equal(big, data[150<<10:250<<10]) {
		t.Fatalf("big ReadAt: %d, %v", n, err)
	}
	if n, err := at.ReadAt(p, int64(len(data)-10)); n != 10 || err != io.EOF {
		t.Errorf("ReadAt across the end: %d, %v; want 10, EOF", n, err)
	}
	if _, err := at.ReadAt(p, int64(len(data))); err != io.EOF {
		t.Errorf("ReadAt at the end: %v", err)
	}
}

func TestReadAheadAtBudget(t *testing.T) {
	t.Parallel()
	ar := memArchive(make([]byte, 1<<20), nil)
	at := ar.at(100 << 10)
	p := make([]byte, 10)
	if _, err := at.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	_, err := at.ReadAt(p, 512<<10)
	var ce *errcode.Error
	if !errors.As(err, &ce) || ce.Code != errcode.SourceRefused || ce.Retryable {
		t.Fatalf("a read past the budget: %v, want a permanent SourceRefused", err)
	}
}

func TestPlanMembers(t *testing.T) {
	t.Parallel()
	reg := fs.FileMode(0o644)
	csv := func(name string, c, s uint64) MemberHeader {
		return MemberHeader{Name: name, Mode: reg, Method: zip.Deflate, CompressedSize: c, Size: s}
	}
	p, err := PlanMembers([]MemberHeader{
		{Name: "compliance/", Mode: fs.ModeDir | 0o755},
		csv("prowler-output-1-20250805120000.csv", 10, 100),
		csv("compliance/prowler-output-1-20250805120000_cis_5.0_aws.csv", 0, 0),
		csv("PROVENANCE.md", 1, 1),
		{Name: "link.csv", Mode: fs.ModeSymlink | 0o777, Method: zip.Store, CompressedSize: 3, Size: 3},
		{Name: "prowler-output-1-20250805120000.html", Mode: reg, Method: zip.Store, CompressedSize: 5, Size: 5},
		csv("./x.csv", 1, 1),
	}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range p.Members {
		got = append(got, fmt.Sprintf("%d:%s", m.Index, m.Output.Name()))
	}
	if want := "1:csv 2:compliance/cis_5.0_aws 5:html"; strings.Join(got, " ") != want {
		t.Errorf("members %q, want %q", got, want)
	}
	if want := "compliance/ PROVENANCE.md link.csv ./x.csv"; strings.Join(p.Skipped, " ") != want {
		t.Errorf("skipped %q, want %q", p.Skipped, want)
	}

	many := make([]MemberHeader, 0, 300)
	for i := range 300 {
		many = append(many, csv(fmt.Sprintf("compliance/fw%03d.csv", i), 1, 1))
	}
	for _, tc := range []struct {
		name  string
		heads []MemberHeader
		max   int64
		why   string
	}{
		{"climbs out", []MemberHeader{csv("../x.csv", 1, 1)}, 1000, `holds ".."`},
		{"climbs out of a skipped member", []MemberHeader{csv("docs/../../etc/passwd", 1, 1)}, 1000, `holds ".."`},
		{"climbs with a backslash", []MemberHeader{csv(`compliance\..\..\x.csv`, 1, 1)}, 1000, `holds ".."`},
		{"absolute", []MemberHeader{csv("/etc/x.csv", 1, 1)}, 1000, "is absolute"},
		{"drive letter", []MemberHeader{csv(`C:\x.csv`, 1, 1)}, 1000, "is absolute"},
		{"control characters", []MemberHeader{csv("x\x00.csv", 1, 1)}, 1000, "control characters"},
		{"duplicate key", []MemberHeader{csv("a.csv", 1, 1), csv("b.CSV", 1, 1)}, 1000, `"a.csv" and "b.CSV" are both csv`},
		{"duplicate framework", []MemberHeader{csv("compliance/prowler-output-1-20250805120000_x.csv", 1, 1), csv("compliance/sub/x.csv", 1, 1)}, 1000, "both compliance/x"},
		{"300 members", many, 1 << 20, "more than 256 members"},
		{"expands over 1000 times", []MemberHeader{csv("a.csv", 1000, 1000001)}, 1 << 30, "over 1000 times"},
		{"expands from nothing", []MemberHeader{csv("a.csv", 0, 1)}, 1 << 30, "over 1000 times"},
		{"stored with two sizes", []MemberHeader{{Name: "a.csv", Mode: reg, Method: zip.Store, CompressedSize: 1, Size: 2}}, 1000, "stored"},
		{"method", []MemberHeader{{Name: "a.csv", Mode: reg, Method: 12, CompressedSize: 1, Size: 1}}, 1000, "compression method 12"},
		{"past the total", []MemberHeader{csv("a.csv", 600, 600), csv("a.html", 600, 600)}, 1000, "more than 1000 bytes"},
		{"huge sizes", []MemberHeader{csv("a.csv", 1<<62, 1<<63)}, 1 << 62, "more than"},
		{"bad framework", []MemberHeader{csv("compliance/a b.csv", 1, 1)}, 1000, "must match"},
	} {
		if _, err := PlanMembers(tc.heads, tc.max); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.why)
		}
	}
	// Exactly 256 members and exactly 1000 times pass; one more member does not.
	if _, err := PlanMembers(append(append([]MemberHeader(nil), many[:256]...), csv("x.csv", 1, 1)), 1<<20); err == nil || !strings.Contains(err.Error(), "more than 256") {
		t.Errorf("257 members: %v", err)
	}
	if p, err := PlanMembers(append([]MemberHeader(nil), many[:256]...), 1<<20); err != nil || len(p.Members) != 256 {
		t.Errorf("256 members: %d, %v", len(p.Members), err)
	}
	if _, err := PlanMembers([]MemberHeader{csv("x.csv", 1, 1000)}, 1<<20); err != nil {
		t.Errorf("1000 times: %v", err)
	}
}

func TestMemberReader(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("prowler,finding\n"), 5000)
	comp := deflated(t, body)
	crc := crc32.ChecksumIEEE(body)
	for _, tc := range []struct {
		name string
		head zip.FileHeader
		code errcode.Code
	}{
		{"true header", zip.FileHeader{CRC32: crc, UncompressedSize64: uint64(len(body))}, ""},
		{"says fewer bytes", zip.FileHeader{CRC32: crc, UncompressedSize64: uint64(len(body) - 1)}, errcode.SourceRefused},
		{"says more bytes", zip.FileHeader{CRC32: crc, UncompressedSize64: uint64(len(body) + 1)}, errcode.ChecksumMismatch},
		{"wrong CRC", zip.FileHeader{CRC32: crc ^ 1, UncompressedSize64: uint64(len(body))}, errcode.ChecksumMismatch},
		{"CRC zero is checked too", zip.FileHeader{CRC32: 0, UncompressedSize64: uint64(len(body))}, errcode.ChecksumMismatch},
	} {
		h := tc.head
		h.Name, h.Method, h.CompressedSize64 = "prowler-output-1-20250805120000.csv", zip.Deflate, uint64(len(comp))
		ar := memArchive(buildZip(t, zipEntry{raw: &h, body: comp}), nil)
		exp, err := expandArchive(context.Background(), ar, event.Artifact{Format: event.FormatArchive, Source: "mem://x.zip"}, 1<<30)
		if err != nil {
			t.Fatalf("%s: expand: %v", tc.name, err)
		}
		got, err := readMember(t, ar, exp.Artifacts[0])
		var ce *errcode.Error
		switch {
		case tc.code == "" && (err != nil || !bytes.Equal(got, body)):
			t.Errorf("%s: %d bytes, %v", tc.name, len(got), err)
		case tc.code != "" && (!errors.As(err, &ce) || ce.Code != tc.code || ce.Retryable):
			t.Errorf("%s: %v, want a permanent %s", tc.name, err, tc.code)
		case tc.code == errcode.SourceRefused && int64(len(got)) > int64(h.UncompressedSize64):
			t.Errorf("%s: %d bytes came out, over the declared %d", tc.name, len(got), h.UncompressedSize64)
		}
	}
	// Corrupt compressed bytes.
	bad := append([]byte(nil), comp...)
	for i := 10; i < len(bad); i += 7 {
		bad[i] ^= 0xff
	}
	h := zip.FileHeader{Name: "x.csv", Method: zip.Deflate, CRC32: crc, UncompressedSize64: uint64(len(body)), CompressedSize64: uint64(len(bad))}
	ar := memArchive(buildZip(t, zipEntry{raw: &h, body: bad}), nil)
	exp, err := expandArchive(context.Background(), ar, event.Artifact{Format: event.FormatArchive, Source: "mem://x.zip"}, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	_, err = readMember(t, ar, exp.Artifacts[0])
	var ce *errcode.Error
	if !errors.As(err, &ce) || ce.Retryable || (ce.Code != errcode.ChecksumMismatch && ce.Code != errcode.SourceRefused) {
		t.Errorf("corrupt data: %v, want a permanent ChecksumMismatch or SourceRefused", err)
	}
}

// FuzzArchive feeds arbitrary bytes to the archive reader: expanding and
// reading every member never panics, every failure is classified, and no
// member yields more bytes than its header declares.
func FuzzArchive(f *testing.F) {
	f.Add([]byte("not a zip"))
	f.Add(buildZip(f, zipEntry{name: "prowler-output-1-20250805120000.csv", body: []byte("a,b\n1,2\n")},
		zipEntry{name: "compliance/prowler-output-1-20250805120000_cis.csv", body: nil},
		zipEntry{name: "../x.csv", body: []byte("x")}))
	f.Add(buildZip(f, zipEntry{name: "a.html", body: bytes.Repeat([]byte("<p>"), 1000)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ar := memArchive(b, nil)
		exp, err := expandArchive(context.Background(), ar, event.Artifact{Format: event.FormatArchive, Source: "mem://x.zip"}, 1<<20)
		var ce *errcode.Error
		if err != nil {
			if !errors.As(err, &ce) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, a := range exp.Artifacts {
			got, err := readMember(t, ar, a)
			if int64(len(got)) > a.Member.Size {
				t.Fatalf("member %q yielded %d bytes, declared %d", a.Member.Name, len(got), a.Member.Size)
			}
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("member %q: unclassified error: %v", a.Member.Name, err)
			}
		}
	})
}
