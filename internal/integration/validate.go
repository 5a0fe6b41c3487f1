package integration

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/prowler-cloud/s3-exporter/errcode"
)

// DefaultOutputDirectory is used when an integration leaves output_directory blank.
const DefaultOutputDirectory = "output"

// MaxOutputDirectoryLen is the longest normalised output directory accepted.
const MaxOutputDirectoryLen = 900

var bucketChars = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)

// ipShaped matches names formatted like an IPv4 address, including ones that
// are not valid addresses ("192.168.05.4", "999.1.1.1").
var ipShaped = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$`)

// NormalizeBucketName strips a leading s3:// and checks the S3 bucket naming
// rules. A bad name is a permanent S3InvalidBucketName error.
func NormalizeBucketName(name string) (string, error) {
	name = strings.TrimPrefix(strings.TrimSpace(name), "s3://")
	bad := func(why string) (string, error) {
		return "", errcode.Permanentf(errcode.S3InvalidBucketName, "bucket name %s: %s", quote(name), why)
	}
	switch {
	case name == "":
		return bad("is empty")
	case len(name) < 3 || len(name) > 63:
		return bad("must be 3 to 63 characters long")
	case !bucketChars.MatchString(name):
		return bad("may hold only lowercase letters, digits, '.' and '-', and must start and end with a letter or digit")
	case strings.Contains(name, ".."):
		return bad("must not contain two adjacent periods")
	}
	if ipShaped.MatchString(name) {
		return bad("must not be formatted as an IP address")
	}
	return name, nil
}

// NormalizeOutputDirectory trims and normalises an output directory the way
// Prowler App does: blank means "output", "//a//b///" becomes "a/b".
func NormalizeOutputDirectory(dir string) (string, error) {
	dir = strings.TrimSpace(dir)
	if dir == "" {
		return DefaultOutputDirectory, nil
	}
	bad := func(why string) (string, error) {
		return "", errcode.Permanentf(errcode.InvalidConfiguration, "output_directory %s: %s", quote(dir), why)
	}
	if i := strings.IndexAny(dir, `<>:"|?*`); i >= 0 {
		return bad(fmt.Sprintf("must not contain %q", dir[i]))
	}
	if strings.ContainsFunc(dir, unicode.IsControl) {
		return bad("must not contain control characters")
	}
	// Normalise like path.Clean on "/"+dir, then trim white space off the
	// ends; a segment that trimming empties (or turns into ".") goes too, so
	// that the result normalises to itself ("a/ /" -> "a", "/ /a" -> "a").
	// One pass, linear in the input.
	var segs []string
	for _, seg := range strings.Split(dir, "/") {
		switch seg {
		case "..":
			return bad("must not contain a '..' segment")
		case "", ".":
			continue
		}
		segs = append(segs, seg)
	}
	for len(segs) > 0 {
		first := strings.TrimLeftFunc(segs[0], unicode.IsSpace)
		if first == ".." {
			return bad("must not contain a '..' segment")
		}
		if first != "" && first != "." {
			segs[0] = first
			break
		}
		segs = segs[1:]
	}
	for len(segs) > 0 {
		last := strings.TrimRightFunc(segs[len(segs)-1], unicode.IsSpace)
		if last == ".." {
			return bad("must not contain a '..' segment")
		}
		if last != "" && last != "." {
			segs[len(segs)-1] = last
			break
		}
		segs = segs[:len(segs)-1]
	}
	clean := strings.Join(segs, "/")
	if clean == "" || clean == "." {
		return bad("is empty after normalisation")
	}
	if len(clean) > MaxOutputDirectoryLen {
		return bad(fmt.Sprintf("is longer than %d characters", MaxOutputDirectoryLen))
	}
	return clean, nil
}

// StorageClasses are the storage classes S3 accepts on PutObject, as the
// AWS SDK the exporter is built with knows them (its types.StorageClass).
var StorageClasses = func() []string {
	var out []string
	for _, c := range s3types.StorageClass("").Values() {
		out = append(out, string(c))
	}
	return out
}()

// ValidateStorageClass checks storage_class when an integration is saved:
// empty (the bucket's default) or one of StorageClasses, exactly as S3
// spells it. Anything else would fail every upload with
// InvalidStorageClass; it is refused here as InvalidConfiguration.
func ValidateStorageClass(class string) error {
	if class == "" || slices.Contains(StorageClasses, class) {
		return nil
	}
	return errcode.Permanentf(errcode.InvalidConfiguration,
		"storage_class %s is not an S3 storage class (want one of %s)", quote(class), strings.Join(StorageClasses, ", "))
}

var roleARNPattern = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)

var sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// ValidateRoleARN checks that arn names an IAM role and, when pattern is not
// empty, matches that glob.
func ValidateRoleARN(arn, pattern string) error {
	if !roleARNPattern.MatchString(arn) {
		return errcode.Permanentf(errcode.InvalidConfiguration,
			"role_arn %s is not an IAM role ARN (arn:<partition>:iam::<12 digits>:role/<name>)", quote(arn))
	}
	if pattern != "" {
		if !MatchARN(pattern, arn) {
			return errcode.Permanentf(errcode.InvalidConfiguration,
				"role_arn %s is not allowed by this exporter (S3EXPORTER_ROLE_ARN_PATTERN %q)", quote(arn), pattern)
		}
	}
	return nil
}

// MatchARN matches an ARN against a pattern the way IAM does: '*' stands for
// any run of characters ('/' included, so role paths match) and '?' for any
// one character; everything else matches itself, case-sensitively.
func MatchARN(pattern, arn string) bool {
	p, s := []rune(pattern), []rune(arn)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// maxQuoted is how much of a rejected value an error message repeats: the
// message travels in status events, which must stay small.
const maxQuoted = 128

// quote is %q of s, cut to maxQuoted bytes (on a character boundary).
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}
