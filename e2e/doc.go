// Package e2e holds the end-to-end tests of the exporter: a real embedded
// nats-server with JetStream, a real versitygw S3 server (a separate process,
// checking SigV4 signatures, users and bucket policies), and the exporter
// daemon run in-process through the same code the s3-exporter command runs.
// A second S3 world, a real MinIO process (minio_test.go), holds what
// versitygw does not enforce: SSE-KMS keys, IAM users whose policies have
// conditions, Object Lock. What landed is verified by reading it back from
// the S3 server.
package e2e
