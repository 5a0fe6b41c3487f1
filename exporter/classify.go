package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// classify turns an error of an S3 or STS call into an *errcode.Error, once,
// where it is first seen. An error that is already classified (a source error
// surfacing through the upload) is returned as it is.
func classify(op string, err error) *errcode.Error {
	if err == nil {
		return nil
	}
	var done *errcode.Error
	if errors.As(err, &done) {
		return done
	}
	wrap := func(c errcode.Code, retry bool) *errcode.Error {
		return &errcode.Error{Code: c, Retryable: retry, Err: fmt.Errorf("%s: %w", op, err)}
	}
	// Before DeadlineExceeded: net/http's header timeout also reads as one.
	if isNoResponse(err) {
		return &errcode.Error{Code: errcode.Timeout, Retryable: true, Err: fmt.Errorf("%s: %w: %w", op, ErrNoResponse, err)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return wrap(errcode.Timeout, true)
	}
	if errors.Is(err, context.Canceled) {
		return wrap(errcode.Timeout, true)
	}
	var expired *credentialsExpiredError
	if errors.As(err, &expired) {
		if expired.renewable {
			// Invalidated by expiredTokenMiddleware: the next attempt
			// signs with new credentials.
			return wrap(errcode.AWSInvalidCredentials, true)
		}
		return &errcode.Error{Code: errcode.AWSInvalidCredentials, Err: fmt.Errorf(
			"%s: the session token of these static credentials has expired; nothing can renew it: update aws_session_token (or give the integration a role_arn, whose sessions the exporter renews): %w", op, err)}
	}
	var assume *assumeRoleError
	if errors.As(err, &assume) {
		return wrap(errcode.AWSAssumeRoleError, isTransientAPI(err))
	}
	// The SDK's signer reports a provider that found nothing as text only.
	if strings.Contains(err.Error(), "failed to retrieve credentials") ||
		strings.Contains(err.Error(), "no EC2 IMDS role found") {
		return wrap(errcode.AWSNoCredentials, false)
	}
	var api smithy.APIError
	if errors.As(err, &api) && !synthesized(api.ErrorCode()) {
		if c, retry, ok := byCode(api.ErrorCode(), api.ErrorMessage(), httpStatus(err)); ok {
			return wrap(c, retry)
		}
	}
	if status := httpStatus(err); status != 0 {
		switch {
		case status == http.StatusNotFound && operation(err) == "HeadBucket" && (api == nil || synthesized(api.ErrorCode())):
			// HEAD answers have no body: a bare 404 to HeadBucket is the
			// one 404 that says the bucket is missing without a code.
			return wrap(errcode.S3BucketNotFound, false)
		case status == http.StatusForbidden:
			return wrap(errcode.S3BucketAccessDenied, false)
		case status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect:
			return wrap(errcode.S3InvalidBucketRegion, true)
		case status == http.StatusTooManyRequests || status >= 500:
			return wrap(errcode.S3ClientError, true)
		case status >= 400:
			// A 404 with a code we do not know (or to another call than
			// HeadBucket) is not a missing bucket: MinIO answers a missing
			// KMS key with one.
			return wrap(errcode.S3ClientError, false)
		}
	}
	// Network errors and anything unrecognised: worth another try.
	return wrap(errcode.S3TestConnectionError, true)
}

// byCode classifies an S3 (or STS) error code, with the answer's message and
// HTTP status where the code alone does not say enough. ok is false for a
// code it does not know: the status decides then. docs/errors.md publishes
// this table; classify_table_test.go holds the real answers behind it.
func byCode(code, msg string, status int) (c errcode.Code, retry, ok bool) {
	switch code {
	case "NoSuchBucket":
		return errcode.S3BucketNotFound, false, true
	case "AccessDenied":
		if mentionsKMS(msg) {
			// "... is not authorized to perform: kms:GenerateDataKey on
			// resource ...": the key policy, not the bucket, refuses.
			return errcode.S3EncryptionKeyError, false, true
		}
		return errcode.S3BucketAccessDenied, false, true
	case "AllAccessDisabled", "AccountProblem", "InvalidObjectState":
		return errcode.S3BucketAccessDenied, false, true
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "InvalidClientTokenId",
		"UnrecognizedClientException", "InvalidSecurity":
		return errcode.AWSInvalidCredentials, false, true
	case "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "RequestExpired":
		return errcode.AWSInvalidCredentials, true, true
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IncorrectEndpoint":
		return errcode.S3InvalidBucketRegion, true, true
	case "IllegalLocationConstraintException":
		return errcode.S3IllegalLocationConstraint, false, true
	case "InvalidBucketName":
		return errcode.S3InvalidBucketName, false, true
	case "InvalidStorageClass", "AccessControlListNotSupported":
		// The integration's storage_class, or its
		// bucket_owner_full_control on a bucket that refuses ACLs: a
		// setting to change, not a problem of the bucket.
		return errcode.InvalidConfiguration, false, true
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
		"ThrottlingException", "RequestTimeTooSkewed", "OperationAborted", "503 SlowDown":
		return errcode.S3ClientError, true, true
	case "NotImplemented":
		// A header the server does not implement (MinIO without a KMS
		// asked for SSE-KMS): its 501 will not change by trying again.
		return errcode.S3ClientError, false, true
	case "NoSuchUpload":
		// A multipart upload aborted under us (its 404 is not a missing
		// bucket): a new attempt starts a new upload.
		return errcode.S3ClientError, true, true
	}
	if isKMSCode(code) {
		switch {
		case status == http.StatusTooManyRequests || status >= 500 ||
			strings.HasSuffix(code, "ThrottlingException") || strings.HasSuffix(code, "LimitExceededException"):
			// The KMS is busy or failing, not the key unusable.
			return errcode.S3ClientError, true, true
		}
		return errcode.S3EncryptionKeyError, false, true
	}
	return "", false, false
}

// isKMSCode reports an error code from the key service behind S3: AWS's
// "KMS.NotFoundException", MinIO's "kms:KeyNotFound".
func isKMSCode(code string) bool {
	return strings.HasPrefix(code, "KMS") || strings.HasPrefix(code, "kms:")
}

// mentionsKMS reports an AccessDenied message that names a kms: action.
func mentionsKMS(msg string) bool { return strings.Contains(strings.ToLower(msg), "kms:") }

// synthesized reports a code the SDK made up from the HTTP status of an
// answer that had no body (HEAD requests): no code at all, really.
func synthesized(code string) bool {
	switch code {
	case "", "NotFound", "Forbidden", "MovedPermanently", "BadRequest", "TemporaryRedirect":
		return true
	}
	return false
}

// operation is the name of the S3 or STS operation that failed ("" when
// err did not come from one).
func operation(err error) string {
	var op *smithy.OperationError
	if errors.As(err, &op) {
		return op.OperationName
	}
	return ""
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

func isTransientAPI(err error) bool {
	if s := httpStatus(err); s == http.StatusTooManyRequests || s >= 500 {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure":
			return true
		}
		return false
	}
	return isNetwork(err)
}

func isNetwork(err error) bool {
	var ne net.Error
	var op *net.OpError
	return errors.As(err, &ne) || errors.As(err, &op) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "EOF")
}

// assumeRoleError marks a failure of the STS AssumeRole call.
type assumeRoleError struct{ err error }

func (e *assumeRoleError) Error() string { return "assume role: " + e.err.Error() }
func (e *assumeRoleError) Unwrap() error { return e.err }
