package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/prowler-cloud/s3-exporter/event"
)

// hashCredentials hashes fields followed by every field of a credential set,
// each ended by a NUL (which no field can hold, so two different lists never
// hash alike). It is the one place that knows which credential fields say
// who signs: the S3 client cache keys (SigningKey) and the
// tested-configuration fingerprint (Fingerprint) both build on it, so a new
// credential field cannot be added to one and forgotten in the other.
// Secrets go in only hashed; they never leave memory in clear.
func hashCredentials(c event.Credentials, fields ...string) []byte {
	h := sha256.New()
	for _, f := range append(fields, c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.RoleARN, c.ExternalID,
		c.RoleSessionName, strconv.Itoa(c.SessionDuration)) {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// SigningKey identifies who signs an integration's requests: its tenant and
// its credential set. Sessions and S3 clients are cached under it, so two
// tenants never share them, even with equal credentials (contract v1.1 §2).
func (i *Integration) SigningKey() string {
	return hex.EncodeToString(hashCredentials(i.Credentials, i.TenantID)[:16])
}

// Fingerprint identifies what a connection test depends on: the bucket and
// the credentials. (The tenant is not in it: fingerprints are stored per
// tenant and integration already.) It is the SHA-256 of the bucket and the
// credential fields, the value fingerprints had before SigningKey shared the
// hashing, so stored fingerprints stay valid across the upgrade.
func (i *Integration) Fingerprint() string {
	return hex.EncodeToString(hashCredentials(i.Credentials, i.Bucket))
}
