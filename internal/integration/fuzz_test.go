package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// FuzzNormalizeOutputDirectory checks that an accepted directory is in its
// final form: normalising it again changes nothing, and it can't move a key
// out of the directory or collapse into the bucket root.
func FuzzNormalizeOutputDirectory(f *testing.F) {
	for _, s := range []string{
		"//test//a///", "", "  ", "/////", "a/../b", "a/./b", "  x  ", "a<b", "a\x00b",
		strings.Repeat("a", 900), strings.Repeat("a", 901), "a/ /", "/ /a", "a/. /", "a/.. /",
		"x/ / /", "a\u00a0/b\u00a0/", "a\u0085b", "..", ". /..", "\xff/\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		dir, err := integration.NormalizeOutputDirectory(in)
		if err != nil {
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code != errcode.InvalidConfiguration || e.Retryable {
				t.Fatalf("NormalizeOutputDirectory(%q): error %v is not a permanent InvalidConfiguration", in, err)
			}
			return
		}
		again, err := integration.NormalizeOutputDirectory(dir)
		if err != nil || again != dir {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, dir, again, err)
		}
		if dir == "" || len(dir) > integration.MaxOutputDirectoryLen {
			t.Fatalf("%q -> %q: bad length %d", in, dir, len(dir))
		}
		if strings.Contains(dir, "//") || strings.HasPrefix(dir, "/") || strings.HasSuffix(dir, "/") {
			t.Fatalf("%q -> %q: not a clean relative path", in, dir)
		}
		for _, seg := range strings.Split(dir, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q: has a %q segment", in, dir, seg)
			}
		}
		if strings.TrimSpace(dir) != dir {
			t.Fatalf("%q -> %q: surrounding white space", in, dir)
		}
		if strings.ContainsAny(dir, `<>:"|?*`) || strings.ContainsFunc(dir, unicode.IsControl) {
			t.Fatalf("%q -> %q: forbidden character", in, dir)
		}
		if strings.TrimSpace(in) == "" && dir != integration.DefaultOutputDirectory {
			t.Fatalf("blank %q -> %q", in, dir)
		}
	})
}

// FuzzNormalizeBucketName checks that accepted names follow the S3 naming
// rules and normalise to themselves.
func FuzzNormalizeBucketName(f *testing.F) {
	for _, s := range []string{"my-bucket", "s3://my-bucket", "192.168.5.4", "a..b", "-ab", "ab", "AB_c", " s3://x.y-z "} {
		f.Add(s)
	}
	rule := regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	ipShape := regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
	f.Fuzz(func(t *testing.T, in string) {
		name, err := integration.NormalizeBucketName(in)
		if err != nil {
			if integration.Code(err) != errcode.S3InvalidBucketName {
				t.Fatalf("NormalizeBucketName(%q): code %s", in, integration.Code(err))
			}
			return
		}
		if !rule.MatchString(name) || strings.Contains(name, "..") || ipShape.MatchString(name) {
			t.Fatalf("NormalizeBucketName(%q) = %q breaks the naming rules", in, name)
		}
		if again, err := integration.NormalizeBucketName(name); err != nil || again != name {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, name, again, err)
		}
	})
}

// fuzzKey is a fixed test key (32 bytes of a counter), not a secret.
func fuzzKey(tb testing.TB) *fernet.Key {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	k, err := fernet.ParseKey(base64.URLEncoding.EncodeToString(raw))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var sessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// FuzzParseChange feeds arbitrary subjects and payloads to ParseChange. It
// must never panic, must reject with a contract code, and whatever it accepts
// must hold the invariants the rest of the exporter relies on.
func FuzzParseChange(f *testing.F) {
	key := fuzzKey(f)
	tok, err := key.Encrypt([]byte(`{"aws_access_key_id":"AKIAX","aws_secret_access_key":"s","role_arn":"arn:aws:iam::123456789012:role/ProwlerX"}`), time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	m := upsert()
	f.Add(changeSubject, mustJSON(f, m), false)
	payload(m)["encrypted_credentials"] = string(tok)
	f.Add(changeSubject, mustJSON(f, m), false)
	delete(payload(m), "encrypted_credentials")
	payload(m)["credentials"] = map[string]any{"aws_access_key_id": "AKIAX", "aws_secret_access_key": "s",
		"role_arn": "arn:aws:iam::123456789012:role/ProwlerX", "session_duration": 900, "role_session_name": "n@me"}
	f.Add(changeSubject, mustJSON(f, m), true)
	f.Add(changeSubject, mustJSON(f, m), false)
	f.Add(changeSubject, []byte(`{"action":"delete","integration":{"id":"i1","tenant_id":"t1"}}`), false)
	f.Add("prowler.integrations.changed.t1.i 1", []byte(`{"action":"upsert","integration":{"id":"i 1","tenant_id":"t1","type":"amazon_s3","configuration":{"bucket_name":"abc","output_directory":"a/ /"}}}`), false)
	f.Add(changeSubject, []byte(`{"action":"upsert","integration":{"id":"i1","tenant_id":"t1","type":"jira"}}`), false)
	f.Add(changeSubject, []byte(`{"action":"upsert","integration":{"id":"i1","tenant_id":"t1","type":"amazon_s3","encrypted_credentials":"gAAAAA=="}}`), false)
	f.Add("prowler.integrations.changed.t1", []byte(`{}`), false)

	f.Fuzz(func(t *testing.T, subject string, data []byte, allowPlain bool) {
		p := &integration.Parser{Prefix: "prowler", Key: key, AllowPlaintext: allowPlain, RoleARNPattern: "arn:aws:iam::*:role/Prowler*"}
		ch, err := p.ParseChange(subject, data)
		toks, subjErr := event.SubjectTokens(subject, "prowler", event.IntegrationsChanged, 2)
		if subjErr == nil && (ch.TenantID != toks[0] || ch.ID != toks[1]) {
			t.Fatalf("change %s/%s on subject %q", ch.TenantID, ch.ID, subject)
		}
		if err != nil {
			var e *errcode.Error
			if !errors.As(err, &e) || e.Retryable ||
				(e.Code != errcode.InvalidConfiguration && e.Code != errcode.S3InvalidBucketName) {
				t.Fatalf("error %v (%T) is not a permanent contract rejection", err, err)
			}
			if ch.Integration != nil || ch.Ignored {
				t.Fatalf("a rejected change carries %+v", ch)
			}
			return
		}
		if subjErr != nil {
			t.Fatalf("accepted subject %q", subject)
		}
		if ch.Action != event.ActionUpsert && ch.Action != event.ActionDelete {
			t.Fatalf("accepted action %q", ch.Action)
		}
		if ch.Action == event.ActionDelete || ch.Ignored {
			if ch.Integration != nil {
				t.Fatalf("a delete or ignored change carries an integration")
			}
			return
		}
		ig := ch.Integration
		if ig == nil {
			t.Fatal("an accepted upsert without an integration")
		}
		checkIntegration(t, ig, ch)

		// Plaintext credentials are only taken when allowed.
		var msg event.IntegrationChanged
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&msg); err != nil {
			t.Fatalf("accepted undecodable data: %v", err)
		}
		if c := msg.Integration.Credentials; c != nil && !c.Empty() && !allowPlain {
			t.Fatal("plaintext credentials accepted while refused")
		}
	})
}

func checkIntegration(t *testing.T, ig *integration.Integration, ch integration.Change) {
	t.Helper()
	if ig.ID != ch.ID || ig.TenantID != ch.TenantID || !event.ValidID(ig.ID) || !event.ValidID(ig.TenantID) {
		t.Fatalf("integration %s/%s on change %s/%s", ig.TenantID, ig.ID, ch.TenantID, ch.ID)
	}
	if b, err := integration.NormalizeBucketName(ig.Bucket); err != nil || b != ig.Bucket {
		t.Fatalf("bucket %q is not normalised: %q, %v", ig.Bucket, b, err)
	}
	if d, err := integration.NormalizeOutputDirectory(ig.OutputDirectory); err != nil || d != ig.OutputDirectory {
		t.Fatalf("directory %q is not normalised: %q, %v", ig.OutputDirectory, d, err)
	}
	seen := map[string]bool{}
	for _, p := range ig.Providers {
		if p == "" || seen[p] {
			t.Fatalf("providers %q", ig.Providers)
		}
		seen[p] = true
	}
	switch ig.SSE {
	case "", "AES256":
		if ig.KMSKeyID != "" {
			t.Fatalf("kms key with sse %q", ig.SSE)
		}
	case "aws:kms":
	default:
		t.Fatalf("sse %q", ig.SSE)
	}
	c := ig.Credentials
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") || (c.SessionToken != "" && c.AccessKeyID == "") {
		t.Fatalf("half a key pair: %v", c)
	}
	if c.RoleARN == "" {
		if c.ExternalID != "" || c.RoleSessionName != "" || c.SessionDuration != 0 {
			t.Fatalf("role settings without a role: %v", c)
		}
		return
	}
	if err := integration.ValidateRoleARN(c.RoleARN, "arn:aws:iam::*:role/Prowler*"); err != nil {
		t.Fatalf("accepted role %q: %v", c.RoleARN, err)
	}
	if c.ExternalID == "" || !sessionName.MatchString(c.RoleSessionName) ||
		c.SessionDuration < integration.MinSessionDuration || c.SessionDuration > integration.MaxSessionDuration {
		t.Fatalf("role settings %v", c)
	}
}
