// Package e2e holds the end-to-end tests of the exporter: a real embedded
// nats-server with JetStream, a real versitygw S3 server (a separate process,
// checking SigV4 signatures, users and bucket policies), and the exporter
// daemon run in-process through the same code the s3-exporter command runs.
// What landed is verified by reading it back from the S3 server.
package e2e
