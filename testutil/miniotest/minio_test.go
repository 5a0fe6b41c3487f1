package miniotest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// What MinIO answers, which the exporter's classifier table
// (docs/errors.md) quotes: checked here against the real process.
func TestMinIOAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MinIO process")
	}
	t.Parallel()
	s := Start(t)
	ctx := context.Background()
	root := s.RootClient()
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("answers")}); err != nil {
		t.Fatal(err)
	}
	put := func(cl *s3.Client, key string, mut func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		in := &s3.PutObjectInput{Bucket: aws.String("answers"), Key: aws.String(key), Body: strings.NewReader("x")}
		if mut != nil {
			mut(in)
		}
		return root.PutObject(ctx, in)
	}
	// SSE-KMS with the built-in key.
	if _, err := put(root, "kms", func(in *s3.PutObjectInput) {
		in.ServerSideEncryption = s3types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(KeyName)
	}); err != nil {
		t.Fatalf("SSE-KMS with %s: %v", KeyName, err)
	}
	head, err := root.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("answers"), Key: aws.String("kms")})
	if err != nil {
		t.Fatal(err)
	}
	if head.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || !strings.HasSuffix(aws.ToString(head.SSEKMSKeyId), KeyName) {
		t.Errorf("HeadObject: sse %q key %q", head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId))
	}
	// A key the KMS does not have: a 404 that is not a missing bucket.
	_, err = put(root, "nokey", func(in *s3.PutObjectInput) {
		in.ServerSideEncryption = s3types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String("no-such-key")
	})
	t.Logf("unknown key: HTTP %d %s: %v", status(err), ErrorCode(err), err)
	if err == nil || ErrorCode(err) == "NoSuchBucket" || !strings.HasPrefix(strings.ToLower(ErrorCode(err)), "kms") {
		t.Errorf("unknown key: %v, want a kms error code", err)
	}
	// A user holding one policy: PutObject only.
	s.MustUser(t, "writer", "writer-secret-key", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["arn:aws:s3:::answers/*"]}]}`)
	w := s.Client("writer", "writer-secret-key")
	if _, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("answers"), Key: aws.String("w"), Body: strings.NewReader("w")}); err != nil {
		t.Fatalf("user put: %v", err)
	}
	_, err = w.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("answers"), Key: aws.String("w")})
	if ErrorCode(err) != "AccessDenied" || status(err) != http.StatusForbidden {
		t.Errorf("user delete: %v, want 403 AccessDenied", err)
	}
}
