package e2e

import (
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/testutil/ststest"
)

// The assume-role tests use ststest.STS, the small AssumeRole endpoint the
// contract lets tests put in place of AWS STS (S3EXPORTER_STS_ENDPOINT): the
// exporter's real stscreds provider calls it, it records each call and acts
// as the roles' trust policies, and it hands out the keys of a versitygw
// account, which the exporter then uses on the bucket. versitygw's file IAM
// refuses any X-Amz-Security-Token (it has no sessions), so the credentials
// it hands out carry no session token, except where a test shows that the
// token is sent.

const (
	stsAccount   = "123456789012"
	roleExport   = "arn:aws:iam::" + stsAccount + ":role/ProwlerExport"
	roleOther    = "arn:aws:iam::" + stsAccount + ":role/ProwlerOther"
	roleStrict   = "arn:aws:iam::" + stsAccount + ":role/ProwlerStrict"
	roleWithPath = "arn:aws:iam::" + stsAccount + ":role/ProwlerTeam/Scanner"
	roleOutside  = "arn:aws:iam::" + stsAccount + ":role/Admin"
)

// stsEnv is an exporter whose STS endpoint is sts and whose role ARN
// pattern is arn:aws:iam::*:role/Prowler*, a bucket with the documented
// policy for one versitygw account, and sts handing out that account's keys.
func stsEnv(t *testing.T, tune func(*config.Config)) (*env, *ststest.STS, string, [2]string) {
	t.Helper()
	sts := ststest.NewSTS(t, ststest.STSCredentials{})
	mutate := func(c *config.Config) {
		c.STSEndpoint = sts.URL()
		c.RoleARNPattern = "arn:aws:iam::*:role/Prowler*"
		if tune != nil {
			tune(c)
		}
	}
	e := newEnv(t, mutate)
	b := e.bucket("sts")
	user, secret := e.s3User("role")
	e.s3.MustPutBucketPolicy(t, b, documentedPolicy(t, b, true, user))
	sts.SetCredentials(ststest.STSCredentials{AccessKeyID: user, SecretAccessKey: secret})
	return e, sts, b, [2]string{user, secret}
}

// callsOf returns the AssumeRole calls of one role.
func callsOf(sts *ststest.STS, role string) []ststest.AssumeRoleCall {
	var out []ststest.AssumeRoleCall
	for _, c := range sts.Calls() {
		if c.RoleARN == role {
			out = append(out, c)
		}
	}
	return out
}

func TestAssumeRoleThroughSTS(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e, sts, b, roleKeys := stsEnv(t, nil)
	const tenant = "tenant-sts"
	sts.Expect(roleExport, tenant) // trust policy: the external ID must be the tenant's ID
	sts.Expect(roleOther, "ext-42")
	sts.Expect(roleStrict, "the-right-one")
	sts.Expect(roleWithPath, "")
	source := func(role string) *event.Credentials {
		// The source identity: keys STS sees (it records the caller's key
		// ID); versitygw does not know them, so S3 works only with what
		// AssumeRole handed out.
		return &event.Credentials{AccessKeyID: "source-key-id", SecretAccessKey: "source-secret", RoleARN: role}
	}
	checkCalls := func(what, role, externalID, session string, duration int) {
		t.Helper()
		calls := callsOf(sts, role)
		if len(calls) == 0 {
			t.Fatalf("%s: no AssumeRole call for %s", what, role)
		}
		for _, c := range calls {
			if c.ExternalID != externalID || c.RoleSessionName != session || c.DurationSeconds != duration || c.CallerKeyID != "source-key-id" {
				t.Errorf("%s: AssumeRole call %+v, want ExternalId %q, RoleSessionName %q, DurationSeconds %d, signed by source-key-id",
					what, c, externalID, session, duration)
			}
		}
	}

	// Defaults: external ID = tenant ID, session name prowler-<tenant ID>
	// (contract v1.1; v1 named every session ProwlerS3Export), 3600 s.
	in := e.integration(tenant, "role-defaults-unsaved", b, "prov-1")
	in.Credentials = source(roleExport)
	rep, st := e.testUnsaved(in)
	checkConn(t, "defaults, unsaved", rep, st, "")
	in.ID = "role-defaults"
	st = e.putAndWaitConn(in)
	checkStatus(t, "defaults, automatic", st.Connected, st.Error, "")
	rep, st = e.testSaved(tenant, in.ID)
	checkConn(t, "defaults, by id", rep, st, "")
	checkCalls("defaults", roleExport, tenant, "prowler-"+tenant, 3600)

	// The export writes with the assumed identity.
	files, _ := prowlerFiles(61, "111122223333")
	e.publishScan(tenant, "prov-1", "111122223333", "scan-sts", files)
	if ex := e.waitExport("scan-sts", in.ID); ex.State != event.StateSucceeded {
		t.Fatalf("export with an assumed role: %s %v", ex.State, ex.Errors)
	}
	entries, err := e.s3.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	puts := 0
	for _, en := range entries {
		if en.Bucket == b && en.Operation == "s3_PutObject" && en.Key != exporter.BeaconKey {
			puts++
			if en.Requester != roleKeys[0] {
				t.Errorf("%s was written by %s, not by the assumed identity %s", en.Key, en.Requester, roleKeys[0])
			}
		}
	}
	if puts != len(files) {
		t.Errorf("%d object writes, want %d", puts, len(files))
	}

	// Given values are sent as they are.
	in = e.integration(tenant, "role-given", b, "prov-1")
	in.Credentials = source(roleOther)
	in.Credentials.ExternalID, in.Credentials.RoleSessionName, in.Credentials.SessionDuration = "ext-42", "admin@console", 900
	st = e.putAndWaitConn(in)
	checkStatus(t, "given values, automatic", st.Connected, st.Error, "")
	checkCalls("given values", roleOther, "ext-42", "admin@console", 900)

	// A role path matches the pattern's '*'.
	in = e.integration(tenant, "role-path", b, "prov-1")
	in.Credentials = source(roleWithPath)
	rep, st = e.testUnsaved(in)
	checkConn(t, "role with a path", rep, st, "")

	// A trust policy that refuses the external ID.
	in = e.integration(tenant, "role-refused", b, "prov-1")
	in.Credentials = source(roleStrict)
	in.Credentials.ExternalID = "a-wrong-one"
	rep, st = e.testUnsaved(in)
	checkConn(t, "refused by the trust policy, unsaved", rep, st, string(errcode.AWSAssumeRoleError), "external ID")
	st = e.putAndWaitConn(in)
	checkStatus(t, "refused by the trust policy, automatic", st.Connected, st.Error, string(errcode.AWSAssumeRoleError))
	for _, c := range callsOf(sts, roleStrict) {
		if c.ErrorCode != "AccessDenied" || c.ExternalID != "a-wrong-one" {
			t.Errorf("call %+v, want AccessDenied for external ID a-wrong-one", c)
		}
	}

	// A role outside S3EXPORTER_ROLE_ARN_PATTERN is refused before any STS call.
	before := len(sts.Calls())
	in = e.integration(tenant, "role-outside", b, "prov-1")
	in.Credentials = source(roleOutside)
	rep, st = e.testUnsaved(in)
	checkConn(t, "outside the pattern, unsaved", rep, st, string(errcode.InvalidConfiguration), "S3EXPORTER_ROLE_ARN_PATTERN")
	st = e.putAndWaitConn(in)
	checkStatus(t, "outside the pattern, automatic", st.Connected, st.Error, string(errcode.InvalidConfiguration), "S3EXPORTER_ROLE_ARN_PATTERN")
	if n := len(sts.Calls()); n != before {
		t.Errorf("%d STS calls for a role outside the pattern: %+v", n-before, sts.Calls()[before:])
	}

	// The session token STS hands out is sent with every S3 request: the
	// same keys with a token are refused by versitygw (which has no
	// sessions), where without one they work.
	sts.Expect(roleExport+"-Session", "")
	sts.SetCredentials(ststest.STSCredentials{AccessKeyID: roleKeys[0], SecretAccessKey: roleKeys[1], SessionToken: "a-session-token"})
	in = e.integration(tenant, "role-token", b, "prov-1")
	in.Credentials = source(roleExport + "-Session")
	rep, st = e.testUnsaved(in)
	checkConn(t, "keys with a session token", rep, st, string(errcode.AWSInvalidCredentials), "InvalidToken")
}

// Assumed-role credentials are refreshed before they expire: with a
// lifetime of 6 s and a refresh window of 1 s, two exports 6 s apart make
// two AssumeRole calls, and the second export signs with the new
// credentials, never with the expired ones (whose account is deleted when
// they expire, so any use of them would fail).
func TestAssumedRoleCredentialsAreRefreshedBeforeTheyExpire(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for assumed credentials to near their expiry")
	}
	t.Parallel() // a world of its own: its NATS server, its buckets
	const lifetime = 6 * time.Second
	e, sts, b, first := stsEnv(t, func(c *config.Config) { c.CredentialRefreshWindow = time.Second })
	const tenant = "tenant-refresh"
	sts.Expect(roleExport, "")
	sts.SetLifetime(lifetime)
	second, secondSecret := e.s3User("role2")
	e.s3.MustPutBucketPolicy(t, b, documentedPolicy(t, b, true, first[0], second))

	in := e.integration(tenant, "refresh", b, "prov-1")
	in.Credentials = &event.Credentials{AccessKeyID: "source-key-id", SecretAccessKey: "source-secret", RoleARN: roleExport}
	if st := e.putAndWaitConn(in); !st.Connected {
		t.Fatalf("automatic test: %v", st.Error)
	}
	files, _ := prowlerFiles(62, "111122223333")
	e.publishScan(tenant, "prov-1", "111122223333", "scan-refresh-1", files)
	if ex := e.waitExport("scan-refresh-1", "refresh"); ex.State != event.StateSucceeded {
		t.Fatalf("first export: %s %v", ex.State, ex.Errors)
	}
	calls := sts.Calls()
	if len(calls) == 0 {
		t.Fatal("no AssumeRole call")
	}
	// Cached between refreshes, not fetched for every request.
	if len(calls) > 2 {
		t.Errorf("%d AssumeRole calls for a connection test and one export (%d S3 requests to its bucket)", len(calls), e.requestsTo(b))
	}
	// Hand out other credentials from now on, and make the first ones
	// unusable once they have expired.
	sts.SetCredentials(ststest.STSCredentials{AccessKeyID: second, SecretAccessKey: secondSecret})
	expired := calls[len(calls)-1].At.Add(lifetime)
	time.Sleep(time.Until(expired) + 100*time.Millisecond)
	if err := e.s3.DeleteUser(first[0]); err != nil {
		t.Fatal(err)
	}
	betweenExports := len(sts.Calls())
	logged := e.accessLogLen()

	files2, _ := prowlerFiles(63, "111122223333")
	e.publishScan(tenant, "prov-1", "111122223333", "scan-refresh-2", files2)
	if ex := e.waitExport("scan-refresh-2", "refresh"); ex.State != event.StateSucceeded {
		t.Fatalf("second export, after the first credentials expired: %s %v", ex.State, ex.Errors)
	}
	after := sts.Calls()
	if len(after) <= betweenExports {
		t.Fatalf("no AssumeRole call for the second export (%d calls in all)", len(after))
	}
	for _, c := range after {
		if c.ErrorCode != "" {
			t.Errorf("AssumeRole call refused: %+v", c)
		}
	}
	entries, err := e.s3.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	for i, en := range entries {
		if en.Bucket != b {
			continue
		}
		if en.Status >= 300 {
			t.Errorf("refused request %s %s by %s: %d %s", en.Operation, en.Key, en.Requester, en.Status, en.ErrorCode)
		}
		if i >= logged {
			if en.Requester != second {
				t.Errorf("%s %s by %s after the refresh, want %s", en.Operation, en.Key, en.Requester, second)
			}
			if en.Operation == "s3_PutObject" {
				writes++
			}
		}
	}
	if writes != len(files2) {
		t.Errorf("%d object writes for the second export, want %d", writes, len(files2))
	}
}
