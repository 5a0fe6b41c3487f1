package schemas

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/prowler-cloud/s3-exporter/errcode"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/integration"
)

const (
	baseID  = "https://prowler.example/s3-exporter/v1/"
	draft   = "https://json-schema.org/draft/2020-12/schema"
	defsDoc = "common.json" // shared definitions, not a payload
)

// payloads are the schemas of the contract's payloads, with the subject each
// goes with (prefix "prowler"), as README.md lists them.
var payloads = map[string]string{
	"integration-changed":    event.Subject("prowler", event.IntegrationsChanged, "<tenant_id>", "<integration_id>"),
	"scan-completed":         event.Subject("prowler", event.ScansCompleted, "<tenant_id>", "<provider_id>"),
	"export-status":          event.Subject("prowler", event.ExportsStatus, "<tenant_id>", "<integration_id>"),
	"connection-status":      event.Subject("prowler", event.IntegrationsStatus, "<tenant_id>", "<integration_id>"),
	"control-test-request":   event.Subject("prowler", event.ControlTest),
	"control-test-reply":     event.Subject("prowler", event.ControlTest),
	"control-get-request":    event.Subject("prowler", event.ControlGet),
	"control-get-reply":      event.Subject("prowler", event.ControlGet),
	"control-replay-request": event.Subject("prowler", event.ControlReplay),
	"control-replay-reply":   event.Subject("prowler", event.ControlReplay),
	"control-error-reply":    event.Subject("prowler", "control") + ".>",
	// Contract v1.1: the tenant-scoped control subjects. Their replies are
	// the tenant-less ones' (README.md lists both subjects on those rows);
	// their requests get schemas of their own because tenant_id is optional
	// there and required on the tenant-less subjects.
	"control-tenant-test-request":   event.ControlSubject("prowler", "<tenant_id>", event.OpTest),
	"control-tenant-get-request":    event.ControlSubject("prowler", "<tenant_id>", event.OpGet),
	"control-tenant-replay-request": event.ControlSubject("prowler", "<tenant_id>", event.OpReplay),
	"control-list-request":          event.ControlSubject("prowler", "<tenant_id>", event.OpList),
	"control-list-reply":            event.ControlSubject("prowler", "<tenant_id>", event.OpList),
	// Not a NATS payload: an object in the bucket (contract v1.1 §4), listed
	// here with its key instead of a subject.
	"manifest": "{dir}/manifests/prowler-output-{uid}-{ts}.manifest.json",
}

// schemaSet is every schema of the folder, compiled.
type schemaSet struct {
	raw      map[string]map[string]any // by file name
	compiled map[string]*jsonschema.Schema
}

func loadSchemas(t *testing.T) *schemaSet {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files found (%v)", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	set := &schemaSet{raw: map[string]map[string]any{}, compiled: map[string]*jsonschema.Schema{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource(baseID+f, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		set.raw[f] = m
	}
	for _, f := range files {
		sch, err := c.Compile(baseID + f)
		if err != nil {
			t.Fatalf("compiling %s: %v", f, err)
		}
		set.compiled[f] = sch
	}
	return set
}

// schema returns the compiled schema of a payload name ("export-status").
func (s *schemaSet) schema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	sch, ok := s.compiled[name+".json"]
	if !ok {
		t.Fatalf("no schema %s.json", name)
	}
	return sch
}

// validate validates JSON bytes against a payload's schema.
func (s *schemaSet) validate(t *testing.T, name string, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: not JSON: %v", name, err)
	}
	return s.schema(t, name).Validate(inst)
}

// validateValue marshals v as the exporter does and validates it.
func (s *schemaSet) validateValue(t *testing.T, name string, v any) error {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshalling %T: %v", v, err)
	}
	return s.validate(t, name, b)
}

type example struct {
	file    string // path
	schema  string // payload name
	invalid bool
	data    []byte
}

var exampleName = regexp.MustCompile(`^(.+?)\.(invalid\.)?([0-9]+)\.json$`)

func loadExamples(t *testing.T) []example {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("examples", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	var out []example
	for _, f := range files {
		m := exampleName.FindStringSubmatch(filepath.Base(f))
		if m == nil {
			t.Errorf("%s: name it <schema>.<n>.json or <schema>.invalid.<n>.json", f)
			continue
		}
		if _, ok := payloads[m[1]]; !ok {
			t.Errorf("%s: no payload schema %s.json", f, m[1])
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, example{file: f, schema: m[1], invalid: m[2] != "", data: b})
	}
	return out
}

func TestSchemasCompile(t *testing.T) {
	set := loadSchemas(t)
	want := []string{defsDoc}
	for name := range payloads {
		want = append(want, name+".json")
	}
	var got []string
	for f := range set.compiled {
		got = append(got, f)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("schema files = %v, want %v", got, want)
	}
}

func TestExamples(t *testing.T) {
	set := loadSchemas(t)
	valid, invalid := map[string]int{}, map[string]int{}
	for _, ex := range loadExamples(t) {
		err := set.validate(t, ex.schema, ex.data)
		switch {
		case ex.invalid && err == nil:
			t.Errorf("%s: accepted by %s.json, want refused", ex.file, ex.schema)
		case !ex.invalid && err != nil:
			t.Errorf("%s: refused by %s.json: %v", ex.file, ex.schema, err)
		case ex.invalid:
			invalid[ex.schema]++
			t.Logf("%s: refused as expected: %v", ex.file, oneLine(err))
		default:
			valid[ex.schema]++
		}
	}
	for name := range payloads {
		if valid[name] == 0 || invalid[name] == 0 {
			t.Errorf("%s: %d valid and %d invalid examples; want at least one of each", name, valid[name], invalid[name])
		}
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// TestSchemaMetadata checks what every schema must state: the draft, its $id,
// a title and description, a description on every property, and that every
// object accepts unknown fields (forward compatibility, in both directions).
func TestSchemaMetadata(t *testing.T) {
	set := loadSchemas(t)
	for f, doc := range set.raw {
		if doc["$schema"] != draft {
			t.Errorf("%s: $schema = %v, want %s", f, doc["$schema"], draft)
		}
		if doc["$id"] != baseID+f {
			t.Errorf("%s: $id = %v, want %s", f, doc["$id"], baseID+f)
		}
		for _, k := range []string{"title", "description"} {
			if s, _ := doc[k].(string); strings.TrimSpace(s) == "" {
				t.Errorf("%s: no %s", f, k)
			}
		}
		checkNode(t, f, "#", doc, false)
	}
}

// conditionKeywords hold subschemas that restate properties documented
// elsewhere in the same schema, to constrain them.
var conditionKeywords = map[string]bool{"if": true, "then": true, "else": true, "not": true,
	"dependentSchemas": true, "contains": true}

func checkNode(t *testing.T, file, ptr string, v any, inCondition bool) {
	switch n := v.(type) {
	case []any:
		for i, e := range n {
			checkNode(t, file, ptr+"/"+strconv.Itoa(i), e, inCondition)
		}
	case map[string]any:
		if ap, ok := n["additionalProperties"]; ok && ap != true {
			t.Errorf("%s %s: additionalProperties must be true (unknown fields are ignored)", file, ptr)
		}
		if _, ok := n["additionalProperties"]; !ok && n["properties"] != nil && !inCondition {
			t.Errorf("%s %s: schema with properties but no additionalProperties: true", file, ptr)
		}
		if props, ok := n["properties"].(map[string]any); ok && !inCondition {
			for name, p := range props {
				pm, _ := p.(map[string]any)
				if s, _ := pm["description"].(string); strings.TrimSpace(s) == "" {
					t.Errorf("%s %s/properties/%s: no description", file, ptr, name)
				}
			}
		}
		for k, sub := range n {
			if k == "enum" || k == "const" || k == "default" || k == "examples" {
				continue
			}
			checkNode(t, file, ptr+"/"+k, sub, inCondition || conditionKeywords[k])
		}
	}
}

// enumOf reads the enum at a JSON pointer made of object keys.
func enumOf(t *testing.T, set *schemaSet, file string, path ...string) []string {
	t.Helper()
	var v any = set.raw[file]
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s", file, strings.Join(path, "/"))
		}
		v = m[k]
	}
	m, _ := v.(map[string]any)
	raw, ok := m["enum"].([]any)
	if !ok {
		t.Fatalf("%s %s: no enum", file, strings.Join(path, "/"))
	}
	var out []string
	for _, e := range raw {
		out = append(out, e.(string))
	}
	slices.Sort(out)
	return out
}

func sorted[S ~string](in []S) []string {
	var out []string
	for _, s := range in {
		out = append(out, string(s))
	}
	slices.Sort(out)
	return out
}

// TestEnumsMatchCode keeps the schemas' closed lists equal to the code's.
func TestEnumsMatchCode(t *testing.T) {
	set := loadSchemas(t)
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"error codes (contract §5)", enumOf(t, set, defsDoc, "$defs", "errorCode"), sorted(errcode.All)},
		{"artifact formats", enumOf(t, set, defsDoc, "$defs", "format"), sorted(event.Formats)},
		{"export states", enumOf(t, set, "export-status.json", "properties", "state"),
			sorted([]string{event.StateSucceeded, event.StateRetrying, event.StateFailed})},
		{"actions", enumOf(t, set, "integration-changed.json", "properties", "action"),
			sorted([]string{event.ActionUpsert, event.ActionDelete})},
		{"control error code", enumOf(t, set, "control-error-reply.json", "properties", "error", "properties", "code"),
			[]string{string(errcode.InternalError), string(errcode.InvalidRequest)}},
		{"storage classes (v1.2)", enumOf(t, set, "integration-changed.json", "$defs", "configuration", "properties", "storage_class"),
			sorted(integration.StorageClasses)},
		{"breaker states (v1.1)", enumOf(t, set, "connection-status.json", "properties", "breaker"),
			sorted([]string{event.BreakerOpen, event.BreakerClosed})},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: schema has %v, code has %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestDefaultsMatchCode keeps the documented defaults and bounds equal to the
// ones the exporter applies.
func TestDefaultsMatchCode(t *testing.T) {
	set := loadSchemas(t)
	defs := set.raw["integration-changed.json"]["$defs"].(map[string]any)
	prop := func(def, name string) map[string]any {
		return defs[def].(map[string]any)["properties"].(map[string]any)[name].(map[string]any)
	}
	for _, tc := range []struct {
		what string
		got  any
		want any
	}{
		// The default depends on the tenant, which a schema default cannot say.
		{"role_session_name default", prop("credentials", "role_session_name")["default"], nil},
		{"role_session_name default described", strings.Contains(prop("credentials", "role_session_name")["description"].(string), "prowler-<tenant_id>") &&
			integration.DefaultSessionName("t") == "prowler-t", true},
		{"session_duration default", prop("credentials", "session_duration")["default"], float64(integration.DefaultSessionDuration)},
		{"session_duration minimum", prop("credentials", "session_duration")["minimum"], float64(integration.MinSessionDuration)},
		{"session_duration maximum", prop("credentials", "session_duration")["maximum"], float64(integration.MaxSessionDuration)},
		{"output_directory default", prop("configuration", "output_directory")["default"], integration.DefaultOutputDirectory},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: schema says %v, the exporter uses %v", tc.what, tc.got, tc.want)
		}
	}
}

// TestIDPatternMatchesCode checks the shared id definition against
// event.ValidID on edge cases.
func TestIDPatternMatchesCode(t *testing.T) {
	set := loadSchemas(t)
	// Validate ids through a payload that holds one and nothing else that matters.
	for _, id := range []string{"0b7e2f1c-3d4a-4b5c-8d9e-0f1a2b3c4d5e", "a", "A_b=c-9", strings.Repeat("x", 128),
		strings.Repeat("x", 129), "", "a.b", "a b", "a*", "a>", "tenant/1", "é", "a\n"} {
		b, _ := json.Marshal(event.GetRequest{TenantID: id, IntegrationID: "i"})
		err := set.validate(t, "control-get-request", b)
		if (err == nil) != event.ValidID(id) {
			t.Errorf("id %q: schema accepts = %v, event.ValidID = %v", id, err == nil, event.ValidID(id))
		}
	}
}

// TestReadme checks that README.md lists every schema with its subject, and
// documents the dead-letter subject and headers.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	lines := strings.Split(readme, "\n")
	for name, subject := range payloads {
		found := false
		for _, l := range lines {
			if strings.Contains(l, "("+name+".json)") && strings.Contains(l, "`"+subject+"`") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("README.md: no line links %s.json with subject `%s`", name, subject)
		}
	}
	// Contract v1.1: the tenant-scoped subjects answer with the same reply
	// schemas, so their rows must name those subjects too.
	for name, op := range map[string]string{"control-test-reply": event.OpTest, "control-get-reply": event.OpGet, "control-replay-reply": event.OpReplay} {
		subject := "`" + event.ControlSubject("prowler", "<tenant_id>", op) + "`"
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "("+name+".json)") && strings.Contains(l, subject) }) {
			t.Errorf("README.md: the row of %s.json does not name %s", name, subject)
		}
	}
	for _, s := range []string{event.HeaderDLQReason, event.HeaderOriginalSubject,
		"`" + event.Subject("prowler", event.DLQScans, "<tenant_id>") + "`", "(" + defsDoc + ")"} {
		if !strings.Contains(readme, s) {
			t.Errorf("README.md does not mention %s", s)
		}
	}
}
