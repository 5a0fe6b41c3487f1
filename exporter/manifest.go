package exporter

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
	"github.com/prowler-cloud/s3-exporter/internal/sched"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// FormatManifest is the format of the per-scan manifest object (contract
// v1.1 §4, configuration.write_manifest) in results, statuses, the ledger
// and the prowler-format metadata. No artifact can have it: event
// validation accepts only the formats of contract §3.
const FormatManifest = "manifest"

// ManifestVersion is the manifest_version of the manifests this exporter
// writes; it changes only if a field changes meaning or goes away.
const ManifestVersion = 1

// ManifestKey is the key of a scan's manifest:
// {dir}/manifests/prowler-output-{uid}-{ts}.manifest.json, beside the
// format folders and named like the objects it lists.
func ManifestKey(dir, providerUID string, startedAt time.Time) string {
	return dir + "/manifests/prowler-output-" + SanitizeUID(providerUID) + "-" + startedAt.UTC().Format(TimestampLayout) + ".manifest.json"
}

// Manifest is the content of a manifest object. It holds nothing that
// depends on when or by which replica it was written, so a redelivery
// writes the same bytes (and S3 the same ETag).
type Manifest struct {
	ManifestVersion int              `json:"manifest_version"`
	ScanID          string           `json:"scan_id"`
	TenantID        string           `json:"tenant_id"`
	Provider        ManifestProvider `json:"provider"`
	StartedAt       time.Time        `json:"started_at"`
	// CompletedAt is null when the event gave none (it is optional).
	CompletedAt *time.Time       `json:"completed_at"`
	Objects     []ManifestObject `json:"objects"`
}

// ManifestProvider is the scanned account.
type ManifestProvider struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// ManifestObject is one object of the scan in the bucket.
type ManifestObject struct {
	Key       string `json:"key"`
	Format    string `json:"format"`
	Framework string `json:"framework"`
	Size      int64  `json:"size"`
	// SHA256 is the sha256 of the object's bytes (lower-case hex): the
	// event's, which the exporter verified while the bytes streamed to S3,
	// or, when the event gave none, computed on the way. null only for an
	// object uploaded before write_manifest was switched on, whose event
	// gave none.
	SHA256 *string `json:"sha256"`
	ETag   string  `json:"etag"`
}

// BuildManifest returns the manifest of scan listing arts, which must all
// be in the bucket (Object set), ordered by key: the order does not depend
// on the event's order of artifacts nor on which upload ended first. The
// bytes are indented JSON ending in a newline.
func BuildManifest(scan *event.ScanCompleted, arts []ArtifactResult) ([]byte, error) {
	m := Manifest{
		ManifestVersion: ManifestVersion,
		ScanID:          scan.ScanID, TenantID: scan.TenantID,
		Provider:  ManifestProvider{ID: scan.Provider.ID, Type: scan.Provider.Type, UID: scan.Provider.UID},
		StartedAt: scan.StartedAt.UTC(),
		Objects:   make([]ManifestObject, 0, len(arts)),
	}
	if scan.CompletedAt != nil {
		t := scan.CompletedAt.UTC()
		m.CompletedAt = &t
	}
	for _, a := range arts {
		if a.Object == nil {
			return nil, errors.New("manifest: artifact " + a.Artifact.Name() + " is not in the bucket")
		}
		o := ManifestObject{Key: a.Object.Key, Format: a.Object.Format, Framework: a.Object.Framework,
			Size: a.Object.Size, ETag: a.Object.ETag}
		switch {
		case a.Object.SHA256 != "":
			s := a.Object.SHA256
			o.SHA256 = &s
		case a.Artifact.SHA256 != "":
			s := strings.ToLower(a.Artifact.SHA256)
			o.SHA256 = &s
		}
		m.Objects = append(m.Objects, o)
	}
	slices.SortFunc(m.Objects, func(a, b ManifestObject) int { return cmp.Compare(a.Key, b.Key) })
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// digest is the sha256 of one artifact's bytes for the manifest.
type digest struct {
	h    hash.Hash // computing it while the bytes stream (the event gave none)
	want string    // the event's, verified by the source while they stream
}

// manifestDigest returns how upload learns the sha256 of artifact a for
// the manifest of ig: nil when ig writes no manifest (no hashing: it costs
// as much CPU as signing), the event's value when it gave one (the source
// verifies it), else a hash of the bytes read from src.
func manifestDigest(ig *integration.Integration, a event.Artifact, src *source.Opened) *digest {
	switch {
	case !ig.WriteManifest:
		return nil
	case a.SHA256 != "":
		return &digest{want: strings.ToLower(a.SHA256)}
	}
	d := &digest{h: sha256.New()}
	src.ReadCloser = teeReadCloser{Reader: io.TeeReader(src.ReadCloser, d.h), Closer: src.ReadCloser}
	return d
}

// record sets rec's SHA256 once the upload read every byte (rec is nil
// unless it landed).
func (d *digest) record(rec *event.ObjectRecord) *event.ObjectRecord {
	if d == nil || rec == nil {
		return rec
	}
	rec.SHA256 = d.want
	if d.h != nil {
		rec.SHA256 = hex.EncodeToString(d.h.Sum(nil))
	}
	return rec
}

type teeReadCloser struct {
	io.Reader
	io.Closer
}

// manifestArtifact is the stand-in artifact of a manifest in results: its
// Name ("manifest") is its ledger key, and its sha256 (of the manifest's
// own bytes) goes into the prowler-sha256 metadata.
func manifestArtifact(body []byte) event.Artifact {
	sum := sha256.Sum256(body)
	return event.Artifact{Format: FormatManifest, SHA256: hex.EncodeToString(sum[:])}
}

// LedgerManifest returns the manifest of job's integration as the ledger
// has it (job.Done under the manifest's key), or nil.
func LedgerManifest(scan *event.ScanCompleted, job Job) *event.ObjectRecord {
	rec, ok := job.Done[FormatManifest]
	if !ok || rec.Key != ManifestKey(job.Integration.OutputDirectory, scan.Provider.UID, scan.StartedAt) {
		return nil
	}
	return &rec
}

// allLanded reports whether every artifact of a result is in the bucket.
func allLanded(ars []ArtifactResult) bool {
	for _, a := range ars {
		if a.Object == nil {
			return false
		}
	}
	return true
}

// wantsManifest reports whether job's result calls for a manifest: the
// integration asks for one and every artifact of the scan is in the
// bucket, uploaded now or before. A failed or partial export never gets
// one: its absence is what tells downstream jobs the scan is not complete.
func wantsManifest(job Job, r Result) bool {
	return job.Integration.WriteManifest && len(r.Artifacts) > 0 && allLanded(r.Artifacts)
}

// writeManifests writes the manifest of every job that wants one, once all
// the uploads of the scan are over (Export calls it last), and appends its
// outcome to the job's result as one more artifact result (format
// "manifest"): a failed manifest write is a failure of that integration's
// export like any artifact's, so the consumer's verdict cannot call the
// export succeeded without it, and the redelivery it causes finds every
// artifact in the ledger and writes only the manifest.
func (e *Exporter) writeManifests(ctx context.Context, scan *event.ScanCompleted, jobs []Job, results []Result) {
	var wg sync.WaitGroup
	for i, job := range jobs {
		r := &results[i]
		if !wantsManifest(job, *r) {
			continue
		}
		key := ManifestKey(job.Integration.OutputDirectory, scan.Provider.UID, scan.StartedAt)
		if allSkipped(r.Artifacts) {
			// Nothing was uploaded in this delivery: what the ledger says
			// of the manifest still holds (a status that could not be
			// published brought the scan back). A permanent failure is
			// reported again, not tried again, as an artifact's would be.
			if rec := LedgerManifest(scan, job); rec != nil {
				r.Artifacts = append(r.Artifacts, ArtifactResult{Artifact: event.Artifact{Format: FormatManifest},
					Key: key, Object: rec, Skipped: true})
				continue
			}
			if fe, ok := job.Failed[FormatManifest]; ok && fe.Key == key {
				r.Artifacts = append(r.Artifacts, ArtifactResult{Artifact: event.Artifact{Format: FormatManifest},
					Key: key, Skipped: true, Err: &errcode.Error{Code: errcode.Code(fe.Code), Err: errors.New(fe.Message)}})
				continue
			}
		}
		body, err := BuildManifest(scan, r.Artifacts)
		ar := ArtifactResult{Key: key}
		if err != nil { // cannot happen: wantsManifest checked every Object
			ar.Artifact, ar.Err = event.Artifact{Format: FormatManifest}, errcode.Permanentf(errcode.S3TestConnectionError, "%v", err)
			r.Artifacts = append(r.Artifacts, ar)
			continue
		}
		ar.Artifact = manifestArtifact(body)
		r.Artifacts = append(r.Artifacts, ar)
		m := &r.Artifacts[len(r.Artifacts)-1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.putManifestWithRetry(ctx, scan, job.Integration, m, body)
		}()
	}
	wg.Wait()
}

// putManifestWithRetry writes a manifest, retried in process as an
// artifact upload is (uploadWithRetry), each attempt under its own grant of
// the scheduler (fair share, the destination's limit and breaker). It is
// one PutObject: no multipart upload can be left behind to clean up.
func (e *Exporter) putManifestWithRetry(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, ar *ArtifactResult, body []byte) {
	start := time.Now()
	defer func() { ar.Duration = time.Since(start) }()
	size := int64(len(body))
	req := sched.Request{Tenant: scan.TenantID, Dest: destKey(scan.TenantID, ig), Bytes: e.opts.uploadBytes(size)}
	log := e.log.With(zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID), zap.String("integration_id", ig.ID))
	e.retry(ctx, "manifest write", ig, ar, log, func(int) (*event.ObjectRecord, *errcode.Error) {
		return e.putManifest(ctx, scan, ig, ar, body, req)
	})
}

// putManifest writes a manifest once, with one PutObject (it is small),
// under a grant.
func (e *Exporter) putManifest(ctx context.Context, scan *event.ScanCompleted, ig *integration.Integration, ar *ArtifactResult, body []byte, req sched.Request) (*event.ObjectRecord, *errcode.Error) {
	g, err := e.sched.Acquire(ctx, req)
	if err != nil {
		return nil, e.refused(err, ig)
	}
	e.opts.InFlight(1)
	defer e.opts.InFlight(-1)
	uctx, cancel := context.WithTimeout(ctx, e.opts.UploadTimeout)
	defer cancel()
	var (
		rec  *event.ObjectRecord
		perr *errcode.Error
	)
	if cl, _, cerr := e.clients.Client(uctx, ig); cerr != nil {
		perr = classify("finding the bucket region", cerr)
	} else {
		po := objectOptions(scan, ig, ar.Artifact)
		po.ContentType = "application/json"
		e.checksums.apply(&po, destKey(scan.TenantID, ig))
		rec, perr = putSmall(uctx, cl, ig.Bucket, po, ar.Artifact, ar.Key, int64(len(body)), bytes.NewReader(body))
	}
	e.breakerChanged(ig, g.Done(outcome(ctx, perr, true), true), perr)
	return rec, perr
}
