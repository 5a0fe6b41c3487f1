package exporter

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// s3Answer is an error answer of a real S3 server: AWS S3 (its error
// documentation), MinIO or versitygw (their error tables), as the SDK hands
// it over.
type s3Answer struct {
	server  string // "AWS", "MinIO", "versitygw"
	op      string // the S3 operation answered
	status  int
	code    string // "" for an answer without a body (HEAD)
	message string
	want    errcode.Code
	retry   bool
}

// s3Answers is the classification table of contract v1.2 §5, published in
// docs/errors.md (TestErrorsDocListsTheTable keeps the two equal).
var s3Answers = []s3Answer{
	{"AWS", "PutObject", 404, "NoSuchBucket", "The specified bucket does not exist", errcode.S3BucketNotFound, false},
	{"AWS", "HeadBucket", 404, "", "", errcode.S3BucketNotFound, false},
	{"AWS", "PutObject", 403, "AccessDenied", "Access Denied", errcode.S3BucketAccessDenied, false},
	{"AWS", "PutObject", 403, "AccessDenied", "User: arn:aws:sts::111122223333:assumed-role/prowler-export/s3-exporter is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:GenerateDataKey action", errcode.S3EncryptionKeyError, false},
	{"AWS", "UploadPart", 403, "AccessDenied", "User: arn:aws:iam::111122223333:user/prowler is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no resource-based policy allows the kms:Decrypt action", errcode.S3EncryptionKeyError, false},
	{"AWS", "PutObject", 400, "KMS.NotFoundException", "Invalid keyId 1234abcd-12ab-34cd-56ef-1234567890ab", errcode.S3EncryptionKeyError, false},
	{"AWS", "PutObject", 400, "KMS.DisabledException", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab is disabled.", errcode.S3EncryptionKeyError, false},
	{"AWS", "PutObject", 400, "KMS.KMSInvalidStateException", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab is pending deletion.", errcode.S3EncryptionKeyError, false},
	{"AWS", "PutObject", 400, "KMS.ThrottlingException", "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.", errcode.S3ClientError, true},
	{"AWS", "PutObject", 400, "InvalidStorageClass", "The storage class you specified is not valid", errcode.InvalidConfiguration, false},
	{"AWS", "PutObject", 400, "InvalidRequest", "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters", errcode.S3ClientError, false},
	{"AWS", "PutObject", 503, "SlowDown", "Please reduce your request rate.", errcode.S3ClientError, true},
	{"AWS", "PutObject", 403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.", errcode.S3ClientError, true},
	{"AWS", "PutObject", 400, "AccessControlListNotSupported", "The bucket does not allow ACLs", errcode.InvalidConfiguration, false},
	{"AWS", "PutObject", 301, "PermanentRedirect", "The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.", errcode.S3InvalidBucketRegion, true},
	{"AWS", "HeadBucket", 301, "", "", errcode.S3InvalidBucketRegion, true},
	{"AWS", "HeadBucket", 403, "", "", errcode.S3BucketAccessDenied, false},
	{"AWS", "PutObject", 403, "InvalidAccessKeyId", "The AWS access key Id you provided does not exist in our records.", errcode.AWSInvalidCredentials, false},
	{"AWS", "PutObject", 400, "ExpiredToken", "The provided token has expired.", errcode.AWSInvalidCredentials, true},
	{"AWS", "PutObject", 500, "InternalError", "We encountered an internal error. Please try again.", errcode.S3ClientError, true},
	{"AWS", "UploadPart", 404, "NoSuchUpload", "The specified multipart upload does not exist. The upload ID might not be valid, or the multipart upload might have been aborted or completed.", errcode.S3ClientError, true},
	{"AWS", "DeleteObject", 404, "", "", errcode.S3ClientError, false},

	// MinIO answers a key its KMS does not hold with a 404: not a missing
	// bucket.
	{"MinIO", "PutObject", 404, "kms:KeyNotFound", "key with given key ID does not exist", errcode.S3EncryptionKeyError, false},
	{"MinIO", "PutObject", 400, "KMS.NotFoundException", "Invalid keyId", errcode.S3EncryptionKeyError, false},
	{"MinIO", "PutObject", 403, "kms:NotAuthorized", "insufficient permissions to perform KMS operation", errcode.S3EncryptionKeyError, false},
	{"MinIO", "PutObject", 500, "kms:KeyGenerationFailed", "failed to generate data key with KMS key", errcode.S3ClientError, true},
	{"MinIO", "PutObject", 501, "NotImplemented", "Server side encryption specified but KMS is not configured", errcode.S3ClientError, false},
	{"MinIO", "PutObject", 400, "MissingContentMD5", "Missing or invalid required header for this request: Content-Md5 or Amz-Content-Checksum", errcode.S3ClientError, false},
	{"MinIO", "PutObject", 400, "InvalidStorageClass", "Invalid storage class.", errcode.InvalidConfiguration, false},
	{"MinIO", "PutObject", 403, "AccessDenied", "Access Denied.", errcode.S3BucketAccessDenied, false},
	{"MinIO", "PutObject", 503, "SlowDownWrite", "Resource requested is unwritable, please reduce your request rate", errcode.S3ClientError, true},

	{"versitygw", "PutObject", 400, "InvalidRequest", "Missing required header for this request: Content-MD5 OR x-amz-checksum-*", errcode.S3ClientError, false},
	{"versitygw", "PutObject", 404, "NoSuchBucket", "The specified bucket does not exist.", errcode.S3BucketNotFound, false},
	{"versitygw", "PutObject", 501, "NotImplemented", "A header you provided implies functionality that is not implemented.", errcode.S3ClientError, false},
}

func (a s3Answer) err() error {
	var inner error = &smithy.GenericAPIError{Code: a.code, Message: a.message, Fault: smithy.FaultClient}
	if a.code == "" {
		// A HEAD answer has no body: the SDK makes a code up from the
		// status line.
		inner = &smithy.GenericAPIError{Code: strings.ReplaceAll(httpStatusText(a.status), " ", ""), Message: httpStatusText(a.status)}
	}
	return apiErrOp(a.op, a.status, inner)
}

func httpStatusText(status int) string {
	switch status {
	case 301:
		return "Moved Permanently"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	}
	return fmt.Sprint(status)
}

// TestClassifyRealAnswers: the code first, the HTTP status only when there
// is none (contract v1.2 §5).
func TestClassifyRealAnswers(t *testing.T) {
	t.Parallel()
	for _, a := range s3Answers {
		name := fmt.Sprintf("%s %s %d %s", a.server, a.op, a.status, a.code)
		got := classify(a.op, a.err())
		if got.Code != a.want || got.Retryable != a.retry {
			t.Errorf("%s (%q): %s retryable %v, want %s retryable %v", name, a.message, got.Code, got.Retryable, a.want, a.retry)
		}
	}
}

// TestChecksumRequiredAnswers: the answers that make a PutObject go again
// with Content-MD5 (putBuffered), and some that must not.
func TestChecksumRequiredAnswers(t *testing.T) {
	t.Parallel()
	for _, a := range s3Answers {
		want := a.code == "MissingContentMD5" || (a.code == "InvalidRequest" && strings.Contains(a.message, "Content-MD5"))
		if got := needsChecksum(a.err()); got != want {
			t.Errorf("%s %s %q: needsChecksum = %v, want %v", a.server, a.code, a.message, got, want)
		}
	}
	if needsChecksum(generic(400, "InvalidRequest")) {
		t.Error("an InvalidRequest that says nothing of Content-MD5 asks for a checksum")
	}
}

// TestErrorsDocListsTheTable: docs/errors.md publishes every row of the
// table, with the code and retryability the exporter gives it.
func TestErrorsDocListsTheTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, a := range s3Answers {
		code := "`" + a.code + "`"
		if a.code == "" {
			code = "(none)"
		}
		retry := "no"
		if a.retry {
			retry = "yes"
		}
		row := fmt.Sprintf("| %s | %s | %d | %s | `%s` | %s |", a.server, a.op, a.status, code, a.want, retry)
		if !strings.Contains(doc, row) {
			t.Errorf("docs/errors.md lacks the row\n%s", row)
		}
	}
}
