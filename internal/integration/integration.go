// Package integration holds the validated form of an S3 integration, the
// parsing of integration-changed events into it (every rule of contract §2),
// and the in-memory cache the scan path selects integrations from.
package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
)

// Defaults of contract §2. The default role session name is
// DefaultSessionName(tenant_id).
const (
	DefaultSessionDuration = 3600
	MinSessionDuration     = 900
	MaxSessionDuration     = 43200
)

// Integration is a validated amazon_s3 integration: names normalised, defaults
// applied, credentials decrypted. Treat it as immutable once built.
type Integration struct {
	ID                     string
	TenantID               string
	Enabled                bool
	Providers              []string
	Bucket                 string
	OutputDirectory        string
	SSE                    string
	KMSKeyID               string
	StorageClass           string
	BucketOwnerFullControl bool
	// WriteManifest: write a manifest object once every object of a scan
	// has landed (configuration.write_manifest, contract v1.1 §4).
	WriteManifest bool
	Credentials   event.Credentials
	// Revision is the integrations-stream sequence this state came from.
	Revision uint64
}

// Key identifies an integration: "<tenant>/<id>".
func (i *Integration) Key() string { return i.TenantID + "/" + i.ID }

// HasProvider reports whether the integration exports scans of provider.
func (i *Integration) HasProvider(provider string) bool {
	return slices.Contains(i.Providers, provider)
}

// MarshalLogObject logs the integration without secrets.
func (i *Integration) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("integration_id", i.ID)
	enc.AddString("tenant_id", i.TenantID)
	enc.AddString("bucket", i.Bucket)
	enc.AddBool("enabled", i.Enabled)
	return nil
}

// String describes the integration without its credentials.
func (i *Integration) String() string {
	if i == nil {
		return "<nil>"
	}
	return fmt.Sprintf("integration %s/%s (bucket %q, directory %q, enabled %t)", i.TenantID, i.ID, i.Bucket, i.OutputDirectory, i.Enabled)
}

// Format makes every fmt verb print String. Without it, a verb that does not
// suit a pointer (%s of a struct holding an *Integration) makes fmt print the
// fields without calling their methods, credentials included.
func (i *Integration) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(i.String())) }

// Redacted is the integration as control replies show it.
func (i *Integration) Redacted() event.IntegrationPayload {
	enabled := i.Enabled
	creds := i.Credentials
	return event.IntegrationPayload{
		ID: i.ID, TenantID: i.TenantID, Type: event.TypeAmazonS3, Enabled: &enabled,
		Providers: slices.Clone(i.Providers),
		Configuration: event.Configuration{
			BucketName: i.Bucket, OutputDirectory: i.OutputDirectory, SSE: i.SSE,
			KMSKeyID: i.KMSKeyID, StorageClass: i.StorageClass, BucketOwnerFullControl: i.BucketOwnerFullControl,
			WriteManifest: i.WriteManifest,
		},
		Credentials: &creds, // *event.Credentials marshals redacted
	}
}

// Decrypter opens encrypted_credentials (a Fernet token).
type Decrypter interface {
	Decrypt(token []byte, ttl time.Duration, now time.Time) ([]byte, error)
}

// Parser turns integration payloads into Integrations.
type Parser struct {
	// Prefix is the subject prefix ("prowler").
	Prefix string
	// Key decrypts encrypted_credentials; nil refuses them.
	Key Decrypter
	// AllowPlaintext accepts plaintext credentials.
	AllowPlaintext bool
	// RoleARNPattern, when set, is a glob every role_arn must match.
	RoleARNPattern string
	// AllowAmbient accepts integrations with neither keys nor role_arn,
	// which the exporter's own AWS identity writes for
	// (S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS; contract v1.1 §2). Off, such an
	// integration is refused: in a multi-tenant exporter it would let any
	// tenant write with the exporter's identity into any bucket that
	// identity can write (a confused deputy).
	AllowAmbient bool
}

// Change is a parsed integration-changed event.
type Change struct {
	TenantID, ID string
	Action       string
	// Integration is set for a valid upsert of an amazon_s3 integration.
	Integration *Integration
	// Ignored is set for an integration of another type.
	Ignored bool
}

// ParseChange reads an integration-changed event received on subject. When
// the subject names a tenant and integration, the returned Change carries
// them even if the payload is rejected, so that the caller can drop an
// earlier state. A rejected payload is an *errcode.Error (S3InvalidBucketName
// or InvalidConfiguration).
func (p *Parser) ParseChange(subject string, data []byte) (Change, error) {
	toks, err := event.SubjectTokens(subject, p.Prefix, event.IntegrationsChanged, 2)
	if err != nil {
		return Change{}, invalid("%v", err)
	}
	ch := Change{TenantID: toks[0], ID: toks[1]}
	var msg event.IntegrationChanged
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&msg); err != nil {
		return ch, invalid("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ch, invalid("invalid JSON: trailing data after the object")
	}
	ch.Action = msg.Action
	in := msg.Integration
	if in.ID == "" || in.TenantID == "" {
		return ch, invalid("integration.id and integration.tenant_id are required")
	}
	if in.TenantID != ch.TenantID || in.ID != ch.ID {
		return ch, invalid("integration %s/%s differs from the subject's %s/%s", in.TenantID, in.ID, ch.TenantID, ch.ID)
	}
	switch msg.Action {
	case event.ActionDelete:
		return ch, nil
	case event.ActionUpsert:
	case "":
		return ch, invalid("missing action (upsert or delete)")
	default:
		return ch, invalid("unknown action %s (upsert or delete)", quote(msg.Action))
	}
	if in.Type != event.TypeAmazonS3 {
		ch.Ignored = true
		return ch, nil
	}
	ig, err := p.build(in)
	if err != nil {
		return ch, err
	}
	ch.Integration = ig
	return ch, nil
}

// Build validates an integration payload (for example an unsaved one sent to
// the connection test).
func (p *Parser) Build(in event.IntegrationPayload) (*Integration, error) {
	if in.ID == "" || in.TenantID == "" {
		return nil, invalid("integration.id and integration.tenant_id are required")
	}
	if in.Type != "" && in.Type != event.TypeAmazonS3 {
		return nil, invalid("type %s is not amazon_s3", quote(in.Type))
	}
	return p.build(in)
}

func (p *Parser) build(in event.IntegrationPayload) (*Integration, error) {
	if !event.ValidID(in.TenantID) || !event.ValidID(in.ID) {
		return nil, invalid("tenant_id and id may hold only letters, digits, '_', '=' and '-'")
	}
	bucket, err := NormalizeBucketName(in.Configuration.BucketName)
	if err != nil {
		return nil, err
	}
	dir, err := NormalizeOutputDirectory(in.Configuration.OutputDirectory)
	if err != nil {
		return nil, err
	}
	ig := &Integration{
		ID: in.ID, TenantID: in.TenantID, Enabled: in.Enabled == nil || *in.Enabled,
		Bucket: bucket, OutputDirectory: dir,
		SSE: in.Configuration.SSE, KMSKeyID: in.Configuration.KMSKeyID,
		StorageClass: in.Configuration.StorageClass, BucketOwnerFullControl: in.Configuration.BucketOwnerFullControl,
		WriteManifest: in.Configuration.WriteManifest,
	}
	seen := map[string]bool{}
	for _, pr := range in.Providers {
		if pr == "" {
			return nil, invalid("providers must not hold an empty id")
		}
		if !seen[pr] {
			seen[pr] = true
			ig.Providers = append(ig.Providers, pr)
		}
	}
	switch ig.SSE {
	case "", "AES256":
		if ig.KMSKeyID != "" {
			return nil, invalid("kms_key_id needs sse \"aws:kms\"")
		}
	case "aws:kms":
	default:
		return nil, invalid("sse %s: want AES256 or aws:kms", quote(ig.SSE))
	}
	if err := ValidateStorageClass(ig.StorageClass); err != nil {
		return nil, err
	}
	creds, err := p.credentials(in)
	if err != nil {
		return nil, err
	}
	if err := applyCredentialDefaults(&creds, in.TenantID, p.RoleARNPattern, p.AllowAmbient); err != nil {
		return nil, err
	}
	ig.Credentials = creds
	return ig, nil
}

func (p *Parser) credentials(in event.IntegrationPayload) (event.Credentials, error) {
	switch {
	case in.EncryptedCredentials != "" && in.Credentials != nil:
		return event.Credentials{}, invalid("send either credentials or encrypted_credentials, not both")
	case in.EncryptedCredentials != "":
		if p.Key == nil {
			return event.Credentials{}, invalid("encrypted_credentials sent but this exporter has no S3EXPORTER_CREDENTIALS_KEY")
		}
		plain, err := p.Key.Decrypt([]byte(in.EncryptedCredentials), 0, time.Now())
		if err != nil {
			return event.Credentials{}, invalid("encrypted_credentials could not be decrypted with S3EXPORTER_CREDENTIALS_KEY: %v", err)
		}
		var c event.Credentials
		var bound tokenBinding
		err = json.Unmarshal(plain, &c)
		if err == nil {
			err = json.Unmarshal(plain, &bound)
		}
		clear(plain)
		if err != nil {
			return event.Credentials{}, invalid("encrypted_credentials do not hold a credentials JSON object")
		}
		if err := bound.check(in.TenantID, in.ID); err != nil {
			return event.Credentials{}, err
		}
		return c, nil
	case in.Credentials != nil:
		if !in.Credentials.Empty() && !p.AllowPlaintext {
			return event.Credentials{}, invalid("plaintext credentials are refused; send encrypted_credentials (or set S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS=true)")
		}
		return *in.Credentials, nil
	}
	return event.Credentials{}, nil
}

// tokenBinding is what a decrypted encrypted_credentials object may say
// about whose it is (contract v1.1 §2). Pointers tell a field that is absent
// (a Prowler App token: accepted) from one that is present but empty
// (refused: it names no one, so it cannot be this integration).
type tokenBinding struct {
	TenantID      *string `json:"tenant_id"`
	IntegrationID *string `json:"integration_id"`
}

// check refuses a token bound to another tenant or integration, so a token
// copied from one integration is useless in another. The message names the
// mismatching field, not its value: the value is another tenant's.
func (b tokenBinding) check(tenantID, id string) error {
	if b.TenantID != nil && *b.TenantID != tenantID {
		return invalid("encrypted_credentials are bound to another tenant_id than this integration's: re-encrypt them for this integration")
	}
	if b.IntegrationID != nil && *b.IntegrationID != id {
		return invalid("encrypted_credentials are bound to another integration_id than this integration's: re-encrypt them for this integration")
	}
	return nil
}

// AmbientSetting is the setting that lets the exporter's own identity write.
const AmbientSetting = "S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS"

func applyCredentialDefaults(c *event.Credentials, tenantID, pattern string, allowAmbient bool) error {
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return invalid("aws_access_key_id and aws_secret_access_key go together")
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		return invalid("aws_session_token needs aws_access_key_id and aws_secret_access_key")
	}
	if c.RoleARN == "" {
		if c.ExternalID != "" || c.RoleSessionName != "" || c.SessionDuration != 0 {
			return invalid("external_id, role_session_name and session_duration need role_arn")
		}
		if c.AccessKeyID == "" && !allowAmbient {
			return invalid("no credentials: neither access keys nor role_arn are set, and this exporter does not write with its own AWS identity "+
				"(set credentials or a role_arn on the integration; single-tenant deployments may set %s=true)", AmbientSetting)
		}
		return nil
	}
	if err := ValidateRoleARN(c.RoleARN, pattern); err != nil {
		return err
	}
	switch {
	case c.AccessKeyID == "" && c.ExternalID != "" && c.ExternalID != tenantID:
		// The exporter's own identity assumes this role: the external ID
		// is what tells the role's trust policy on whose behalf, so it is
		// the tenant's ID and nothing else, or any tenant could use a
		// role that trusts the exporter for another tenant.
		return invalid("external_id %s: a role assumed with the exporter's own identity (role_arn without keys) always uses the tenant_id as external ID; "+
			"leave external_id out or set it to the tenant_id", quote(c.ExternalID))
	case c.ExternalID == "":
		c.ExternalID = tenantID
	}
	if c.RoleSessionName == "" {
		c.RoleSessionName = DefaultSessionName(tenantID)
	}
	if !sessionNamePattern.MatchString(c.RoleSessionName) {
		return invalid("role_session_name %s must match [\\w+=,.@-]{2,64}", quote(c.RoleSessionName))
	}
	if c.SessionDuration == 0 {
		c.SessionDuration = DefaultSessionDuration
	}
	if c.SessionDuration < MinSessionDuration || c.SessionDuration > MaxSessionDuration {
		return invalid("session_duration %d: must be between %d and %d seconds", c.SessionDuration, MinSessionDuration, MaxSessionDuration)
	}
	return nil
}

// maxSessionName is the longest role session name STS accepts.
const maxSessionName = 64

// DefaultSessionName is the role session name used when an integration sets
// none: "prowler-<tenant_id>", so that the bucket owner's CloudTrail shows
// which tenant acted. Characters STS does not accept (outside [\w+=,.@-])
// become '-', and the name is cut to 64 characters.
func DefaultSessionName(tenantID string) string {
	b := make([]byte, 0, maxSessionName)
	b = append(b, "prowler-"...)
	for _, r := range tenantID {
		if len(b) == maxSessionName {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_+=,.@-", r):
			b = append(b, byte(r))
		default:
			b = append(b, '-')
		}
	}
	return string(b)
}

func invalid(format string, args ...any) error {
	return errcode.Permanent(errcode.InvalidConfiguration, fmt.Errorf(format, args...))
}

// Code returns the contract code of a rejection.
func Code(err error) errcode.Code {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return errcode.InvalidConfiguration
}
