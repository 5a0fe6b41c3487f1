package integration_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

func wantCode(t *testing.T, what string, err error, code errcode.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, want %s", what, code)
		return
	}
	var e *errcode.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: error %v (%T) is not an *errcode.Error", what, err, err)
		return
	}
	if e.Code != code || e.Retryable {
		t.Errorf("%s: code %s retryable %v, want permanent %s (%v)", what, e.Code, e.Retryable, code, err)
	}
	if integration.Code(err) != code {
		t.Errorf("%s: Code() = %s", what, integration.Code(err))
	}
}

func TestNormalizeOutputDirectory(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"//test//a///":                      "test/a",
		"":                                  "output",
		"   ":                               "output",
		"\t\n ":                             "output",
		"prowler-findings":                  "prowler-findings",
		"/leading":                          "leading",
		"///leading/slashes":                "leading/slashes",
		"  x  ":                             "x",
		"a/./b":                             "a/b",
		"./a":                               "a",
		"a/.":                               "a",
		"a b/c d":                           "a b/c d",
		"ünïcode/日本":                        "ünïcode/日本",
		"a.b/..c/c..":                       "a.b/..c/c..",
		"a/...":                             "a/...",
		strings.Repeat("a", 900):            strings.Repeat("a", 900),
		"/" + strings.Repeat("b", 900):      strings.Repeat("b", 900), // the limit is on the normalised form
		strings.Repeat("c", 899) + "///":    strings.Repeat("c", 899),
		"a/ /":                              "a", // trimmed again after cleaning
		"/ /a":                              "a",
		"a/. /":                             "a",
		"x/ / /":                            "x",
		"a/\u00a0..\u00a0/":                 "a/\u00a0..",         // not a ".." segment
		"a/ /b":                             "a/ /b",              // an inner blank segment is a real name
		"reports\u00a0/2025/\u00a0":         "reports\u00a0/2025", // Unicode spaces count as white space
		"prowler/findings/aws/111122223333": "prowler/findings/aws/111122223333",
	} {
		got, err := integration.NormalizeOutputDirectory(in)
		if err != nil {
			t.Errorf("NormalizeOutputDirectory(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("NormalizeOutputDirectory(%q) = %q, want %q", in, got, want)
		}
		if again, err := integration.NormalizeOutputDirectory(got); err != nil || again != got {
			t.Errorf("NormalizeOutputDirectory(%q) = %q, %v: not idempotent", got, again, err)
		}
	}
}

// TestNormalizeOutputDirectoryLargeInput feeds inputs of a NATS message's
// size whose white space and slashes each take a step to remove: the
// normalisation must stay linear (a quadratic one runs past the test
// timeout), and a rejection must not repeat the whole input.
func TestNormalizeOutputDirectoryLargeInput(t *testing.T) {
	t.Parallel()
	const n = 1 << 20
	for in, want := range map[string]string{
		"a" + strings.Repeat("/ ", n/2) + "/":  "a",
		"/" + strings.Repeat(" /", n/2) + "a":  "a",
		strings.Repeat("/.", n/2) + "/b/.":     "b",
		"c" + strings.Repeat("/", n):           "c",
		strings.Repeat(" /./", n/4) + "d/ /./": "d",
	} {
		got, err := integration.NormalizeOutputDirectory(in)
		if err != nil || got != want {
			t.Errorf("NormalizeOutputDirectory(%d bytes) = %.200q, %.200v; want %q", len(in), got, err, want)
		}
	}
	for _, in := range []string{
		strings.Repeat("a/ ", n/3),
		strings.Repeat("é", n/2) + "..",
		strings.Repeat("x", n) + "/../y",
	} {
		_, err := integration.NormalizeOutputDirectory(in)
		wantCode(t, "long directory", err, errcode.InvalidConfiguration)
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("the error repeats %d bytes of the input: %.200s", len(err.Error()), err)
		}
	}
	_, err := integration.NormalizeBucketName(strings.Repeat("B", n))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("bucket error of %d bytes", len(err.Error()))
	}
	err = integration.ValidateRoleARN(strings.Repeat("arn", n), "")
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("role error of %d bytes", len(err.Error()))
	}
}

func TestNormalizeOutputDirectoryRejected(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"/////":                        "empty after normalisation",
		"/":                            "empty after normalisation",
		".":                            "empty after normalisation",
		"./.":                          "empty after normalisation",
		"/ / /":                        "empty after normalisation",
		"a/../b":                       "'..' segment",
		"..":                           "'..' segment",
		"../a":                         "'..' segment",
		"a/..":                         "'..' segment",
		"a/.. /":                       "'..' segment", // trimming would leave a/..
		"a\x00b":                       "control characters",
		"a\nb":                         "control characters",
		"a\tb":                         "control characters",
		"a\x7fb":                       "control characters",
		"a\u0085b":                     "control characters",
		"a\u009bb":                     "control characters",
		strings.Repeat("a", 901):       "longer than 900",
		strings.Repeat("ab/", 301):     "longer than 900", // "ab/ab/.../ab" = 902
		strings.Repeat("é", 451):       "longer than 900", // bytes, as S3 counts them
		"/" + strings.Repeat("d", 901): "longer than 900",
	}
	for _, c := range `<>:"|?*` {
		cases["a"+string(c)+"b"] = "must not contain"
		cases[string(c)] = "must not contain"
	}
	for in, why := range cases {
		got, err := integration.NormalizeOutputDirectory(in)
		wantCode(t, "NormalizeOutputDirectory("+strings.ToValidUTF8(in, "?")+")", err, errcode.InvalidConfiguration)
		if err == nil {
			t.Errorf("  it returned %q", got)
			continue
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("NormalizeOutputDirectory(%q) = %v, want it to say %q", in, err, why)
		}
	}
}

func TestNormalizeBucketName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"my-security-findings-bucket":     "my-security-findings-bucket",
		"s3://my-bucket":                  "my-bucket",
		"  s3://my-bucket  ":              "my-bucket",
		"abc":                             "abc",
		strings.Repeat("a", 63):           strings.Repeat("a", 63),
		"a.b.c":                           "a.b.c",
		"prowler.findings-2025":           "prowler.findings-2025",
		"123":                             "123",
		"1.2.3":                           "1.2.3",
		"1.2.3.4.5":                       "1.2.3.4.5",
		"192.168.5.4a":                    "192.168.5.4a",
		"s3://" + strings.Repeat("b", 63): strings.Repeat("b", 63),
	} {
		got, err := integration.NormalizeBucketName(in)
		if err != nil {
			t.Errorf("NormalizeBucketName(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("NormalizeBucketName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeBucketNameRejected(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		"   ",
		"s3://",
		"ab",
		"s3://ab",
		strings.Repeat("a", 64),
		"My-Bucket",
		"my_bucket",
		"my..bucket",
		"-bucket",
		"bucket-",
		".bucket",
		"bucket.",
		"192.168.5.4",
		"s3://10.0.0.1",
		"192.168.05.4", // IP-shaped even if not a valid address
		"999.999.999.999",
		"my bucket",
		"bücket",
		"bucket/key",
		"s3://bucket/key",
		"S3://bucket",
		"arn:aws:s3:::bucket",
		"s3://s3://bucket",
	} {
		_, err := integration.NormalizeBucketName(in)
		wantCode(t, "NormalizeBucketName("+in+")", err, errcode.S3InvalidBucketName)
	}
}

func TestValidateRoleARN(t *testing.T) {
	t.Parallel()
	valid := []string{
		"arn:aws:iam::123456789012:role/ProwlerScan",
		"arn:aws:iam::123456789012:role/path/to/ProwlerScan",
		"arn:aws-cn:iam::123456789012:role/R",
		"arn:aws-us-gov:iam::123456789012:role/R",
		"arn:aws:iam::123456789012:role/with+=,.@_-chars",
	}
	for _, arn := range valid {
		if err := integration.ValidateRoleARN(arn, ""); err != nil {
			t.Errorf("ValidateRoleARN(%q): %v", arn, err)
		}
	}
	invalid := []string{
		"",
		"ProwlerScan",
		"arn:aws:iam::123456789012:user/ProwlerScan",
		"arn:aws:iam::123456789012:root",
		"arn:aws:iam::12345678901:role/R",   // 11 digits
		"arn:aws:iam::1234567890123:role/R", // 13 digits
		"arn:aws:iam::abcdefghijkl:role/R",
		"arn:aws:iam:us-east-1:123456789012:role/R",
		"arn:aws:sts::123456789012:assumed-role/R/s",
		"arn:aws:s3:::bucket",
		"arn:azure:iam::123456789012:role/R",
		"arn:aws:iam::123456789012:role/",
		"arn:aws:iam::123456789012:role/has space",
		"arn:aws:iam::123456789012:role/star*",
		" arn:aws:iam::123456789012:role/R",
		"arn:aws:iam::123456789012:role/R\n",
		"arn:aws:iam::123456789012:role/" + strings.Repeat("r", 513),
	}
	for _, arn := range invalid {
		err := integration.ValidateRoleARN(arn, "")
		wantCode(t, "ValidateRoleARN("+arn+")", err, errcode.InvalidConfiguration)
	}
}

func TestValidateRoleARNPattern(t *testing.T) {
	t.Parallel()
	const pattern = "arn:aws:iam::*:role/Prowler*"
	for arn, ok := range map[string]bool{
		"arn:aws:iam::123456789012:role/ProwlerScan":      true,
		"arn:aws:iam::210987654321:role/Prowler":          true,
		"arn:aws:iam::123456789012:role/ProwlerS3Export":  true,
		"arn:aws:iam::123456789012:role/Admin":            false,
		"arn:aws:iam::123456789012:role/prowlerScan":      false, // case-sensitive
		"arn:aws:iam::123456789012:role/XProwler":         false,
		"arn:aws-cn:iam::123456789012:role/ProwlerScan":   false,
		"arn:aws:iam::123456789012:role/team/ProwlerScan": false, // the pattern wants role/Prowler…
	} {
		err := integration.ValidateRoleARN(arn, pattern)
		if ok && err != nil {
			t.Errorf("ValidateRoleARN(%q, %q): %v", arn, pattern, err)
		}
		if !ok {
			wantCode(t, "ValidateRoleARN("+arn+")", err, errcode.InvalidConfiguration)
			if err != nil && !strings.Contains(err.Error(), "not allowed") {
				t.Errorf("ValidateRoleARN(%q) = %v, want it to say the pattern refused it", arn, err)
			}
		}
	}
	// As in IAM, '*' crosses '/', so role paths can be allowed.
	if err := integration.ValidateRoleARN("arn:aws:iam::123456789012:role/team/ProwlerScan", "arn:aws:iam::*:role/*/Prowler*"); err != nil {
		t.Error(err)
	}
	if err := integration.ValidateRoleARN("arn:aws:iam::123456789012:role/team/ProwlerScan", "arn:aws:iam::12345678901?:role/*"); err != nil {
		t.Error(err)
	}
	// An exact pattern pins one role.
	if err := integration.ValidateRoleARN("arn:aws:iam::123456789012:role/R", "arn:aws:iam::123456789012:role/R"); err != nil {
		t.Error(err)
	}
	// '[' has no special meaning (IAM has no character classes).
	if err := integration.ValidateRoleARN("arn:aws:iam::123456789012:role/R", "arn:aws:iam::[:role/*"); err == nil {
		t.Error("a pattern with a literal '[' matched an ARN without one")
	}
	// The ARN shape is checked before the pattern: a pattern can't widen it.
	wantCode(t, "pattern *", integration.ValidateRoleARN("arn:aws:iam::123456789012:user/U", "*"), errcode.InvalidConfiguration)
}

func TestMatchARN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, arn string
		want         bool
	}{
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"arn:aws:iam::*:role/*", "arn:aws:iam::123456789012:role/a/b/c", true},
		{"**", "x", true},
		{"*x", "xxxx", true},
		{"*x", "xxxy", false},
	} {
		if got := integration.MatchARN(tc.pattern, tc.arn); got != tc.want {
			t.Errorf("MatchARN(%q, %q) = %v, want %v", tc.pattern, tc.arn, got, tc.want)
		}
	}
}

// Contract v1.2 §5: storage_class is checked when the integration is saved,
// against the storage classes S3 accepts on PutObject.
func TestValidateStorageClass(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"", "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
		"INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE"} {
		if err := integration.ValidateStorageClass(c); err != nil {
			t.Errorf("%q refused: %v", c, err)
		}
	}
	for _, c := range []string{"standard", "Standard", "STANDARD ", " GLACIER", "GLACIER_FLEXIBLE", "COLD", "STANDARD\x00"} {
		err := integration.ValidateStorageClass(c)
		wantCode(t, c, err, errcode.InvalidConfiguration)
		if err != nil && !strings.Contains(err.Error(), "storage_class") {
			t.Errorf("%q: error %v does not name the field", c, err)
		}
	}
}
