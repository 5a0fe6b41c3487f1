// Package testutil is the shared test infrastructure of the exporter: real
// servers and realistic data for integration tests, the dev stack
// (cmd/devstack) and the benchmarks. Every core function returns an error so
// that non-test code can use it; the Start*/Must* wrappers take a testing.TB,
// fail the test on error and register cleanup.
//
// # NATS (nats.go)
//
// RunNATS / StartNATS run an embedded nats-server with JetStream on a random
// port of 127.0.0.1. NATSOptions.Port and StoreDir pin a server to a previous
// one's port and store, so a test can restart it and keep its streams.
// RunNATSCluster / StartNATSCluster run n (use 3) clustered servers and return
// once the JetStream meta leader has stats from every peer, so an R3 stream
// can be created at once; ClusterURLs joins their client URLs.
//
// # S3 (s3server.go, s3admin.go, s3read.go)
//
// RunS3 / StartS3 run the real S3 server versitygw (the version go.mod pins)
// as a child process, serving a posix directory on 127.0.0.1 with a file IAM
// and an access log. VersityGWBinary builds it once with `go build` from the
// module graph into $S3EXPORTER_TEST_CACHE (default: the user cache dir's
// s3-exporter-test/) and reuses it; $VERSITYGW_BIN overrides it. Stop / Start
// (and Kill) simulate outages on the same port and data. The server's log is
// printed when a test fails.
//
// The root account (S3Server.AccessKey/SecretKey) is an admin. CreateUser
// adds accounts; a RoleUser account can reach only buckets it owns
// (CreateBucket with an owner, ChangeBucketOwner) or what a bucket policy
// grants (PutBucketPolicy, AllowPolicy). Client builds an aws-sdk-go-v2 S3
// client for any credentials. What versitygw v1.8.0 answers, checked by the
// tests here:
//
//   - a policy granting s3:PutObject on bucket/* allows PutObject and
//     multipart uploads; anything else is 403 AccessDenied;
//   - an account with no grant: 403 AccessDenied;
//   - a wrong secret: 403 SignatureDoesNotMatch; an unknown access key: 403
//     InvalidAccessKeyId;
//   - a missing bucket: 404 NoSuchBucket (also for a user without grants);
//     an invalid bucket name: 400 InvalidBucketName;
//   - a request signed for another region: 400 AuthorizationHeaderMalformed
//     (the XML error carries <Region>us-east-1</Region>);
//   - GetBucketLocation: an empty LocationConstraint for us-east-1, 403
//     AccessDenied without s3:GetBucketLocation, 404 NoSuchBucket;
//   - HeadBucket: x-amz-bucket-region is set on 200 and on 403, not on 404
//     nor on the 400 of a wrong signing region.
//
// ListObjects, GetObject, ObjectSHA256 and ListMultipartUploads read what was
// stored, as root. AccessLog parses versitygw's access log and PutCount counts
// the successful PutObject and CompleteMultipartUpload requests of a key,
// server-side, to prove an artifact was written once.
//
// The dev stack serves the same gateway in-process (versitygw's embedgw);
// that code lives in cmd/devstack so that no test binary importing testutil
// links versitygw's dependencies.
//
// # Random tests (seed.go)
//
// Seed and Rand give a test its random source: a fresh seed, or
// $S3EXPORTER_TEST_SEED's, logged once per test so that a failure can be
// replayed. FaultProxy draws its brown-outs from it.
//
// # Prowler fixtures (fixtures*.go)
//
// FindingsCSV, OCSFJSON, ASFFJSON, HTMLReport and ComplianceCSV write
// realistic Prowler outputs, deterministic from a seed; the formats of one
// seed describe the same findings. ProwlerOutputs returns a scan's files with
// their content types, ProwlerFileName the names Prowler App gives them.
// SizedReader streams exactly n bytes of one format (for 256 MiB – 1 GiB
// artifacts) and SizedSHA256 its digest.
package testutil
