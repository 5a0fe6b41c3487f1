package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

const (
	changeSubject = "prowler.integrations.changed.t1.i1"
	accessKeyID   = "AKIAIOSFODNN7EXAMPLE"
	secretKey     = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	sessionToken  = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789"
)

// upsert returns a valid integration-changed payload for changeSubject.
func upsert() map[string]any {
	return map[string]any{
		"action":      "upsert",
		"occurred_at": "2026-11-27T12:00:00Z",
		"integration": map[string]any{
			"id":        "i1",
			"tenant_id": "t1",
			"type":      "amazon_s3",
			"enabled":   true,
			"providers": []any{"p1", "p2"},
			"configuration": map[string]any{
				"bucket_name":      "s3://my-security-findings-bucket",
				"output_directory": "//prowler-findings//2025/",
			},
		},
	}
}

func payload(m map[string]any) map[string]any { return m["integration"].(map[string]any) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKey(t testing.TB) *fernet.Key {
	t.Helper()
	s, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := fernet.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encrypt(t testing.TB, k *fernet.Key, creds map[string]any) string {
	t.Helper()
	tok, err := k.Encrypt(mustJSON(t, creds), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestParseChangeUpsert(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	ch, err := p.ParseChange(changeSubject, mustJSON(t, upsert()))
	if err != nil {
		t.Fatalf("ParseChange: %v", err)
	}
	if ch.TenantID != "t1" || ch.ID != "i1" || ch.Action != event.ActionUpsert || ch.Ignored || ch.Integration == nil {
		t.Fatalf("change = %+v", ch)
	}
	ig := ch.Integration
	if ig.ID != "i1" || ig.TenantID != "t1" || !ig.Enabled || ig.Key() != "t1/i1" {
		t.Errorf("integration = %+v", ig)
	}
	if ig.Bucket != "my-security-findings-bucket" {
		t.Errorf("bucket = %q", ig.Bucket)
	}
	if ig.OutputDirectory != "prowler-findings/2025" {
		t.Errorf("output directory = %q", ig.OutputDirectory)
	}
	if !slices.Equal(ig.Providers, []string{"p1", "p2"}) || !ig.HasProvider("p2") || ig.HasProvider("p3") {
		t.Errorf("providers = %v", ig.Providers)
	}
	if !ig.Credentials.Empty() {
		t.Errorf("no credentials were sent, got %v", ig.Credentials)
	}
}

func TestParseChangeDefaults(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	m := upsert()
	delete(payload(m), "enabled")
	payload(m)["configuration"] = map[string]any{"bucket_name": "bucket"}
	payload(m)["providers"] = []any{"p1", "p1", "p2", "p1"}
	ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Integration.Enabled {
		t.Error("enabled does not default to true")
	}
	if ch.Integration.OutputDirectory != "output" {
		t.Errorf("output directory = %q, want output", ch.Integration.OutputDirectory)
	}
	if !slices.Equal(ch.Integration.Providers, []string{"p1", "p2"}) {
		t.Errorf("providers = %v, want them deduplicated in order", ch.Integration.Providers)
	}

	payload(m)["enabled"] = false
	ch, err = p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Integration.Enabled {
		t.Error("enabled: false was not kept")
	}
}

func TestParseChangeOptionalConfiguration(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	m := upsert()
	payload(m)["configuration"] = map[string]any{
		"bucket_name": "b-1", "sse": "aws:kms", "kms_key_id": "alias/prowler",
		"storage_class": "STANDARD_IA", "bucket_owner_full_control": true, "future_field": 1,
	}
	ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	ig := ch.Integration
	if ig.SSE != "aws:kms" || ig.KMSKeyID != "alias/prowler" || ig.StorageClass != "STANDARD_IA" || !ig.BucketOwnerFullControl {
		t.Errorf("integration = %+v", ig)
	}
	for _, tc := range []struct {
		conf map[string]any
		why  string
	}{
		{map[string]any{"bucket_name": "b-1", "sse": "aws:kms:dsse"}, "sse"},
		{map[string]any{"bucket_name": "b-1", "sse": "AES256", "kms_key_id": "k"}, "kms_key_id"},
		{map[string]any{"bucket_name": "b-1", "kms_key_id": "k"}, "kms_key_id"},
		{map[string]any{"bucket_name": "b-1", "storage_class": "GLACIER_FLEXIBLE"}, "storage_class"},
		{map[string]any{"bucket_name": "b-1", "storage_class": "standard_ia"}, "storage_class"},
		{map[string]any{"bucket_name": "b-1", "storage_class": "STANDARD "}, "storage_class"},
	} {
		payload(m)["configuration"] = tc.conf
		_, err := p.ParseChange(changeSubject, mustJSON(t, m))
		wantCode(t, fmt.Sprint(tc.conf), err, errcode.InvalidConfiguration)
		if err != nil && !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%v: %v", tc.conf, err)
		}
	}
}

func TestParseChangeRejected(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
		code   errcode.Code
		why    string
	}{
		{"tenant differs from subject", func(m map[string]any) { payload(m)["tenant_id"] = "t2" }, errcode.InvalidConfiguration, "differs from the subject"},
		{"id differs from subject", func(m map[string]any) { payload(m)["id"] = "i2" }, errcode.InvalidConfiguration, "differs from the subject"},
		{"missing id", func(m map[string]any) { delete(payload(m), "id") }, errcode.InvalidConfiguration, "required"},
		{"missing tenant", func(m map[string]any) { delete(payload(m), "tenant_id") }, errcode.InvalidConfiguration, "required"},
		{"missing action", func(m map[string]any) { delete(m, "action") }, errcode.InvalidConfiguration, "missing action"},
		{"unknown action", func(m map[string]any) { m["action"] = "create" }, errcode.InvalidConfiguration, `unknown action "create"`},
		{"bad bucket", func(m map[string]any) {
			payload(m)["configuration"] = map[string]any{"bucket_name": "Bad_Bucket"}
		}, errcode.S3InvalidBucketName, "bucket name"},
		{"missing bucket", func(m map[string]any) { payload(m)["configuration"] = map[string]any{} }, errcode.S3InvalidBucketName, "empty"},
		{"ip bucket", func(m map[string]any) {
			payload(m)["configuration"] = map[string]any{"bucket_name": "192.168.5.4"}
		}, errcode.S3InvalidBucketName, "IP address"},
		{"bad directory", func(m map[string]any) {
			payload(m)["configuration"] = map[string]any{"bucket_name": "bucket", "output_directory": "a/../b"}
		}, errcode.InvalidConfiguration, "'..'"},
		{"empty provider", func(m map[string]any) { payload(m)["providers"] = []any{"p1", ""} }, errcode.InvalidConfiguration, "providers"},
		{"providers not a list", func(m map[string]any) { payload(m)["providers"] = "p1" }, errcode.InvalidConfiguration, "invalid JSON"},
		{"not JSON", nil, errcode.InvalidConfiguration, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte("{nope")
			if tc.change != nil {
				m := upsert()
				tc.change(m)
				data = mustJSON(t, m)
			}
			ch, err := p.ParseChange(changeSubject, data)
			wantCode(t, tc.name, err, tc.code)
			if err != nil && !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %v does not say %q", err, tc.why)
			}
			// The subject names the integration even when the payload is
			// rejected, so the caller can drop an earlier state.
			if ch.TenantID != "t1" || ch.ID != "i1" || ch.Integration != nil {
				t.Errorf("change = %+v", ch)
			}
		})
	}
}

func TestParseChangeIDsMustBeTokens(t *testing.T) {
	t.Parallel()
	// A subject token can't hold '.', but a payload may claim an id the
	// subject can't carry: it must not be cached under an unusable key.
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	ig := upsert()
	payload(ig)["id"] = "i 1"
	_, err := p.ParseChange("prowler.integrations.changed.t1.i 1", mustJSON(t, ig))
	wantCode(t, "id with a space", err, errcode.InvalidConfiguration)
}

func TestParseChangeBadSubject(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	data := mustJSON(t, upsert())
	for _, subj := range []string{
		"prowler.integrations.changed.t1",
		"prowler.integrations.changed.t1.i1.x",
		"prowler.scans.completed.t1.i1",
		"acme.integrations.changed.t1.i1",
	} {
		ch, err := p.ParseChange(subj, data)
		wantCode(t, subj, err, errcode.InvalidConfiguration)
		if ch.TenantID != "" || ch.ID != "" {
			t.Errorf("%s: change names %s/%s", subj, ch.TenantID, ch.ID)
		}
	}
	p.Prefix = "acme"
	if _, err := p.ParseChange("acme.integrations.changed.t1.i1", data); err != nil {
		t.Errorf("prefix acme: %v", err)
	}
}

func TestParseChangeOtherTypeIgnored(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	for _, typ := range []string{"jira", "aws_security_hub", ""} {
		m := upsert()
		payload(m)["type"] = typ
		payload(m)["configuration"] = map[string]any{"anything": "goes"} // not validated
		ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
		if err != nil {
			t.Errorf("type %q: %v", typ, err)
			continue
		}
		if !ch.Ignored || ch.Integration != nil || ch.TenantID != "t1" || ch.ID != "i1" {
			t.Errorf("type %q: change = %+v", typ, ch)
		}
	}
}

func TestParseChangeDelete(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	data := []byte(`{"action":"delete","integration":{"id":"i1","tenant_id":"t1"}}`)
	ch, err := p.ParseChange(changeSubject, data)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Action != event.ActionDelete || ch.TenantID != "t1" || ch.ID != "i1" || ch.Integration != nil || ch.Ignored {
		t.Errorf("change = %+v", ch)
	}
	// A delete on the wrong subject is refused like an upsert.
	_, err = p.ParseChange("prowler.integrations.changed.t1.i2", data)
	wantCode(t, "delete of another id", err, errcode.InvalidConfiguration)
	// A delete needs the ids.
	_, err = p.ParseChange(changeSubject, []byte(`{"action":"delete","integration":{"id":"i1"}}`))
	wantCode(t, "delete without tenant", err, errcode.InvalidConfiguration)
}

func TestPlaintextCredentials(t *testing.T) {
	t.Parallel()
	creds := map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "aws_session_token": sessionToken}
	m := upsert()
	payload(m)["credentials"] = creds
	data := mustJSON(t, m)

	refusing := &integration.Parser{Prefix: "prowler"}
	_, err := refusing.ParseChange(changeSubject, data)
	wantCode(t, "plaintext refused", err, errcode.InvalidConfiguration)
	if err != nil {
		if !strings.Contains(err.Error(), "plaintext") {
			t.Errorf("error %v does not say plaintext", err)
		}
		assertNoSecret(t, "refusal", err.Error())
	}

	allowing := &integration.Parser{Prefix: "prowler", AllowPlaintext: true}
	ch, err := allowing.ParseChange(changeSubject, data)
	if err != nil {
		t.Fatal(err)
	}
	c := ch.Integration.Credentials
	if c.AccessKeyID != accessKeyID || c.SecretAccessKey != secretKey || c.SessionToken != sessionToken || c.RoleARN != "" {
		t.Errorf("credentials = %v", c)
	}

	// Empty plaintext credentials hold nothing to protect: not refused as
	// plaintext (they are ambient credentials, which have their own setting).
	payload(m)["credentials"] = map[string]any{}
	ambient := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	if _, err := ambient.ParseChange(changeSubject, mustJSON(t, m)); err != nil {
		t.Errorf("empty credentials: %v", err)
	}
}

func TestEncryptedCredentials(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	p := &integration.Parser{Prefix: "prowler", Key: key}
	m := upsert()
	payload(m)["encrypted_credentials"] = encrypt(t, key, map[string]any{
		"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey,
		"role_arn": "arn:aws:iam::123456789012:role/ProwlerScan",
	})
	ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatalf("ParseChange: %v", err)
	}
	c := ch.Integration.Credentials
	if c.AccessKeyID != accessKeyID || c.SecretAccessKey != secretKey || c.RoleARN != "arn:aws:iam::123456789012:role/ProwlerScan" {
		t.Errorf("credentials = %v", c)
	}
	// Role defaults apply to decrypted credentials too.
	if c.ExternalID != "t1" || c.RoleSessionName != "prowler-t1" || c.SessionDuration != 3600 {
		t.Errorf("defaults not applied: %v", c)
	}
}

func TestEncryptedCredentialsRejected(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	other := newKey(t)
	secretJSON := map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "aws_session_token": sessionToken}
	good := encrypt(t, key, secretJSON)
	for _, tc := range []struct {
		name string
		p    *integration.Parser
		set  func(in map[string]any)
		why  string
	}{
		{"wrong key", &integration.Parser{Prefix: "prowler", Key: other},
			func(in map[string]any) { in["encrypted_credentials"] = good }, "could not be decrypted"},
		{"no key configured", &integration.Parser{Prefix: "prowler"},
			func(in map[string]any) { in["encrypted_credentials"] = good }, "S3EXPORTER_CREDENTIALS_KEY"},
		{"tampered token", &integration.Parser{Prefix: "prowler", Key: key},
			func(in map[string]any) { in["encrypted_credentials"] = good[:40] + flip(good[40]) + good[41:] }, "could not be decrypted"},
		{"not a token", &integration.Parser{Prefix: "prowler", Key: key},
			func(in map[string]any) { in["encrypted_credentials"] = "plain text" }, "could not be decrypted"},
		{"token of something else", &integration.Parser{Prefix: "prowler", Key: key},
			func(in map[string]any) { in["encrypted_credentials"] = encryptRaw(t, key, "["+secretKey+"]") }, "credentials JSON object"},
		{"both forms", &integration.Parser{Prefix: "prowler", Key: key, AllowPlaintext: true},
			func(in map[string]any) {
				in["encrypted_credentials"] = good
				in["credentials"] = secretJSON
			}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := upsert()
			tc.set(payload(m))
			ch, err := tc.p.ParseChange(changeSubject, mustJSON(t, m))
			wantCode(t, tc.name, err, errcode.InvalidConfiguration)
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %v does not say %q", err, tc.why)
			}
			assertNoSecret(t, "error", err.Error())
			assertNoSecret(t, "error %+v", fmt.Sprintf("%+v %#v", err, err))
			if strings.Contains(err.Error(), good) {
				t.Error("the error repeats the token")
			}
			if ch.Integration != nil {
				t.Error("a rejected change carries an integration")
			}
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func encryptRaw(t *testing.T, k *fernet.Key, s string) string {
	tok, err := k.Encrypt([]byte(s), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secretKey, sessionToken, accessKeyID[4:]} {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks %q: %s", what, s, out)
		}
	}
}

func TestCredentialRules(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowPlaintext: true, RoleARNPattern: "arn:aws:iam::*:role/Prowler*"}
	const role = "arn:aws:iam::123456789012:role/ProwlerScan"
	ok := []struct {
		creds map[string]any
		want  event.Credentials
	}{
		{map[string]any{"role_arn": role},
			event.Credentials{RoleARN: role, ExternalID: "t1", RoleSessionName: "prowler-t1", SessionDuration: 3600}},
		// The exporter's identity assumes the role: the tenant's own ID
		// may be given, and is what goes out.
		{map[string]any{"role_arn": role, "external_id": "t1", "role_session_name": "a+b=c,d.e@f-g_h", "session_duration": 900},
			event.Credentials{RoleARN: role, ExternalID: "t1", RoleSessionName: "a+b=c,d.e@f-g_h", SessionDuration: 900}},
		// Keys + role: the external ID is the tenant's to choose.
		{map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "role_arn": role, "external_id": "ext-123"},
			event.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey, RoleARN: role, ExternalID: "ext-123", RoleSessionName: "prowler-t1", SessionDuration: 3600}},
		{map[string]any{"role_arn": role, "role_session_name": "ab", "session_duration": 43200},
			event.Credentials{RoleARN: role, ExternalID: "t1", RoleSessionName: "ab", SessionDuration: 43200}},
		{map[string]any{"role_arn": role, "role_session_name": strings.Repeat("s", 64)},
			event.Credentials{RoleARN: role, ExternalID: "t1", RoleSessionName: strings.Repeat("s", 64), SessionDuration: 3600}},
		{map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "role_arn": role},
			event.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey, RoleARN: role, ExternalID: "t1", RoleSessionName: "prowler-t1", SessionDuration: 3600}},
		{map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey},
			event.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey}},
	}
	for _, tc := range ok {
		m := upsert()
		payload(m)["credentials"] = tc.creds
		ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
		if err != nil {
			t.Errorf("%v: %v", tc.creds["role_arn"], err)
			continue
		}
		if ch.Integration.Credentials != tc.want {
			t.Errorf("credentials = %v, want %v", ch.Integration.Credentials.Redacted(), tc.want.Redacted())
		}
	}

	bad := []struct {
		creds map[string]any
		why   string
	}{
		{map[string]any{"role_arn": "arn:aws:iam::123456789012:role/Admin"}, "not allowed"},
		{map[string]any{"role_arn": "arn:aws:iam::123456789012:user/Prowler"}, "not an IAM role ARN"},
		{map[string]any{"role_arn": role, "role_session_name": "a"}, "role_session_name"},
		{map[string]any{"role_arn": role, "role_session_name": strings.Repeat("s", 65)}, "role_session_name"},
		{map[string]any{"role_arn": role, "role_session_name": "has space"}, "role_session_name"},
		{map[string]any{"role_arn": role, "role_session_name": "slash/no"}, "role_session_name"},
		{map[string]any{"role_arn": role, "session_duration": 899}, "session_duration"},
		{map[string]any{"role_arn": role, "session_duration": 43201}, "session_duration"},
		{map[string]any{"role_arn": role, "session_duration": -1}, "session_duration"},
		{map[string]any{"external_id": "e"}, "need role_arn"},
		{map[string]any{"role_session_name": "name"}, "need role_arn"},
		{map[string]any{"session_duration": 3600}, "need role_arn"},
		{map[string]any{"aws_access_key_id": accessKeyID}, "go together"},
		{map[string]any{"aws_secret_access_key": secretKey}, "go together"},
		{map[string]any{"aws_session_token": sessionToken}, "aws_session_token needs"},
		{map[string]any{"aws_session_token": sessionToken, "role_arn": role}, "aws_session_token needs"},
	}
	for _, tc := range bad {
		m := upsert()
		payload(m)["credentials"] = tc.creds
		_, err := p.ParseChange(changeSubject, mustJSON(t, m))
		wantCode(t, fmt.Sprint(tc.creds), err, errcode.InvalidConfiguration)
		if err != nil {
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %v does not say %q", err, tc.why)
			}
			assertNoSecret(t, "error", err.Error())
		}
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	in := event.IntegrationPayload{ID: "i1", TenantID: "t1", Providers: []string{"p1"},
		Configuration: event.Configuration{BucketName: "bucket", OutputDirectory: " x "}}
	ig, err := p.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if ig.Bucket != "bucket" || ig.OutputDirectory != "x" || !ig.Enabled {
		t.Errorf("Build = %+v", ig)
	}
	in.Type = "amazon_s3"
	if _, err := p.Build(in); err != nil {
		t.Errorf("type amazon_s3: %v", err)
	}
	in.Type = "jira"
	wantCode(t, "type jira", func() error { _, err := p.Build(in); return err }(), errcode.InvalidConfiguration)
	in.Type = ""
	in.ID = ""
	wantCode(t, "no id", func() error { _, err := p.Build(in); return err }(), errcode.InvalidConfiguration)
	in.ID = "i1"
	in.Configuration.BucketName = "x"
	wantCode(t, "bad bucket", func() error { _, err := p.Build(in); return err }(), errcode.S3InvalidBucketName)
}

func TestIntegrationRedacted(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowPlaintext: true}
	m := upsert()
	payload(m)["credentials"] = map[string]any{"aws_access_key_id": accessKeyID, "aws_secret_access_key": secretKey, "aws_session_token": sessionToken}
	ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	ig := ch.Integration

	r := ig.Redacted()
	if r.ID != "i1" || r.TenantID != "t1" || r.Type != "amazon_s3" || r.Enabled == nil || !*r.Enabled ||
		r.Configuration.BucketName != ig.Bucket || r.Configuration.OutputDirectory != ig.OutputDirectory {
		t.Errorf("Redacted = %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "json.Marshal(Redacted())", string(b))
	if !strings.Contains(string(b), "[REDACTED]") {
		t.Errorf("Redacted JSON shows no marker: %s", b)
	}

	// The integration itself, printed or logged by accident.
	// %s, %q, %t... of a struct holding an *Integration take fmt's "bad verb"
	// path, which prints nested fields without calling their methods.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%t", "%d", "%x", "%e"} {
		assertNoSecret(t, verb, fmt.Sprintf(verb, ig))
		assertNoSecret(t, verb, fmt.Sprintf(verb, *ig))
		assertNoSecret(t, verb, fmt.Sprintf(verb, ch))
	}
	if got := fmt.Sprint(ig); !strings.Contains(got, "t1/i1") || !strings.Contains(got, ig.Bucket) {
		t.Errorf("Sprint(ig) = %q, want the ids and bucket", got)
	}
	b, err = json.Marshal(ig)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "json.Marshal(ig)", string(b))

	var buf bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	logger.Info("cached", zap.Object("integration", ig), zap.Any("any", ig), zap.Reflect("reflect", ig),
		zap.Any("creds", ig.Credentials), zap.Any("change", ch))
	out := buf.String()
	if !strings.Contains(out, `"integration_id":"i1"`) {
		t.Errorf("the log lacks the integration: %s", out)
	}
	assertNoSecret(t, "zap", out)
}

func TestParseChangeRefusesTrailingData(t *testing.T) {
	t.Parallel()
	p := &integration.Parser{Prefix: "prowler", AllowPlaintext: true}
	body := `{"action":"delete","integration":{"id":"i1","tenant_id":"t1"}}`
	if _, err := p.ParseChange("prowler.integrations.changed.t1.i1", []byte(body+"\n")); err != nil {
		t.Fatalf("valid payload refused: %v", err)
	}
	for _, tail := range []string{"}", "]", `{"action":"upsert"}`, "x"} {
		_, err := p.ParseChange("prowler.integrations.changed.t1.i1", []byte(body+tail))
		wantCode(t, "trailing "+tail, err, errcode.InvalidConfiguration)
	}
}
