# syntax=docker/dockerfile:1
#
# Prowler S3 exporter: a static, non-root image with CA certificates.
#
#   docker build \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     -t prowlercloud/s3-exporter .
#
# The base images are build arguments so that a release can pin them by
# digest without editing this file (a test accepts a tag with or without an
# @sha256: digest, and nothing else):
#
#     --build-arg GO_IMAGE=golang:1.26@sha256:<digest> \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:<digest>

ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src

# Dependencies first, so source changes reuse this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

ARG VERSION=dev
ARG REVISION=unknown
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION} -X github.com/prometheus/common/version.BuildUser=docker" \
      -o /out/ ./cmd/s3-exporter ./cmd/exporterctl

# distroless static: no shell, no package manager; CA certificates, tzdata
# and the nonroot user (uid/gid 65532).
FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="s3-exporter" \
      org.opencontainers.image.description="Exports Prowler scan outputs from NATS JetStream to Amazon S3" \
      org.opencontainers.image.source="https://github.com/prowler-cloud/s3-exporter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/s3-exporter /out/exporterctl /usr/local/bin/
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/s3-exporter"]
