package exporter

import (
	"maps"
	"mime"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// Contract v1.1 §4: the metadata of every object.
func TestObjectOptionsMetadata(t *testing.T) {
	scan := &event.ScanCompleted{ScanID: "s1", TenantID: "t1", Provider: event.Provider{ID: "p1", UID: "111122223333"}}
	ig := &integration.Integration{Bucket: "b"}
	sum := "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
	for _, tc := range []struct {
		a    event.Artifact
		want map[string]string
	}{
		{event.Artifact{Format: "csv"}, map[string]string{
			"prowler-scan-id": "s1", "prowler-provider-uid": "111122223333", "prowler-format": "csv"}},
		{event.Artifact{Format: "json-ocsf", SHA256: sum}, map[string]string{
			"prowler-scan-id": "s1", "prowler-provider-uid": "111122223333", "prowler-format": "json-ocsf",
			"prowler-sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
		{event.Artifact{Format: "compliance", Framework: "cis_5.0_aws"}, map[string]string{
			"prowler-scan-id": "s1", "prowler-provider-uid": "111122223333", "prowler-format": "compliance",
			"prowler-framework": "cis_5.0_aws"}},
		{event.Artifact{Format: "compliance-ocsf", Framework: "cmmc_2.0"}, map[string]string{
			"prowler-scan-id": "s1", "prowler-provider-uid": "111122223333", "prowler-format": "compliance-ocsf",
			"prowler-framework": "cmmc_2.0"}},
	} {
		po := objectOptions(scan, ig, tc.a)
		if !maps.Equal(po.Metadata, tc.want) {
			t.Errorf("%s: metadata %v, want %v", tc.a.Name(), po.Metadata, tc.want)
		}
		if po.ContentType != ContentType(tc.a.Format) || po.ContentType == "" {
			t.Errorf("%s: content type %q", tc.a.Name(), po.ContentType)
		}
	}

	// A provider uid outside printable ASCII travels RFC 2047-encoded, and
	// decodes back to itself.
	for _, uid := range []string{"projét", "line\nbreak", "日本"} {
		sc := *scan
		sc.Provider.UID = uid
		v := objectOptions(&sc, ig, event.Artifact{Format: "csv"}).Metadata[MetaProviderUID]
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("uid %q: header value %q is not printable ASCII", uid, v)
			}
		}
		if got, err := new(mime.WordDecoder).DecodeHeader(v); err != nil || got != uid {
			t.Errorf("uid %q: %q decodes to %q, %v", uid, v, got, err)
		}
	}
}

// The small-PUT and the multipart paths get the very same options.
func TestPutOptionsAreTheSameOnBothPaths(t *testing.T) {
	scan := &event.ScanCompleted{ScanID: "s1", Provider: event.Provider{UID: "1"}}
	for _, ig := range []*integration.Integration{
		{Bucket: "b"},
		{Bucket: "b", SSE: "aws:kms", KMSKeyID: "arn:aws:kms:eu-west-1:111122223333:key/k", StorageClass: "STANDARD_IA", BucketOwnerFullControl: true},
		{Bucket: "b", SSE: "AES256", StorageClass: "GLACIER_IR"},
	} {
		po := objectOptions(scan, ig, event.Artifact{Format: "compliance", Framework: "f", SHA256: "ab"})
		var put s3.PutObjectInput
		var up tm.UploadObjectInput
		po.applyPut(&put)
		po.applyUpload(&up)
		type fields struct{ ct, sse, kms, class, acl string }
		p := fields{aws.ToString(put.ContentType), string(put.ServerSideEncryption), aws.ToString(put.SSEKMSKeyId), string(put.StorageClass), string(put.ACL)}
		u := fields{aws.ToString(up.ContentType), string(up.ServerSideEncryption), aws.ToString(up.SSEKMSKeyID), string(up.StorageClass), string(up.ACL)}
		if p != u || !maps.Equal(put.Metadata, up.Metadata) {
			t.Errorf("%+v: PutObject %+v %v, upload %+v %v", ig, p, put.Metadata, u, up.Metadata)
		}
		want := fields{"text/csv", ig.SSE, ig.KMSKeyID, ig.StorageClass, ""}
		if ig.BucketOwnerFullControl {
			want.acl = "bucket-owner-full-control"
		}
		if p != want || put.Metadata[MetaFramework] != "f" {
			t.Errorf("%+v: PutObject %+v %v, want %+v", ig, p, put.Metadata, want)
		}
	}
}

// Once a destination asked for a checksum, a multipart upload sends a
// CRC32 with every part (computed per part), and a PutObject Content-MD5
// (putBuffered); the options of different destinations are apart.
func TestChecksumNeedsAreRemembered(t *testing.T) {
	var c checksumNeeds
	var po putOptions
	c.apply(&po, "t/a")
	var up tm.UploadObjectInput
	po.applyUpload(&up)
	if po.Checksum || up.ChecksumAlgorithm != "" {
		t.Fatalf("a checksum before any was asked for: %v %q", po.Checksum, up.ChecksumAlgorithm)
	}
	po.ChecksumNeeded()
	var again, other putOptions
	c.apply(&again, "t/a")
	c.apply(&other, "t/b")
	up = tm.UploadObjectInput{}
	again.applyUpload(&up)
	if !again.Checksum || up.ChecksumAlgorithm != "CRC32" {
		t.Errorf("after the bucket asked: checksum %v, algorithm %q", again.Checksum, up.ChecksumAlgorithm)
	}
	if other.Checksum {
		t.Error("another destination sends checksums too")
	}
}
