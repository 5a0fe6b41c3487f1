# s3-exporter — common tasks. `make demo` and `make test` work on a fresh
# machine with Go installed (modules come from the Go module proxy).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
# Build info as Prometheus's own exporters stamp it (metrics.CurrentBuild reads it).
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS  := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) -X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildUser=make -X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
FUZZTIME ?= 10000x

.PHONY: demo test test-short race fuzz bench bench-bin bench-quick build docs lint clean chart-files release-check release-snapshot

## demo: run NATS + versitygw + the exporter in-process, export a demo scan, stay up until Ctrl-C
demo:
	$(GO) run ./cmd/devstack

# deploy/ is a Go module of its own (its tests need HCL, YAML and the helm and
# kustomize tools, which the exporter does not): every target that runs or
# checks "everything" runs it too.
DEPLOY := deploy

# tools/bench is the benchmark harness, a Go module of its own (it is not part
# of the product). It is built, then run from the repository root, where it
# builds the exporter and versitygw of this checkout. ARGS adds flags
# (make bench ARGS=-help).
BENCH := tools/bench
ARGS  ?=


# The end-to-end tests mostly wait (for NATS, versitygw, retries' backoff),
# so more of them run at once than there are cores: -parallel defaults to
# GOMAXPROCS, 2 here, which leaves the machine idle. Each parallel e2e test
# has a world of its own (a NATS server, an exporter, its own buckets).
PARALLEL ?= 8

## test: the whole suite (unit, end to end on embedded nats-server and a versitygw process; the deploy module's chart, manifests, rules and templates)
test:
	$(GO) test -count=1 -parallel $(PARALLEL) -timeout 20m ./...
	cd $(DEPLOY) && $(GO) test -count=1 -timeout 20m ./...
	cd $(BENCH) && $(GO) test -count=1 ./...

## test-short: the unit tests only
test-short:
	$(GO) test -count=1 -short -parallel $(PARALLEL) ./...
	cd $(DEPLOY) && $(GO) test -count=1 -short ./...
	cd $(BENCH) && $(GO) test -count=1 -short ./...

## race: every package under the race detector (e2e too: -short keeps its quick tests)
race:
	$(GO) test -count=1 -race -short -parallel $(PARALLEL) -timeout 20m ./...

## fuzz: a short run of every fuzz target (FUZZTIME each: a count of inputs, Nx; see scripts/fuzz.sh)
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench-bin:
	cd $(BENCH) && $(GO) build -o $(CURDIR)/bin/bench .

## bench: the benchmark harness against its baselines; writes docs/BENCHMARKS.md
bench: bench-bin
	bin/bench -out docs/BENCHMARKS.md $(ARGS)

## bench-quick: a small sanity run of the harness (20 scans, 128 MiB, 10k integrations); prints the table, writes nothing
bench-quick: bench-bin
	bin/bench -quick $(ARGS)

## build: static binaries in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/s3-exporter ./cmd/exporterctl ./cmd/devstack

## docs: regenerate docs/configuration.md from the settings' definitions (config's struct tags); config's tests fail when it is stale
docs:
	$(GO) generate ./config

## chart-files: copy the rules and the dashboard into the Helm chart (a chart cannot reach outside its folder; a test keeps the copies equal)
chart-files:
	cp deploy/prometheus/alerts.yml deploy/helm/s3-exporter/files/alerts.yml
	cp deploy/grafana/s3-exporter.json deploy/helm/s3-exporter/files/s3-exporter.json

# Release tools, at the versions the project supports, from the Go module
# proxy. syft (the SBOM) is installed into bin/tools when it is not on PATH.
GORELEASER ?= $(GO) run github.com/goreleaser/goreleaser/v2@v2.15.1
SYFT_PKG   := github.com/anchore/syft/cmd/syft@v1.57.1
TOOLS      := $(CURDIR)/bin/tools

## release-check: validate .goreleaser.yaml (CI runs it)
release-check:
	$(GORELEASER) check

## release-snapshot: the whole release locally (static linux/amd64+arm64 binaries, archives, checksums, SBOMs) in dist/, nothing published
release-snapshot:
	@command -v syft >/dev/null 2>&1 || test -x $(TOOLS)/syft || GOBIN=$(TOOLS) $(GO) install $(SYFT_PKG)
	PATH="$(TOOLS):$$PATH" $(GORELEASER) release --snapshot --clean

## lint: gofmt and go vet
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	cd $(DEPLOY) && $(GO) vet ./...
	cd $(BENCH) && $(GO) vet ./...

clean:
	rm -rf bin dist .devstack
