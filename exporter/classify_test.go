package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// apiErr is an error as the SDK returns it for an S3 call that got an HTTP
// answer: operation error -> AWS response error -> smithy response error ->
// the modelled or generic API error.
func apiErr(status int, inner error) error { return apiErrOp("PutObject", status, inner) }

// apiErrOp is apiErr for operation op.
func apiErrOp(op string, status int, inner error) error {
	return &smithy.OperationError{
		ServiceID: "S3", OperationName: op,
		Err: &awshttp.ResponseError{
			RequestID: "req-1",
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
				Err:      inner,
			},
		},
	}
}

func generic(status int, code string) error {
	return apiErr(status, &smithy.GenericAPIError{Code: code, Message: "the message of " + code, Fault: smithy.FaultClient})
}

func TestClassifyAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		code  errcode.Code
		retry bool
	}{
		{"NoSuchBucket", generic(404, "NoSuchBucket"), errcode.S3BucketNotFound, false},
		{"typed NoSuchBucket", apiErr(404, &s3types.NoSuchBucket{}), errcode.S3BucketNotFound, false},
		{"HeadBucket 404", apiErrOp("HeadBucket", 404, &smithy.GenericAPIError{Code: "NotFound"}), errcode.S3BucketNotFound, false},
		{"PutObject 404 without a code", generic(404, "NotFound"), errcode.S3ClientError, false},
		{"AccessDenied", generic(403, "AccessDenied"), errcode.S3BucketAccessDenied, false},
		{"HeadBucket 403", generic(403, "Forbidden"), errcode.S3BucketAccessDenied, false},
		{"AllAccessDisabled", generic(403, "AllAccessDisabled"), errcode.S3BucketAccessDenied, false},
		{"InvalidAccessKeyId", generic(403, "InvalidAccessKeyId"), errcode.AWSInvalidCredentials, false},
		{"SignatureDoesNotMatch", generic(403, "SignatureDoesNotMatch"), errcode.AWSInvalidCredentials, false},
		{"InvalidClientTokenId", generic(403, "InvalidClientTokenId"), errcode.AWSInvalidCredentials, false},
		{"ExpiredToken", generic(400, "ExpiredToken"), errcode.AWSInvalidCredentials, true},
		{"typed STS ExpiredTokenException", apiErr(400, &ststypes.ExpiredTokenException{}), errcode.AWSInvalidCredentials, true},
		{"PermanentRedirect", generic(301, "PermanentRedirect"), errcode.S3InvalidBucketRegion, true},
		{"AuthorizationHeaderMalformed", generic(400, "AuthorizationHeaderMalformed"), errcode.S3InvalidBucketRegion, true},
		{"HeadBucket 301", generic(301, "MovedPermanently"), errcode.S3InvalidBucketRegion, true},
		{"307 redirect", generic(307, "TemporaryRedirect"), errcode.S3InvalidBucketRegion, true},
		{"IllegalLocationConstraint", generic(400, "IllegalLocationConstraintException"), errcode.S3IllegalLocationConstraint, false},
		{"InvalidBucketName", generic(400, "InvalidBucketName"), errcode.S3InvalidBucketName, false},
		{"SlowDown", generic(503, "SlowDown"), errcode.S3ClientError, true},
		{"InternalError", generic(500, "InternalError"), errcode.S3ClientError, true},
		{"RequestTimeout", generic(400, "RequestTimeout"), errcode.S3ClientError, true},
		{"unknown 5xx", generic(502, "BadGateway"), errcode.S3ClientError, true},
		{"429", generic(429, "TooManyRequests"), errcode.S3ClientError, true},
		{"unknown 4xx", generic(400, "InvalidRequest"), errcode.S3ClientError, false},
		{"KMS 400", generic(400, "KMS.NotFoundException"), errcode.S3EncryptionKeyError, false},
		{"aborted multipart upload", generic(404, "NoSuchUpload"), errcode.S3ClientError, true},
		{"status only", apiErr(403, errors.New("no body")), errcode.S3BucketAccessDenied, false},
		{"status only 500", apiErr(500, errors.New("no body")), errcode.S3ClientError, true},
		{"bare API error", &smithy.GenericAPIError{Code: "AccessDenied"}, errcode.S3BucketAccessDenied, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("PutObject", tc.err)
			if got.Code != tc.code || got.Retryable != tc.retry {
				t.Errorf("classify = %s retryable %v, want %s retryable %v (%v)", got.Code, got.Retryable, tc.code, tc.retry, tc.err)
			}
			if !errors.Is(got, tc.err) {
				t.Error("the classified error does not wrap the cause")
			}
			if !strings.HasPrefix(got.Message(), "PutObject: ") {
				t.Errorf("message %q does not name the operation", got.Message())
			}
		})
	}
}

func TestClassifyAssumeRole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"access denied", generic(403, "AccessDenied"), false},
		{"bad external id", &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform: sts:AssumeRole"}, false},
		{"throttled", generic(400, "Throttling"), true},
		{"STS 503", generic(503, "ServiceUnavailable"), true},
		{"STS 500 without code", apiErr(500, errors.New("x")), true},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"region disabled", generic(403, "RegionDisabledException"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("get credentials: %w", &assumeRoleError{err: tc.err})
			got := classify("PutObject", err)
			if got.Code != errcode.AWSAssumeRoleError || got.Retryable != tc.retry {
				t.Errorf("classify = %s retryable %v, want AWSAssumeRoleError retryable %v", got.Code, got.Retryable, tc.retry)
			}
			if !strings.Contains(got.Error(), "assume role") {
				t.Errorf("error %q does not say assume role", got.Error())
			}
		})
	}
}

func TestClassifyNoCredentials(t *testing.T) {
	for _, msg := range []string{
		"get identity: get credentials: failed to retrieve credentials, no providers in chain",
		"failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds: GetMetadata",
	} {
		got := classify("HeadBucket", fmt.Errorf("operation error S3: HeadBucket, %w", errors.New(msg)))
		if got.Code != errcode.AWSNoCredentials || got.Retryable {
			t.Errorf("%q: %s retryable %v", msg, got.Code, got.Retryable)
		}
	}
}

func TestClassifyContextAndNetwork(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		code  errcode.Code
		retry bool
	}{
		{"deadline", fmt.Errorf("upload: %w", context.DeadlineExceeded), errcode.Timeout, true},
		{"deadline in an operation error", &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject",
			Err: &smithyhttp.RequestSendError{Err: context.DeadlineExceeded}}, errcode.Timeout, true},
		{"canceled", fmt.Errorf("upload: %w", context.Canceled), errcode.Timeout, true},
		{"connection refused", &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject",
			Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}},
			errcode.S3TestConnectionError, true},
		{"dns", &net.DNSError{Err: "no such host", Name: "bucket.s3.example", IsNotFound: true}, errcode.S3TestConnectionError, true},
		{"reset", fmt.Errorf("write: %w", syscall.ECONNRESET), errcode.S3TestConnectionError, true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), errcode.S3TestConnectionError, true},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), errcode.S3TestConnectionError, true},
		{"anything else", errors.New("strange"), errcode.S3TestConnectionError, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("PutObject", tc.err)
			if got.Code != tc.code || got.Retryable != tc.retry {
				t.Errorf("classify = %s retryable %v, want %s retryable %v", got.Code, got.Retryable, tc.code, tc.retry)
			}
			if !errors.Is(got, tc.err) {
				t.Error("the classified error does not wrap the cause")
			}
		})
	}
}

func TestClassifyKeepsClassified(t *testing.T) {
	if classify("PutObject", nil) != nil {
		t.Error("classify(nil) != nil")
	}
	src := errcode.Permanentf(errcode.ChecksumMismatch, "sha256 differs")
	// As the upload manager returns a reader's error: wrapped in an operation error.
	wrapped := &smithy.OperationError{ServiceID: "S3", OperationName: "UploadPart",
		Err: &smithyhttp.RequestSendError{Err: fmt.Errorf("read: %w", src)}}
	if got := classify("PutObject", wrapped); got != src {
		t.Errorf("classify = %v, want the source's error unchanged", got)
	}
	// Even a source error that looks like a timeout keeps its own code.
	to := errcode.Retryable(errcode.SourceNotFound, context.DeadlineExceeded)
	if got := classify("PutObject", to); got != to {
		t.Errorf("classify = %v", got)
	}
}
