package s3test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Roles of versitygw accounts.
const (
	RoleAdmin    = "admin"    // everything, like root
	RoleUser     = "user"     // only buckets it owns, or what ACLs and policies grant
	RoleUserPlus = "userplus" // a user that may also create buckets
)

// versityAccount is the XML body of the admin API's create-user, as
// versitygw's auth.Account marshals.
type versityAccount struct {
	XMLName   xml.Name `xml:"Account"`
	Access    string   `xml:"Access"`
	Secret    string   `xml:"Secret"`
	Role      string   `xml:"Role"`
	UserID    int      `xml:"UserID"`
	GroupID   int      `xml:"GroupID"`
	ProjectID int      `xml:"ProjectID"`
}

// AdminError is an error answer of versitygw's admin API.
type AdminError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("versitygw admin: HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// admin sends a request to versitygw's admin API, signed with the root
// credentials the way `versitygw admin` signs it.
func (s *S3Server) admin(ctx context.Context, path string, query url.Values, header http.Header, body []byte) ([]byte, error) {
	u := s.Endpoint() + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("versitygw admin %s: %w", path, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, payloadHash, "s3", s.region, time.Now()); err != nil {
		return nil, fmt.Errorf("versitygw admin %s: sign: %w", path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("versitygw admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("versitygw admin %s: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		var apiErr struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		_ = xml.Unmarshal(out, &apiErr)
		if apiErr.Message == "" {
			apiErr.Message = strings.TrimSpace(string(out))
		}
		return nil, &AdminError{StatusCode: resp.StatusCode, Code: apiErr.Code, Message: apiErr.Message}
	}
	return out, nil
}

// CreateUser adds an account with the given role (RoleUser for a non-admin
// that has only what ACLs and bucket policies grant it).
func (s *S3Server) CreateUser(access, secret, role string) error {
	body, err := xml.Marshal(versityAccount{Access: access, Secret: secret, Role: role})
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	ctx, cancel := helperCtx()
	defer cancel()
	if _, err := s.admin(ctx, "/create-user", nil, nil, body); err != nil {
		return fmt.Errorf("create user %s: %w", access, err)
	}
	return nil
}

// DeleteUser removes an account.
func (s *S3Server) DeleteUser(access string) error {
	ctx, cancel := helperCtx()
	defer cancel()
	if _, err := s.admin(ctx, "/delete-user", url.Values{"access": {access}}, nil, nil); err != nil {
		return fmt.Errorf("delete user %s: %w", access, err)
	}
	return nil
}

// Users lists the accounts other than root, as access key to role.
func (s *S3Server) Users() (map[string]string, error) {
	ctx, cancel := helperCtx()
	defer cancel()
	out, err := s.admin(ctx, "/list-users", nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var res struct {
		Accounts []struct {
			Access string `xml:"Access"`
			Role   string `xml:"Role"`
		} `xml:"Accounts"`
	}
	if err := xml.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	users := make(map[string]string, len(res.Accounts))
	for _, a := range res.Accounts {
		users[a.Access] = a.Role
	}
	return users, nil
}

// CreateBucket creates a bucket owned by root, or by owner (an access key
// made with CreateUser) if given.
func (s *S3Server) CreateBucket(name string, owner ...string) error {
	ctx, cancel := helperCtx()
	defer cancel()
	if len(owner) == 0 || owner[0] == "" || owner[0] == s.AccessKey {
		if _, err := s.RootClient().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
		return nil
	}
	h := http.Header{"X-Vgw-Owner": {owner[0]}}
	if _, err := s.admin(ctx, "/"+url.PathEscape(name)+"/create", nil, h, nil); err != nil {
		return fmt.Errorf("create bucket %s for %s: %w", name, owner[0], err)
	}
	return nil
}

// ChangeBucketOwner makes owner (an access key) the owner of bucket. An owner
// has full access to its bucket whatever its role.
func (s *S3Server) ChangeBucketOwner(bucket, owner string) error {
	ctx, cancel := helperCtx()
	defer cancel()
	q := url.Values{"bucket": {bucket}, "owner": {owner}}
	if _, err := s.admin(ctx, "/change-bucket-owner", q, nil, nil); err != nil {
		return fmt.Errorf("change owner of %s to %s: %w", bucket, owner, err)
	}
	return nil
}

// BucketOwners lists every bucket with its owner's access key.
func (s *S3Server) BucketOwners() (map[string]string, error) {
	ctx, cancel := helperCtx()
	defer cancel()
	out, err := s.admin(ctx, "/list-buckets", nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("list buckets: %w", err)
	}
	var res struct {
		Buckets []struct {
			Name  string `xml:"Name"`
			Owner string `xml:"Owner"`
		} `xml:"Buckets"`
	}
	if err := xml.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("list buckets: %w", err)
	}
	owners := make(map[string]string, len(res.Buckets))
	for _, b := range res.Buckets {
		owners[b.Name] = b.Owner
	}
	return owners, nil
}

// PutBucketPolicy sets a bucket policy (as root). Principals are access keys:
// {"AWS": ["alice"]}.
func (s *S3Server) PutBucketPolicy(bucket, policyJSON string) error {
	ctx, cancel := helperCtx()
	defer cancel()
	_, err := s.RootClient().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket),
		Policy: aws.String(policyJSON),
	})
	if err != nil {
		return fmt.Errorf("put policy on %s: %w", bucket, err)
	}
	return nil
}

// AllowPolicy returns a bucket policy that allows principal (an access key)
// the given actions ("s3:PutObject", ...). Object actions apply to
// bucket/*, bucket actions (s3:ListBucket, s3:GetBucketLocation, ...) to the
// bucket; both resources are listed, as AWS examples do.
func AllowPolicy(bucket, principal string, actions ...string) string {
	policy := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": []string{principal}},
			"Action":    actions,
			"Resource":  []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
		}},
	}
	b, _ := json.Marshal(policy) // cannot fail on these types
	return string(b)
}

// MustCreateUser is CreateUser that fails the test on error.
func (s *S3Server) MustCreateUser(t testing.TB, access, secret, role string) {
	t.Helper()
	if err := s.CreateUser(access, secret, role); err != nil {
		t.Fatal(err)
	}
}

// MustCreateBucket is CreateBucket that fails the test on error.
func (s *S3Server) MustCreateBucket(t testing.TB, name string, owner ...string) {
	t.Helper()
	if err := s.CreateBucket(name, owner...); err != nil {
		t.Fatal(err)
	}
}

// MustPutBucketPolicy is PutBucketPolicy that fails the test on error.
func (s *S3Server) MustPutBucketPolicy(t testing.TB, bucket, policyJSON string) {
	t.Helper()
	if err := s.PutBucketPolicy(bucket, policyJSON); err != nil {
		t.Fatal(err)
	}
}
