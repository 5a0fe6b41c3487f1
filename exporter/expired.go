package exporter

import (
	"context"
	"errors"
	"regexp"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// expiredCodes are S3's answers to credentials that were good and no longer
// are: a session past its expiry (clock skew makes this happen before the
// SDK's own refresh), or one the issuer ended early.
var expiredCodes = map[string]bool{"ExpiredToken": true, "ExpiredTokenException": true, "TokenRefreshRequired": true}

// credentialsExpiredError is an S3 answer that the credentials that signed
// the request have expired. Renewable: they were fetched (assumed role, or
// the exporter's own identity) and have been invalidated, so a new attempt
// fetches new ones. Not renewable: a tenant's static keys with a session
// token, which only the tenant can replace.
type credentialsExpiredError struct {
	err       error
	renewable bool
}

func (e *credentialsExpiredError) Error() string { return e.err.Error() }
func (e *credentialsExpiredError) Unwrap() error { return e.err }

var authKeyID = regexp.MustCompile(`Credential=([^/,\s]+)/`)

// expiredTokenMiddleware watches each signed request's answer. On an expired
// token it invalidates the signer's cached credentials, if they are still
// the ones that signed (several uploads failing at once renew them once),
// and marks the error for classify. Without it, a session S3 considers
// expired (clock skew, a revoked session) is reused by every retry and every
// redelivery until the SDK's own refresh time, and the export fails.
func expiredTokenMiddleware(s *signer) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		// After the signer, so the request carries the key that signed it.
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("InvalidateExpiredCredentials",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleFinalize(ctx, in)
				var api smithy.APIError
				if err == nil || !errors.As(err, &api) || !expiredCodes[api.ErrorCode()] {
					return out, md, err
				}
				if s.refreshable == nil {
					return out, md, &credentialsExpiredError{err: err}
				}
				var signedBy string
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					if m := authKeyID.FindStringSubmatch(req.Header.Get("Authorization")); m != nil {
						signedBy = m[1]
					}
				}
				// Compare and invalidate as one step: two uploads refused
				// with the same session must not both drop it, or the
				// second would drop the new session the first one got.
				s.renewMu.Lock()
				if cur, cerr := s.refreshable.Retrieve(ctx); cerr == nil && (signedBy == "" || cur.AccessKeyID == signedBy) {
					s.refreshable.Invalidate()
				}
				s.renewMu.Unlock()
				return out, md, &credentialsExpiredError{err: err, renewable: true}
			}), middleware.After)
	}
}
