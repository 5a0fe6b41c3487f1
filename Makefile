# s3-exporter — common tasks. `make demo` and `make test` work on a fresh
# machine with Go installed (modules come from the Go module proxy).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/prowler-cloud/s3-exporter/metrics.Version=$(VERSION) -X github.com/prowler-cloud/s3-exporter/metrics.Revision=$(REVISION)
FUZZTIME ?= 10000x

.PHONY: demo test test-short race fuzz bench bench-quick build lint clean

## demo: run NATS + versitygw + the exporter in-process, export a demo scan, stay up until Ctrl-C
demo:
	$(GO) run ./cmd/devstack

## test: the whole suite (unit, end to end on embedded nats-server and a versitygw process)
test:
	$(GO) test -count=1 -timeout 20m ./...

## test-short: the unit tests only
test-short:
	$(GO) test -count=1 -short ./...

## race: the unit packages under the race detector
race:
	$(GO) test -count=1 -race -short ./errcode/ ./event/ ./integration/ ./source/ ./exporter/ ./config/ ./fernet/ ./metrics/ ./ledger/ ./control/ ./daemon/

## fuzz: a short run of every fuzz target (FUZZTIME each: a count of inputs, Nx; see scripts/fuzz.sh)
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

## bench: the benchmark harness against its baselines; writes docs/BENCHMARKS.md
bench:
	$(GO) run ./cmd/bench -out docs/BENCHMARKS.md

## bench-quick: a small sanity run of the harness (20 scans, 128 MiB, 10k integrations); prints the table, writes nothing
bench-quick:
	$(GO) run ./cmd/bench -quick

## build: static binaries in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/s3-exporter ./cmd/exporterctl ./cmd/devstack

## lint: gofmt and go vet
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin .devstack
