package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/prowlerout"
)

const scanPublishHelp = `Usage: exporterctl scan publish --tenant T --provider-id P [flags] DIR
       exporterctl scan publish --tenant T --provider-id P --archive URI [flags]

Stores the Prowler output files of DIR in a JetStream object store under
<tenant>/<scan>/, publishes the scan-completed event and prints the scan id.

Files are recognised by name, as Prowler 5 writes them:
  DIR/*.ocsf.json                 json-ocsf
  DIR/*.asff.json                 json-asff
  DIR/*.html                      html
  DIR/*.csv                       csv (at most one)
  DIR/compliance/**/*.csv         compliance; the framework is what follows
                                  "prowler-output-<uid>-<YYYYmmddHHMMSS>_" in the name,
                                  or the whole name without .csv
  DIR/compliance/**/*.ocsf.json   compliance-ocsf (Prowler 5's OCSF files of
                                  provider-agnostic frameworks), framework likewise
Other files are skipped (and listed on stderr). At most one file per format
(per framework for the compliance formats). Empty (0-byte) files are published
too: Prowler writes an empty compliance CSV when no finding maps to a framework.

The provider uid and the scan's start are read from the names
(prowler-output-<uid>-<YYYYmmddHHMMSS>...), so that every object key ends in
the very name Prowler gave the file. The timestamp is taken as UTC (the keys
use UTC); Prowler's CLI writes local time, so on a machine not on UTC pass
--started-at with the true time if the event's started_at matters more than
the names. A folder whose names carry different uids or timestamps holds
several scans and is refused.

Flags:
  --tenant T            tenant id (required)
  --provider-id P       provider id (required)
  --provider-uid U      provider uid, e.g. the AWS account id (default: from the file
                        names; required when they carry none)
  --provider-type X     provider type (default aws)
  --scan-id S           scan id (default: a random UUID)
  --started-at TIME     scan start, RFC 3339 (default: from the file names, else now);
                        it names the objects in the buckets
  --bucket B            object store for the files (default PROWLER_OUTPUTS)
  --dry-run             print what would be published (files, formats, keys) and stop;
                        needs no NATS
  --wait                wait for the export to every integration of the tenant that exports
                        the provider, print each outcome, exit 4 if any failed
  --wait-timeout D      time limit of --wait (default 15m)

With --archive, no folder: the event has one artifact of format archive
(contract v1.2), a zip of a scan's output folder as Prowler App builds it:
  --archive URI         s3://<bucket>/<tenant>/<scan>/<name>.zip (Prowler App's output
                        bucket; the exporter reads it with its own identity, and only
                        from a bucket in its S3EXPORTER_S3_SOURCE_BUCKETS) or
                        file:///<root>/<tenant>/<scan>/<name>.zip (under one of its
                        S3EXPORTER_FILE_SOURCE_ROOTS). The scan id defaults to the
                        folder after the tenant's in the URI.
  --s3-endpoint URL     S3-compatible endpoint to read an s3:// archive at (default AWS)
  --s3-path-style       path-style addressing for --s3-endpoint
The archive's member list is read (with your AWS default credentials for
s3://, by ranged GETs) to take the provider uid and start from the members'
names and, with --dry-run, to list the members the exporter would export,
with their keys, or say why it would refuse the archive.
`

type scanOptions struct {
	tenant, providerID, providerUID, providerType string
	scanID, startedAt, bucket                     string
	wait, dryRun                                  bool
	waitTimeout                                   time.Duration
}

// register adds the flags scan publish and scan run share.
func (o *scanOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.tenant, "tenant", "", "")
	fs.StringVar(&o.providerID, "provider-id", "", "")
	fs.StringVar(&o.providerUID, "provider-uid", "", "")
	fs.StringVar(&o.providerType, "provider-type", "aws", "")
	fs.StringVar(&o.scanID, "scan-id", "", "")
	fs.StringVar(&o.startedAt, "started-at", "", "")
	fs.StringVar(&o.bucket, "bucket", client.DefaultObjectStore, "")
	fs.DurationVar(&o.waitTimeout, "wait-timeout", 15*time.Minute, "")
}

func runScanPublish(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("scan publish")
	a.g.register(fs)
	var o scanOptions
	o.register(fs)
	fs.BoolVar(&o.wait, "wait", false, "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	var ao archiveOptions
	ao.register(fs)
	pos, err := a.parse(fs, "scan publish", args)
	if err != nil {
		return err
	}
	if ao.uri != "" {
		if len(pos) != 0 {
			return usageErrorf("scan publish --archive takes no folder, got %d arguments", len(pos))
		}
		return a.publishArchive(ctx, &o, &ao)
	}
	if len(pos) != 1 {
		return usageErrorf("scan publish takes one folder of Prowler outputs, got %d arguments", len(pos))
	}
	return a.publishFolder(ctx, &o, pos[0], nil)
}

// publishFolder stores the Prowler outputs of dir for which keep is true
// (all when keep is nil), publishes the event and, with o.wait, waits for
// the exports.
func (a *app) publishFolder(ctx context.Context, o *scanOptions, dir string, keep func(path string) bool) error {
	// A folder mixing scans is refused before anything else; a folder with
	// no output at all after the flags (its error says less).
	files, skipped, filesErr := findOutputsWhere(dir, keep)
	var nameUID, nameTS string
	var err error
	if filesErr == nil {
		if nameUID, nameTS, err = scanIdentity(dir, files); err != nil {
			return err
		}
	}
	scan, err := o.event(nameUID, nameTS)
	if err != nil {
		return err
	}
	if filesErr != nil {
		return filesErr
	}
	for _, s := range skipped {
		fmt.Fprintf(a.stderr, "exporterctl: skipping %s (not a recognised Prowler output)\n", s)
	}
	if !a.g.json && (o.providerUID == "" || o.startedAt == "") && nameTS != "" {
		fmt.Fprintf(a.stderr, "exporterctl: provider uid %s, started at %s (from the file names)\n",
			scan.Provider.UID, scan.StartedAt.Format(time.RFC3339))
	}
	if nameTS != "" && (exporter.SanitizeUID(scan.Provider.UID) != nameUID || scan.StartedAt.UTC().Format(exporter.TimestampLayout) != nameTS) {
		// An override is honoured, but the keys then differ from the names.
		fmt.Fprintf(a.stderr, "exporterctl: note: the keys will read prowler-output-%s-%s…, not the files' prowler-output-%s-%s…\n",
			exporter.SanitizeUID(scan.Provider.UID), scan.StartedAt.UTC().Format(exporter.TimestampLayout), nameUID, nameTS)
	}
	if o.dryRun {
		return a.printPlan(scan, files)
	}
	return a.publishScan(ctx, o, scan, func(ctx context.Context, cl *client.Client) ([]event.Artifact, error) {
		return putFiles(ctx, cl, o.bucket, scan.TenantID, scan.ScanID, files)
	})
}

// publishScan publishes scan with the artifacts put gives (after it has
// stored them) and, with o.wait, waits for the exports.
func (a *app) publishScan(ctx context.Context, o *scanOptions, scan event.ScanCompleted, put func(context.Context, *client.Client) ([]event.Artifact, error)) error {
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()

	var w *exportWaiter
	if o.wait {
		w, err = a.prepareWait(ctx, cl, scan)
		if err != nil {
			return err
		}
	}

	arts, err := put(ctx, cl)
	if err != nil {
		return err
	}
	scan.Artifacts = arts
	now := time.Now().UTC().Truncate(time.Second)
	scan.CompletedAt = &now
	subject := event.Subject(a.g.prefix, event.ScansCompleted, scan.TenantID, scan.Provider.ID)
	var ack *jetstream.PubAck
	err = a.request(ctx, func(ctx context.Context) (err error) { ack, err = publishScan(ctx, cl, subject, scan); return err })
	if err != nil {
		return fmt.Errorf("publishing scan %s: %w", scan.ScanID, err)
	}
	if ack.Duplicate {
		return fmt.Errorf("scan %s was already published in the last minutes: JetStream dropped this event as a duplicate (use replay to export it again)", scan.ScanID)
	}
	if !a.g.json {
		fmt.Fprintln(a.stdout, scan.ScanID)
	}
	result := map[string]any{"scan_id": scan.ScanID, "subject": subject, "stream_sequence": ack.Sequence, "artifacts": scan.Artifacts}
	if !o.wait {
		if a.g.json {
			return a.printJSON(result)
		}
		return nil
	}

	wctx, cancel := context.WithTimeout(ctx, o.waitTimeout)
	defer cancel()
	outcomes, waitErr := w.wait(wctx, a)
	result["exports"] = outcomes
	if a.g.json {
		if err := a.printJSON(result); err != nil {
			return err
		}
	}
	if waitErr != nil {
		return waitErr
	}
	for _, st := range outcomes {
		if st.State != event.StateSucceeded {
			return withCode(exitExportFailed)
		}
	}
	return nil
}

// event validates the flags and builds the event (without artifacts). The
// provider uid and start default to nameUID and nameTS, those of the file
// names ("" when they carry none).
func (o *scanOptions) event(nameUID, nameTS string) (event.ScanCompleted, error) {
	var s event.ScanCompleted
	if err := o.validate(); err != nil {
		return s, err
	}
	uid := o.providerUID
	if uid == "" {
		uid = nameUID
	}
	if strings.TrimSpace(uid) == "" {
		return s, usageErrorf("--provider-uid is required: no file is named prowler-output-<uid>-<YYYYmmddHHMMSS>... to take it from")
	}
	started := time.Now().UTC().Truncate(time.Second)
	switch {
	case o.startedAt != "":
		t, err := time.Parse(time.RFC3339, o.startedAt)
		if err != nil {
			return s, usageErrorf("--started-at %q: want RFC 3339, e.g. 2025-08-05T12:00:00Z", o.startedAt)
		}
		started = t.UTC()
	case nameTS != "":
		// Taken as UTC, so that the key's {ts} (UTC) is the name's.
		t, err := time.ParseInLocation(exporter.TimestampLayout, nameTS, time.UTC)
		if err != nil {
			return s, fmt.Errorf("the file names' timestamp %s is not a valid date (pass --started-at)", nameTS)
		}
		started = t
	}
	return event.ScanCompleted{
		ScanID: o.scanID, TenantID: o.tenant,
		Provider:  event.Provider{ID: o.providerID, Type: o.providerType, UID: uid},
		StartedAt: started,
	}, nil
}

// validate checks the flags that do not depend on the files.
func (o *scanOptions) validate() error {
	if o.scanID == "" {
		o.scanID = newUUID()
	}
	if err := requireIDs(map[string]string{"--tenant": o.tenant, "--provider-id": o.providerID, "--scan-id": o.scanID}); err != nil {
		return err
	}
	if o.bucket == "" {
		return usageErrorf("--bucket is empty")
	}
	if o.wait && o.waitTimeout <= 0 {
		return usageErrorf("--wait-timeout must be positive")
	}
	if o.wait && o.dryRun {
		return usageErrorf("--wait and --dry-run do not go together")
	}
	if o.startedAt != "" {
		if _, err := time.Parse(time.RFC3339, o.startedAt); err != nil {
			return usageErrorf("--started-at %q: want RFC 3339, e.g. 2025-08-05T12:00:00Z", o.startedAt)
		}
	}
	return nil
}

// printPlan prints what scan publish would store and publish (--dry-run):
// each file, its format and framework, its size, and the key it would land
// under in every integration's output directory.
func (a *app) printPlan(scan event.ScanCompleted, files []outputFile) error {
	type planned struct {
		Format    string `json:"format"`
		Framework string `json:"framework,omitempty"`
		Path      string `json:"path"`
		Size      int64  `json:"size"`
		Object    string `json:"object"`
		Key       string `json:"key"`
	}
	plan := make([]planned, 0, len(files))
	for _, f := range files {
		fi, err := os.Stat(f.Path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", f.Path, err)
		}
		art := event.Artifact{Format: f.Format, Framework: f.Framework}
		plan = append(plan, planned{
			Format: f.Format, Framework: f.Framework, Path: f.Path, Size: fi.Size(),
			Object: scan.TenantID + "/" + scan.ScanID + "/" + f.Name,
			Key:    exporter.ObjectKey("{dir}", art, scan.Provider.UID, scan.StartedAt),
		})
	}
	if a.g.json {
		return a.printJSON(map[string]any{"dry_run": true, "scan_id": scan.ScanID, "tenant_id": scan.TenantID,
			"provider": scan.Provider, "started_at": scan.StartedAt, "files": plan})
	}
	fmt.Fprintf(a.stdout, "dry run: nothing stored or published\nscan %s of tenant %s, provider %s (%s %s), started at %s\n",
		scan.ScanID, scan.TenantID, scan.Provider.ID, scan.Provider.Type, scan.Provider.UID, scan.StartedAt.Format(time.RFC3339))
	for _, p := range plan {
		what := p.Format
		if p.Framework != "" {
			what += "/" + p.Framework
		}
		fmt.Fprintf(a.stdout, "  %-40s %10d bytes  %s -> %s\n", what, p.Size, p.Path, p.Key)
	}
	return nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// outputFile is a recognised Prowler output on disk.
type outputFile struct {
	Format    string
	Framework string
	// Path is the file on disk.
	Path string
	// Name is the object name under <tenant>/<scan>/ (slash-separated).
	Name string
	// UID and TS are the provider uid and the timestamp (YYYYmmddHHMMSS) in
	// the file's name, when it is named as Prowler names its outputs.
	UID, TS string
}

// findOutputsWhere recognises the Prowler outputs of dir by their names,
// among the files for which keep is true (all when keep is nil; the others
// are neither returned nor listed as skipped). It returns them in a stable
// order, and the files it skipped.
func findOutputsWhere(dir string, keep func(path string) bool) ([]outputFile, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the outputs folder: %w", err)
	}
	var skipped []string
	var out []outputFile
	byFormat := map[string]string{}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		isDir, err := isDirectory(path, e)
		if err != nil {
			return nil, nil, err
		}
		if isDir {
			if e.Name() == prowlerout.ComplianceDir {
				comp, skip, err := findCompliance(path, keep)
				if err != nil {
					return nil, nil, err
				}
				out = append(out, comp...)
				skipped = append(skipped, skip...)
			} else {
				skipped = append(skipped, path+string(filepath.Separator))
			}
			continue
		}
		if keep != nil && !keep(path) {
			continue
		}
		o, ok, _ := prowlerout.Classify(e.Name()) // a top-level name is never a compliance file's
		if !ok {
			skipped = append(skipped, path)
			continue
		}
		format := o.Format
		if prev, dup := byFormat[format]; dup {
			return nil, nil, fmt.Errorf("%s: several %s files (%s and %s); want at most one", dir, format, prev, e.Name())
		}
		byFormat[format] = e.Name()
		f := outputFile{Format: format, Path: path, Name: e.Name(), UID: o.UID, TS: o.TS}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%s holds no Prowler output (*.csv, *.html, *.ocsf.json, *.asff.json, compliance/*.csv, compliance/*.ocsf.json)", dir)
	}
	// Non-compliance files first, in format order; then compliance by framework.
	slices.SortStableFunc(out, func(x, y outputFile) int {
		return strings.Compare(sortKey(x), sortKey(y))
	})
	return out, skipped, nil
}

func sortKey(f outputFile) string {
	i := slices.Index(event.Formats, f.Format)
	return fmt.Sprintf("%d/%s", i, f.Framework)
}

// findCompliance walks the compliance folder.
func findCompliance(root string, keep func(path string) bool) ([]outputFile, []string, error) {
	var out []outputFile
	var skipped []string
	seen := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || keep != nil && !keep(path) {
			return nil
		}
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			skipped = append(skipped, path)
			return nil
		}
		rel, err := filepath.Rel(filepath.Dir(root), path)
		if err != nil {
			return err
		}
		o, ok, err := prowlerout.Classify(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if !ok {
			skipped = append(skipped, path)
			return nil
		}
		format, fw, uid, ts := o.Format, o.Framework, o.UID, o.TS
		name := o.Name()
		if prev, dup := seen[name]; dup {
			return fmt.Errorf("compliance framework %s appears twice as %s (%s and %s)", fw, format, prev, path)
		}
		seen[name] = path
		out = append(out, outputFile{Format: format, Framework: fw, Path: path, Name: filepath.ToSlash(rel), UID: uid, TS: ts})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", root, err)
	}
	return out, skipped, nil
}

// scanIdentity returns the provider uid and the timestamp the files' names
// carry ("" when no file is named as Prowler names them). A folder whose
// names disagree holds the outputs of several scans (or accounts): it is
// refused, since one event would mix them under one scan's keys.
func scanIdentity(dir string, files []outputFile) (uid, ts string, err error) {
	uids := map[string][]string{}
	tss := map[string][]string{}
	for _, f := range files {
		if f.TS == "" {
			continue
		}
		uids[f.UID] = append(uids[f.UID], f.Name)
		tss[f.TS] = append(tss[f.TS], f.Name)
	}
	describe := func(m map[string][]string) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s (%d files, e.g. %s)", k, len(m[k]), m[k][0]))
		}
		return strings.Join(parts, ", ")
	}
	switch {
	case len(uids) > 1:
		return "", "", fmt.Errorf("%s mixes the outputs of several providers: the file names carry the uids %s; publish one scan's folder at a time", dir, describe(uids))
	case len(tss) > 1:
		return "", "", fmt.Errorf("%s mixes the outputs of several scans: the file names carry the timestamps %s; publish one scan's folder at a time", dir, describe(tss))
	}
	for k := range uids {
		uid = k
	}
	for k := range tss {
		ts = k
	}
	return uid, ts, nil
}

// isDirectory reports whether an entry is a directory, following a symlink.
func isDirectory(path string, e fs.DirEntry) (bool, error) {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir(), nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return fi.IsDir(), nil
}

// putFiles stores the files, opening each only while it is read.
func putFiles(ctx context.Context, cl *client.Client, bucket, tenant, scan string, files []outputFile) ([]event.Artifact, error) {
	cf := make([]client.File, len(files))
	lazies := make([]*lazyFile, len(files))
	for i, f := range files {
		lazies[i] = &lazyFile{path: f.Path}
		cf[i] = client.File{Format: f.Format, Framework: f.Framework, Name: f.Name, Body: lazies[i]}
	}
	defer func() {
		for _, l := range lazies {
			l.close()
		}
	}()
	arts, err := cl.PutArtifacts(ctx, bucket, tenant, scan, cf)
	if err != nil {
		return nil, fmt.Errorf("storing the outputs: %w", err)
	}
	return arts, nil
}

// lazyFile opens its file at the first Read and closes it at EOF, so that a
// scan of dozens of compliance files holds one descriptor at a time.
type lazyFile struct {
	path string
	f    *os.File
	done bool
}

func (l *lazyFile) Read(p []byte) (int, error) {
	if l.done {
		return 0, io.EOF
	}
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	n, err := l.f.Read(p)
	if err == io.EOF {
		l.close()
	}
	return n, err
}

func (l *lazyFile) close() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
	l.done = true
}

// publishScan publishes the event like client.PublishScan (Nats-Msg-Id =
// client.ScanMsgID) but returns the ack, to tell a duplicate the stream dropped.
func publishScan(ctx context.Context, cl *client.Client, subject string, s event.ScanCompleted) (*jetstream.PubAck, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subject)
	msg.Data = b
	msg.Header.Set(jetstream.MsgIDHeader, client.ScanMsgID(s))
	return cl.JS.PublishMsg(ctx, msg)
}

// Waiting for the export.

// exportWaiter follows the export statuses of one scan, from the status
// stream's sequence before the scan was published, for the integrations the
// exporter is expected to select.
type exportWaiter struct {
	cl       *client.Client
	scan     event.ScanCompleted
	stream   string
	startSeq uint64
	pending  []string
}

// prepareWait runs before the scan is published: it notes where the status
// stream ends and which integrations will export the scan (the enabled
// amazon_s3 integrations of the tenant, as the exporter holds them, that
// list the provider).
func (a *app) prepareWait(ctx context.Context, cl *client.Client, scan event.ScanCompleted) (*exportWaiter, error) {
	prefix := strings.ToUpper(a.g.prefix)
	w := &exportWaiter{cl: cl, scan: scan, stream: prefix + "_STATUS"}
	err := a.request(ctx, func(ctx context.Context) error {
		st, err := cl.JS.Stream(ctx, w.stream)
		if err != nil {
			// From a leaf node without --js-domain, the leaf's own
			// JetStream answers, and has no such stream.
			domain := "no JetStream domain"
			if a.g.jsDomain != "" {
				domain = "JetStream domain " + a.g.jsDomain
			}
			return fmt.Errorf("stream %s: %w (is the exporter running with --prefix %s, and are its streams in %s? see --js-domain)", w.stream, err, a.g.prefix, domain)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", w.stream, err)
		}
		w.startSeq = info.State.LastSeq + 1

		integrations := prefix + "_INTEGRATIONS"
		ist, err := cl.JS.Stream(ctx, integrations)
		if err != nil {
			return fmt.Errorf("stream %s: %w", integrations, err)
		}
		filter := event.Subject(a.g.prefix, event.IntegrationsChanged, scan.TenantID, "*")
		iinfo, err := ist.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return fmt.Errorf("stream %s: %w", integrations, err)
		}
		var ids []string
		for subj := range iinfo.State.Subjects {
			if toks, err := event.SubjectTokens(subj, a.g.prefix, event.IntegrationsChanged, 2); err == nil {
				ids = append(ids, toks[1])
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			rep, err := cl.Get(ctx, scan.TenantID, id)
			var re *client.ReplyError
			if errors.As(err, &re) {
				continue // deleted, rejected or of another type: the exporter does not hold it
			}
			if err != nil {
				return fmt.Errorf("getting integration %s/%s: %w", scan.TenantID, id, err)
			}
			in := rep.Integration
			if (in.Enabled == nil || *in.Enabled) && slices.Contains(in.Providers, scan.Provider.ID) {
				w.pending = append(w.pending, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--wait: %w", err)
	}
	return w, nil
}

// wait returns the final export status of each expected integration, in the
// order they finished.
func (w *exportWaiter) wait(ctx context.Context, a *app) ([]event.ExportStatus, error) {
	outcomes := []event.ExportStatus{}
	if len(w.pending) == 0 {
		fmt.Fprintf(a.stderr, "exporterctl: no enabled integration of tenant %s exports provider %s; nothing to wait for\n",
			w.scan.TenantID, w.scan.Provider.ID)
		return outcomes, nil
	}
	if !a.g.json {
		fmt.Fprintf(a.stderr, "exporterctl: waiting for the export to %s\n", strings.Join(w.pending, ", "))
	}
	pending := map[string]bool{}
	for _, id := range w.pending {
		pending[id] = true
	}
	cons, err := w.cl.JS.OrderedConsumer(ctx, w.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.Subject(w.cl.Prefix, event.ExportsStatus, w.scan.TenantID, "*")},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    w.startSeq,
	})
	if err != nil {
		return outcomes, fmt.Errorf("following %s: %w", w.stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return outcomes, fmt.Errorf("following %s: %w", w.stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for len(pending) > 0 {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				left := make([]string, 0, len(pending))
				for id := range pending {
					left = append(left, id)
				}
				slices.Sort(left)
				return outcomes, fmt.Errorf("no final export status from %s: %w", strings.Join(left, ", "), context.Cause(ctx))
			}
			return outcomes, fmt.Errorf("following %s: %w", w.stream, err)
		}
		var st event.ExportStatus
		if json.Unmarshal(msg.Data(), &st) != nil || st.ScanID != w.scan.ScanID || !pending[st.IntegrationID] {
			continue
		}
		if st.State == event.StateRetrying {
			if !a.g.json {
				fmt.Fprintf(a.stderr, "exporterctl: integration %s: attempt %d will be retried%s\n", st.IntegrationID, st.Attempt, firstError(st))
			}
			continue
		}
		delete(pending, st.IntegrationID)
		outcomes = append(outcomes, st)
		if !a.g.json {
			printOutcome(a.stdout, st)
		}
	}
	return outcomes, nil
}

func firstError(st event.ExportStatus) string {
	if len(st.Errors) == 0 {
		return ""
	}
	e := st.Errors[0]
	return fmt.Sprintf(" (%s: %s)", e.Code, oneLine(e.Message))
}

func printOutcome(w io.Writer, st event.ExportStatus) {
	fmt.Fprintf(w, "integration %s: %s (attempt %d, %d objects", st.IntegrationID, st.State, st.Attempt, len(st.Objects))
	if len(st.Errors) > 0 {
		fmt.Fprintf(w, ", %d errors", len(st.Errors))
	}
	fmt.Fprintln(w, ")")
	for _, e := range st.Errors {
		what := e.Format
		if e.Framework != "" {
			what += "/" + e.Framework
		}
		fmt.Fprintf(w, "  %s %s: %s\n", what, e.Code, oneLine(e.Message))
	}
}
