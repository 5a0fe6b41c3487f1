package integration_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

// configuration.write_manifest (contract v1.1 §4): off unless asked for,
// kept when true, shown in control replies, and a value that is not a JSON
// boolean is refused with the field's name rather than read as false.
func TestParseChangeWriteManifest(t *testing.T) {
	p := &integration.Parser{Prefix: "prowler", AllowAmbient: true}
	m := upsert()
	payload(m)["configuration"] = map[string]any{"bucket_name": "bucket"}
	ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Integration.WriteManifest {
		t.Error("write_manifest does not default to false")
	}

	payload(m)["configuration"] = map[string]any{"bucket_name": "bucket", "write_manifest": true}
	ch, err = p.ParseChange(changeSubject, mustJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Integration.WriteManifest {
		t.Fatal("write_manifest: true was not kept")
	}
	b, err := json.Marshal(ch.Integration.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"write_manifest":true`) {
		t.Errorf("redacted integration does not show write_manifest: %s", b)
	}

	for _, bad := range []any{"true", 1, map[string]any{}} {
		payload(m)["configuration"] = map[string]any{"bucket_name": "bucket", "write_manifest": bad}
		ch, err := p.ParseChange(changeSubject, mustJSON(t, m))
		wantCode(t, "write_manifest", err, errcode.InvalidConfiguration)
		if err != nil && !strings.Contains(err.Error(), "write_manifest") {
			t.Errorf("write_manifest %v: error %v does not name the field", bad, err)
		}
		if ch.Integration != nil {
			t.Errorf("write_manifest %v: integration accepted", bad)
		}
	}
}
