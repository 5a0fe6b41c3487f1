package exporter

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// BeaconKey is the object the connection test writes and deletes at the
// bucket root.
const BeaconKey = "test-prowler-connection.txt"

// ConnectionResult is the outcome of a connection test.
type ConnectionResult struct {
	Connected bool
	// Region is the bucket's region as S3 told it; empty when it is not
	// known (the default region was tried).
	Region    string
	CheckedAt time.Time
	Err       *errcode.Error
}

// TestConnection runs the connection test of contract §5 with the
// integration's credentials: find the bucket's region, put the beacon, delete
// it. Connected only if the put and the delete succeed. Each failure carries
// a message that says what to fix.
func (c *Clients) TestConnection(ctx context.Context, ig *integration.Integration) ConnectionResult {
	res := ConnectionResult{CheckedAt: time.Now().UTC()}
	bucketARN := "arn:aws:s3:::" + ig.Bucket
	region, err := c.DiscoverRegion(ctx, ig)
	if err != nil {
		e := errcode.From(err)
		switch e.Code {
		case errcode.S3BucketAccessDenied, errcode.S3ClientError:
			// Neither GetBucketLocation nor HeadBucket answered; the put
			// below tells whether writing works at all. The region is a
			// guess, so it is reported as unknown (empty), not as found.
			region = c.opts.DefaultRegion
		default:
			res.Err = explain(e, ig.Bucket, "")
			return res
		}
	} else {
		res.Region = region
	}
	cl := c.client(ig, region)
	body := fmt.Sprintf("Prowler S3 integration connection test, %s\n", res.CheckedAt.Format(time.RFC3339))
	// Written as an export writes (beaconOptions): with the integration's
	// encryption, KMS key, storage class, ACL, and a checksum when the
	// bucket asks for one, so that the test fails exactly when an export
	// would.
	_, err = putBuffered(ctx, cl, &s3.PutObjectInput{
		Bucket: aws.String(ig.Bucket), Key: aws.String(BeaconKey),
		ContentLength: aws.Int64(int64(len(body))),
	}, beaconOptions(ig), []byte(body))
	if err != nil {
		res.Err = explain(classify("PutObject "+BeaconKey, err), ig.Bucket,
			fmt.Sprintf("writing the beacon failed: allow s3:PutObject on %s/* (in the IAM policy of these credentials, and in the bucket policy when the bucket is in another account; a policy that requires encryption needs the integration's sse to match)", bucketARN))
		if res.Err.Retryable {
			// The put may have been stored before its answer was lost (a
			// reset connection): leave nothing behind, as far as we can.
			_ = deleteBeacon(ctx, cl, ig.Bucket)
		}
		return res
	}
	if err := deleteBeacon(ctx, cl, ig.Bucket); err != nil {
		res.Err = explain(classify("DeleteObject "+BeaconKey, err), ig.Bucket,
			fmt.Sprintf("writing works but deleting the beacon is denied: add a statement allowing s3:DeleteObject on %s/*%s", bucketARN, BeaconKey))
		return res
	}
	res.Connected = true
	return res
}

// beaconDeleteAttempts bounds the DeleteObject calls that remove the beacon
// (each one is itself tried 3 times by the SDK): a beacon left behind by an
// S3 hiccup is an object in the user's bucket that nobody asked for.
const beaconDeleteAttempts = 4

// deleteBeacon deletes the beacon, calling again after a retryable failure.
func deleteBeacon(ctx context.Context, cl *s3.Client, bucket string) error {
	for attempt := 1; ; attempt++ {
		_, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(BeaconKey)})
		if err == nil || attempt == beaconDeleteAttempts || !classify("", err).Retryable || ctx.Err() != nil {
			return err
		}
		sleep(ctx, time.Duration(attempt)*200*time.Millisecond)
	}
}

// explain rewrites a classified error's message so it says what to fix.
func explain(e *errcode.Error, bucket, denied string) *errcode.Error {
	var hint string
	switch e.Code {
	case errcode.S3BucketAccessDenied:
		hint = denied
		if hint == "" {
			hint = "access to the bucket is denied: allow s3:GetBucketLocation on arn:aws:s3:::" + bucket
		}
	case errcode.S3BucketNotFound:
		hint = fmt.Sprintf("bucket %q does not exist (or is not visible to these credentials)", bucket)
	case errcode.S3EncryptionKeyError:
		hint = "the KMS key cannot be used: check that kms_key_id (or the bucket's default key) names a key that exists and is enabled, and that its key policy allows kms:GenerateDataKey (and kms:Decrypt, for multipart uploads) to these credentials"
	case errcode.InvalidConfiguration:
		hint = "the bucket refuses a setting of the integration (storage_class, or bucket_owner_full_control on a bucket whose ACLs are disabled)"
	case errcode.AWSInvalidCredentials:
		hint = "the credentials were refused: check the access key ID and secret (or that the session token has not expired)"
	case errcode.AWSNoCredentials:
		hint = "no credentials: set access keys or a role on the integration, or give the exporter an AWS identity"
	case errcode.AWSAssumeRoleError:
		hint = "assuming the role failed: check role_arn, that its trust policy allows the exporter's identity, and that the external ID matches"
	case errcode.S3InvalidBucketRegion:
		if !e.Retryable {
			return e // an answer that is not a region name: its message says so
		}
		hint = "the bucket is in another region than the one used: check the bucket's region"
	case errcode.Timeout:
		hint = "the connection test timed out"
	default:
		return e
	}
	return &errcode.Error{Code: e.Code, Retryable: e.Retryable, Err: fmt.Errorf("%s (%v)", hint, e.Err)}
}
