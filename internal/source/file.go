package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// FileRoot is an allowed root for file sources (S3EXPORTER_FILE_SOURCE_ROOTS):
// as configured, and with its symlinks resolved when the exporter started.
type FileRoot struct {
	Given string
	Real  string
}

// Target is what an artifact's source resolves to, before anything is
// opened.
type Target struct {
	Source event.Source
	// Prefix is, for an object-store or s3 source, "<tenant>/<scan>/": the
	// object's name (key), and the name of any link's target, must start
	// with it.
	Prefix string
	// For a file source: the root (symlinks resolved), the event's tenant and
	// scan (the folders below it) and the path below <root>/<tenant>/<scan>,
	// a local, slash-separated path of at least one element.
	Root         string
	Tenant, Scan string
	Rel          string
}

// Resolve maps an artifact's source, for the event's tenant and scan, to what
// may be opened: a pure decision, so that it can be fuzzed and tested alone.
// Every refusal is a permanent SourceRefused:
//
//   - nats-os://<bucket>/<object> and (v1.2) s3://<bucket>/<key>: the
//     object's name or key must be clean and start with "<tenant>/<scan>/"
//     (which buckets s3 sources may name is the Opener's check);
//   - file://<path>: the path (cleaned) must lie under
//     <root>/<tenant>/<scan>/ for an allowed root, named as configured or
//     with its symlinks resolved. Nothing else is decided from the path:
//     symlinks below the root are resolved while opening (openFile), never
//     by reading the path here, so that no rename between the check and the
//     open can lead elsewhere.
func Resolve(raw, tenant, scan string, roots []FileRoot) (Target, error) {
	src, err := event.ParseSource(raw)
	if err != nil {
		return Target{}, errcode.Permanent(errcode.SourceRefused, err)
	}
	// The event's IDs were validated when it was decoded; checked again here
	// because the folder names below a root are built from them.
	if !event.ValidID(tenant) || !event.ValidID(scan) {
		return Target{}, errcode.Permanentf(errcode.SourceRefused, "source %s: invalid tenant or scan id", src)
	}
	tg := Target{Source: src, Tenant: tenant, Scan: scan}
	switch src.Scheme {
	case event.SchemeObjectStore, event.SchemeS3:
		tg.Prefix = tenant + "/" + scan + "/"
		if !event.CleanObjectName(src.Object) || !strings.HasPrefix(src.Object, tg.Prefix) {
			return Target{}, errcode.Permanentf(errcode.SourceRefused,
				"source %s: object names must start with %q (the event's tenant and scan) and be clean paths", src, tg.Prefix)
		}
		return tg, nil
	case event.SchemeFile:
		if len(roots) == 0 {
			return Target{}, errcode.Permanentf(errcode.SourceRefused,
				"source %s: file sources are off (S3EXPORTER_FILE_SOURCE_ROOTS is empty)", src)
		}
		p := filepath.Clean(src.Path)
		for _, r := range roots {
			for _, name := range []string{r.Given, r.Real} {
				dir := filepath.Join(name, tenant, scan)
				rel, ok := strings.CutPrefix(p, dir+string(filepath.Separator))
				if ok && rel != "" && filepath.IsLocal(rel) {
					tg.Root, tg.Rel = r.Real, filepath.ToSlash(rel)
					return tg, nil
				}
			}
		}
		return Target{}, errcode.Permanentf(errcode.SourceRefused,
			"source %s: file sources must lie under <root>/%s/%s/ (the event's tenant and scan) for a root in S3EXPORTER_FILE_SOURCE_ROOTS", src, tenant, scan)
	default:
		return Target{}, errcode.Permanentf(errcode.SourceRefused, "source %s: unsupported scheme", src)
	}
}

// openFile opens a file source without ever leaving <root>/<tenant>/<scan>:
//
//   - the tenant's and the scan's folders are opened one at a time, and
//     neither may be a symlink (one tenant's folder linked to another's
//     would otherwise stay "inside the root");
//   - below them, os.Root resolves every element itself, with
//     O_NOFOLLOW opens relative to the folder already open: a symlink, a
//     ".." or a folder renamed or swapped for a symlink while this runs can
//     never lead out (an absolute symlink is refused outright);
//   - the file is opened with O_NONBLOCK, so that a FIFO (whose open would
//     wait for a writer, forever, holding the export and the daemon's
//     shutdown) returns at once, and then must be a regular file by fstat
//     of what was opened, not of a name.
//
// A missing file or folder is a permanent SourceNotFound (the scan engine
// writes its files before it announces them); everything else SourceRefused.
func openFile(tg Target) (*Opened, error) {
	src := tg.Source
	root, err := os.OpenRoot(tg.Root)
	if err != nil {
		return nil, errcode.Permanentf(errcode.SourceNotFound, "source %s: file source root: %v", src, err)
	}
	defer root.Close()
	tenant, err := openFolder(root, tg.Tenant)
	if err != nil {
		return nil, fileError(src, err)
	}
	defer tenant.Close()
	scan, err := openFolder(tenant, tg.Scan)
	if err != nil {
		return nil, fileError(src, err)
	}
	defer scan.Close()
	f, err := scan.OpenFile(tg.Rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileError(src, err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		what := "cannot be read"
		if err == nil {
			what = "is a " + fileKind(st.Mode())
		}
		return nil, errcode.Permanentf(errcode.SourceRefused, "source %s %s: only regular files are exported", src, what)
	}
	return &Opened{ReadCloser: f, Size: st.Size()}, nil
}

// errNotAFolder says that the tenant's or the scan's folder is a symlink, a
// file, or was replaced while it was opened.
var errNotAFolder = errors.New("not a folder")

// openFolder opens the folder name of parent, refusing a symlink: the folder
// is looked at without following links, opened, and must then be the very
// folder that was looked at (same device and inode), which no rename in
// between can fake.
func openFolder(parent *os.Root, name string) (*os.Root, error) {
	fi, err := parent.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w", name, errNotAFolder)
	}
	r, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	d, err := r.Open(".")
	if err != nil {
		r.Close()
		return nil, err
	}
	st, err := d.Stat()
	d.Close()
	if err != nil || !os.SameFile(fi, st) {
		r.Close()
		return nil, fmt.Errorf("%s: %w", name, errNotAFolder)
	}
	return r, nil
}

func fileError(src event.Source, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errcode.Permanentf(errcode.SourceNotFound, "source %s: no such file", src)
	}
	// os.Root's own error for a way out ("path escapes from parent") is not
	// exported; whatever is not "missing" is a refusal.
	return errcode.Permanentf(errcode.SourceRefused,
		"source %s: cannot be opened within its tenant's and scan's folder (a symlink or '..' leading out, or not a regular file): %v", src, unwrapPath(err))
}

// unwrapPath drops the path from an *fs.PathError: the source is already in
// the message, and the path os.Root reports may be a resolved link target.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		return "device"
	}
	return "non-regular file"
}
