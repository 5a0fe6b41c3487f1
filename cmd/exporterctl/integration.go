package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/fernet"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

const integrationPutHelp = `Usage:
  exporterctl integration put --tenant T --id I --bucket B --provider P [--provider P2 ...] [flags]
  exporterctl integration put --file payload.json [--encrypt]

Publishes the full state of an amazon_s3 integration (an upsert) on
<prefix>.integrations.changed.<tenant>.<id>. The integration is checked with
the exporter's own rules before it is sent: an invalid upsert would make the
exporter drop the integration's earlier, valid state.

Integration:
  --tenant T                  tenant id (required)
  --id I                      integration id (required)
  --bucket B                  bucket name, with or without s3:// (required)
  --dir D                     output directory in the bucket (default "output")
  --provider P                provider id whose scans are exported; repeat or comma-separate (required)
  --disabled                  publish the integration disabled
  --sse AES256|aws:kms        server-side encryption
  --kms-key-id K              KMS key for --sse aws:kms
  --storage-class C           S3 storage class
  --bucket-owner-full-control grant the bucket owner full control of the objects
  --write-manifest            after each scan's objects, write a manifest listing them
                              ({dir}/manifests/…manifest.json, contract v1.1 §4)

Credentials (none means the exporter's own AWS identity, which an exporter accepts
only with S3EXPORTER_ALLOW_AMBIENT_CREDENTIALS=true):
  --access-key-id K           AWS access key id
  --secret-access-key S       AWS secret access key (visible to other local users; prefer the file
                              or AWS_SECRET_ACCESS_KEY, which is read only with --access-key-id)
  --secret-access-key-file F  file holding the secret access key
  --session-token T           AWS session token (or --session-token-file F)
  --role-arn ARN              role to assume
  --external-id X             external id for the role (default: the tenant id; without keys
                              it can only be the tenant id)
  --role-session-name N       role session name (default prowler-<tenant id>)
  --session-duration N        role session duration in seconds (900 to 43200; default 3600)

Encryption:
  --encrypt                   send the credentials as encrypted_credentials (a Fernet token)
  --key-file F                file holding the Fernet key (default: env S3EXPORTER_CREDENTIALS_KEY;
                              of several comma-separated keys the first encrypts)
  The token is bound to the integration (it carries tenant_id and integration_id), so
  the exporter refuses it in any other integration.
  Without --encrypt the credentials travel in clear, which only an exporter with
  S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS=true accepts.

Payload:
  --file F                    a JSON integration object (as in the contract's "integration"
                              field, or a whole integration-changed event); "-" reads stdin.
                              Cannot be combined with the integration and credential flags.
`

const integrationDeleteHelp = `Usage: exporterctl integration delete --tenant T --id I

Publishes the deletion of an integration.
`

const integrationGetHelp = `Usage: exporterctl integration get --tenant T --id I

Prints, as JSON, the integration as the exporter holds it (normalised, with
its credentials redacted) and its last connection status. Exits 5 when the
exporter does not know the integration (never published, deleted, or
rejected).
`

const integrationTestHelp = `Usage:
  exporterctl integration test --tenant T --id I
  exporterctl integration test --file payload.json [--encrypt [--key-file F]]

Asks the exporter to test the connection of a saved integration, or of an
unsaved one read from a JSON file ("-" reads stdin). Prints "connected" and
exits 0, or prints the error code and message and exits 3.
`

// integrationFlags are the flags that describe an integration in put.
var integrationFlags = []string{
	"tenant", "id", "bucket", "dir", "provider", "disabled", "sse", "kms-key-id", "storage-class",
	"bucket-owner-full-control", "write-manifest", "access-key-id", "secret-access-key", "secret-access-key-file",
	"session-token", "session-token-file", "role-arn", "external-id", "role-session-name", "session-duration",
}

type putOptions struct {
	tenant, id, bucket, dir     string
	providers                   stringList
	disabled                    bool
	sse, kmsKeyID, storageClass string
	ownerFullControl            bool
	writeManifest               bool

	accessKeyID, secret, secretFile  string
	sessionToken, sessionTokenFile   string
	roleARN, externalID, sessionName string
	sessionDuration                  int

	encrypt bool
	keyFile string
	file    string
}

func (a *app) parse(fs *flag.FlagSet, name string, args []string) ([]string, error) {
	pos, err := parseInterleaved(fs, args, false)
	if err != nil {
		return nil, flagError(err, commandHelp(findCommand(name)))
	}
	return pos, nil
}

func runIntegrationPut(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("integration put")
	a.g.register(fs)
	var o putOptions
	fs.StringVar(&o.tenant, "tenant", "", "")
	fs.StringVar(&o.id, "id", "", "")
	fs.StringVar(&o.bucket, "bucket", "", "")
	fs.StringVar(&o.dir, "dir", "", "")
	fs.Var(&o.providers, "provider", "")
	fs.BoolVar(&o.disabled, "disabled", false, "")
	fs.StringVar(&o.sse, "sse", "", "")
	fs.StringVar(&o.kmsKeyID, "kms-key-id", "", "")
	fs.StringVar(&o.storageClass, "storage-class", "", "")
	fs.BoolVar(&o.ownerFullControl, "bucket-owner-full-control", false, "")
	fs.BoolVar(&o.writeManifest, "write-manifest", false, "")
	fs.StringVar(&o.accessKeyID, "access-key-id", "", "")
	fs.StringVar(&o.secret, "secret-access-key", "", "")
	fs.StringVar(&o.secretFile, "secret-access-key-file", "", "")
	fs.StringVar(&o.sessionToken, "session-token", "", "")
	fs.StringVar(&o.sessionTokenFile, "session-token-file", "", "")
	fs.StringVar(&o.roleARN, "role-arn", "", "")
	fs.StringVar(&o.externalID, "external-id", "", "")
	fs.StringVar(&o.sessionName, "role-session-name", "", "")
	fs.IntVar(&o.sessionDuration, "session-duration", 0, "")
	fs.BoolVar(&o.encrypt, "encrypt", false, "")
	fs.StringVar(&o.keyFile, "key-file", "", "")
	fs.StringVar(&o.file, "file", "", "")
	pos, err := a.parse(fs, "integration put", args)
	// Register the secrets before anything can print them.
	a.secrets.add(o.secret, o.sessionToken)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	set := setFlags(fs)

	var in event.IntegrationPayload
	if set["file"] {
		var clash []string
		for _, f := range integrationFlags {
			if set[f] {
				clash = append(clash, "--"+f)
			}
		}
		if len(clash) > 0 {
			return usageErrorf("--file cannot be combined with %s", strings.Join(clash, ", "))
		}
		if in, err = a.readPayload(o.file); err != nil {
			return err
		}
		if err := validatePayload(in); err != nil {
			return fmt.Errorf("%s: %w", o.file, err)
		}
	} else {
		if in, err = a.payloadFromFlags(&o, set); err != nil {
			return err
		}
		if err := validatePayload(in); err != nil {
			return &exitErr{code: exitUsage, err: err}
		}
	}
	mode, err := a.sealCredentials(&in, o.encrypt, o.keyFile, set)
	if err != nil {
		return err
	}

	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	if err := a.request(ctx, func(ctx context.Context) error { return cl.PublishIntegration(ctx, in) }); err != nil {
		return fmt.Errorf("publishing integration %s/%s: %w", in.TenantID, in.ID, err)
	}
	subject := event.Subject(a.g.prefix, event.IntegrationsChanged, in.TenantID, in.ID)
	if a.g.json {
		return a.printJSON(map[string]any{
			"action": event.ActionUpsert, "tenant_id": in.TenantID, "integration_id": in.ID,
			"subject": subject, "credentials": mode,
		})
	}
	fmt.Fprintf(a.stdout, "published integration %s/%s on %s (credentials: %s)\n", in.TenantID, in.ID, subject, mode)
	return nil
}

// payloadFromFlags builds the integration the flags describe.
func (a *app) payloadFromFlags(o *putOptions, set map[string]bool) (event.IntegrationPayload, error) {
	var in event.IntegrationPayload
	if err := requireIDs(map[string]string{"--tenant": o.tenant, "--id": o.id}); err != nil {
		return in, err
	}
	if o.bucket == "" {
		return in, usageErrorf("--bucket is required")
	}
	if len(o.providers) == 0 {
		return in, usageErrorf("--provider is required (repeat it for several providers)")
	}
	for _, p := range o.providers {
		if !event.ValidID(p) {
			return in, usageErrorf("--provider %q: ids hold only letters, digits, '_', '=' and '-' (1-128 characters)", p)
		}
	}
	secret, err := a.secretValue("--secret-access-key", o.secret, o.secretFile, set)
	if err != nil {
		return in, err
	}
	if secret == "" && o.accessKeyID != "" {
		secret = a.getenv("AWS_SECRET_ACCESS_KEY")
		a.secrets.add(secret)
	}
	token, err := a.secretValue("--session-token", o.sessionToken, o.sessionTokenFile, set)
	if err != nil {
		return in, err
	}
	switch {
	case o.accessKeyID != "" && secret == "":
		return in, usageErrorf("--access-key-id needs a secret: --secret-access-key-file, --secret-access-key or AWS_SECRET_ACCESS_KEY")
	case o.accessKeyID == "" && secret != "":
		return in, usageErrorf("a secret access key needs --access-key-id")
	case token != "" && o.accessKeyID == "":
		return in, usageErrorf("--session-token needs --access-key-id and a secret access key")
	case o.roleARN == "" && (o.externalID != "" || o.sessionName != "" || set["session-duration"]):
		return in, usageErrorf("--external-id, --role-session-name and --session-duration need --role-arn")
	case set["session-duration"] && (o.sessionDuration < integration.MinSessionDuration || o.sessionDuration > integration.MaxSessionDuration):
		return in, usageErrorf("--session-duration %d: must be between %d and %d seconds",
			o.sessionDuration, integration.MinSessionDuration, integration.MaxSessionDuration)
	}
	enabled := !o.disabled
	in = event.IntegrationPayload{
		ID: o.id, TenantID: o.tenant, Type: event.TypeAmazonS3, Enabled: &enabled,
		Providers: o.providers,
		Configuration: event.Configuration{
			BucketName: o.bucket, OutputDirectory: o.dir, SSE: o.sse, KMSKeyID: o.kmsKeyID,
			StorageClass: o.storageClass, BucketOwnerFullControl: o.ownerFullControl,
			WriteManifest: o.writeManifest,
		},
	}
	creds := event.Credentials{
		AccessKeyID: o.accessKeyID, SecretAccessKey: secret, SessionToken: token,
		RoleARN: o.roleARN, ExternalID: o.externalID, RoleSessionName: o.sessionName,
		SessionDuration: o.sessionDuration,
	}
	if !creds.Empty() {
		in.Credentials = &creds
	}
	return in, nil
}

// secretValue reads a secret from its flag or its file flag (not both).
func (a *app) secretValue(name, value, file string, set map[string]bool) (string, error) {
	if value != "" && file != "" {
		return "", usageErrorf("give %s or %s-file, not both", name, name)
	}
	if file == "" {
		return value, nil
	}
	b, err := a.readFile(file)
	if err != nil {
		return "", fmt.Errorf("%s-file: %w", name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s-file %s is empty", name, file)
	}
	a.secrets.add(v)
	return v, nil
}

// readFile reads a file, or stdin for "-".
func (a *app) readFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(a.stdin)
	}
	return os.ReadFile(name)
}

// readPayload reads an integration from a JSON file: an integration object or
// a whole integration-changed event. The type defaults to amazon_s3.
func (a *app) readPayload(name string) (event.IntegrationPayload, error) {
	var in event.IntegrationPayload
	b, err := a.readFile(name)
	if err != nil {
		return in, fmt.Errorf("--file: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return in, fmt.Errorf("--file %s: not a JSON object: %w", name, err)
	}
	if raw, ok := probe["integration"]; ok && probe["id"] == nil {
		b = raw
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf("--file %s: %w", name, err)
	}
	if in.Credentials != nil {
		a.secrets.add(in.Credentials.SecretAccessKey, in.Credentials.SessionToken)
	}
	if in.Type == "" {
		in.Type = event.TypeAmazonS3
	}
	if !event.ValidID(in.TenantID) || !event.ValidID(in.ID) {
		return in, fmt.Errorf("--file %s: id and tenant_id are required and hold only letters, digits, '_', '=' and '-'", name)
	}
	return in, nil
}

// validatePayload checks an amazon_s3 integration with the exporter's rules
// (plaintext credentials allowed: they may be encrypted afterwards; encrypted
// ones can't be checked here).
func validatePayload(in event.IntegrationPayload) error {
	if in.Type != event.TypeAmazonS3 {
		return nil
	}
	if in.Credentials != nil && in.EncryptedCredentials != "" {
		return errors.New("send either credentials or encrypted_credentials, not both")
	}
	in.EncryptedCredentials = ""
	// The exporter decides on ambient credentials (its own setting); here
	// they are let through, and refused there with a message naming it.
	p := integration.Parser{AllowPlaintext: true, AllowAmbient: true}
	if _, err := p.Build(in); err != nil {
		return fmt.Errorf("invalid integration: %w", err)
	}
	return nil
}

// sealCredentials encrypts the credentials of in when asked, and says how
// they travel: "encrypted", "plaintext" or "none".
func (a *app) sealCredentials(in *event.IntegrationPayload, encrypt bool, keyFile string, set map[string]bool) (string, error) {
	if set["key-file"] && !encrypt {
		return "", usageErrorf("--key-file needs --encrypt")
	}
	if !encrypt {
		switch {
		case in.EncryptedCredentials != "":
			return "encrypted", nil
		case in.Credentials != nil && !in.Credentials.Empty():
			return "plaintext", nil
		}
		return "none", nil
	}
	if in.Credentials == nil || in.Credentials.Empty() {
		if in.EncryptedCredentials != "" {
			return "encrypted", nil
		}
		return "", usageErrorf("--encrypt: there are no credentials to encrypt")
	}
	key, err := a.loadKey(keyFile)
	if err != nil {
		return "", err
	}
	wire, err := boundCredentialsJSON(*in.Credentials, in.TenantID, in.ID)
	if err != nil {
		return "", err
	}
	token, err := key.Encrypt(wire, time.Now())
	clear(wire)
	if err != nil {
		return "", fmt.Errorf("encrypting the credentials: %w", err)
	}
	in.EncryptedCredentials = string(token)
	in.Credentials = nil
	return "encrypted", nil
}

// boundCredentialsJSON is the credentials' wire JSON with tenant_id and
// integration_id added (contract v1.1 §2): the exporter then refuses the
// token in any other integration, so a token copied elsewhere is useless.
func boundCredentialsJSON(c event.Credentials, tenantID, id string) ([]byte, error) {
	wire, err := c.WireJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(wire, &m)
	clear(wire)
	if err != nil {
		return nil, err
	}
	m["tenant_id"], m["integration_id"] = tenantID, id
	return json.Marshal(m)
}

// loadKey reads the Fernet key from keyFile or S3EXPORTER_CREDENTIALS_KEY;
// of several comma-separated keys, the first encrypts (as the exporter's).
func (a *app) loadKey(keyFile string) (*fernet.Keys, error) {
	var s, from string
	if keyFile != "" {
		b, err := a.readFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("--key-file: %w", err)
		}
		s, from = string(b), "--key-file "+keyFile
	} else {
		s, from = a.getenv("S3EXPORTER_CREDENTIALS_KEY"), "S3EXPORTER_CREDENTIALS_KEY"
		if s == "" {
			return nil, usageErrorf("--encrypt needs a Fernet key: --key-file or S3EXPORTER_CREDENTIALS_KEY")
		}
	}
	for _, k := range strings.Split(s, ",") {
		a.secrets.add(strings.TrimSpace(k))
	}
	key, err := fernet.ParseKeys(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return key, nil
}

// requireIDs checks required identifier flags.
func requireIDs(flags map[string]string) error {
	for _, name := range []string{"--tenant", "--id", "--scan", "--provider-id", "--integration", "--scan-id"} {
		v, ok := flags[name]
		if !ok {
			continue
		}
		if v == "" {
			return usageErrorf("%s is required", name)
		}
		if !event.ValidID(v) {
			return usageErrorf("%s %q: ids hold only letters, digits, '_', '=' and '-' (1-128 characters)", name, v)
		}
	}
	return nil
}

func runIntegrationDelete(ctx context.Context, a *app, args []string) error {
	tenant, id, err := a.parseTenantID("integration delete", args)
	if err != nil {
		return err
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	if err := a.request(ctx, func(ctx context.Context) error { return cl.DeleteIntegration(ctx, tenant, id) }); err != nil {
		return fmt.Errorf("publishing the deletion of integration %s/%s: %w", tenant, id, err)
	}
	if a.g.json {
		return a.printJSON(map[string]any{"action": event.ActionDelete, "tenant_id": tenant, "integration_id": id,
			"subject": event.Subject(a.g.prefix, event.IntegrationsChanged, tenant, id)})
	}
	fmt.Fprintf(a.stdout, "published the deletion of integration %s/%s\n", tenant, id)
	return nil
}

func runIntegrationGet(ctx context.Context, a *app, args []string) error {
	tenant, id, err := a.parseTenantID("integration get", args)
	if err != nil {
		return err
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	var rep event.GetReply
	if err := a.request(ctx, func(ctx context.Context) (err error) { rep, err = getIntegration(ctx, cl, tenant, id); return err }); err != nil {
		return fmt.Errorf("getting integration %s/%s: %w", tenant, id, err)
	}
	// event.Credentials marshals redacted, whatever the reply held.
	if a.g.json {
		return a.printJSON(rep)
	}
	return a.printIndented(rep)
}

// parseTenantID parses the flags of a command that names one integration.
func (a *app) parseTenantID(name string, args []string) (tenant, id string, err error) {
	fs := newFlagSet(name)
	a.g.register(fs)
	fs.StringVar(&tenant, "tenant", "", "")
	fs.StringVar(&id, "id", "", "")
	pos, err := a.parse(fs, name, args)
	if err != nil {
		return "", "", err
	}
	if err := noArgs(pos); err != nil {
		return "", "", err
	}
	return tenant, id, requireIDs(map[string]string{"--tenant": tenant, "--id": id})
}

func runIntegrationTest(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("integration test")
	a.g.register(fs)
	var tenant, id, file, keyFile string
	var encrypt bool
	fs.StringVar(&tenant, "tenant", "", "")
	fs.StringVar(&id, "id", "", "")
	fs.StringVar(&file, "file", "", "")
	fs.BoolVar(&encrypt, "encrypt", false, "")
	fs.StringVar(&keyFile, "key-file", "", "")
	pos, err := a.parse(fs, "integration test", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	set := setFlags(fs)
	var in event.IntegrationPayload
	if set["file"] {
		if set["tenant"] || set["id"] {
			return usageErrorf("give --tenant and --id (a saved integration) or --file (an unsaved one), not both")
		}
		if in, err = a.readPayload(file); err != nil {
			return err
		}
		if _, err := a.sealCredentials(&in, encrypt, keyFile, set); err != nil {
			return err
		}
	} else {
		if set["encrypt"] || set["key-file"] {
			return usageErrorf("--encrypt and --key-file go with --file")
		}
		if err := requireIDs(map[string]string{"--tenant": tenant, "--id": id}); err != nil {
			return err
		}
	}

	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	var rep event.TestReply
	err = a.request(ctx, func(ctx context.Context) (err error) {
		if set["file"] {
			rep, err = cl.TestUnsaved(ctx, in)
		} else {
			rep, err = cl.TestConnection(ctx, tenant, id)
		}
		return err
	})
	if err != nil {
		return classifyIntegrationErr(fmt.Errorf("connection test: %w", err))
	}
	if !set["file"] && rep.Error != nil && rep.Error.Code == integrationNotFoundCode {
		return notFound(integrationNotFoundCode, fmt.Errorf("connection test: %s: %s", rep.Error.Code, rep.Error.Message))
	}
	if a.g.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else if rep.Connected {
		fmt.Fprintf(a.stdout, "connected (bucket region %s)\n", orDash(rep.BucketRegion))
	} else {
		code, msg := "S3TestConnectionError", "not connected"
		if rep.Error != nil {
			code, msg = rep.Error.Code, rep.Error.Message
		}
		fmt.Fprintf(a.stdout, "not connected: %s: %s\n", code, oneLine(msg))
	}
	if !rep.Connected {
		return withCode(exitNotConnected)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printJSON writes v as one line of JSON.
func (a *app) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// printIndented writes v as indented JSON.
func (a *app) printIndented(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}
