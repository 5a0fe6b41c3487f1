package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
	"github.com/prowler-cloud/s3-exporter/testutil/ststest"
)

// Canary secrets go through a whole admin scenario (plaintext and encrypted
// integrations, static keys, a wrong secret, a session token, an assumed
// role, connection tests, exports that succeed and fail, get, replay); none
// of them may show in a log line, a status event, a control reply or
// /metrics (contract §6).
func TestCanarySecretsNeverLeave(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	const (
		tenant       = "tenant-canary"
		canaryKeyID  = "AKIACANARYQ7Z3X9W2PL"
		canarySecret = "canary/SECRET+Zq8vK3mW1xT7pR2nB5yL0dF4hJ6gS9c"
		canaryToken  = "CANARYsessionTOKEN/8zQxWv3+RkT9yLmN2pB7cD4fG6hJ1kL0w=="
		canaryRole   = "arn:aws:iam::123456789012:role/ProwlerCanary"
	)
	fernetKey, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The assumed role hands out the canary keys with the canary token
	// (which versitygw refuses: that export fails).
	sts := ststest.NewSTS(t, ststest.STSCredentials{AccessKeyID: canaryKeyID, SecretAccessKey: canarySecret, SessionToken: canaryToken})
	sts.Expect(canaryRole, "")
	e := newEnv(t, func(c *config.Config) {
		c.CredentialsKey = config.Secret(fernetKey)
		c.STSEndpoint = sts.URL()
	})
	b := e.bucket("canary")
	if err := e.s3.CreateUser(canaryKeyID, canarySecret, s3test.RoleUser); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.s3.DeleteUser(canaryKeyID) })
	e.s3.MustPutBucketPolicy(t, b, documentedPolicy(t, b, true, canaryKeyID))

	var replies [][]byte
	control := func(kind string, req any) []byte {
		t.Helper()
		body, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		raw := e.rawControl(kind, body)
		replies = append(replies, raw)
		return raw
	}
	seal := func(key string, c event.Credentials) string {
		t.Helper()
		k, err := fernet.ParseKey(key)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := c.WireJSON()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := k.Encrypt(plain, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}
	keys := event.Credentials{AccessKeyID: canaryKeyID, SecretAccessKey: canarySecret}
	withToken := event.Credentials{AccessKeyID: canaryKeyID, SecretAccessKey: canarySecret, SessionToken: canaryToken}
	role := event.Credentials{AccessKeyID: canaryKeyID, SecretAccessKey: canarySecret, RoleARN: canaryRole}

	plain := e.integration(tenant, "plain", b, "prov-1")
	plain.Credentials = &keys
	sealed := e.integration(tenant, "sealed", b, "prov-1")
	sealed.Credentials, sealed.EncryptedCredentials = nil, seal(fernetKey, keys)
	token := e.integration(tenant, "token", b, "prov-1")
	token.Credentials = &withToken
	assumed := e.integration(tenant, "assumed", b, "prov-1")
	assumed.Credentials = nil
	assumed.EncryptedCredentials = seal(fernetKey, role)
	badSecret := e.integration(tenant, "bad-secret", b, "prov-1")
	badSecret.Credentials = &event.Credentials{AccessKeyID: canaryKeyID, SecretAccessKey: "not-" + canarySecret}
	wrongKey := e.integration(tenant, "wrong-key", b, "prov-1")
	wrongKey.Credentials, wrongKey.EncryptedCredentials = nil, seal(otherKey, withToken)

	// Unsaved tests, with the secrets in the request.
	for _, in := range []event.IntegrationPayload{plain, sealed, token, assumed, badSecret, wrongKey} {
		in.ID += "-unsaved"
		wire, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var req map[string]any
		if err := json.Unmarshal(wire, &req); err != nil {
			t.Fatal(err)
		}
		if in.Credentials != nil {
			cw, _ := in.Credentials.WireJSON()
			var c map[string]any
			_ = json.Unmarshal(cw, &c)
			req["credentials"] = c
		}
		if rep := control(event.ControlTest, map[string]any{"integration": req}); !strings.Contains(string(rep), `"checked_at"`) {
			t.Errorf("unsaved test of %s: %s", in.ID, rep)
		}
	}

	// Saved: the automatic tests, tests by id, get.
	want := map[string]errcode.Code{"plain": "", "sealed": "", "token": errcode.AWSInvalidCredentials,
		"assumed": errcode.AWSInvalidCredentials, "bad-secret": errcode.AWSInvalidCredentials, "wrong-key": errcode.InvalidConfiguration}
	for _, in := range []event.IntegrationPayload{plain, sealed, token, assumed, badSecret, wrongKey} {
		st := e.putAndWaitConn(in)
		checkStatus(t, in.ID+" automatic", st.Connected, st.Error, string(want[in.ID]))
		control(event.ControlTest, event.TestRequest{TenantID: tenant, IntegrationID: in.ID})
		got := control(event.ControlGet, event.GetRequest{TenantID: tenant, IntegrationID: in.ID})
		if in.ID != "wrong-key" && !strings.Contains(string(got), "AKIA…[REDACTED]") {
			t.Errorf("get %s: %s, want the masked key ID AKIA…[REDACTED]", in.ID, got)
		}
	}
	for _, id := range []string{"plain", "sealed", "token", "assumed", "bad-secret", "wrong-key"} {
		e.noUnsavedStatus(tenant, id+"-unsaved")
	}
	if c := callsOf(sts, canaryRole); len(c) == 0 {
		t.Error("the assumed role was never assumed")
	}

	// Exports: two succeed, three fail; then a replay.
	files, _ := prowlerFiles(71, "111122223333")
	e.publishScan(tenant, "prov-1", "111122223333", "scan-canary", files)
	for id, code := range want {
		if id == "wrong-key" {
			continue
		}
		ex := e.waitExport("scan-canary", id)
		switch {
		case code == "" && ex.State != event.StateSucceeded:
			t.Errorf("%s: export %s %v", id, ex.State, ex.Errors)
		case code != "" && (ex.State != event.StateFailed || len(ex.Errors) == 0 || ex.Errors[0].Code != string(code)):
			t.Errorf("%s: export %s %v, want failed with %s", id, ex.State, ex.Errors, code)
		}
	}
	if !strings.Contains(string(control(event.ControlReplay, event.ReplayRequest{TenantID: tenant, ScanID: "scan-canary", IntegrationID: "plain"})), `"accepted":true`) {
		t.Error("replay not accepted")
	}
	e.waitExports("scan-canary", "plain", 2)
	control(event.ControlReplay, event.ReplayRequest{TenantID: tenant, ScanID: "scan-canary", IntegrationID: "wrong-key"})

	// Now look everywhere.
	canaries := map[string]string{
		"access key ID": canaryKeyID, "secret access key": canarySecret, "session token": canaryToken,
		"Fernet key": fernetKey, "Fernet key (unpadded)": strings.TrimRight(fernetKey, "="),
	}
	var places []struct{ where, text string }
	look := func(where, text string) { places = append(places, struct{ where, text string }{where, text}) }

	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	if len(e.logs.All()) < 20 {
		t.Fatalf("only %d log lines: the scenario did not run", len(e.logs.All()))
	}
	for _, l := range e.logs.All() {
		buf, err := enc.EncodeEntry(l.Entry, l.Context)
		if err != nil {
			t.Fatalf("encoding log line %q: %v", l.Message, err)
		}
		look("log line", buf.String())
		buf.Free()
	}
	statuses := e.statusStream()
	if len(statuses) < 15 {
		t.Fatalf("only %d status events: the scenario did not run", len(statuses))
	}
	for _, m := range statuses {
		look("status event on "+m.Subject, m.Subject+" "+string(m.Data)+" "+headerText(m.Header))
	}
	for _, r := range replies {
		look("control reply", string(r))
	}
	_, metricsText := httpGet(t, "http://"+e.d.MetricsAddr()+"/metrics")
	look("/metrics", metricsText)

	for _, p := range places {
		for what, c := range canaries {
			if strings.Contains(p.text, c) {
				t.Errorf("the %s appears in a %s: %s", what, p.where, p.text)
			}
		}
	}
}

func headerText(h map[string][]string) string {
	var b strings.Builder
	for k, vs := range h {
		b.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	return b.String()
}
