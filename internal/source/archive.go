package source

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"strings"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/prowlerout"
)

// Limits of an archive artifact (contract v1.2 §3). An archive over any of
// them is refused as a whole, before anything is exported.
const (
	// MaxArchiveMembers is the most members one archive may export.
	MaxArchiveMembers = event.MaxScanArtifacts
	// MaxExpansionRatio is the most a member may expand (its size over its
	// compressed size), by its header; the bytes that come out are held to
	// the header.
	MaxExpansionRatio = 1000
	// DefaultArchiveMaxBytes is S3EXPORTER_ARCHIVE_MAX_BYTES's default: the
	// most the exported members may expand to in all.
	DefaultArchiveMaxBytes = 10 << 30
	// maxDirectoryBytes bounds what reading an archive's member list may
	// fetch (its end record, directory and the exported members' local
	// headers): a Prowler output's directory is a few KiB; 4 MiB is some
	// 30,000 members, whose parsed list archive/zip holds in memory.
	maxDirectoryBytes = 4 << 20
	// archiveTail is what the first GET of an s3 archive reads of its end:
	// its member list, and the whole of most Prowler output zips (a few
	// hundred KiB), local headers included.
	archiveTail = 256 << 10
)

// Expansion is an archive artifact read into one artifact per member it
// exports.
type Expansion struct {
	// Artifacts are the members' artifacts, in the archive's order: the
	// format and framework their names give (package prowlerout), the
	// archive's source, Size the member's declared size and Member where
	// its bytes are.
	Artifacts []event.Artifact
	// Skipped lists the members that are not Prowler outputs (folders,
	// links, other files): not exported.
	Skipped []string
}

// archiveFile is an open archive: random access for its directory, and
// streams of its members' bytes.
type archiveFile struct {
	src  string
	size int64
	etag string
	// at reads the directory (budget bytes at most, for s3).
	at func(budget int64) io.ReaderAt
	// section streams n bytes at off.
	section func(ctx context.Context, off, n int64) (io.ReadCloser, error)
	close   func()
}

// Expand reads the member list of archive artifact a of scan (contract v1.2
// §3) and returns the artifacts of the members it exports. It reads the
// archive's end and directory with ranged GETs (s3) or reads at offsets
// (file), never the whole archive, except to check the event's sha256 when
// it gives one (a stream, read once). Every refusal of the archive is a
// permanent SourceRefused; a size or sha256 that differs from the event's
// a permanent ChecksumMismatch.
func (o *Opener) Expand(ctx context.Context, scan *event.ScanCompleted, a event.Artifact) (*Expansion, error) {
	if a.Format != event.FormatArchive {
		return nil, errcode.Permanentf(errcode.InternalError, "artifact %s is not an archive", a.Name())
	}
	tg, err := o.resolve(a.Source, scan)
	if err != nil {
		return nil, err
	}
	ar, err := o.openArchive(ctx, tg, "", -1)
	if err != nil {
		return nil, err
	}
	defer ar.close()
	return expandArchive(ctx, ar, a, o.archiveMax)
}

// expandArchive is Expand on an open archive.
func expandArchive(ctx context.Context, ar *archiveFile, a event.Artifact, maxTotal int64) (*Expansion, error) {
	if a.Size != nil && *a.Size != ar.size {
		return nil, errcode.Permanentf(errcode.ChecksumMismatch,
			"source %s: the event says %d bytes but the archive holds %d", ar.src, *a.Size, ar.size)
	}
	if a.SHA256 != "" {
		// The whole archive, once, before any member is exported.
		rc, err := ar.section(ctx, 0, ar.size)
		if err != nil {
			return nil, err
		}
		v := newVerifier(rc, ar.src, a.SHA256, &ar.size)
		_, err = io.Copy(io.Discard, v)
		v.Close()
		if err != nil {
			return nil, errcode.From(err)
		}
	}
	ra := ar.at(maxDirectoryBytes)
	zr, plan, err := readMembers(ra, ar.size, maxTotal)
	if err != nil {
		var ce *errcode.Error
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, errcode.Permanentf(errcode.SourceRefused, "source %s: refused: %v", ar.src, err)
	}
	if rat, ok := ra.(*readAheadAt); ok {
		// The exported members' local headers: at most a block each.
		rat.setBudget(int64(len(plan.Members)+1) * rat.block)
	}
	exp := &Expansion{Skipped: plan.Skipped}
	for _, pm := range plan.Members {
		f := zr.File[pm.Index]
		off, err := f.DataOffset() // its local header, through the read-ahead
		if err != nil {
			var ce *errcode.Error
			if errors.As(err, &ce) {
				return nil, ce
			}
			return nil, errcode.Permanentf(errcode.SourceRefused, "source %s: refused: member %q: %v", ar.src, f.Name, err)
		}
		if off < 0 || uint64(off) > uint64(ar.size) || f.CompressedSize64 > uint64(ar.size-off) {
			return nil, errcode.Permanentf(errcode.SourceRefused, "source %s: refused: member %q lies outside the archive", ar.src, f.Name)
		}
		size := int64(f.UncompressedSize64)
		exp.Artifacts = append(exp.Artifacts, event.Artifact{
			Format: pm.Output.Format, Framework: pm.Output.Framework, Source: a.Source, Size: &size,
			Member: &event.ArchiveMember{
				Name: f.Name, Method: f.Method, DataOffset: off, CompressedSize: int64(f.CompressedSize64),
				Size: size, CRC32: f.CRC32, ArchiveSize: ar.size, ArchiveETag: ar.etag,
			},
		})
	}
	return exp, nil
}

// readMembers reads the member list of the zip ra (size bytes) and plans
// it (PlanMembers). An error of ra comes back as it is; any other is why
// the archive is refused.
func readMembers(ra io.ReaderAt, size, maxTotal int64) (*zip.Reader, MemberPlan, error) {
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // insecure names: refused below, with the name
		var ce *errcode.Error
		if errors.As(err, &ce) {
			return nil, MemberPlan{}, ce
		}
		return nil, MemberPlan{}, fmt.Errorf("not a zip archive: %w", err)
	}
	heads := make([]MemberHeader, len(zr.File))
	for i, f := range zr.File {
		heads[i] = MemberHeader{Name: f.Name, Mode: f.Mode(), Method: f.Method,
			CompressedSize: f.CompressedSize64, Size: f.UncompressedSize64}
	}
	plan, err := PlanMembers(heads, maxTotal)
	return zr, plan, err
}

// ArchiveMembers reads the member list of the zip ra (size bytes) and says
// which members an export would make artifacts of, and which it would skip,
// or why it would refuse the archive: what the exporter decides before it
// uploads anything (exporterctl scan publish --archive --dry-run). Each
// planned member comes with its declared size.
func ArchiveMembers(ra io.ReaderAt, size, maxTotal int64) (MemberPlan, []MemberHeader, error) {
	zr, plan, err := readMembers(ra, size, maxTotal)
	if err != nil {
		return MemberPlan{}, nil, err
	}
	heads := make([]MemberHeader, len(zr.File))
	for i, f := range zr.File {
		heads[i] = MemberHeader{Name: f.Name, Mode: f.Mode(), Method: f.Method, CompressedSize: f.CompressedSize64, Size: f.UncompressedSize64}
	}
	return plan, heads, nil
}

// MemberHeader is what an archive's directory says of one member.
type MemberHeader struct {
	Name           string
	Mode           fs.FileMode
	Method         uint16
	CompressedSize uint64
	Size           uint64
}

// MemberPlan is what PlanMembers decided.
type MemberPlan struct {
	Members []PlannedMember
	Skipped []string
}

// PlannedMember is a member to export: its index in the directory and what
// its name says it is.
type PlannedMember struct {
	Index  int
	Output prowlerout.Output
}

// PlanMembers decides, from an archive's directory alone, which members
// are exported, or why the archive is refused as a whole (contract v1.2
// §3): a member name that is absolute or holds "..", two exported members
// for the same artifact (the same key), more than MaxArchiveMembers
// exported, an exported member stored with a method other than store or
// deflate, declaring more than MaxExpansionRatio times its compressed size
// (or, stored, a size other than it), or exported members declaring more
// than maxTotal bytes in all. Members that are not regular files named as
// Prowler names its outputs are skipped.
func PlanMembers(heads []MemberHeader, maxTotal int64) (MemberPlan, error) {
	var p MemberPlan
	seen := map[string]string{}
	var total uint64
	for i, h := range heads {
		if why := unsafeMemberName(h.Name); why != "" {
			return MemberPlan{}, fmt.Errorf("member name %q %s", h.Name, why)
		}
		if strings.HasSuffix(h.Name, "/") || !h.Mode.IsRegular() {
			p.Skipped = append(p.Skipped, h.Name)
			continue
		}
		out, ok, err := prowlerout.Classify(h.Name)
		if err != nil {
			return MemberPlan{}, err
		}
		if !ok {
			p.Skipped = append(p.Skipped, h.Name)
			continue
		}
		if prev, dup := seen[out.Name()]; dup {
			return MemberPlan{}, fmt.Errorf("members %q and %q are both %s (the same key)", prev, h.Name, out.Name())
		}
		seen[out.Name()] = h.Name
		if len(seen) > MaxArchiveMembers {
			return MemberPlan{}, fmt.Errorf("more than %d members to export", MaxArchiveMembers)
		}
		switch h.Method {
		case zip.Deflate:
		case zip.Store:
			if h.Size != h.CompressedSize {
				return MemberPlan{}, fmt.Errorf("member %q is stored (not compressed) but declares %d bytes for %d", h.Name, h.Size, h.CompressedSize)
			}
		default:
			return MemberPlan{}, fmt.Errorf("member %q uses compression method %d (only store and deflate are read)", h.Name, h.Method)
		}
		if hi, lo := bits.Mul64(h.CompressedSize, MaxExpansionRatio); hi == 0 && h.Size > lo {
			return MemberPlan{}, fmt.Errorf("member %q declares %d bytes from %d compressed, over %d times", h.Name, h.Size, h.CompressedSize, MaxExpansionRatio)
		}
		total += min(h.Size, 1<<63)
		if total > uint64(maxTotal) {
			return MemberPlan{}, fmt.Errorf("the members to export expand to more than %d bytes (S3EXPORTER_ARCHIVE_MAX_BYTES)", maxTotal)
		}
		p.Members = append(p.Members, PlannedMember{Index: i, Output: out})
	}
	return p, nil
}

// unsafeMemberName says why a member's name could lead out of the folder it
// is unpacked to ("" when it cannot). A backslash counts as a separator,
// as some unzip tools read it.
func unsafeMemberName(name string) string {
	n := strings.ReplaceAll(name, `\`, "/")
	switch {
	case n == "":
		return "is empty"
	case strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "holds control characters"
	case strings.HasPrefix(n, "/") || len(n) >= 2 && n[1] == ':':
		return "is absolute"
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == ".." {
			return `holds ".."`
		}
	}
	return ""
}

// openArchive opens the archive tg names: an s3:// object or a file. An
// archive in an object store is refused (no random access). etag and size,
// when known (a member's open), pin the archive read when it was expanded.
func (o *Opener) openArchive(ctx context.Context, tg Target, etag string, size int64) (*archiveFile, error) {
	src := tg.Source
	switch src.Scheme {
	case event.SchemeS3:
		var tail []byte
		if size < 0 {
			// One suffix-range GET: the size, the ETag and the end of
			// the archive, where its member list is (the whole of a
			// small archive).
			var err error
			if tail, size, etag, err = o.s3.Tail(ctx, src.Bucket, src.Object, archiveTail); err != nil {
				return nil, err
			}
			if int64(len(tail)) == size {
				o.small.put(src.String(), etag, tail)
			}
		} else if whole := o.small.get(src.String(), etag); int64(len(whole)) == size {
			return memArchiveFile(src.String(), etag, whole), nil
		}
		bucket, key := src.Bucket, src.Object
		return &archiveFile{
			src: src.String(), size: size, etag: etag,
			at: func(budget int64) io.ReaderAt {
				ra := newReadAheadAt(ctx, src.String(), size, budget, o.s3.fetcher(bucket, key, etag))
				if len(tail) > 0 {
					ra.prime(tail, size-int64(len(tail)))
				}
				return ra
			},
			section: func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
				rc, _, err := o.s3.Open(ctx, bucket, key, etag, off, n)
				return rc, err
			},
			close: func() {},
		}, nil
	case event.SchemeFile:
		op, err := openFile(tg)
		if err != nil {
			return nil, err
		}
		f := op.ReadCloser.(*os.File)
		if size >= 0 && op.Size != size {
			f.Close()
			return nil, errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("source %s: the archive changed since it was read (%d bytes, was %d)", src, op.Size, size))
		}
		return &archiveFile{
			src: src.String(), size: op.Size,
			at: func(int64) io.ReaderAt { return &fileAt{f: f, src: src.String()} },
			section: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
				return io.NopCloser(&fileReader{r: io.NewSectionReader(f, off, n), src: src.String()}), nil
			},
			close: func() { f.Close() },
		}, nil
	default:
		return nil, errcode.Permanentf(errcode.SourceRefused,
			"source %s: an archive must be an s3:// or file:// source (read at random); an object-store archive is refused", src)
	}
}

// memArchiveFile is an s3 archive already read whole (smallArchives).
func memArchiveFile(src, etag string, b []byte) *archiveFile {
	r := bytes.NewReader(b)
	return &archiveFile{
		src: src, size: int64(len(b)), etag: etag,
		at: func(int64) io.ReaderAt { return r },
		section: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(r, off, n)), nil
		},
		close: func() {},
	}
}

// fileAt and fileReader classify a file's read errors.
type fileAt struct {
	f   *os.File
	src string
}

func (r *fileAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: %w", r.src, err))
	}
	return n, err
}

type fileReader struct {
	r   io.Reader
	src string
}

func (r *fileReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: %w", r.src, err))
	}
	return n, err
}

// openMember opens the member a.Member of an archive: exactly its
// compressed bytes (one ranged GET for s3, pinned to the ETag the archive
// had when it was expanded), inflated as they stream.
func (o *Opener) openMember(ctx context.Context, tg Target, a event.Artifact) (*Opened, error) {
	m := a.Member
	ar, err := o.openArchive(ctx, tg, m.ArchiveETag, m.ArchiveSize)
	if err != nil {
		return nil, err
	}
	return openMemberOf(ctx, ar, m)
}

// openMemberOf opens member m of an open archive; closing it closes the
// archive.
func openMemberOf(ctx context.Context, ar *archiveFile, m *event.ArchiveMember) (*Opened, error) {
	rc, err := ar.section(ctx, m.DataOffset, m.CompressedSize)
	if err != nil {
		ar.close()
		return nil, err
	}
	var r io.Reader = rc
	var inflate io.ReadCloser
	if m.Method == zip.Deflate {
		inflate = flate.NewReader(rc)
		r = inflate
	}
	mr := &memberReader{
		// Never inflate more than one byte past the declared size: that
		// byte is enough to know the header lied.
		r:   io.LimitReader(r, m.Size+1),
		src: fmt.Sprintf("%s member %q", ar.src, m.Name), size: m.Size, crc: m.CRC32, sum: crc32.NewIEEE(),
		close: func() {
			if inflate != nil {
				inflate.Close()
			}
			rc.Close()
			ar.close()
		},
	}
	return &Opened{ReadCloser: mr, Size: m.Size}, nil
}

// memberReader counts the bytes that come out of a member and checks them
// against its header: more than declared is a permanent SourceRefused (the
// read stops there), fewer or a CRC-32 that differs a permanent
// ChecksumMismatch, reported instead of the final EOF so that an upload
// built on it fails (and is aborted) rather than completes.
type memberReader struct {
	r      io.Reader
	src    string
	size   int64
	crc    uint32
	sum    hash.Hash32
	n      int64
	failed error
	close  func()
}

func (m *memberReader) Read(p []byte) (int, error) {
	if m.failed != nil {
		return 0, m.failed
	}
	n, err := m.r.Read(p)
	if m.n+int64(n) > m.size {
		m.failed = errcode.Permanentf(errcode.SourceRefused,
			"%s: refused: it inflates to more than the %d bytes its header declares", m.src, m.size)
		return 0, m.failed
	}
	m.n += int64(n)
	m.sum.Write(p[:n])
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if m.n != m.size {
			m.failed = errcode.Permanentf(errcode.ChecksumMismatch, "%s: inflates to %d bytes, its header says %d", m.src, m.n, m.size)
			return n, m.failed
		}
		if got := m.sum.Sum32(); got != m.crc {
			m.failed = errcode.Permanentf(errcode.ChecksumMismatch, "%s: CRC-32 is %08x, its header says %08x", m.src, got, m.crc)
			return n, m.failed
		}
		return n, io.EOF
	}
	var ce *errcode.Error
	var corrupt flate.CorruptInputError
	switch {
	case errors.As(err, &ce):
		m.failed = ce
	case errors.As(err, &corrupt) || errors.Is(err, io.ErrUnexpectedEOF):
		m.failed = errcode.Permanentf(errcode.ChecksumMismatch, "%s: corrupt compressed data after %d bytes: %v", m.src, m.n, err)
	default:
		m.failed = errcode.Retryable(errcode.SourceNotFound, fmt.Errorf("reading %s: %w", m.src, err))
	}
	return n, m.failed
}

func (m *memberReader) Close() error {
	if m.close != nil {
		m.close()
		m.close = nil
	}
	return nil
}
