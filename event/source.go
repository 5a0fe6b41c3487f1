package event

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Source schemes (contract §3).
const (
	SchemeObjectStore = "nats-os"
	SchemeFile        = "file"
	// SchemeS3 (v1.2) is an object of a bucket of the platform's own, read
	// with the exporter's own AWS identity.
	SchemeS3 = "s3"
)

// Source is a parsed artifact source.
type Source struct {
	Scheme string
	// Bucket and Object are set for nats-os and s3 sources (for s3, Object
	// is the key).
	Bucket string
	Object string
	// Path is set for file sources: absolute and cleaned.
	Path string
}

func (s Source) String() string {
	if s.Scheme == SchemeFile {
		return "file://" + s.Path
	}
	return s.Scheme + "://" + s.Bucket + "/" + s.Object
}

// ParseSource parses an artifact's source. It checks the shape only; whether
// the source may be read (tenant prefix, allowed roots) is the source
// package's decision.
func ParseSource(raw string) (Source, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Source{}, fmt.Errorf("source %q: want nats-os://<bucket>/<object>, s3://<bucket>/<key> or file:///<path>", raw)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Source{}, fmt.Errorf("source %q: control characters are not allowed", raw)
	}
	switch scheme {
	case SchemeObjectStore:
		bucket, object, ok := strings.Cut(rest, "/")
		if !ok || bucket == "" || object == "" {
			return Source{}, fmt.Errorf("source %q: want nats-os://<bucket>/<object name>", raw)
		}
		return Source{Scheme: scheme, Bucket: bucket, Object: object}, nil
	case SchemeS3:
		bucket, key, ok := strings.Cut(rest, "/")
		if !ok || bucket == "" || key == "" {
			return Source{}, fmt.Errorf("source %q: want s3://<bucket>/<key>", raw)
		}
		return Source{Scheme: scheme, Bucket: bucket, Object: key}, nil
	case SchemeFile:
		if !strings.HasPrefix(rest, "/") {
			return Source{}, fmt.Errorf("source %q: a file source needs an absolute path (file:///...)", raw)
		}
		return Source{Scheme: scheme, Path: filepath.Clean(rest)}, nil
	default:
		return Source{}, fmt.Errorf("source %q: unknown scheme %q (want nats-os, s3 or file)", raw, scheme)
	}
}

// CleanObjectName reports whether an object name is already in clean path form
// (no empty, "." or ".." segments); names that are not are refused so that a
// prefix check can't be fooled.
func CleanObjectName(name string) bool {
	// path.Clean keeps leading ".." segments of a relative name ("../x").
	return path.Clean(name) == name && !strings.HasPrefix(name, "/") && name != "." &&
		name != ".." && !strings.HasPrefix(name, "../")
}
