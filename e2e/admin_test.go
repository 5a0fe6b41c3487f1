package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// The connection test (contract §5) against versitygw accounts whose only
// rights are what real bucket policies grant them. Each outcome is checked in
// the control reply and in the status event it publishes, for an unsaved
// integration (integrations.test with the payload) and for a published one
// (the automatic test, then integrations.test by id).
func TestConnectionTestAgainstRealBucketPolicies(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its S3 server
	// Its own S3 server: "a bad bucket name never reaches S3" is checked
	// as no new line at all in the server's access log, which the other
	// tests, running in parallel, would add to on a shared server.
	e := newEnvWithS3(t, s3test.StartS3(t), nil)
	const tenant = "tenant-conn"
	good := e.bucket("conn-documented")
	full, fullSecret := e.s3User("full")
	e.s3.MustPutBucketPolicy(t, good, documentedPolicy(t, good, true, full))
	noDelBucket := e.bucket("conn-nodelete")
	noDel, noDelSecret := e.s3User("nodel")
	e.s3.MustPutBucketPolicy(t, noDelBucket, documentedPolicy(t, noDelBucket, false, noDel))
	missing := uniq("conn-missing")

	beaconGone := func(bucket, user string) {
		if _, ok := e.objects(bucket)[exporter.BeaconKey]; ok {
			t.Errorf("the beacon %s is still in %s", exporter.BeaconKey, bucket)
		}
		// It was written and deleted by the integration's own account.
		entries, err := e.s3.AccessLog()
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, en := range entries {
			if en.Bucket == bucket && en.Key == exporter.BeaconKey && en.Requester == user && en.Status < 300 {
				ops[en.Operation]++
			}
		}
		if ops["s3_PutObject"] == 0 || ops["s3_DeleteObject"] == 0 {
			t.Errorf("the access log shows no successful put and delete of the beacon by %s: %v", user, ops)
		}
	}

	cases := []struct {
		name       string
		bucket     string
		creds      event.Credentials
		code       errcode.Code
		region     string
		mentions   []string
		afterSaved func()
	}{
		{name: "documented-policy", bucket: good, creds: event.Credentials{AccessKeyID: full, SecretAccessKey: fullSecret},
			region: e.s3.Region(), afterSaved: func() { beaconGone(good, full) }},
		{name: "no-delete-statement", bucket: noDelBucket, creds: event.Credentials{AccessKeyID: noDel, SecretAccessKey: noDelSecret},
			code: errcode.S3BucketAccessDenied, region: e.s3.Region(),
			mentions: []string{"s3:DeleteObject", "arn:aws:s3:::" + noDelBucket + "/*test-prowler-connection.txt"},
			afterSaved: func() {
				// The put was allowed: the delete is what failed.
				if _, ok := e.objects(noDelBucket)[exporter.BeaconKey]; !ok {
					t.Errorf("no beacon in %s: the denial did not come from the delete", noDelBucket)
				}
			}},
		{name: "wrong-secret", bucket: good, creds: event.Credentials{AccessKeyID: full, SecretAccessKey: "not-" + fullSecret},
			code: errcode.AWSInvalidCredentials, mentions: []string{"access key ID and secret"}},
		{name: "unknown-key", bucket: good, creds: event.Credentials{AccessKeyID: uniq("nobody"), SecretAccessKey: fullSecret},
			code: errcode.AWSInvalidCredentials},
		{name: "missing-bucket", bucket: missing, creds: event.Credentials{AccessKeyID: full, SecretAccessKey: fullSecret},
			code: errcode.S3BucketNotFound, mentions: []string{missing, "does not exist"}},
		{name: "bad-bucket-name", bucket: "Bad_Bucket", creds: event.Credentials{AccessKeyID: full, SecretAccessKey: fullSecret},
			code: errcode.S3InvalidBucketName, mentions: []string{"Bad_Bucket"}},
	}
	// One exporter for every case, so no subtests: the env's helpers fail
	// the test they were made for.
	for _, tc := range cases {
		func() {
			creds := tc.creds
			in := e.integration(tenant, tc.name+"-unsaved", tc.bucket, "prov-1")
			in.Credentials = &creds
			logged := e.accessLogLen()

			// Unsaved: the reply says (and no status event, below).
			rep, st := e.testUnsaved(in)
			checkConn(t, tc.name+" unsaved", rep, st, string(tc.code), tc.mentions...)
			if rep.BucketRegion != tc.region {
				t.Errorf("%s unsaved: bucket_region %q, want %q", tc.name, rep.BucketRegion, tc.region)
			}
			if tc.code == errcode.S3InvalidBucketName {
				if n := e.accessLogLen(); n != logged {
					t.Errorf("%s: a bad bucket name reached the S3 server: %d new requests", tc.name, n-logged)
				}
			}

			// Published: the automatic test, then an explicit one.
			in.ID = tc.name + "-saved"
			logged = e.accessLogLen()
			auto := e.putAndWaitConn(in)
			checkStatus(t, tc.name+" automatic status", auto.Connected, auto.Error, string(tc.code), tc.mentions...)
			if auto.BucketRegion != tc.region {
				t.Errorf("%s automatic status: bucket_region %q, want %q", tc.name, auto.BucketRegion, tc.region)
			}
			if tc.code == errcode.S3InvalidBucketName {
				if n := e.accessLogLen(); n != logged {
					t.Errorf("%s: a bad bucket name reached the S3 server: %d new requests", tc.name, n-logged)
				}
				// A rejected integration is not cached: testing it by id is a
				// bad request, answered, not silenced.
				_, err := e.cl.TestConnection(context.Background(), tenant, in.ID)
				var re *client.ReplyError
				if !errors.As(err, &re) || re.Body.Code != string(errcode.InvalidRequest) {
					t.Errorf("%s: testing a rejected integration by id: %v, want InvalidRequest", tc.name, err)
				}
				return
			}
			rep, st = e.testSaved(tenant, in.ID)
			checkConn(t, tc.name+" by id", rep, st, string(tc.code), tc.mentions...)
			if tc.afterSaved != nil {
				tc.afterSaved()
			}
		}()
	}
	for _, tc := range cases {
		e.noUnsavedStatus(tenant, tc.name+"-unsaved")
	}
}

// A connection test runs when an integration appears and when what it
// depends on (the bucket, the credentials) changes; not for a change of
// enabled or providers.
func TestAutomaticConnectionTestRunsOnlyWhenBucketOrCredentialsChange(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	const tenant = "tenant-auto"
	b := e.bucket("auto")
	missing := uniq("auto-missing")
	in := e.integration(tenant, "auto", b, "prov-1")
	var want []string // the codes of the statuses expected so far ("" = connected)
	step := func(what string, mutate func(*event.IntegrationPayload), code errcode.Code) {
		t.Helper()
		mutate(&in)
		e.put(in)
		if code != "none" {
			want = append(want, string(code))
			st := e.waitConn(tenant, in.ID, len(want)-1)
			checkStatus(t, what, st.Connected, st.Error, string(code))
		}
	}
	// sync makes sure every change published so far has been handled: the
	// changes of all integrations are handled in order, so once a change of
	// another integration has its status, those before it are done.
	syncN := 0
	sync := func() {
		t.Helper()
		syncN++
		e.putAndWaitConn(e.integration(tenant, "marker-"+string(rune('a'+syncN)), b, "prov-9"))
	}
	check := func(when string) {
		t.Helper()
		sync()
		var got []string
		for _, st := range e.connStatuses(tenant, in.ID) {
			code := ""
			if st.Error != nil {
				code = st.Error.Code
			}
			got = append(got, code)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: connection statuses %q, want %q\n%s", when, got, want, e.dump())
		}
	}
	off, on := false, true

	step("new integration", func(*event.IntegrationPayload) {}, "")
	check("after publishing a new integration")
	step("disabled", func(p *event.IntegrationPayload) { p.Enabled = &off }, "none")
	step("providers changed", func(p *event.IntegrationPayload) { p.Providers = []string{"prov-1", "prov-2"} }, "none")
	step("re-enabled", func(p *event.IntegrationPayload) { p.Enabled = &on }, "none")
	step("output directory changed", func(p *event.IntegrationPayload) { p.Configuration.OutputDirectory = "elsewhere" }, "none")
	check("after changing enabled, providers and the output directory")
	step("bucket changed", func(p *event.IntegrationPayload) { p.Configuration.BucketName = missing }, errcode.S3BucketNotFound)
	step("bucket changed back", func(p *event.IntegrationPayload) { p.Configuration.BucketName = b }, "")
	step("credentials changed", func(p *event.IntegrationPayload) {
		p.Credentials = &event.Credentials{AccessKeyID: e.s3.AccessKey, SecretAccessKey: "wrong-" + e.s3.SecretKey}
	}, errcode.AWSInvalidCredentials)
	step("credentials changed back", func(p *event.IntegrationPayload) {
		p.Credentials = &event.Credentials{AccessKeyID: e.s3.AccessKey, SecretAccessKey: e.s3.SecretKey}
	}, "")
	// A rejected state drops the integration; the same valid state
	// published again is a new integration and is tested again.
	valid := in.Configuration.BucketName
	step("rejected", func(p *event.IntegrationPayload) { p.Configuration.BucketName = "Bad_Bucket" }, errcode.S3InvalidBucketName)
	step("valid again", func(p *event.IntegrationPayload) { p.Configuration.BucketName = valid }, "")
	// So is one deleted and published again.
	if err := e.cl.DeleteIntegration(context.Background(), tenant, in.ID); err != nil {
		t.Fatal(err)
	}
	// The integrations stream keeps each integration's last message only:
	// published before the exporter has read the deletion, the re-creation
	// would replace it unseen (an exporter slowed by a busy machine lags).
	sync()
	step("re-created", func(*event.IntegrationPayload) {}, "")
	step("same state again", func(*event.IntegrationPayload) {}, "none")
	check("at the end")
}

// integrations.get shows the cached integration without its secrets, with
// its last connection status; exports.replay exports a scan again although
// the ledger says it succeeded; bad requests are answered InvalidRequest.
func TestGetReplayAndBadControlRequests(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	e := newEnv(t, nil)
	const tenant = "tenant-ctl"
	b := e.bucket("ctl")
	in := e.integration(tenant, "ctl", b, "prov-1")
	in.Configuration.OutputDirectory = "//findings//prowler/"
	if st := e.putAndWaitConn(in); !st.Connected {
		t.Fatalf("automatic test: %+v %v", st, st.Error)
	}

	got, err := e.cl.Get(context.Background(), tenant, "ctl")
	if err != nil {
		t.Fatal(err)
	}
	ig := got.Integration
	if ig.ID != "ctl" || ig.TenantID != tenant || ig.Type != event.TypeAmazonS3 || ig.Enabled == nil || !*ig.Enabled ||
		ig.Configuration.BucketName != b || ig.Configuration.OutputDirectory != "findings/prowler" ||
		strings.Join(ig.Providers, ",") != "prov-1" {
		t.Errorf("get: integration %+v", ig)
	}
	raw := e.rawControl(event.ControlGet, []byte(`{"tenant_id":"`+tenant+`","integration_id":"ctl"}`))
	if strings.Contains(string(raw), e.s3.SecretKey) || strings.Contains(string(raw), `"`+e.s3.AccessKey+`"`) {
		t.Errorf("get shows the credentials: %s", raw)
	}
	var wire struct {
		Integration struct {
			Credentials map[string]string `json:"credentials"`
		} `json:"integration"`
		Status *event.ConnectionStatus `json:"status"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		t.Fatalf("get reply %s: %v", raw, err)
	}
	if c := wire.Integration.Credentials; c["aws_access_key_id"] != e.s3.AccessKey[:4]+"…[REDACTED]" || c["aws_secret_access_key"] != "[REDACTED]" {
		t.Errorf("get: credentials %v, want the key ID masked and the secret redacted", c)
	}
	if st := wire.Status; st == nil || !st.Connected || st.BucketRegion != e.s3.Region() || st.Error != nil {
		t.Errorf("get: status %+v, want the last (connected) one", st)
	}

	// get follows the last status.
	broken := in
	broken.Credentials = &event.Credentials{AccessKeyID: e.s3.AccessKey, SecretAccessKey: "wrong-" + e.s3.SecretKey}
	if st := e.putAndWaitConn(broken); st.Error == nil || st.Error.Code != string(errcode.AWSInvalidCredentials) {
		t.Fatalf("automatic test with a wrong secret: %+v %v", st, st.Error)
	}
	got, err = e.cl.Get(context.Background(), tenant, "ctl")
	if err != nil {
		t.Fatal(err)
	}
	if st := got.Status; st == nil || st.Connected || st.Error == nil || st.Error.Code != string(errcode.AWSInvalidCredentials) {
		t.Errorf("get after a failed test: status %+v, want the last (AWSInvalidCredentials) one", st)
	}
	if st := e.putAndWaitConn(in); !st.Connected {
		t.Fatalf("automatic test: %+v %v", st, st.Error)
	}

	// Export a scan, then replay it although the ledger says succeeded.
	files, _ := prowlerFiles(51, "111122223333", frameworks[0])
	e.publishScan(tenant, "prov-1", "111122223333", "scan-ctl", files)
	first := e.waitExport("scan-ctl", "ctl")
	if first.State != event.StateSucceeded || len(first.Objects) != len(files) {
		t.Fatalf("first export: %s %d objects %v", first.State, len(first.Objects), first.Errors)
	}
	for _, o := range first.Objects {
		if n := e.s3.MustPutCount(t, b, o.Key); n != 1 {
			t.Fatalf("%s written %d times before the replay", o.Key, n)
		}
	}
	rep, err := e.cl.Replay(context.Background(), tenant, "scan-ctl", "ctl")
	if err != nil || !rep.Accepted {
		t.Fatalf("replay: %+v %v", rep, err)
	}
	sts := e.waitExports("scan-ctl", "ctl", 2)
	if second := sts[1]; second.State != event.StateSucceeded || len(second.Objects) != len(files) {
		t.Fatalf("replayed export: %s %d objects %v", second.State, len(second.Objects), second.Errors)
	}
	for _, o := range first.Objects {
		if n := e.s3.MustPutCount(t, b, o.Key); n != 2 {
			t.Errorf("%s written %d times after the replay, want 2", o.Key, n)
		}
	}
	// Without an integration_id, every matching integration.
	rep, err = e.cl.Replay(context.Background(), tenant, "scan-ctl", "")
	if err != nil || !rep.Accepted {
		t.Fatalf("replay to all: %+v %v", rep, err)
	}
	if st := e.waitExports("scan-ctl", "ctl", 3)[2]; st.State != event.StateSucceeded {
		t.Fatalf("replayed export: %s %v", st.State, st.Errors)
	}

	// Bad requests: an InvalidRequest error with a message, never silence.
	bad := []struct{ kind, body string }{
		{event.ControlTest, `{not json`},
		{event.ControlTest, `{}`},
		{event.ControlTest, `{"tenant_id":"` + tenant + `"}`},
		{event.ControlTest, `{"tenant_id":"` + tenant + `","integration_id":"nope"}`},
		{event.ControlTest, `{"integration":{"tenant_id":"` + tenant + `","type":"amazon_s3"}}`},
		{event.ControlGet, `[1,2`},
		{event.ControlGet, `{}`},
		{event.ControlGet, `{"integration_id":"ctl"}`},
		{event.ControlGet, `{"tenant_id":"` + tenant + `","integration_id":"nope"}`},
		{event.ControlGet, `{"tenant_id":"other-tenant","integration_id":"ctl"}`},
		{event.ControlReplay, `nope`},
		{event.ControlReplay, `{}`},
		{event.ControlReplay, `{"tenant_id":"` + tenant + `"}`},
		{event.ControlReplay, `{"scan_id":"scan-ctl"}`},
		{event.ControlReplay, `{"tenant_id":"` + tenant + `","scan_id":"no-such-scan"}`},
		{event.ControlReplay, `{"tenant_id":"other-tenant","scan_id":"scan-ctl"}`},
		{event.ControlReplay, `{"tenant_id":"` + tenant + `","scan_id":"scan-ctl","integration_id":"nope"}`},
		{event.ControlReplay, `{"tenant_id":"` + tenant + `","scan_id":"scan.ctl"}`},
	}
	for _, c := range bad {
		raw := e.rawControl(c.kind, []byte(c.body))
		var r struct {
			Error *event.ErrorBody `json:"error"`
		}
		if err := json.Unmarshal(raw, &r); err != nil || r.Error == nil || r.Error.Code != string(errcode.InvalidRequest) || r.Error.Message == "" {
			t.Errorf("%s %s: reply %s, want an InvalidRequest error with a message", c.kind, c.body, raw)
		}
	}
	// None of them exported anything.
	if n := len(e.exports("scan-ctl", "ctl")); n != 3 {
		t.Errorf("%d exports of scan-ctl after the bad requests, want 3", n)
	}
}
