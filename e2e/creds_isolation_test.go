package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
)

// Contract v1.1 §2, tried as a hostile tenant would. STS here is
// ststest.STS, a small AssumeRole stub: it acts as the roles' trust
// policies and records every call it receives (role, external ID, session
// name, caller), which is how these tests see what reached STS.

// exporterIdentity gives the exporter's own AWS identity (the SDK default
// chain, here its environment variables) the keys of a versitygw account,
// so that anything written with it would land. It uses t.Setenv: a test
// that calls it cannot be parallel.
func exporterIdentity(t *testing.T, access, secret string) {
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
}

// An integration with neither keys nor role would write with the
// exporter's own identity (a confused deputy): refused with
// InvalidConfiguration naming S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS, nothing
// lands, and a tenant's valid integration on the same scan still exports.
// (With the setting it works: TestNoCredentialsMeansTheDefaultChain.)
func TestAmbientCredentialsRefusedUnlessAllowed(t *testing.T) {
	// Not parallel: t.Setenv changes the process's environment, which
	// every exporter of this test binary reads (a serial test runs before
	// the parallel ones start).
	srv := s3Server(t)
	exporterIdentity(t, srv.AccessKey, srv.SecretKey) // the root account: it could write anywhere
	e := newEnv(t, nil)
	target, own := e.bucket("ambient-target"), e.bucket("ambient-own")

	ambient := e.integration("tenant-amb", "ambient", target, "prov-1")
	ambient.Credentials = nil
	st := e.putAndWaitConn(ambient)
	checkStatus(t, "no credentials", st.Connected, st.Error, string(errcode.InvalidConfiguration), "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS")
	empty := e.integration("tenant-amb", "ambient-empty", target, "prov-1")
	empty.Credentials = &event.Credentials{}
	st = e.putAndWaitConn(empty)
	checkStatus(t, "empty credentials", st.Connected, st.Error, string(errcode.InvalidConfiguration), "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS")
	unsaved := e.integration("tenant-amb", "ambient-unsaved", target, "prov-1")
	unsaved.Credentials = nil
	rep, err := e.cl.TestUnsaved(context.Background(), unsaved)
	if err != nil {
		t.Fatal(err)
	}
	checkStatus(t, "no credentials, unsaved test", rep.Connected, rep.Error, string(errcode.InvalidConfiguration), "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS")

	e.put(e.integration("tenant-amb", "keyed", own, "prov-1"))
	files, _ := prowlerFiles(111, "111122223333")
	e.publishScan("tenant-amb", "prov-1", "111122223333", "scan-ambient-refused", files)
	if ex := e.waitExport("scan-ambient-refused", "keyed"); ex.State != event.StateSucceeded {
		t.Fatalf("the keyed integration: %s %v", ex.State, ex.Errors)
	}
	if got := e.objects(target); len(got) != 0 {
		t.Errorf("%d objects written with the exporter's own identity: %v", len(got), keysOf(got))
	}
	for _, id := range []string{"ambient", "ambient-empty"} {
		if ex := e.exports("scan-ambient-refused", id); len(ex) != 0 {
			t.Errorf("%s: export statuses %+v for a refused integration", id, ex)
		}
	}
}

// A role assumed with the exporter's identity carries the tenant's own ID
// as external ID. A tenant naming another tenant's ID (to use a role whose
// trust policy trusts the exporter for that tenant) is refused before any
// STS call; leaving it out sends its own ID, which that trust policy
// refuses. The victim's own integration works, and its session is named
// after it, so the bucket owner's CloudTrail tells tenants apart.
func TestAnotherTenantsExternalIDNeverReachesSTS(t *testing.T) {
	// Not parallel: t.Setenv changes the process's environment, which
	// every exporter of this test binary reads (a serial test runs before
	// the parallel ones start).
	exporterIdentity(t, "exporter-identity", "exporter-secret") // STS records it; versitygw does not know it
	e, sts, b, roleKeys := stsEnv(t, nil)
	const victim, attacker = "tenant-victim", "tenant-attacker"
	sts.Expect(roleExport, victim) // trust policy: the exporter, for the victim only

	before := len(sts.Calls())
	steal := e.integration(attacker, "steal", b, "prov-1")
	steal.Credentials = &event.Credentials{RoleARN: roleExport, ExternalID: victim}
	st := e.putAndWaitConn(steal)
	checkStatus(t, "another tenant's external ID", st.Connected, st.Error, string(errcode.InvalidConfiguration), "tenant_id")
	rep, err := e.cl.TestUnsaved(context.Background(), steal)
	if err != nil {
		t.Fatal(err)
	}
	checkStatus(t, "another tenant's external ID, unsaved", rep.Connected, rep.Error, string(errcode.InvalidConfiguration), "tenant_id")
	if calls := sts.Calls()[before:]; len(calls) != 0 {
		t.Fatalf("%d STS calls for a refused external ID: %+v", len(calls), calls)
	}

	// Without an external ID the attacker's own tenant ID goes out, and
	// the victim's trust policy refuses it.
	own := e.integration(attacker, "own-id", b, "prov-1")
	own.Credentials = &event.Credentials{RoleARN: roleExport}
	st = e.putAndWaitConn(own)
	checkStatus(t, "the attacker's own external ID", st.Connected, st.Error, string(errcode.AWSAssumeRoleError))

	ok := e.integration(victim, "mine", b, "prov-1")
	ok.Credentials = &event.Credentials{RoleARN: roleExport}
	st = e.putAndWaitConn(ok)
	checkStatus(t, "the victim's own role", st.Connected, st.Error, "")
	files, _ := prowlerFiles(112, "111122223333")
	e.publishScan(victim, "prov-1", "111122223333", "scan-victim", files)
	if ex := e.waitExport("scan-victim", "mine"); ex.State != event.StateSucceeded {
		t.Fatalf("the victim's export: %s %v", ex.State, ex.Errors)
	}

	calls := sts.Calls()[before:]
	if len(calls) == 0 {
		t.Fatal("no AssumeRole call")
	}
	for _, c := range calls {
		if c.CallerKeyID != "exporter-identity" {
			t.Errorf("call %+v not signed by the exporter's identity", c)
		}
		if c.ExternalID == victim && c.RoleSessionName != "prowler-"+victim {
			t.Errorf("the victim's session is named %q, want prowler-%s", c.RoleSessionName, victim)
		}
		if c.ExternalID == victim && c.ErrorCode != "" {
			t.Errorf("the victim's call was refused: %+v", c)
		}
		if c.ExternalID != victim && (c.ExternalID != attacker || c.RoleSessionName != "prowler-"+attacker || c.ErrorCode != "AccessDenied") {
			t.Errorf("call %+v: want only the attacker's own ID, in a session named after it, refused", c)
		}
	}
	entries, err := e.s3.AccessLog()
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Bucket == b && en.Operation == "s3_PutObject" && en.Requester != roleKeys[0] {
			t.Errorf("%s written by %s, not the assumed role", en.Key, en.Requester)
		}
	}
}

// seal encrypts credentials for the exporter, bound to (tenant, id) when
// they are not empty, as exporterctl --encrypt writes them.
func seal(t *testing.T, k *fernet.Key, c event.Credentials, tenant, id string) string {
	t.Helper()
	wire, err := c.WireJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(wire, &m); err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		m["tenant_id"], m["integration_id"] = tenant, id
	}
	plain, _ := json.Marshal(m)
	tok, err := k.Encrypt(plain, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// Tokens bound to their integration are useless anywhere else, and
// S3EXPORTER_CREDENTIALS_KEY holds two keys during a rotation: tokens of
// both decrypt, a token of a third key does not.
func TestTenantBoundTokensAndKeyRotation(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	newS, _ := fernet.GenerateKey()
	oldS, _ := fernet.GenerateKey()
	strayS, _ := fernet.GenerateKey()
	newK, _ := fernet.ParseKey(newS)
	oldK, _ := fernet.ParseKey(oldS)
	strayK, _ := fernet.ParseKey(strayS)
	e := newEnv(t, func(c *config.Config) {
		c.CredentialsKey = config.Secret(newS + "," + oldS)
		c.AllowPlaintextCredentials = false
	})
	b := e.bucket("bound")
	keys := event.Credentials{AccessKeyID: e.s3.AccessKey, SecretAccessKey: e.s3.SecretKey}
	with := func(tenant, id, token string) event.IntegrationPayload {
		in := e.integration(tenant, id, b, "prov-1")
		in.Credentials, in.EncryptedCredentials = nil, token
		return in
	}

	bound := seal(t, oldK, keys, "tenant-a", "int-a") // made before the rotation
	for _, tc := range []struct {
		in   event.IntegrationPayload
		code errcode.Code
		says string
	}{
		{with("tenant-a", "int-a", bound), "", ""},
		{with("tenant-a", "int-new", seal(t, newK, keys, "tenant-a", "int-new")), "", ""},
		{with("tenant-a", "int-app", seal(t, newK, keys, "", "")), "", ""}, // Prowler App's: unbound
		{with("tenant-b", "int-a", bound), errcode.InvalidConfiguration, "tenant_id"},
		{with("tenant-b", "int-b", bound), errcode.InvalidConfiguration, "tenant_id"},
		{with("tenant-a", "int-other", bound), errcode.InvalidConfiguration, "integration_id"},
		{with("tenant-a", "int-stray", seal(t, strayK, keys, "tenant-a", "int-stray")), errcode.InvalidConfiguration, "S3EXPORTER_CREDENTIALS_KEY"},
	} {
		st := e.putAndWaitConn(tc.in)
		checkStatus(t, tc.in.TenantID+"/"+tc.in.ID, st.Connected, st.Error, string(tc.code), tc.says)
		if st.Error != nil && strings.Contains(st.Error.Message, "tenant-a") && tc.in.TenantID != "tenant-a" {
			t.Errorf("%s/%s: the refusal names the other tenant: %s", tc.in.TenantID, tc.in.ID, st.Error.Message)
		}
	}

	// The copied token exports nothing for tenant-b, whose scan is handled
	// (its own integration exports it to another bucket); the original
	// token exports tenant-a's.
	files, _ := prowlerFiles(113, "111122223333")
	e.publishScan("tenant-a", "prov-1", "111122223333", "scan-bound-a", files)
	if ex := e.waitExport("scan-bound-a", "int-a"); ex.State != event.StateSucceeded {
		t.Fatalf("the bound token's own integration: %s %v", ex.State, ex.Errors)
	}
	inA := keysOf(e.objects(b))
	other := e.bucket("bound-b")
	okB := with("tenant-b", "int-b-own", seal(t, newK, keys, "tenant-b", "int-b-own"))
	okB.Configuration.BucketName = other
	if st := e.putAndWaitConn(okB); !st.Connected {
		t.Fatalf("tenant-b's own integration: %+v", st.Error)
	}
	filesB, _ := prowlerFiles(114, "444455556666")
	e.publishScan("tenant-b", "prov-1", "444455556666", "scan-bound-b", filesB)
	if ex := e.waitExport("scan-bound-b", "int-b-own"); ex.State != event.StateSucceeded {
		t.Fatalf("tenant-b's own integration: %s %v", ex.State, ex.Errors)
	}
	for _, id := range []string{"int-a", "int-b"} {
		if ex := e.exports("scan-bound-b", id); len(ex) != 0 {
			t.Errorf("the copied token exported tenant-b's scan (%s): %+v", id, ex)
		}
	}
	if after := keysOf(e.objects(b)); strings.Join(after, ",") != strings.Join(inA, ",") {
		t.Errorf("bucket %s changed by tenant-b's scan: %v, was %v", b, after, inA)
	}
	if n := len(e.objects(other)); n != len(filesB) {
		t.Errorf("%d objects of tenant-b's scan in its own bucket, want %d", n, len(filesB))
	}
}
