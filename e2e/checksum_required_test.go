package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/testutil/fixtures"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// hasChecksum reports whether a request carries Content-MD5 or a flexible
// checksum (a header, or a trailer announced by x-amz-trailer).
func hasChecksum(h http.Header) bool {
	if h.Get("Content-Md5") != "" {
		return true
	}
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-checksum-") ||
			(lk == "x-amz-trailer" && strings.Contains(strings.ToLower(strings.Join(v, ",")), "checksum")) {
			return true
		}
	}
	return false
}

// A bucket that requires a checksum, as AWS S3 requires one on a bucket
// with Object Lock when the SDK computes checksums only where required:
// AWS's answer, made by a proxy in front of versitygw. The exporter sends
// the refused PutObject again with Content-MD5 (the beacon too), a refused
// multipart upload again with a CRC32 on each part, and from then on sends
// a checksum from the first request.
func TestChecksumRequiredBucketGetsOne(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
	e, proxy := proxiedEnv(t, multipartConfig)
	b := e.bucket("needsum")
	var (
		mu      sync.Mutex
		refused []string // "PUT <path>" of the requests refused
	)
	proxy.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/"+b+"/") || hasChecksum(r.Header) {
			return false
		}
		mu.Lock()
		refused = append(refused, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		s3test.WriteS3Error(w, http.StatusBadRequest, "InvalidRequest",
			"Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters")
		return true
	})
	refusedNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), refused...)
	}

	// The connection test: the beacon is refused, then sent with Content-MD5.
	if st := e.putAndWaitConn(e.integration("tenant-sum", "sum", b, "prov-1")); !st.Connected {
		t.Fatalf("connection test: %+v", st.Error)
	}
	if got := refusedNow(); len(got) != 1 || !strings.Contains(got[0], exporter.BeaconKey) {
		t.Fatalf("refused %v, want the beacon's first PUT only", got)
	}

	// A multipart upload first: refused part(s), then every part with a checksum.
	big := bigFile(11 << 20)
	set := fileSet{event.Artifact{Format: big.Format}.Name(): big}
	e.publishScan("tenant-sum", "prov-1", "111122223333", "scan-big", []fixtures.OutputFile{big})
	ex := e.waitExport("scan-big", "sum")
	if ex.State != event.StateSucceeded || ex.Attempt != 1 {
		t.Fatalf("multipart export %s on delivery %d %+v, want succeeded on the first", ex.State, ex.Attempt, ex.Errors)
	}
	checkLanded(t, ex, e.objects(b), set)
	refusedParts := 0
	for _, r := range refusedNow()[1:] {
		if strings.Contains(r, "uploadId=") {
			refusedParts++
		}
	}
	if refusedParts == 0 {
		t.Fatalf("no part was refused (%v): the test proves nothing", refusedNow())
	}

	// Later uploads send a checksum from the first request: nothing more is refused.
	before := len(refusedNow())
	files, fs := prowlerFiles(197, "111122223333")
	e.publishScan("tenant-sum", "prov-1", "111122223333", "scan-small", files)
	ex = e.waitExport("scan-small", "sum")
	if ex.State != event.StateSucceeded {
		t.Fatalf("export %s %+v", ex.State, ex.Errors)
	}
	objs := e.objects(b)
	checkLanded(t, ex, objs, fs)
	if after := refusedNow(); len(after) != before {
		t.Errorf("refused after the bucket was known to want checksums: %v", after[before:])
	}
	md5s := countReqs(proxy.Requests(), func(r s3test.ProxiedRequest) bool {
		return r.Method == http.MethodPut && strings.HasPrefix(r.Path, "/"+b+"/output/") && r.Header.Get("Content-Md5") != ""
	})
	if md5s < len(files) {
		t.Errorf("%d PUTs with Content-MD5, want at least the scan's %d", md5s, len(files))
	}
}
