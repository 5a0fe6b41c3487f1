package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Values that must never be printed. The access key ID may show its first
// four characters (AKIA/ASIA), never the rest.
const (
	accessKeyID  = "AKIAIOSFODNN7EXAMPLE"
	keyIDTail    = "IOSFODNN7EXAMPLE"
	secretKey    = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	sessionToken = "FwoGZXIvYXdzEXAMPLESESSIONTOKENvalue0123456789"
)

func secretCreds() event.Credentials {
	return event.Credentials{
		AccessKeyID:     accessKeyID,
		SecretAccessKey: secretKey,
		SessionToken:    sessionToken,
		RoleARN:         "arn:aws:iam::123456789012:role/ProwlerScan",
		ExternalID:      "tenant-1",
		RoleSessionName: "ProwlerS3Export",
		SessionDuration: 3600,
	}
}

// holder is how credentials usually travel: inside another struct.
type holder struct {
	Name  string
	Creds event.Credentials
	Ptr   *event.Credentials
	List  []event.Credentials
	Map   map[string]event.Credentials
}

func secretHolder() holder {
	c := secretCreds()
	return holder{Name: "h", Creds: c, Ptr: &c, List: []event.Credentials{c}, Map: map[string]event.Credentials{"k": c}}
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{secretKey, sessionToken, keyIDTail} {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks %q: %s", what, s, out)
		}
	}
	// The secret's slash-free fragments too (in case of an escaping encoder).
	if strings.Contains(out, "bPxRfiCYEXAMPLEKEY") {
		t.Errorf("%s leaks a fragment of the secret key: %s", what, out)
	}
}

func TestCredentialsRedactedByFmt(t *testing.T) {
	t.Parallel()
	c := secretCreds()
	h := secretHolder()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T %v"} {
		for name, v := range map[string]any{
			"value": c, "pointer": &c, "holder": h, "holder pointer": &h,
			"slice": []event.Credentials{c}, "map": map[string]*event.Credentials{"a": &c},
		} {
			out := fmt.Sprintf(verb, v)
			if verb == "%T %v" {
				out = fmt.Sprintf(verb, v, v)
			}
			assertNoSecret(t, fmt.Sprintf("Sprintf(%s, %s)", verb, name), out)
		}
	}
	// log.Print and Println use the same machinery.
	var buf bytes.Buffer
	l := log.New(&buf, "", 0)
	l.Print(c, h)
	l.Println(&c)
	assertNoSecret(t, "log.Print", buf.String())
	// An error that wraps credentials by value.
	err := fmt.Errorf("building client for %v: %w", c, errors.New("boom"))
	assertNoSecret(t, "error text", err.Error())

	// The printed form still says what kind of credentials these are.
	out := fmt.Sprint(c)
	for _, want := range []string{"AKIA", "[REDACTED]", "arn:aws:iam::123456789012:role/ProwlerScan"} {
		if !strings.Contains(out, want) {
			t.Errorf("Sprint(creds) = %s, want it to show %q", out, want)
		}
	}
}

func TestCredentialsRedactedByJSON(t *testing.T) {
	t.Parallel()
	c := secretCreds()
	h := secretHolder()
	for name, v := range map[string]any{
		"value": c, "pointer": &c, "holder": h,
		"payload": event.IntegrationPayload{ID: "i", TenantID: "t", Credentials: &c},
		"changed": event.IntegrationChanged{Action: "upsert", Integration: event.IntegrationPayload{Credentials: &c}},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%s): %v", name, err)
		}
		assertNoSecret(t, "json.Marshal "+name, string(b))
		b, err = json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		assertNoSecret(t, "json.MarshalIndent "+name, string(b))
	}
	b, _ := json.Marshal(c)
	var r event.RedactedCredentials
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.SecretAccessKey != "[REDACTED]" || r.SessionToken != "[REDACTED]" || !strings.HasPrefix(r.AccessKeyID, "AKIA") ||
		r.RoleARN != c.RoleARN || r.ExternalID != c.ExternalID || r.SessionDuration != 3600 {
		t.Errorf("redacted JSON = %s", b)
	}
	// Unset secrets stay unset rather than showing a marker.
	b, _ = json.Marshal(event.Credentials{RoleARN: "arn:aws:iam::123456789012:role/R"})
	if strings.Contains(string(b), "REDACTED") || strings.Contains(string(b), "aws_secret_access_key") {
		t.Errorf("role-only credentials marshal as %s", b)
	}
}

func TestCredentialsRedactedByZap(t *testing.T) {
	t.Parallel()
	c := secretCreds()
	h := secretHolder()
	fields := []zap.Field{
		zap.Any("any", c), zap.Any("anyptr", &c), zap.Object("object", c),
		zap.Reflect("reflect", c), zap.Stringer("stringer", c),
		zap.Any("holder", h), zap.Reflect("holderreflect", &h),
		zap.Any("slice", []event.Credentials{c}),
	}

	// A real JSON encoder, as the daemon uses.
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel)
	logger := zap.New(core)
	logger.Info("integration", fields...)
	logger.With(zap.Any("ctx", c)).Error("with context", zap.Error(fmt.Errorf("x: %v", c)))
	_ = logger.Sync()
	out := buf.String()
	if !strings.Contains(out, `"msg":"integration"`) || !strings.Contains(out, "arn:aws:iam::123456789012:role/ProwlerScan") {
		t.Fatalf("the log did not record the fields: %s", out)
	}
	assertNoSecret(t, "zap JSON", out)

	// The console encoder too.
	buf.Reset()
	logger = zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	logger.Info("integration", fields...)
	assertNoSecret(t, "zap console", buf.String())

	// And what an observer sees (the in-memory map form).
	obs, logs := observer.New(zapcore.DebugLevel)
	zap.New(obs).Info("integration", fields...)
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	assertNoSecret(t, "zap observer", fmt.Sprint(entries[0].ContextMap()))
	b, err := json.Marshal(entries[0].ContextMap())
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "zap observer JSON", string(b))
}

func TestCredentialsWire(t *testing.T) {
	t.Parallel()
	in := []byte(`{"aws_access_key_id":"` + accessKeyID + `","aws_secret_access_key":"` + secretKey +
		`","aws_session_token":"` + sessionToken + `","role_arn":"arn:aws:iam::123456789012:role/R","external_id":"e",` +
		`"role_session_name":"n","session_duration":900,"unknown":1}`)
	var c event.Credentials
	if err := json.Unmarshal(in, &c); err != nil {
		t.Fatal(err)
	}
	want := event.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey, SessionToken: sessionToken,
		RoleARN: "arn:aws:iam::123456789012:role/R", ExternalID: "e", RoleSessionName: "n", SessionDuration: 900}
	if c != want {
		t.Fatalf("Unmarshal read %#v", c.Redacted())
	}
	// WireJSON is the one way to get the secrets out, and round-trips.
	b, err := c.WireJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), secretKey) {
		t.Error("WireJSON lost the secret")
	}
	var back event.Credentials
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Errorf("WireJSON round trip: %v", err)
	}
	// Inside a payload, credentials are read with their secrets too.
	var p event.IntegrationPayload
	if err := json.Unmarshal([]byte(`{"id":"i","credentials":`+string(in)+`}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Credentials == nil || *p.Credentials != want {
		t.Error("payload credentials not read")
	}
}

func TestCredentialsEmptyAndMask(t *testing.T) {
	t.Parallel()
	if !(event.Credentials{}).Empty() {
		t.Error("zero credentials are not Empty")
	}
	if (event.Credentials{SessionDuration: 900}).Empty() {
		t.Error("credentials with a field are Empty")
	}
	for id, want := range map[string]string{
		"":                     "",
		"AKIA":                 "[REDACTED]",
		"AKI":                  "[REDACTED]",
		"ASIAXXXXXXXXXXXXXXXX": "ASIA…[REDACTED]",
	} {
		if got := (event.Credentials{AccessKeyID: id}).Redacted().AccessKeyID; got != want {
			t.Errorf("mask(%q) = %q, want %q", id, got, want)
		}
	}
}
