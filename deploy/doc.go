// Package deploy holds no code: it is the home of the deployment artifacts
// (Grafana dashboard, Prometheus alerts, Kubernetes base, AWS templates) and
// of the tests that check them against the exporter's real metrics and the
// contract's IAM policy.
//
// It is a Go module of its own (deploy/go.mod), so that what only these tests
// need (HCL, cty, YAML; helm and kustomize, run with `go run`) stays out of
// the exporter's module graph. `make test` runs it; by hand:
//
//	cd deploy && go test ./...
package deploy
