// Package deploy holds no code: it is the home of the deployment artifacts
// (Grafana dashboard, Prometheus alerts, Kubernetes base, AWS templates) and
// of the tests that check them against the exporter's real metrics and the
// contract's IAM policy.
package deploy
