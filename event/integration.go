package event

import (
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap/zapcore"
)

// Integration actions.
const (
	ActionUpsert = "upsert"
	ActionDelete = "delete"
)

// TypeAmazonS3 is the only integration type the exporter handles.
const TypeAmazonS3 = "amazon_s3"

// IntegrationChanged is the payload of
// prowler.integrations.changed.<tenant>.<integration>.
type IntegrationChanged struct {
	Action      string             `json:"action"`
	OccurredAt  *time.Time         `json:"occurred_at,omitempty"`
	Integration IntegrationPayload `json:"integration"`
}

// IntegrationPayload is an integration as admins send it.
type IntegrationPayload struct {
	ID                   string        `json:"id"`
	TenantID             string        `json:"tenant_id"`
	Type                 string        `json:"type"`
	Enabled              *bool         `json:"enabled,omitempty"`
	Providers            []string      `json:"providers"`
	Configuration        Configuration `json:"configuration"`
	Credentials          *Credentials  `json:"credentials,omitempty"`
	EncryptedCredentials string        `json:"encrypted_credentials,omitempty"`
}

// Configuration is where an integration's files go.
type Configuration struct {
	BucketName             string `json:"bucket_name"`
	OutputDirectory        string `json:"output_directory"`
	SSE                    string `json:"sse,omitempty"`
	KMSKeyID               string `json:"kms_key_id,omitempty"`
	StorageClass           string `json:"storage_class,omitempty"`
	BucketOwnerFullControl bool   `json:"bucket_owner_full_control,omitempty"`
	// WriteManifest (v1.1 §4): after every object of a scan has landed,
	// write {dir}/manifests/prowler-output-{uid}-{ts}.manifest.json listing
	// them. Default false.
	WriteManifest bool `json:"write_manifest,omitempty"`
}

// Credentials are an integration's AWS credentials. Every field is optional.
// The type redacts its secrets when printed, marshalled to JSON or logged, so
// an accident cannot leak them; use Unmarshal to read it off the wire.
type Credentials struct {
	AccessKeyID     string `json:"aws_access_key_id,omitempty"`
	SecretAccessKey string `json:"aws_secret_access_key,omitempty"`
	SessionToken    string `json:"aws_session_token,omitempty"`
	RoleARN         string `json:"role_arn,omitempty"`
	ExternalID      string `json:"external_id,omitempty"`
	RoleSessionName string `json:"role_session_name,omitempty"`
	SessionDuration int    `json:"session_duration,omitempty"`
}

// credentialsWire has the same fields without the redacting methods.
type credentialsWire Credentials

// UnmarshalJSON reads credentials from the wire.
func (c *Credentials) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, (*credentialsWire)(c))
}

// WireJSON encodes the credentials with their secrets, for a client that sends
// them to the exporter (or encrypts them). Never use it for output.
func (c Credentials) WireJSON() ([]byte, error) {
	return json.Marshal(credentialsWire(c))
}

// Redacted returns a copy whose secret fields are replaced by a marker.
func (c Credentials) Redacted() RedactedCredentials {
	r := RedactedCredentials{
		AccessKeyID:     maskKeyID(c.AccessKeyID),
		RoleARN:         c.RoleARN,
		ExternalID:      c.ExternalID,
		RoleSessionName: c.RoleSessionName,
		SessionDuration: c.SessionDuration,
	}
	if c.SecretAccessKey != "" {
		r.SecretAccessKey = redacted
	}
	if c.SessionToken != "" {
		r.SessionToken = redacted
	}
	return r
}

const redacted = "[REDACTED]"

// maskKeyID keeps the first four characters of an access key ID (its type,
// AKIA or ASIA) so an admin can tell kinds apart without seeing the key.
func maskKeyID(id string) string {
	if id == "" {
		return ""
	}
	if len(id) <= 4 {
		return redacted
	}
	return id[:4] + "…" + redacted
}

// RedactedCredentials is what the exporter shows of credentials.
type RedactedCredentials struct {
	AccessKeyID     string `json:"aws_access_key_id,omitempty"`
	SecretAccessKey string `json:"aws_secret_access_key,omitempty"`
	SessionToken    string `json:"aws_session_token,omitempty"`
	RoleARN         string `json:"role_arn,omitempty"`
	ExternalID      string `json:"external_id,omitempty"`
	RoleSessionName string `json:"role_session_name,omitempty"`
	SessionDuration int    `json:"session_duration,omitempty"`
}

// MarshalJSON writes the redacted form.
func (c Credentials) MarshalJSON() ([]byte, error) { return json.Marshal(c.Redacted()) }

// String prints the redacted form.
func (c Credentials) String() string {
	b, _ := json.Marshal(c.Redacted())
	return string(b)
}

// GoString prints the redacted form for %#v.
func (c Credentials) GoString() string { return "event.Credentials" + c.String() }

// Format makes every fmt verb print the redacted form, %+v included.
func (c Credentials) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// MarshalLogObject logs the redacted form.
func (c Credentials) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	r := c.Redacted()
	enc.AddString("aws_access_key_id", r.AccessKeyID)
	enc.AddString("role_arn", r.RoleARN)
	enc.AddBool("has_secret", c.SecretAccessKey != "")
	return nil
}

// Empty reports whether no field is set (use the SDK default chain).
func (c Credentials) Empty() bool { return c == Credentials{} }
