package errcode_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

func TestErrorText(t *testing.T) {
	t.Parallel()
	cause := errors.New("bucket gone")
	for _, tc := range []struct {
		err       *errcode.Error
		text, msg string
	}{
		{errcode.Permanent(errcode.S3BucketNotFound, cause), "S3BucketNotFound: bucket gone", "bucket gone"},
		{errcode.Retryable(errcode.Timeout, cause), "Timeout: bucket gone", "bucket gone"},
		{&errcode.Error{Code: errcode.SourceRefused}, "SourceRefused", "SourceRefused"},
		{errcode.Permanentf(errcode.InvalidConfiguration, "field %q: %d", "x", 3), `InvalidConfiguration: field "x": 3`, `field "x": 3`},
	} {
		if got := tc.err.Error(); got != tc.text {
			t.Errorf("Error() = %q, want %q", got, tc.text)
		}
		if got := tc.err.Message(); got != tc.msg {
			t.Errorf("Message() = %q, want %q", got, tc.msg)
		}
	}
}

func TestPermanentAndRetryable(t *testing.T) {
	t.Parallel()
	cause := io.ErrUnexpectedEOF
	p := errcode.Permanent(errcode.ChecksumMismatch, cause)
	if p.Retryable || p.Code != errcode.ChecksumMismatch {
		t.Errorf("Permanent = %+v", p)
	}
	r := errcode.Retryable(errcode.S3ClientError, cause)
	if !r.Retryable || r.Code != errcode.S3ClientError {
		t.Errorf("Retryable = %+v", r)
	}
	if !errors.Is(p, cause) || !errors.Is(r, cause) {
		t.Error("the cause is not reachable with errors.Is")
	}
	// Permanentf wraps with %w too.
	pf := errcode.Permanentf(errcode.SourceNotFound, "open: %w", cause)
	if !errors.Is(pf, cause) {
		t.Error("Permanentf lost the %w cause")
	}
}

func TestFrom(t *testing.T) {
	t.Parallel()
	if errcode.From(nil) != nil {
		t.Fatal("From(nil) != nil")
	}
	inner := errcode.Permanent(errcode.S3BucketAccessDenied, errors.New("denied"))
	wrapped := fmt.Errorf("upload csv: %w", fmt.Errorf("attempt 2: %w", inner))
	if got := errcode.From(wrapped); got != inner {
		t.Errorf("From(wrapped) = %v, want the inner *Error", got)
	}
	if errcode.From(wrapped).Retryable {
		t.Error("a wrapped permanent error is retryable")
	}

	dl := fmt.Errorf("put: %w", context.DeadlineExceeded)
	got := errcode.From(dl)
	if got.Code != errcode.Timeout || !got.Retryable || !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("From(deadline) = %+v", got)
	}

	other := errors.New("something odd")
	got = errcode.From(other)
	if got.Code != errcode.S3TestConnectionError || !got.Retryable || !errors.Is(got, other) {
		t.Errorf("From(other) = %+v", got)
	}
	// A joined error holding a classified one yields the classified one.
	joined := errors.Join(errors.New("a"), inner)
	if errcode.From(joined) != inner {
		t.Error("From(errors.Join(..., inner)) did not find inner")
	}
}

func TestAllIsCompleteAndUnique(t *testing.T) {
	t.Parallel()
	// Contract §5: every code an export or connection test can report.
	want := []errcode.Code{
		"S3InvalidBucketName", "S3BucketNotFound", "S3BucketAccessDenied",
		"S3InvalidBucketRegion", "S3IllegalLocationConstraint", "S3ClientError", "S3EncryptionKeyError",
		"AWSInvalidCredentials", "AWSNoCredentials", "AWSAssumeRoleError",
		"InvalidConfiguration", "S3TestConnectionError",
		"SourceNotFound", "SourceRefused", "ChecksumMismatch", "Timeout",
	}
	seen := map[errcode.Code]bool{}
	for _, c := range errcode.All {
		if seen[c] {
			t.Errorf("All holds %s twice", c)
		}
		seen[c] = true
	}
	for _, c := range want {
		if !seen[c] {
			t.Errorf("All lacks %s", c)
		}
	}
	if len(errcode.All) != len(want) {
		t.Errorf("All has %d codes, the contract %d", len(errcode.All), len(want))
	}
}

// TestEveryCodeConstantIsListed reads the Code constants declared in
// errcode.go and checks that each is in All or in ControlCodes, not both: a
// new code cannot be forgotten by the metrics or the schemas.
func TestEveryCodeConstantIsListed(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errcode.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok {
					t.Fatalf("a Code constant is not a string literal: %T", v)
				}
				declared = append(declared, strings.Trim(lit.Value, "`\""))
			}
		}
	}
	if len(declared) < 17 {
		t.Fatalf("found %d Code constants in errcode.go: %v", len(declared), declared)
	}
	listed := map[string]int{}
	for _, c := range errcode.All {
		listed[string(c)]++
	}
	for _, c := range errcode.ControlCodes {
		listed[string(c)]++
	}
	for _, c := range declared {
		if n := listed[c]; n != 1 {
			t.Errorf("code %s is listed %d times in All and ControlCodes, want once", c, n)
		}
	}
	if len(listed) != len(declared) {
		t.Errorf("All and ControlCodes list %d codes, errcode.go declares %d", len(listed), len(declared))
	}
}
