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
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return wrap(errcode.S3BucketNotFound, false)
		case "AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidObjectState":
			return wrap(errcode.S3BucketAccessDenied, false)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "InvalidClientTokenId",
			"UnrecognizedClientException", "InvalidSecurity":
			return wrap(errcode.AWSInvalidCredentials, false)
		case "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "RequestExpired":
			return wrap(errcode.AWSInvalidCredentials, true)
		case "PermanentRedirect", "AuthorizationHeaderMalformed", "IncorrectEndpoint":
			return wrap(errcode.S3InvalidBucketRegion, true)
		case "IllegalLocationConstraintException":
			return wrap(errcode.S3IllegalLocationConstraint, false)
		case "InvalidBucketName":
			return wrap(errcode.S3InvalidBucketName, false)
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
			"ThrottlingException", "RequestTimeTooSkewed", "OperationAborted", "503 SlowDown":
			return wrap(errcode.S3ClientError, true)
		case "NoSuchUpload":
			// A multipart upload aborted under us (its 404 is not a missing
			// bucket): a new attempt starts a new upload.
			return wrap(errcode.S3ClientError, true)
		}
	}
	if status := httpStatus(err); status != 0 {
		switch {
		case status == http.StatusNotFound:
			return wrap(errcode.S3BucketNotFound, false)
		case status == http.StatusForbidden:
			return wrap(errcode.S3BucketAccessDenied, false)
		case status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect:
			return wrap(errcode.S3InvalidBucketRegion, true)
		case status == http.StatusTooManyRequests || status >= 500:
			return wrap(errcode.S3ClientError, true)
		case status >= 400:
			return wrap(errcode.S3ClientError, false)
		}
	}
	// Network errors and anything unrecognised: worth another try.
	return wrap(errcode.S3TestConnectionError, true)
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
