package ststest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/testutil"
)

// STSCredentials are the temporary credentials an STS hands out.
type STSCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// AssumeRoleCall is one AssumeRole request an STS received, granted or not.
type AssumeRoleCall struct {
	RoleARN         string
	ExternalID      string // "" when not sent
	RoleSessionName string
	DurationSeconds int    // 0 when not sent
	CallerKeyID     string // access key id of the caller, from the SigV4 Authorization header
	ErrorCode       string // "" when granted, else the STS error code answered (AccessDenied, …)
	At              time.Time
}

// STS is a small AWS Security Token Service endpoint for tests: an httptest
// server that answers AssumeRole as AWS does (form-encoded query protocol in,
// XML out), so the real aws-sdk-go-v2 sts client and stscreds provider can be
// pointed at it (BaseEndpoint / S3EXPORTER_STS_ENDPOINT). The contract lets
// tests use such a stand-in for STS, which no local S3 server provides.
//
// It acts like a set of trust policies: a role may be assumed only once it is
// registered with Expect, and, when Expect names an external ID, only with that
// external ID; anything else is answered 403 AccessDenied. Requests must be
// SigV4-signed (the caller's access key id is recorded; signatures are not
// verified). Each granted call returns the configured credentials, expiring
// after DurationSeconds (3600 when not sent) or the shorter lifetime set with
// SetLifetime.
type STS struct {
	srv *httptest.Server

	mu       sync.Mutex
	creds    STSCredentials
	rotation []STSCredentials // handed out in turn, when set
	lifetime time.Duration
	roles    map[string]string // role ARN -> required external ID ("" = none)
	calls    []AssumeRoleCall
}

// NewSTS starts an STS that hands out creds; it stops when the test ends.
func NewSTS(t testing.TB, creds STSCredentials) *STS {
	t.Helper()
	s := &STS{creds: creds, roles: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the endpoint to give the sts client (http://127.0.0.1:port).
func (s *STS) URL() string { return s.srv.URL }

// Expect lets roleARN be assumed. A non-empty externalID must then be sent
// exactly (as a trust policy's sts:ExternalId condition); an empty one accepts
// any or none. Calling it again for the same role replaces the condition.
func (s *STS) Expect(roleARN, externalID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = externalID
}

// SetLifetime caps how long the credentials handed out from now on stay
// valid (0: as long as DurationSeconds asks), so tests can make them expire
// soon and watch the provider refresh them.
func (s *STS) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetCredentials changes the credentials handed out from now on.
func (s *STS) SetCredentials(c STSCredentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds = c
}

// SetRotation makes each granted AssumeRole hand out the next credentials of
// list in turn (the last one repeats), as AWS hands out new keys for each
// session; nil goes back to SetCredentials' ones.
func (s *STS) SetRotation(list []STSCredentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotation = append([]STSCredentials(nil), list...)
}

// Calls returns every AssumeRole request received so far, in order.
func (s *STS) Calls() []AssumeRoleCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AssumeRoleCall(nil), s.calls...)
}

var (
	roleARNRe     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

func (s *STS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeSTSError(w, http.StatusBadRequest, "Sender", "MalformedInput", "cannot parse the request body")
		return
	}
	if a := r.Form.Get("Action"); a != "AssumeRole" {
		writeSTSError(w, http.StatusBadRequest, "Sender", "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", a, r.Form.Get("Version")))
		return
	}

	call := AssumeRoleCall{
		RoleARN:         r.Form.Get("RoleArn"),
		ExternalID:      r.Form.Get("ExternalId"),
		RoleSessionName: r.Form.Get("RoleSessionName"),
		At:              time.Now().UTC(),
	}
	call.CallerKeyID = testutil.SignedBy(r.Header)

	s.mu.Lock()
	creds, lifetime := s.creds, s.lifetime
	wantExternalID, known := s.roles[call.RoleARN]
	s.mu.Unlock()

	status, code, msg := s.check(&call, r.Form.Get("DurationSeconds"), known, wantExternalID)
	s.mu.Lock()
	s.calls = append(s.calls, call)
	n := len(s.calls)
	s.mu.Unlock()
	if code != "" {
		writeSTSError(w, status, "Sender", code, msg)
		return
	}
	s.mu.Lock()
	if len(s.rotation) > 0 {
		creds = s.rotation[0]
		if len(s.rotation) > 1 {
			s.rotation = s.rotation[1:]
		}
	}
	s.mu.Unlock()

	duration := 3600 * time.Second
	if call.DurationSeconds != 0 {
		duration = time.Duration(call.DurationSeconds) * time.Second
	}
	if lifetime > 0 && lifetime < duration {
		duration = lifetime
	}
	acct, role := roleParts(call.RoleARN)
	resp := assumeRoleResponse{
		Xmlns: stsNamespace,
		Result: assumeRoleResult{
			Credentials: stsXMLCredentials{
				AccessKeyID:     creds.AccessKeyID,
				SecretAccessKey: creds.SecretAccessKey,
				SessionToken:    creds.SessionToken,
				Expiration:      call.At.Add(duration).Format(time.RFC3339),
			},
			AssumedRoleUser: assumedRoleUser{
				AssumedRoleID: "AROATESTSTS" + strconv.Itoa(n) + ":" + call.RoleSessionName,
				Arn:           fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", acct, role, call.RoleSessionName),
			},
		},
		RequestID: requestID(n),
	}
	writeXML(w, http.StatusOK, resp)
}

// check validates a call as STS would, filling in DurationSeconds and
// ErrorCode; it returns the HTTP status, error code and message of a refusal.
func (s *STS) check(call *AssumeRoleCall, duration string, known bool, wantExternalID string) (int, string, string) {
	refuse := func(status int, code, msg string) (int, string, string) {
		call.ErrorCode = code
		return status, code, msg
	}
	if call.CallerKeyID == "" {
		return refuse(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	if duration != "" {
		d, err := strconv.Atoi(duration)
		if err != nil {
			return refuse(http.StatusBadRequest, "ValidationError", fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be a number", duration))
		}
		call.DurationSeconds = d
		if d < 900 || d > 43200 {
			return refuse(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", d))
		}
	}
	if !sessionNameRe.MatchString(call.RoleSessionName) {
		return refuse(http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*, length 2 to 64", call.RoleSessionName))
	}
	if !roleARNRe.MatchString(call.RoleARN) {
		return refuse(http.StatusBadRequest, "ValidationError", fmt.Sprintf("%s is invalid", call.RoleARN))
	}
	if !known || (wantExternalID != "" && call.ExternalID != wantExternalID) {
		return refuse(http.StatusForbidden, "AccessDenied", fmt.Sprintf("User is not authorized to perform: sts:AssumeRole on resource: %s", call.RoleARN))
	}
	return http.StatusOK, "", ""
}

func roleParts(arn string) (account, role string) {
	m := roleARNRe.FindStringSubmatch(arn)
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

func requestID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

type assumeRoleResponse struct {
	XMLName   xml.Name         `xml:"AssumeRoleResponse"`
	Xmlns     string           `xml:"xmlns,attr"`
	Result    assumeRoleResult `xml:"AssumeRoleResult"`
	RequestID string           `xml:"ResponseMetadata>RequestId"`
}

type assumeRoleResult struct {
	Credentials     stsXMLCredentials `xml:"Credentials"`
	AssumedRoleUser assumedRoleUser   `xml:"AssumedRoleUser"`
}

type stsXMLCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	AssumedRoleID string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

type stsErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeXML(w, status, stsErrorResponse{
		Xmlns: stsNamespace, Type: typ, Code: code, Message: msg,
		RequestID: "ffffffff-0000-4000-8000-000000000000",
	})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}
