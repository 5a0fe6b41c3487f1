package s3test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Object is what the server holds under a key. ETag has no quotes. From
// ListObjects, ContentType, Metadata and Body are empty.
type Object struct {
	Key          string
	Size         int64
	ContentType  string
	ETag         string
	LastModified time.Time
	Metadata     map[string]string
	Body         []byte
}

// ListObjects lists every object of bucket under prefix (as root), in key
// order.
func (s *S3Server) ListObjects(bucket, prefix string) ([]Object, error) {
	ctx, cancel := helperCtx()
	defer cancel()
	var objs []Object
	p := s3.NewListObjectsV2Paginator(s.RootClient(), &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket),
		Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			objs = append(objs, Object{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				ETag:         trimETag(o.ETag),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
	}
	return objs, nil
}

// GetObject reads a whole object (as root). For large objects use
// ObjectSHA256.
func (s *S3Server) GetObject(bucket, key string) (Object, error) {
	ctx, cancel := helperCtx()
	defer cancel()
	out, err := s.RootClient().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return Object{}, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	return Object{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ContentType:  aws.ToString(out.ContentType),
		ETag:         trimETag(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		Metadata:     out.Metadata,
		Body:         body,
	}, nil
}

// ObjectSHA256 streams an object (as root) and returns the hex SHA-256 of
// its bytes and its size, without holding it in memory.
func (s *S3Server) ObjectSHA256(bucket, key string) (string, int64, error) {
	ctx, cancel := helperCtx()
	defer cancel()
	out, err := s.RootClient().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", 0, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		return "", 0, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ListMultipartUploads returns the keys of the multipart uploads in progress
// in bucket (one entry per upload), e.g. to check that a failed upload was
// aborted.
func (s *S3Server) ListMultipartUploads(bucket string) ([]string, error) {
	ctx, cancel := helperCtx()
	defer cancel()
	var keys []string
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)}
	for {
		out, err := s.RootClient().ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list multipart uploads of %s: %w", bucket, err)
		}
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		if !aws.ToBool(out.IsTruncated) {
			return keys, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AccessLogEntry is one request from the server's S3 access log.
type AccessLogEntry struct {
	Time      time.Time
	Requester string // access key, "-" when unauthenticated
	Operation string // e.g. "s3_PutObject", "s3_CompleteMultipartUpload"
	Bucket    string
	Key       string // decoded object key, "" for bucket requests
	URI       string // request URI as sent
	Status    int
	ErrorCode string // S3 error code, "" on success
}

// Fields of a versitygw access log line: owner bucket [time] ip requester
// request-id operation key uri status error-code ... (the key is decoded and
// may hold spaces, so it is matched lazily up to the URI, which cannot).
var accessLogLine = regexp.MustCompile(`^(\S+) (\S+) \[([^\]]+)\] (\S+) (\S+) (\S+) (\S+) (.*?) (/\S*) (\d{3}) (\S+) `)

const accessLogTime = "02/January/2006:15:04:05 -0700"

// AccessLog returns every request the server has logged, across restarts,
// oldest first. An entry is written before its response is sent.
func (s *S3Server) AccessLog() ([]AccessLogEntry, error) {
	f, err := os.Open(s.accessLogPath())
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	defer f.Close()
	var entries []AccessLogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := accessLogLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue // "log starts ..." and the like
		}
		e := AccessLogEntry{Requester: m[5], Operation: m[7], URI: m[9], ErrorCode: m[11]}
		e.Time, _ = time.Parse(accessLogTime, m[3])
		e.Status, _ = strconv.Atoi(m[10])
		if e.ErrorCode == "-" {
			e.ErrorCode = ""
		}
		path := e.URI
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if p, err := url.PathUnescape(path); err == nil {
			path = p
		}
		bucket, key, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		e.Bucket, e.Key = bucket, key
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return entries, nil
}

// PutCount counts the successful writes of bucket/key the server has seen:
// PutObject and CompleteMultipartUpload requests answered 200. Use it to
// prove an artifact was uploaded exactly once (or not again after a retry).
func (s *S3Server) PutCount(bucket, key string) (int, error) {
	entries, err := s.AccessLog()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.Bucket == bucket && e.Key == key && e.Status == 200 &&
			(e.Operation == "s3_PutObject" || e.Operation == "s3_CompleteMultipartUpload") {
			n++
		}
	}
	return n, nil
}

// MustGetObject is GetObject that fails the test on error.
func (s *S3Server) MustGetObject(t testing.TB, bucket, key string) Object {
	t.Helper()
	o, err := s.GetObject(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// MustListObjects is ListObjects that fails the test on error.
func (s *S3Server) MustListObjects(t testing.TB, bucket, prefix string) []Object {
	t.Helper()
	objs, err := s.ListObjects(bucket, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// MustPutCount is PutCount that fails the test on error.
func (s *S3Server) MustPutCount(t testing.TB, bucket, key string) int {
	t.Helper()
	n, err := s.PutCount(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
