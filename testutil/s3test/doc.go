// Package s3test runs the real S3 server versitygw as a child process for
// tests and the benchmarks, reads back what was stored, and puts a fault
// proxy (FaultProxy: delays, brown-outs, black holes, intercepts) in front
// of it. Run* return an error; Start* and Must* take a testing.TB.
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
package s3test
