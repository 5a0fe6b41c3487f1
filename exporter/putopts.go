package exporter

import (
	"mime"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// User metadata on every object (contract v1.1 §4), without the
// "x-amz-meta-" prefix the SDK adds. Writing user metadata needs no
// permission beyond s3:PutObject.
const (
	MetaScanID      = "prowler-scan-id"
	MetaProviderUID = "prowler-provider-uid"
	MetaFormat      = "prowler-format"
	MetaFramework   = "prowler-framework"
	MetaSHA256      = "prowler-sha256"
)

// putOptions is everything about an object besides its key and bytes: the
// same for the one-request PutObject (putSmall), the transfer manager's
// upload, which take it in two different input types (applyPut,
// applyUpload), and the connection test's beacon (beaconOptions), so that
// the paths cannot drift apart: a connection test fails exactly when an
// export would (contract v1.2 §5).
type putOptions struct {
	ContentType  string
	Metadata     map[string]string
	SSE          string
	KMSKeyID     string
	StorageClass string
	// OwnerFullControl sets the canned ACL bucket-owner-full-control.
	OwnerFullControl bool
	// Checksum sends a checksum with every request from the first one on:
	// Content-MD5 on a PutObject, CRC32 on each part of a multipart upload.
	// It is set once the destination has answered that it requires one (a
	// bucket with Object Lock, when AWS_REQUEST_CHECKSUM_CALCULATION is
	// when_required); without it a PutObject that gets that answer is sent
	// again with Content-MD5 (putBuffered).
	Checksum bool
	// ChecksumNeeded, when set, is told that the destination answered
	// that it requires a checksum.
	ChecksumNeeded func()
}

// integrationOptions are the put options every object written to ig's
// bucket shares, exports and beacon alike.
func integrationOptions(ig *integration.Integration) putOptions {
	return putOptions{
		SSE:              ig.SSE,
		KMSKeyID:         ig.KMSKeyID,
		StorageClass:     ig.StorageClass,
		OwnerFullControl: ig.BucketOwnerFullControl,
	}
}

// beaconOptions builds the put options of the connection test's beacon:
// those of an export, but for its metadata and content type.
func beaconOptions(ig *integration.Integration) putOptions {
	po := integrationOptions(ig)
	po.ContentType = "text/plain"
	return po
}

// objectOptions builds the put options of artifact a of scan for
// integration ig.
func objectOptions(scan *event.ScanCompleted, ig *integration.Integration, a event.Artifact) putOptions {
	meta := map[string]string{
		MetaScanID:      scan.ScanID,
		MetaProviderUID: headerSafe(scan.Provider.UID),
		MetaFormat:      a.Format,
	}
	if event.IsCompliance(a.Format) {
		meta[MetaFramework] = a.Framework
	}
	if a.SHA256 != "" {
		// Lower case, as sha256sum prints it; the event may use either case.
		meta[MetaSHA256] = strings.ToLower(a.SHA256)
	}
	po := integrationOptions(ig)
	po.ContentType = ContentType(a.Format)
	po.Metadata = meta
	return po
}

// headerSafe returns v as is when it is printable ASCII, which an HTTP
// header carries unchanged, and RFC 2047-encoded otherwise ("=?utf-8?b?…?="),
// as AWS documents for user metadata outside US-ASCII. The scan and format
// are validated identifiers already; a provider uid is free text.
func headerSafe(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return mime.BEncoding.Encode("utf-8", v)
		}
	}
	return v
}

func (o putOptions) applyPut(in *s3.PutObjectInput) {
	in.ContentType = aws.String(o.ContentType)
	in.Metadata = o.Metadata
	if o.SSE != "" {
		in.ServerSideEncryption = s3types.ServerSideEncryption(o.SSE)
	}
	if o.KMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(o.KMSKeyID)
	}
	if o.StorageClass != "" {
		in.StorageClass = s3types.StorageClass(o.StorageClass)
	}
	if o.OwnerFullControl {
		in.ACL = s3types.ObjectCannedACLBucketOwnerFullControl
	}
}

func (o putOptions) applyUpload(in *tm.UploadObjectInput) {
	in.ContentType = aws.String(o.ContentType)
	in.Metadata = o.Metadata
	if o.SSE != "" {
		in.ServerSideEncryption = tmtypes.ServerSideEncryption(o.SSE)
	}
	if o.KMSKeyID != "" {
		in.SSEKMSKeyID = aws.String(o.KMSKeyID)
	}
	if o.StorageClass != "" {
		in.StorageClass = tmtypes.StorageClass(o.StorageClass)
	}
	if o.OwnerFullControl {
		in.ACL = tmtypes.ObjectCannedACLBucketOwnerFullControl
	}
	if o.Checksum {
		// Computed part by part as the parts stream (no whole-object
		// checksum, no extra buffering).
		in.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmCrc32
	}
}

// checksumNeeds remembers the destinations (destKey) that answered that
// they require a checksum, so that later uploads send one from their first
// request. A process remembers it until it stops: a bucket's Object Lock
// cannot be turned off.
type checksumNeeds struct{ m sync.Map }

// apply sets po.Checksum when dest is known to require a checksum, and
// po.ChecksumNeeded to remember that it does.
func (c *checksumNeeds) apply(po *putOptions, dest string) {
	_, po.Checksum = c.m.Load(dest)
	po.ChecksumNeeded = func() { c.m.Store(dest, struct{}{}) }
}
