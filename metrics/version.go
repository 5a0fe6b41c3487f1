package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/common/version"
)

// The build is identified the way Prometheus's own exporters do it: the
// linker writes github.com/prometheus/common/version's variables,
//
//	go build -ldflags "-X github.com/prometheus/common/version.Version=1.2.3 \
//	  -X github.com/prometheus/common/version.Revision=$(git rev-parse HEAD) \
//	  -X github.com/prometheus/common/version.Branch=main \
//	  -X github.com/prometheus/common/version.BuildUser=ci \
//	  -X github.com/prometheus/common/version.BuildDate=20261201-10:00:00"
//
// (the Makefile, the Dockerfile and .goreleaser.yaml do), and CurrentBuild
// reads them. Without linker flags, as after a plain `go install`, the
// module version and the VCS revision Go stamps into every binary are used,
// so such a binary still says what it is.

// CurrentBuild returns the BuildInfo of this binary.
func CurrentBuild() BuildInfo {
	b := BuildInfo{
		Version:   version.Version,
		Revision:  version.GetRevision(),
		Branch:    version.Branch,
		BuildUser: version.BuildUser,
		BuildDate: version.BuildDate,
		Tags:      version.GetTags(),
	}
	if b.Version == "" {
		b.Version = moduleVersion()
	}
	return b
}

// moduleVersion is the main module's version as `go install` records it, or
// "dev" for a build from a work tree.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// labels are the build_info labels, those of
// github.com/prometheus/client_golang/prometheus/collectors/version, so
// dashboards written for Prometheus's exporters work unchanged.
func (b BuildInfo) labels() []string {
	return []string{b.Version, b.Revision, b.Branch, runtime.Version(), runtime.GOOS, runtime.GOARCH, b.Tags}
}

var buildInfoLabels = []string{"version", "revision", "branch", "goversion", "goos", "goarch", "tags"}
