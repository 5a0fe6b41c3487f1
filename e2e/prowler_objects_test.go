package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Contract v1.1 §3/§4, end to end: 0-byte artifacts (Prowler writes empty
// compliance CSVs) land as empty objects from both kinds of source, the
// compliance-ocsf format lands beside the compliance CSVs, and every object,
// by one PutObject or by a multipart upload, carries the prowler-* user
// metadata, read back with HeadObject.
func TestEmptyArtifactsAndObjectMetadata(t *testing.T) {
	t.Parallel() // a world of its own: its NATS server, its buckets
	root := t.TempDir()
	e := newEnv(t, func(c *config.Config) {
		c.FileSourceRoots = []string{root}
		c.PartSize, c.MultipartThreshold = 5<<20, 5<<20
	})
	b := e.bucket("meta")
	e.putAndWaitConn(e.integration("tenant-a", "a-s3", b, "prov-a"))
	ctx := context.Background()

	small := []byte("PROVIDER;ACCOUNT_UID;STATUS\naws;111122223333;FAIL\n")
	big := bytes.Repeat([]byte(`{"finding_info":{"uid":"x"},"status_code":"FAIL"}`+"\n"), (12<<20)/50)
	asff := []byte(`[{"SchemaVersion":"2018-10-08"}]`)
	ocsf := []byte(`[{"metadata":{"product":{"name":"Prowler"}}}]`)
	arts, err := e.cl.PutArtifacts(ctx, "", "tenant-a", "scan-meta", []client.File{
		{Format: "csv", Name: "out.csv", Body: bytes.NewReader(small)},
		{Format: "json-ocsf", Name: "out.ocsf.json", Body: bytes.NewReader(big)},
		{Format: "compliance", Framework: "cis_5.0_aws", Name: "compliance/cis.csv", Body: bytes.NewReader(nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "tenant-a", "scan-meta")
	for name, data := range map[string][]byte{"out.html": nil, "out.asff.json": asff, "compliance/cmmc.ocsf.json": nil, "compliance/ctl.ocsf.json": ocsf} {
		writeFile(t, filepath.Join(dir, name), data)
	}
	if fi, err := os.Stat(filepath.Join(dir, "out.html")); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file: %v %v", fi, err)
	}
	f := func(name string) string { return "file://" + filepath.Join(dir, name) }
	arts = append(arts,
		event.Artifact{Format: "html", Source: f("out.html")},
		event.Artifact{Format: "json-asff", Source: f("out.asff.json"), SHA256: hexSum(asff)},
		event.Artifact{Format: "compliance-ocsf", Framework: "cmmc_2.0", Source: f("compliance/cmmc.ocsf.json"), Size: aws.Int64(0)},
		event.Artifact{Format: "compliance-ocsf", Framework: "cis_controls_8.1", Source: f("compliance/ctl.ocsf.json")},
	)
	e.publish(fileScan("scan-meta", "111122223333", arts...))
	st := e.waitExport("scan-meta", "a-s3")
	if st.State != event.StateSucceeded || len(st.Objects) != 7 {
		t.Fatalf("export: %s, %d objects, errors %+v", st.State, len(st.Objects), st.Errors)
	}

	const p = "output/"
	const n = "prowler-output-111122223333-20250805120000"
	want := []struct {
		key, format, framework, ctype string
		body                          []byte
		sha                           string // expected in the metadata; "" when the event gave none
	}{
		{p + "csv/" + n + ".csv", "csv", "", "text/csv", small, hexSum(small)},
		{p + "json-ocsf/" + n + ".ocsf.json", "json-ocsf", "", "application/json", big, hexSum(big)}, // multipart
		{p + "compliance/" + n + "_cis_5.0_aws.csv", "compliance", "cis_5.0_aws", "text/csv", nil, hexSum(nil)},
		{p + "html/" + n + ".html", "html", "", "text/html", nil, ""},
		{p + "json-asff/" + n + ".asff.json", "json-asff", "", "application/json", asff, hexSum(asff)},
		{p + "compliance/" + n + "_cmmc_2.0.ocsf.json", "compliance-ocsf", "cmmc_2.0", "application/json", nil, ""},
		{p + "compliance/" + n + "_cis_controls_8.1.ocsf.json", "compliance-ocsf", "cis_controls_8.1", "application/json", ocsf, ""},
	}
	got := e.objects(b)
	if len(got) != len(want) {
		t.Fatalf("objects %v", keysOf(got))
	}
	for _, w := range want {
		o, ok := got[w.key]
		if !ok {
			t.Errorf("%s missing; objects %v", w.key, keysOf(got))
			continue
		}
		if !bytes.Equal(o.Body, w.body) || o.ContentType != w.ctype {
			t.Errorf("%s: %d bytes %q, want %d bytes %q", w.key, len(o.Body), o.ContentType, len(w.body), w.ctype)
		}
		h, err := e.s3.RootClient().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(w.key)})
		if err != nil {
			t.Fatalf("HeadObject %s: %v", w.key, err)
		}
		wantMeta := map[string]string{"prowler-scan-id": "scan-meta", "prowler-provider-uid": "111122223333", "prowler-format": w.format}
		if w.framework != "" {
			wantMeta["prowler-framework"] = w.framework
		}
		if w.sha != "" {
			wantMeta["prowler-sha256"] = w.sha
		}
		if !maps.Equal(h.Metadata, wantMeta) {
			t.Errorf("%s: metadata %v, want %v", w.key, h.Metadata, wantMeta)
		}
		if aws.ToInt64(h.ContentLength) != int64(len(w.body)) {
			t.Errorf("%s: HeadObject says %d bytes, want %d", w.key, aws.ToInt64(h.ContentLength), len(w.body))
		}
	}
}
