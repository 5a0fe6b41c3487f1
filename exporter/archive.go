package exporter

import (
	"context"

	"go.uber.org/zap"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/source"
)

// Expander reads an archive artifact's member list (contract v1.2 §3):
// package source's Opener.
type Expander interface {
	Expand(ctx context.Context, scan *event.ScanCompleted, a event.Artifact) (*source.Expansion, error)
}

// expand returns scan with each archive artifact replaced by the artifacts
// of the members it exports, and the archives that could not be expanded,
// by their index in the returned scan's artifacts (they stay in the list,
// as themselves, to carry their error).
//
// This is the whole of how archives fit the pipeline: once expanded, a
// member is an artifact like any other, with its own key, ledger entry
// (by Artifact.Name, so a redelivery skips the members that landed),
// retries, scheduler grant (its declared size counts against the upload
// memory budget), status line, object metadata and manifest line. Opening
// one (source.Opener.Open) streams exactly its compressed bytes out of the
// archive and inflates them. The member list is read again on each
// delivery: a few ranged GETs, much less than the members themselves.
func (e *Exporter) expand(ctx context.Context, scan *event.ScanCompleted) (*event.ScanCompleted, map[int]*errcode.Error) {
	has := false
	for _, a := range scan.Artifacts {
		has = has || a.Format == event.FormatArchive
	}
	if !has {
		return scan, nil
	}
	ex, _ := e.opener.(Expander)
	ctx, cancel := context.WithTimeout(ctx, e.opts.UploadTimeout)
	defer cancel()
	out := *scan
	out.Artifacts = nil
	failed := map[int]*errcode.Error{}
	taken := map[string]string{} // artifact name -> where it comes from
	for _, a := range scan.Artifacts {
		if a.Format != event.FormatArchive {
			taken[a.Name()] = a.Source
		}
	}
	for i, a := range scan.Artifacts {
		if a.Format != event.FormatArchive {
			out.Artifacts = append(out.Artifacts, a)
			continue
		}
		var err *errcode.Error
		var members []event.Artifact
		if ex == nil {
			err = errcode.Permanentf(errcode.SourceRefused, "source %s: archives are not read by this exporter", a.Source)
		} else if exp, xerr := ex.Expand(ctx, scan, a); xerr != nil {
			err = errcode.From(xerr)
		} else {
			members = exp.Artifacts
			if len(exp.Skipped) > 0 {
				e.log.Info("archive members skipped: not Prowler outputs", zap.String("tenant_id", scan.TenantID),
					zap.String("scan_id", scan.ScanID), zap.String("source", a.Source), zap.Int("skipped", len(exp.Skipped)),
					zap.Strings("members", exp.Skipped[:min(len(exp.Skipped), 20)]))
			}
			// The artifacts listed so far, and those still to come.
			others := len(out.Artifacts) + len(scan.Artifacts) - i - 1
			err = claim(taken, a.Source, members, others)
		}
		if err != nil {
			e.log.Warn("archive refused", zap.String("tenant_id", scan.TenantID), zap.String("scan_id", scan.ScanID),
				zap.String("source", a.Source), zap.String("code", string(err.Code)), zap.Error(err))
			failed[len(out.Artifacts)] = err
			out.Artifacts = append(out.Artifacts, a)
			continue
		}
		out.Artifacts = append(out.Artifacts, members...)
	}
	return &out, failed
}

// claim takes the names of an archive's members, refusing the archive when
// one is already another artifact's (the same key twice) or when the scan
// would export more than event.MaxScanArtifacts objects (so that its status
// still fits in one message) with the others.
func claim(taken map[string]string, src string, members []event.Artifact, others int) *errcode.Error {
	if others+len(members) > event.MaxScanArtifacts {
		return errcode.Permanentf(errcode.SourceRefused, "source %s: refused: the scan would export more than %d objects", src, event.MaxScanArtifacts)
	}
	for _, m := range members {
		if prev, dup := taken[m.Name()]; dup {
			return errcode.Permanentf(errcode.SourceRefused, "source %s: refused: member %q is %s, which %s already is", src, m.Member.Name, m.Name(), prev)
		}
	}
	for _, m := range members {
		taken[m.Name()] = src + " (member " + m.Member.Name + ")"
	}
	return nil
}
