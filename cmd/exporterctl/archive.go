package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// archiveOptions are scan publish's flags for an archive (contract v1.2).
type archiveOptions struct {
	uri        string
	s3Endpoint string
	pathStyle  bool
}

func (o *archiveOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.uri, "archive", "", "")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "")
	fs.BoolVar(&o.pathStyle, "s3-path-style", false, "")
}

// publishArchive publishes a scan whose one artifact is the archive ao.uri,
// after reading its member list: the members' names give the provider uid
// and start (as a folder's files do), and --dry-run lists what the exporter
// would make of them.
func (a *app) publishArchive(ctx context.Context, o *scanOptions, ao *archiveOptions) error {
	src, err := event.ParseSource(ao.uri)
	if err != nil || src.Scheme != event.SchemeS3 && src.Scheme != event.SchemeFile {
		return usageErrorf("--archive %q: want s3://<bucket>/<key> or file:///<path>", ao.uri)
	}
	if err := o.scanFromURI(src); err != nil {
		return err
	}
	plan, heads, size, err := readArchivePlan(ctx, src, ao)
	if err != nil {
		return err
	}
	files := make([]outputFile, 0, len(plan.Members))
	for _, m := range plan.Members {
		files = append(files, outputFile{Format: m.Output.Format, Framework: m.Output.Framework,
			Path: heads[m.Index].Name, Name: heads[m.Index].Name, UID: m.Output.UID, TS: m.Output.TS})
	}
	nameUID, nameTS, err := scanIdentity(ao.uri, files)
	if err != nil {
		return err
	}
	scan, err := o.event(nameUID, nameTS)
	if err != nil {
		return err
	}
	for _, s := range plan.Skipped {
		fmt.Fprintf(a.stderr, "exporterctl: the exporter will skip member %s (not a recognised Prowler output)\n", s)
	}
	if o.dryRun {
		return a.printArchivePlan(scan, ao.uri, size, plan, heads)
	}
	return a.publishScan(ctx, o, scan, func(context.Context, *client.Client) ([]event.Artifact, error) {
		return []event.Artifact{{Format: event.FormatArchive, Source: ao.uri, Size: &size}}, nil
	})
}

// scanFromURI checks that the archive lies in the tenant's scan folder
// (<tenant>/<scan>/…, where the exporter reads it only) and takes the scan
// id from there unless --scan-id says it.
func (o *scanOptions) scanFromURI(src event.Source) error {
	path := src.Object
	if src.Scheme == event.SchemeFile {
		path = src.Path
	}
	segs := strings.Split(path, "/")
	for i := 0; i+2 < len(segs); i++ {
		if segs[i] != o.tenant || (src.Scheme == event.SchemeS3 && i != 0) {
			continue
		}
		if o.scanID == "" {
			o.scanID = segs[i+1]
		}
		if segs[i+1] == o.scanID {
			return nil
		}
	}
	what := "<tenant>/<scan id>/ (the key's start)"
	if src.Scheme == event.SchemeFile {
		what = "a folder <tenant>/<scan id>/ (below a root of the exporter's S3EXPORTER_FILE_SOURCE_ROOTS)"
	}
	if o.scanID == "" {
		return usageErrorf("--archive %s is not in %s for --tenant %s: the exporter would refuse it", src, what, o.tenant)
	}
	return usageErrorf("--archive %s is not in %s for --tenant %s and --scan-id %s: the exporter would refuse it", src, what, o.tenant, o.scanID)
}

// readArchivePlan reads the archive's member list: a local file, or an
// object read by ranged GETs with the caller's AWS default credentials.
func readArchivePlan(ctx context.Context, src event.Source, ao *archiveOptions) (source.MemberPlan, []source.MemberHeader, int64, error) {
	var (
		plan  source.MemberPlan
		heads []source.MemberHeader
		size  int64
		err   error
	)
	switch src.Scheme {
	case event.SchemeFile:
		f, ferr := os.Open(src.Path)
		if ferr != nil {
			return plan, nil, 0, fmt.Errorf("reading the archive: %w", ferr)
		}
		defer f.Close()
		st, ferr := f.Stat()
		if ferr != nil {
			return plan, nil, 0, fmt.Errorf("reading the archive: %w", ferr)
		}
		size = st.Size()
		plan, heads, err = source.ArchiveMembers(f, size, source.DefaultArchiveMaxBytes)
	default:
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		r, rerr := source.NewS3Reader(ctx, source.S3Options{Buckets: []string{src.Bucket}, Endpoint: ao.s3Endpoint, PathStyle: ao.pathStyle,
			DefaultRegion: os.Getenv("AWS_REGION")})
		if rerr != nil {
			return plan, nil, 0, rerr
		}
		ra, n, rerr := r.ReaderAt(ctx, src.Bucket, src.Object)
		if rerr != nil {
			return plan, nil, 0, fmt.Errorf("reading the archive: %w", rerr)
		}
		size = n
		plan, heads, err = source.ArchiveMembers(ra, size, source.DefaultArchiveMaxBytes)
	}
	if err != nil {
		return plan, nil, 0, fmt.Errorf("the exporter would refuse %s: %w", src, err)
	}
	if len(plan.Members) == 0 {
		return plan, nil, 0, fmt.Errorf("%s holds no Prowler output (*.csv, *.html, *.ocsf.json, *.asff.json, compliance/*.csv, compliance/*.ocsf.json)", src)
	}
	return plan, heads, size, nil
}

// printArchivePlan prints what the exporter would export from the archive
// (--dry-run): each member, its format and framework, its size, and the key
// it would land under in every integration's output directory.
func (a *app) printArchivePlan(scan event.ScanCompleted, uri string, size int64, plan source.MemberPlan, heads []source.MemberHeader) error {
	type planned struct {
		Format    string `json:"format"`
		Framework string `json:"framework,omitempty"`
		Member    string `json:"member"`
		Size      uint64 `json:"size"`
		Key       string `json:"key"`
	}
	out := make([]planned, 0, len(plan.Members))
	for _, m := range plan.Members {
		art := event.Artifact{Format: m.Output.Format, Framework: m.Output.Framework}
		out = append(out, planned{Format: art.Format, Framework: art.Framework, Member: heads[m.Index].Name, Size: heads[m.Index].Size,
			Key: exporter.ObjectKey("{dir}", art, scan.Provider.UID, scan.StartedAt)})
	}
	if a.g.json {
		return a.printJSON(map[string]any{"dry_run": true, "scan_id": scan.ScanID, "tenant_id": scan.TenantID,
			"provider": scan.Provider, "started_at": scan.StartedAt, "archive": uri, "archive_size": size,
			"members": out, "skipped": plan.Skipped})
	}
	fmt.Fprintf(a.stdout, "dry run: nothing published\nscan %s of tenant %s, provider %s (%s %s), started at %s\narchive %s (%d bytes): %d members to export\n",
		scan.ScanID, scan.TenantID, scan.Provider.ID, scan.Provider.Type, scan.Provider.UID, scan.StartedAt.Format(time.RFC3339), uri, size, len(out))
	for _, p := range out {
		what := p.Format
		if p.Framework != "" {
			what += "/" + p.Framework
		}
		fmt.Fprintf(a.stdout, "  %-40s %10d bytes  %s -> %s\n", what, p.Size, p.Member, p.Key)
	}
	return nil
}
