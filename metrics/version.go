package metrics

// Version and Revision identify the build. They are set at link time:
//
//	go build -ldflags "-X github.com/prowler-cloud/s3-exporter/metrics.Version=1.2.3 \
//	  -X github.com/prowler-cloud/s3-exporter/metrics.Revision=$(git rev-parse HEAD)"
//
// They are the only package variables of the project, and only the linker
// writes them.
var (
	Version  = "dev"
	Revision = "unknown"
)

// CurrentBuild returns the BuildInfo stamped into this binary.
func CurrentBuild() BuildInfo { return BuildInfo{Version: Version, Revision: Revision} }
