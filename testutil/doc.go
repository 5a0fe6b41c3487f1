// Package testutil is the shared test infrastructure of the exporter, split so
// that a test links only what it uses:
//
//   - natstest: embedded nats-server (single, cluster, hub and leaf);
//   - s3test: the versitygw S3 server as a child process, read-back helpers
//     and a fault proxy;
//   - miniotest: the MinIO S3 server as a child process (installed with go
//     install, never linked: AGPL), with SSE-KMS and IAM users and policies;
//   - ststest: a small STS endpoint that checks AssumeRole parameters;
//   - fixtures: Prowler outputs, generated and genuine.
//
// This package holds what they share: free ports, the SigV4 signer of a
// request, the metric names the deployment artifacts use, and the random
// source of a test.
//
// No package here links versitygw or MinIO: the dev stack serves the gateway
// in-process (embedgw) from cmd/devstack, so test binaries stay small.
//
// # Random tests (seed.go)
//
// Seed and Rand give a test its random source: a fresh seed, or
// $S3EXPORTER_TEST_SEED's, logged once per test so that a failure can be
// replayed. FaultProxy draws its brown-outs from it.
package testutil
