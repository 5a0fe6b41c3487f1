package ststest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	testRole   = "arn:aws:iam::123456789012:role/ProwlerScan"
	sourceAKID = "AKIASOURCEIDENTITY01"
)

var issued = STSCredentials{
	AccessKeyID:     "ASIATEMPORARY0000001",
	SecretAccessKey: "temporary-secret",
	SessionToken:    "temporary-session-token",
}

func newSTSClient(s *STS) *sts.Client {
	return sts.New(sts.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider(sourceAKID, "source-secret", ""),
	})
}

func TestSTSAssumeRoleWithSDKClient(t *testing.T) {
	t.Parallel()
	s := NewSTS(t, issued)
	s.Expect(testRole, "tenant-1")
	client := newSTSClient(s)

	before := time.Now().Add(-time.Second)
	out, err := client.AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn:         aws.String(testRole),
		RoleSessionName: aws.String("ProwlerS3Export"),
		ExternalId:      aws.String("tenant-1"),
		DurationSeconds: aws.Int32(1800),
	})
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	c := out.Credentials
	if aws.ToString(c.AccessKeyId) != issued.AccessKeyID || aws.ToString(c.SecretAccessKey) != issued.SecretAccessKey || aws.ToString(c.SessionToken) != issued.SessionToken {
		t.Fatalf("credentials = %+v", c)
	}
	exp := aws.ToTime(c.Expiration)
	if exp.Before(before.Add(1800*time.Second)) || exp.After(time.Now().Add(1801*time.Second)) {
		t.Errorf("expiration %v is not 1800s from now", exp)
	}
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != "arn:aws:sts::123456789012:assumed-role/ProwlerScan/ProwlerS3Export" {
		t.Errorf("assumed role ARN = %q", got)
	}

	calls := s.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls = %+v", calls)
	}
	want := AssumeRoleCall{RoleARN: testRole, ExternalID: "tenant-1", RoleSessionName: "ProwlerS3Export", DurationSeconds: 1800, CallerKeyID: sourceAKID}
	got := calls[0]
	got.At = time.Time{}
	if got != want {
		t.Errorf("call = %+v, want %+v", got, want)
	}
}

func TestSTSRefusals(t *testing.T) {
	t.Parallel()
	s := NewSTS(t, issued)
	s.Expect(testRole, "tenant-1")
	s.Expect("arn:aws:iam::123456789012:role/Open", "")
	client := newSTSClient(s)

	cases := []struct {
		name   string
		in     sts.AssumeRoleInput
		code   string
		status int
	}{
		{"wrong external id", sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), ExternalId: aws.String("tenant-2")}, "AccessDenied", http.StatusForbidden},
		{"missing external id", sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1")}, "AccessDenied", http.StatusForbidden},
		{"unknown role", sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/Other"), RoleSessionName: aws.String("s1"), ExternalId: aws.String("tenant-1")}, "AccessDenied", http.StatusForbidden},
		{"duration too short", sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("s1"), ExternalId: aws.String("tenant-1"), DurationSeconds: aws.Int32(60)}, "ValidationError", http.StatusBadRequest},
		{"bad session name", sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("has space"), ExternalId: aws.String("tenant-1")}, "ValidationError", http.StatusBadRequest},
		{"not a role arn", sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123:user/x"), RoleSessionName: aws.String("s1")}, "ValidationError", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.AssumeRole(context.Background(), &tc.in)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.code {
				t.Fatalf("err = %v, want API error %s", err, tc.code)
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != tc.status {
				t.Fatalf("err = %v, want HTTP %d", err, tc.status)
			}
			calls := s.Calls()
			if last := calls[len(calls)-1]; last.ErrorCode != tc.code || last.RoleARN != aws.ToString(tc.in.RoleArn) {
				t.Errorf("recorded call = %+v", last)
			}
		})
	}

	// A role expected without an external ID accepts any.
	if _, err := client.AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::123456789012:role/Open"), RoleSessionName: aws.String("s1"), ExternalId: aws.String("whatever"),
	}); err != nil {
		t.Fatalf("open role: %v", err)
	}
}

func TestSTSUnsignedRequest(t *testing.T) {
	t.Parallel()
	s := NewSTS(t, issued)
	s.Expect(testRole, "")
	form := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {testRole}, "RoleSessionName": {"s1"}}
	resp, err := http.Post(s.URL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if c := s.Calls(); len(c) != 1 || c[0].ErrorCode != "MissingAuthenticationToken" {
		t.Fatalf("calls = %+v", c)
	}
}

func TestSTSWithAssumeRoleProvider(t *testing.T) {
	t.Parallel()
	s := NewSTS(t, issued)
	s.Expect(testRole, "tenant-1")
	client := newSTSClient(s)

	newCache := func() *aws.CredentialsCache {
		p := stscreds.NewAssumeRoleProvider(client, testRole, func(o *stscreds.AssumeRoleOptions) {
			o.ExternalID = aws.String("tenant-1")
			o.RoleSessionName = "ProwlerS3Export"
			o.Duration = time.Hour
		})
		// Credentials within five minutes of expiry count as expired.
		return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
	}
	ctx := context.Background()

	// Long-lived credentials are fetched once and cached.
	cache := newCache()
	for range 3 {
		c, err := cache.Retrieve(ctx)
		if err != nil {
			t.Fatalf("Retrieve: %v", err)
		}
		if c.AccessKeyID != issued.AccessKeyID || c.SessionToken != issued.SessionToken || !c.CanExpire {
			t.Fatalf("credentials = %+v", c)
		}
		// The cache reports the expiry less its 5-minute window.
		if until := time.Until(c.Expires); until < 54*time.Minute || until > 55*time.Minute+time.Second {
			t.Fatalf("expires in %v, want about 55m", until)
		}
	}
	if n := len(s.Calls()); n != 1 {
		t.Fatalf("%d STS calls for cached credentials, want 1", n)
	}
	if c := s.Calls()[0]; c.DurationSeconds != 3600 || c.CallerKeyID != sourceAKID || c.ExternalID != "tenant-1" {
		t.Fatalf("call = %+v", c)
	}

	// A short lifetime makes every Retrieve a refresh, and the refresh picks up
	// the new credentials.
	s.SetLifetime(2 * time.Minute)
	cache = newCache()
	c1, err := cache.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(c1.Expires); until > 2*time.Minute+time.Second {
		t.Fatalf("expires in %v despite the 2m lifetime", until)
	}
	rotated := STSCredentials{AccessKeyID: "ASIATEMPORARY0000002", SecretAccessKey: "s2", SessionToken: "t2"}
	s.SetCredentials(rotated)
	c2, err := cache.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c2.AccessKeyID != rotated.AccessKeyID {
		t.Fatalf("refreshed credentials = %+v, want the rotated ones", c2)
	}
	if n := len(s.Calls()); n != 3 {
		t.Fatalf("%d STS calls, want 3 (one cached, two refreshes)", n)
	}

	// A refused role surfaces as an error from the provider.
	s.Expect(testRole, "someone-else")
	if _, err := newCache().Retrieve(ctx); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Retrieve with a wrong external ID: %v", err)
	}
}

func TestSTSRotation(t *testing.T) {
	t.Parallel()
	s := NewSTS(t, issued)
	s.Expect(testRole, "")
	client := newSTSClient(s)
	one := STSCredentials{AccessKeyID: "ASIAROTATION00000001", SecretAccessKey: "s1"}
	two := STSCredentials{AccessKeyID: "ASIAROTATION00000002", SecretAccessKey: "s2"}
	s.SetRotation([]STSCredentials{one, two})
	var got []string
	for range 3 {
		out, err := client.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(testRole), RoleSessionName: aws.String("prowler-t")})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, aws.ToString(out.Credentials.AccessKeyId))
	}
	if want := []string{one.AccessKeyID, two.AccessKeyID, two.AccessKeyID}; !slices.Equal(got, want) {
		t.Fatalf("keys handed out %v, want %v (in turn, the last repeating)", got, want)
	}
	if n := len(s.Calls()); n != 3 {
		t.Fatalf("%d calls recorded, want 3", n)
	}
}
