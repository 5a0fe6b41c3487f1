// Package errcode holds the stable error codes of the wire contract and the one
// typed error that carries them. An AWS or source error is classified once,
// where it is first seen, into an *Error; everything above reads it with
// errors.As.
package errcode

import (
	"context"
	"errors"
	"fmt"
)

// Code is a stable, documented error code (contract §5).
type Code string

// The codes of contract §5.
const (
	S3InvalidBucketName         Code = "S3InvalidBucketName"
	S3BucketNotFound            Code = "S3BucketNotFound"
	S3BucketAccessDenied        Code = "S3BucketAccessDenied"
	S3InvalidBucketRegion       Code = "S3InvalidBucketRegion"
	S3IllegalLocationConstraint Code = "S3IllegalLocationConstraint"
	S3ClientError               Code = "S3ClientError"
	// S3EncryptionKeyError: the bucket's or the integration's KMS key
	// cannot be used (missing, disabled, pending deletion, or a kms:
	// action denied to these credentials). Contract v1.2 §5.
	S3EncryptionKeyError  Code = "S3EncryptionKeyError"
	AWSInvalidCredentials Code = "AWSInvalidCredentials"
	AWSNoCredentials      Code = "AWSNoCredentials"
	AWSAssumeRoleError    Code = "AWSAssumeRoleError"
	InvalidConfiguration  Code = "InvalidConfiguration"
	S3TestConnectionError Code = "S3TestConnectionError"
	SourceNotFound        Code = "SourceNotFound"
	SourceRefused         Code = "SourceRefused"
	ChecksumMismatch      Code = "ChecksumMismatch"
	Timeout               Code = "Timeout"
	// InvalidRequest answers a malformed control request (contract §7).
	InvalidRequest Code = "InvalidRequest"
	// InternalError answers a control request the exporter could not serve
	// for a reason of its own (NATS unavailable, say): an addition to the
	// contract, so that such a failure is not blamed on the request.
	InternalError Code = "InternalError"
)

// All lists every code an export or a connection test reports (contract
// §5): the values of the metrics' "code" label, pre-created, and of the
// status schema's errorCode. ControlCodes lists the rest; a test keeps the
// two lists covering every constant above.
var All = []Code{
	S3InvalidBucketName, S3BucketNotFound, S3BucketAccessDenied, S3InvalidBucketRegion,
	S3IllegalLocationConstraint, S3ClientError, S3EncryptionKeyError, AWSInvalidCredentials, AWSNoCredentials,
	AWSAssumeRoleError, InvalidConfiguration, S3TestConnectionError, SourceNotFound,
	SourceRefused, ChecksumMismatch, Timeout,
}

// ControlCodes lists the codes only a control reply carries (contract §7):
// never an export's, so not in All nor in the metrics.
var ControlCodes = []Code{InvalidRequest, InternalError}

// Error is a classified error: a contract code, whether trying again may help,
// and the cause.
type Error struct {
	Code      Code
	Retryable bool
	Err       error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Message is the error text without the code prefix, for status events.
func (e *Error) Message() string {
	if e.Err == nil {
		return string(e.Code)
	}
	return e.Err.Error()
}

// Permanent wraps err as a permanent failure with code c.
func Permanent(c Code, err error) *Error { return &Error{Code: c, Err: err} }

// Retryable wraps err as a transient failure with code c.
func Retryable(c Code, err error) *Error { return &Error{Code: c, Retryable: true, Err: err} }

// Permanentf is Permanent with a formatted message.
func Permanentf(c Code, format string, args ...any) *Error {
	return Permanent(c, fmt.Errorf(format, args...))
}

// From returns the classified error inside err. An unclassified error becomes
// a retryable S3TestConnectionError ("anything else"); a context deadline
// becomes a retryable Timeout.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Retryable(Timeout, err)
	}
	return Retryable(S3TestConnectionError, err)
}
