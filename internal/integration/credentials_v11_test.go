package integration_test

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// Contract v1.1 §2: neither keys nor a role means the exporter's own
// identity would write; refused unless the operator allows it, with a
// message naming the setting.
func TestAmbientCredentialsNeedTheSetting(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	refusing := &integration.Parser{Prefix: "prowler", AllowPlaintext: true, Key: key}
	allowing := &integration.Parser{Prefix: "prowler", AllowPlaintext: true, Key: key, AllowAmbient: true}
	forms := map[string]func(map[string]any){
		"no credentials field":     func(map[string]any) {},
		"empty credentials object": func(p map[string]any) { p["credentials"] = map[string]any{} },
		"a token of an empty object": func(p map[string]any) {
			p["encrypted_credentials"] = encrypt(t, key, map[string]any{})
		},
	}
	for name, set := range forms {
		m := upsert()
		set(payload(m))
		data := mustJSON(t, m)
		ch, err := refusing.ParseChange(changeSubject, data)
		wantCode(t, name, err, errcode.InvalidConfiguration)
		if err != nil && !strings.Contains(err.Error(), "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS") {
			t.Errorf("%s: error %v does not name S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS", name, err)
		}
		if ch.TenantID != "t1" || ch.ID != "i1" || ch.Integration != nil {
			t.Errorf("%s: refused change %+v must name the integration (to drop an earlier state) and hold none", name, ch)
		}
		ch, err = allowing.ParseChange(changeSubject, data)
		if err != nil || ch.Integration == nil || !ch.Integration.Credentials.Empty() {
			t.Errorf("%s with the setting: %v, %+v", name, err, ch.Integration)
		}
	}
	// Keys alone, or a role alone, are not ambient.
	for _, creds := range []map[string]any{
		{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey},
		{"role_arn": "arn:aws:iam::123456789012:role/ProwlerScan"},
	} {
		m := upsert()
		payload(m)["credentials"] = creds
		if _, err := refusing.ParseChange(changeSubject, mustJSON(t, m)); err != nil {
			t.Errorf("%v refused: %v", creds["role_arn"], err)
		}
	}
}

// Contract v1.1 §2: a role assumed with the exporter's identity carries the
// tenant ID as external ID; another one is refused at parse time, that is
// before any STS call. With the tenant's own keys the external ID is theirs.
func TestExternalIDOfTheExportersIdentityIsTheTenant(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	p := &integration.Parser{Prefix: "prowler", AllowPlaintext: true, Key: key}
	const role = "arn:aws:iam::123456789012:role/ProwlerScan"
	for _, ext := range []string{"t2", "T1", "t1 ", "other-tenant"} {
		for _, enc := range []bool{false, true} {
			m := upsert()
			creds := map[string]any{"role_arn": role, "external_id": ext}
			if enc {
				payload(m)["encrypted_credentials"] = encrypt(t, key, creds)
			} else {
				payload(m)["credentials"] = creds
			}
			_, err := p.ParseChange(changeSubject, mustJSON(t, m))
			wantCode(t, "external_id "+ext, err, errcode.InvalidConfiguration)
			if err != nil && !strings.Contains(err.Error(), "tenant_id as external ID") {
				t.Errorf("error %v does not say the external ID must be the tenant_id", err)
			}
		}
	}
	// Build (the unsaved connection test) applies the same rule.
	in := event.IntegrationPayload{ID: "i1", TenantID: "t1", Configuration: event.Configuration{BucketName: "bucket"},
		Credentials: &event.Credentials{RoleARN: role, ExternalID: "t2"}}
	_, err := p.Build(in)
	wantCode(t, "Build with another external ID", err, errcode.InvalidConfiguration)

	for _, tc := range []struct {
		creds map[string]any
		want  string
	}{
		{map[string]any{"role_arn": role}, "t1"},
		{map[string]any{"role_arn": role, "external_id": "t1"}, "t1"},
		{map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "role_arn": role, "external_id": "t2"}, "t2"},
		{map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "role_arn": role}, "t1"},
	} {
		m := upsert()
		payload(m)["credentials"] = tc.creds
		ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
		if err != nil {
			t.Errorf("%v: %v", tc.creds, err)
			continue
		}
		if got := ch.Integration.Credentials.ExternalID; got != tc.want {
			t.Errorf("external ID %q, want %q", got, tc.want)
		}
	}
	// S3EXPORTER_ROLE_ARN_PATTERN still applies to the exporter's identity.
	strict := &integration.Parser{Prefix: "prowler", AllowPlaintext: true, RoleARNPattern: "arn:aws:iam::*:role/Other*"}
	m := upsert()
	payload(m)["credentials"] = map[string]any{"role_arn": role}
	_, err = strict.ParseChange(changeSubject, mustJSON(t, m))
	wantCode(t, "role outside the pattern", err, errcode.InvalidConfiguration)
}

var stsSessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

func TestDefaultSessionName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ tenant, want string }{
		{"t1", "prowler-t1"},
		{"0b7e-AB_c=d", "prowler-0b7e-AB_c=d"},
		{"a/b c:d", "prowler-a-b-c-d"},
		{"é", "prowler--"},
		{strings.Repeat("x", 56), "prowler-" + strings.Repeat("x", 56)},
		{strings.Repeat("x", 57), "prowler-" + strings.Repeat("x", 56)},
		{strings.Repeat("y", 128), "prowler-" + strings.Repeat("y", 56)},
	} {
		got := integration.DefaultSessionName(tc.tenant)
		if got != tc.want {
			t.Errorf("DefaultSessionName(%q) = %q, want %q", tc.tenant, got, tc.want)
		}
		if !stsSessionName.MatchString(got) {
			t.Errorf("DefaultSessionName(%q) = %q, which STS refuses", tc.tenant, got)
		}
	}
	// Parsed: the default names the tenant; a given name is kept.
	p := &integration.Parser{Prefix: "prowler", AllowPlaintext: true}
	m := upsert()
	payload(m)["credentials"] = map[string]any{"role_arn": "arn:aws:iam::123456789012:role/ProwlerScan"}
	ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil || ch.Integration.Credentials.RoleSessionName != "prowler-t1" {
		t.Fatalf("default session name: %v %v", err, ch.Integration)
	}
}

// Contract v1.1 §2: a token may say whose it is; then it must be this
// integration's. Tokens that say nothing (Prowler App's) are accepted.
func TestTenantBoundTokens(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	p := &integration.Parser{Prefix: "prowler", Key: key}
	base := map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey}
	with := func(kv ...string) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		creds map[string]any
		ok    bool
		why   string
	}{
		{"unbound (Prowler App)", with(), true, ""},
		{"bound to this integration", with("tenant_id", "t1", "integration_id", "i1"), true, ""},
		{"tenant only", with("tenant_id", "t1"), true, ""},
		{"integration only", with("integration_id", "i1"), true, ""},
		{"another tenant", with("tenant_id", "victim-tenant", "integration_id", "i1"), false, "tenant_id"},
		{"another integration", with("tenant_id", "t1", "integration_id", "i2"), false, "integration_id"},
		{"empty tenant", with("tenant_id", ""), false, "tenant_id"},
		{"empty integration", with("integration_id", ""), false, "integration_id"},
	} {
		m := upsert()
		payload(m)["encrypted_credentials"] = encrypt(t, key, tc.creds)
		ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
		if tc.ok {
			if err != nil || ch.Integration.Credentials.AccessKeyID != accessKeyID {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantCode(t, tc.name, err, errcode.InvalidConfiguration)
		if err != nil {
			if !strings.Contains(err.Error(), tc.why) || strings.Contains(err.Error(), "victim-tenant") {
				t.Errorf("%s: error %v should name the field %s, not another tenant's value", tc.name, err, tc.why)
			}
			assertNoSecret(t, tc.name, err.Error())
		}
	}
}

// S3EXPORTER_CREDENTIALS_KEY with several keys: tokens of each decrypt.
func TestParserWithSeveralKeys(t *testing.T) {
	t.Parallel()
	// As the operator sets it: the new key first (it encrypts), then the old.
	newKeyS, _ := fernet.GenerateKey()
	oldKeyS, _ := fernet.GenerateKey()
	nk, _ := fernet.ParseKey(newKeyS)
	oldKey, _ := fernet.ParseKey(oldKeyS)
	keys, err := fernet.ParseKeys(newKeyS + "," + oldKeyS)
	if err != nil {
		t.Fatal(err)
	}
	p := &integration.Parser{Prefix: "prowler", Key: keys}
	for name, k := range map[string]*fernet.Key{"old": oldKey, "new": nk} {
		m := upsert()
		payload(m)["encrypted_credentials"] = encrypt(t, k, map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey})
		if _, err := p.ParseChange(changeSubject, mustJSON(t, m)); err != nil {
			t.Errorf("token of the %s key: %v", name, err)
		}
	}
	stray := newKey(t)
	m := upsert()
	tok, _ := stray.Encrypt([]byte(`{"aws_access_key_id":"a","aws_secret_access_key":"b"}`), time.Now())
	payload(m)["encrypted_credentials"] = string(tok)
	_, err = p.ParseChange(changeSubject, mustJSON(t, m))
	wantCode(t, "token of a key outside the set", err, errcode.InvalidConfiguration)
}

func TestSigningKeyAndFingerprint(t *testing.T) {
	t.Parallel()
	creds := event.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey, RoleARN: "arn:aws:iam::123456789012:role/R",
		ExternalID: "t1", RoleSessionName: "s", SessionDuration: 900}
	a := &integration.Integration{TenantID: "t1", ID: "i1", Bucket: "b", Credentials: creds}
	b := &integration.Integration{TenantID: "t2", ID: "i1", Bucket: "b", Credentials: creds}
	if a.SigningKey() == b.SigningKey() {
		t.Error("two tenants with equal credentials share a signing key (and so sessions and clients)")
	}
	a2 := *a
	a2.ID, a2.Bucket = "i2", "other"
	if a.SigningKey() != a2.SigningKey() {
		t.Error("one tenant's integrations with equal credentials should share a session")
	}
	for _, change := range []func(*event.Credentials){
		func(c *event.Credentials) { c.AccessKeyID += "x" }, func(c *event.Credentials) { c.SecretAccessKey += "x" },
		func(c *event.Credentials) { c.SessionToken += "x" }, func(c *event.Credentials) { c.RoleARN += "x" },
		func(c *event.Credentials) { c.ExternalID += "x" }, func(c *event.Credentials) { c.RoleSessionName += "x" },
		func(c *event.Credentials) { c.SessionDuration++ },
	} {
		c := *a
		change(&c.Credentials)
		if c.SigningKey() == a.SigningKey() || c.Fingerprint() == a.Fingerprint() {
			t.Errorf("a changed credential field %v keeps the key or fingerprint", c.Credentials.Redacted())
		}
	}
	if a.Fingerprint() == a2.Fingerprint() {
		t.Error("the fingerprint ignores the bucket")
	}
	for _, s := range []string{a.SigningKey(), a.Fingerprint()} {
		if strings.Contains(s, secretKey) || strings.Contains(s, accessKeyID) {
			t.Errorf("%q holds a secret in clear", s)
		}
	}
	// The fingerprint keeps the value stored before the hashing was shared,
	// so an upgrade does not re-test every integration.
	h := sha256.New()
	for _, f := range []string{"b", accessKeyID, secretKey, "", creds.RoleARN, "t1", "s", "900"} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	if want := hex.EncodeToString(h.Sum(nil)); a.Fingerprint() != want {
		t.Errorf("Fingerprint = %s, want the earlier value %s", a.Fingerprint(), want)
	}
}
