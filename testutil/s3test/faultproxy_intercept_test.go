package s3test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/testutil"
)

func TestFaultProxyInterceptAndLog(t *testing.T) {
	t.Parallel()
	var upstream int
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { upstream++ }))
	t.Cleanup(target.Close)
	p := NewFaultProxy(t, target.URL)
	p.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if testutil.SignedBy(r.Header) != "expired-key" {
			return false
		}
		WriteS3Error(w, http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
		return true
	})
	do := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, p.URL()+"/b/k?x=1", nil)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := do("expired-key"); st != 400 || !strings.Contains(body, "<Code>ExpiredToken</Code>") {
		t.Fatalf("intercepted: %d %s", st, body)
	}
	if st, _ := do("good-key"); st != 200 || upstream != 1 {
		t.Fatalf("passed through: %d, upstream saw %d", st, upstream)
	}
	reqs := p.Requests()
	if len(reqs) != 2 || reqs[0].SignedBy() != "expired-key" || reqs[1].Method != http.MethodPut || reqs[1].Query.Get("x") != "1" || reqs[1].Path != "/b/k" {
		t.Fatalf("log %+v", reqs)
	}
}
