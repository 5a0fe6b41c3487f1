package exporter

import (
	"mime"
	"strings"

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
// same for the one-request PutObject (putSmall) and the transfer manager's
// upload, which take it in two different input types (applyPut,
// applyUpload), so that the two paths cannot drift apart.
type putOptions struct {
	ContentType  string
	Metadata     map[string]string
	SSE          string
	KMSKeyID     string
	StorageClass string
	// OwnerFullControl sets the canned ACL bucket-owner-full-control.
	OwnerFullControl bool
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
	return putOptions{
		ContentType:      ContentType(a.Format),
		Metadata:         meta,
		SSE:              ig.SSE,
		KMSKeyID:         ig.KMSKeyID,
		StorageClass:     ig.StorageClass,
		OwnerFullControl: ig.BucketOwnerFullControl,
	}
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
}
