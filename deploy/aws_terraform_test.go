package deploy

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

var terraformDir = filepath.Join("aws", "terraform")

type tfModule struct {
	blocks []*hclsyntax.Block // top-level blocks of every .tf file
}

func loadTerraform(t *testing.T) *tfModule {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(terraformDir, "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, want := range []string{"main.tf", "variables.tf", "outputs.tf"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing", want)
		}
	}
	p := hclparse.NewParser()
	m := &tfModule{}
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", f, diags)
		}
		m.blocks = append(m.blocks, file.Body.(*hclsyntax.Body).Blocks...)
	}
	return m
}

func (m *tfModule) find(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == typ && (labels == nil || slices.Equal(b.Labels, labels)) {
			out = append(out, b)
		}
	}
	return out
}

func (m *tfModule) one(t *testing.T, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	bs := m.find(typ, labels...)
	if len(bs) != 1 {
		t.Fatalf("%d %s %v blocks, want 1", len(bs), typ, labels)
	}
	return bs[0]
}

// alltrue is Terraform's alltrue, which cty's stdlib lacks.
var alltrueFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			if _, v := it.Element(); v.IsNull() || v.False() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})

// length is Terraform's length: of a string or of a collection.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if args[0].Type() == cty.String {
			return stdlib.Strlen(args[0])
		}
		return stdlib.Length(args[0])
	},
})

var tfFunctions = map[string]function.Function{
	"alltrue": alltrueFunc,
	"can":     tryfunc.CanFunc,
	"length":  lengthFunc,
	"merge":   stdlib.MergeFunc,
	"regex":   stdlib.RegexFunc,
	"try":     tryfunc.TryFunc,
}

// evalContext evaluates the module's variables (defaults overridden by
// vars), data.aws_partition and the locals.
func (m *tfModule) evalContext(t *testing.T, vars map[string]cty.Value) *hcl.EvalContext {
	t.Helper()
	values := map[string]cty.Value{}
	for _, b := range m.find("variable") {
		name := b.Labels[0]
		if v, ok := vars[name]; ok {
			values[name] = v
			continue
		}
		def, ok := b.Body.Attributes["default"]
		if !ok {
			t.Fatalf("variable %s has no default and no test value", name)
		}
		v, diags := def.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("variable %s default: %v", name, diags)
		}
		values[name] = v
	}
	for name := range vars {
		if _, ok := values[name]; !ok || len(m.find("variable", name)) == 0 {
			t.Fatalf("no variable %s", name)
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var": cty.ObjectVal(values),
			"data": cty.ObjectVal(map[string]cty.Value{
				"aws_partition": cty.ObjectVal(map[string]cty.Value{
					"current": cty.ObjectVal(map[string]cty.Value{"partition": cty.StringVal("aws")}),
				}),
			}),
		},
		Functions: tfFunctions,
	}
	// Locals, in as many passes as their references need.
	pending := map[string]hcl.Expression{}
	for _, b := range m.find("locals") {
		for name, a := range b.Body.Attributes {
			pending[name] = a.Expr
		}
	}
	locals := map[string]cty.Value{}
	for len(pending) > 0 {
		progress := false
		for name, e := range pending {
			ctx.Variables["local"] = cty.ObjectVal(locals)
			v, diags := e.Value(ctx)
			if diags.HasErrors() {
				continue
			}
			locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			t.Fatalf("locals %v cannot be evaluated", slices.Sorted(maps.Keys(pending)))
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return ctx
}

func evalStrings(t *testing.T, ctx *hcl.EvalContext, a *hclsyntax.Attribute) []string {
	t.Helper()
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", a.Name, diags)
	}
	var out []string
	if v.Type() == cty.String {
		return []string{v.AsString()}
	}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, e.AsString())
	}
	slices.Sort(out)
	return out
}

func evalCount(t *testing.T, ctx *hcl.EvalContext, b *hclsyntax.Block) int {
	t.Helper()
	a, ok := b.Body.Attributes["count"]
	if !ok {
		return 1
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s %v count: %v", b.Type, b.Labels, diags)
	}
	n, _ := v.AsBigFloat().Int64()
	return int(n)
}

// policyDocument evaluates a data "aws_iam_policy_document" block.
func (m *tfModule) policyDocument(t *testing.T, ctx *hcl.EvalContext, name string) []statement {
	t.Helper()
	b := m.one(t, "data", "aws_iam_policy_document", name)
	for attr := range b.Body.Attributes {
		if attr != "count" {
			t.Errorf("policy document %s sets %s: only statements expected", name, attr)
		}
	}
	var out []statement
	for _, sb := range b.Body.Blocks {
		if sb.Type != "statement" {
			t.Errorf("policy document %s has a %s block", name, sb.Type)
			continue
		}
		s := statement{Effect: "Allow"}
		for an, a := range sb.Body.Attributes {
			switch an {
			case "sid":
			case "effect":
				s.Effect = evalStrings(t, ctx, a)[0]
			case "actions":
				s.Actions = evalStrings(t, ctx, a)
			case "resources":
				s.Resources = evalStrings(t, ctx, a)
			default:
				t.Errorf("policy document %s statement sets %s", name, an)
			}
		}
		for _, nb := range sb.Body.Blocks {
			attrs := nb.Body.Attributes
			switch nb.Type {
			case "principals":
				if typ := evalStrings(t, ctx, attrs["type"]); !slices.Equal(typ, []string{"AWS"}) {
					t.Errorf("principals type %v, want AWS", typ)
				}
				s.Principals = append(s.Principals, evalStrings(t, ctx, attrs["identifiers"])...)
				slices.Sort(s.Principals)
			case "condition":
				if s.Conditions == nil {
					s.Conditions = map[string]map[string][]string{}
				}
				test := evalStrings(t, ctx, attrs["test"])[0]
				variable := evalStrings(t, ctx, attrs["variable"])[0]
				if s.Conditions[test] == nil {
					s.Conditions[test] = map[string][]string{}
				}
				s.Conditions[test][variable] = evalStrings(t, ctx, attrs["values"])
			default:
				t.Errorf("policy document %s statement has a %s block", name, nb.Type)
			}
		}
		out = append(out, s)
	}
	return out
}

func tfVars(enable bool, sourceAccounts ...string) map[string]cty.Value {
	ids := cty.ListValEmpty(cty.String)
	if len(sourceAccounts) > 0 {
		var l []cty.Value
		for _, a := range sourceAccounts {
			l = append(l, cty.StringVal(a))
		}
		ids = cty.ListVal(l)
	}
	return map[string]cty.Value{
		"trusted_principal_arn":            cty.StringVal(testPrincipal),
		"external_id":                      cty.StringVal(testExternalID),
		"enable_s3_integration":            cty.BoolVal(enable),
		"s3_integration_bucket_name":       cty.StringVal(testBucket),
		"s3_integration_bucket_account":    cty.StringVal(testBucketAccount),
		"bucket_policy_source_account_ids": ids,
	}
}

func TestTerraformResources(t *testing.T) {
	m := loadTerraform(t)
	var resources, data []string
	for _, b := range m.blocks {
		switch b.Type {
		case "resource":
			resources = append(resources, b.Labels[0])
		case "data":
			data = append(data, b.Labels[0])
		}
	}
	slices.Sort(resources)
	resources = slices.Compact(resources)
	if want := []string{"aws_iam_role", "aws_iam_role_policy"}; !slices.Equal(resources, want) {
		t.Errorf("resource types %v, want %v: a role and its policies (S3, the KMS key's, and the read policy of Prowler App's output bucket), nothing more", resources, want)
	}
	for _, name := range []string{"s3_integration", "kms_key", "prowler_app_outputs"} {
		m.one(t, "resource", "aws_iam_role_policy", name)
	}
	for _, d := range slices.Compact(slices.Sorted(slices.Values(data))) {
		if d != "aws_iam_policy_document" && d != "aws_partition" && d != "aws_iam_role" {
			t.Errorf("unexpected data source %s", d)
		}
	}
	role := m.one(t, "resource", "aws_iam_role", "exporter")
	for _, a := range []string{"inline_policy", "managed_policy_arns", "permissions_boundary"} {
		if _, ok := role.Body.Attributes[a]; ok {
			t.Errorf("the role sets %s: no permission beyond the S3 integration policy", a)
		}
	}
	refs := func(b *hclsyntax.Block, attr, want string) {
		t.Helper()
		a, ok := b.Body.Attributes[attr]
		if !ok {
			t.Errorf("%v has no %s", b.Labels, attr)
			return
		}
		for _, tr := range a.Expr.Variables() {
			if strings.HasPrefix(traversalString(tr), want) {
				return
			}
		}
		t.Errorf("%v %s does not refer to %s", b.Labels, attr, want)
	}
	refs(role, "assume_role_policy", "data.aws_iam_policy_document.trust")
	pol := m.one(t, "resource", "aws_iam_role_policy", "s3_integration")
	refs(pol, "policy", "data.aws_iam_policy_document.s3_integration")
	refs(pol, "role", "aws_iam_role.exporter")
	refs(pol, "role", "var.existing_role_name")
}

// TestTerraformExistingRole: with existing_role_name the module creates no
// role (nor its trust policy) and attaches the S3 integration policy to the
// named one, as Prowler's own Terraform for the S3 integration allows; the
// default role name is not ProwlerScan, Prowler's own scan role.
func TestTerraformExistingRole(t *testing.T) {
	m := loadTerraform(t)
	if def, _ := m.one(t, "variable", "role_name").Body.Attributes["default"].Expr.Value(nil); def.AsString() == "ProwlerScan" {
		t.Error("role_name defaults to ProwlerScan, Prowler's own scan role")
	}
	vars := tfVars(true)
	vars["existing_role_name"] = cty.StringVal("ExporterRole")
	vars["trusted_principal_arn"] = cty.NullVal(cty.String)
	vars["external_id"] = cty.NullVal(cty.String)
	existing := m.evalContext(t, vars)
	created := m.evalContext(t, tfVars(true))
	for _, tc := range []struct {
		b                 *hclsyntax.Block
		created, existing int
	}{
		{m.one(t, "resource", "aws_iam_role", "exporter"), 1, 0},
		{m.one(t, "data", "aws_iam_policy_document", "trust"), 1, 0},
		{m.one(t, "data", "aws_iam_role", "existing"), 0, 1},
		{m.one(t, "resource", "aws_iam_role_policy", "s3_integration"), 1, 1},
		{m.one(t, "data", "aws_iam_policy_document", "s3_integration"), 1, 1},
	} {
		if n := evalCount(t, created, tc.b); n != tc.created {
			t.Errorf("%v count %d creating the role, want %d", tc.b.Labels, n, tc.created)
		}
		if n := evalCount(t, existing, tc.b); n != tc.existing {
			t.Errorf("%v count %d with existing_role_name, want %d", tc.b.Labels, n, tc.existing)
		}
	}
	// The policy goes to the existing role by name, unchanged.
	role := m.one(t, "resource", "aws_iam_role_policy", "s3_integration").Body.Attributes["role"]
	existing.Variables["aws_iam_role"] = cty.ObjectVal(map[string]cty.Value{"exporter": cty.EmptyTupleVal})
	if v, diags := role.Expr.Value(existing); diags.HasErrors() || v.AsString() != "ExporterRole" {
		t.Errorf("policy role = %#v (%v), want ExporterRole", v, diags)
	}
	assertPolicy(t, "S3 integration policy", m.policyDocument(t, existing, "s3_integration"), integrationPolicy(testBucket, testBucketAccount))
	// Creating a role still needs the trust inputs.
	pre := m.one(t, "resource", "aws_iam_role", "exporter")
	var cond *hclsyntax.Attribute
	for _, lb := range pre.Body.Blocks {
		for _, pb := range lb.Body.Blocks {
			if pb.Type == "precondition" {
				cond = pb.Body.Attributes["condition"]
			}
		}
	}
	if cond == nil {
		t.Fatal("aws_iam_role.exporter has no precondition on its trust inputs")
	}
	noTrust := tfVars(true)
	noTrust["trusted_principal_arn"] = cty.NullVal(cty.String)
	if v, _ := cond.Expr.Value(m.evalContext(t, noTrust)); !v.False() {
		t.Error("the role's precondition accepts a missing trusted_principal_arn")
	}
	if v, _ := cond.Expr.Value(created); !v.True() {
		t.Error("the role's precondition refuses the test inputs")
	}
}

func TestTerraformPolicies(t *testing.T) {
	m := loadTerraform(t)

	ctx := m.evalContext(t, tfVars(true))
	assertPolicy(t, "trust policy", m.policyDocument(t, ctx, "trust"), trustPolicy(testPrincipal, testExternalID))
	assertPolicy(t, "S3 integration policy", m.policyDocument(t, ctx, "s3_integration"), integrationPolicy(testBucket, testBucketAccount))
	for _, b := range []*hclsyntax.Block{
		m.one(t, "data", "aws_iam_policy_document", "s3_integration"),
		m.one(t, "resource", "aws_iam_role_policy", "s3_integration"),
	} {
		if n := evalCount(t, ctx, b); n != 1 {
			t.Errorf("%v count %d with enable_s3_integration=true, want 1", b.Labels, n)
		}
		if n := evalCount(t, m.evalContext(t, tfVars(false)), b); n != 0 {
			t.Errorf("%v count %d with enable_s3_integration=false, want 0", b.Labels, n)
		}
	}

	// The bucket policy: none without source accounts, else the same three
	// grants to each account's role, identical to bucket-policy.json's.
	bp := m.one(t, "data", "aws_iam_policy_document", "bucket_policy")
	if n := evalCount(t, ctx, bp); n != 0 {
		t.Errorf("bucket policy count %d without source accounts, want 0", n)
	}
	for _, accounts := range [][]string{{"111111111111"}, {"111111111111", "222222222222"}} {
		ctx := m.evalContext(t, tfVars(true, accounts...))
		if n := evalCount(t, ctx, bp); n != 1 {
			t.Errorf("bucket policy count %d with %v, want 1", n, accounts)
		}
		var roles []string
		for _, a := range accounts {
			roles = append(roles, "arn:aws:iam::"+a+":role/ProwlerS3Exporter")
		}
		assertPolicy(t, fmt.Sprintf("bucket policy for %v", accounts), m.policyDocument(t, ctx, "bucket_policy"), bucketPolicy(testBucket, roles))
	}
}

func TestTerraformValidations(t *testing.T) {
	m := loadTerraform(t)
	valid := func(name string, v cty.Value) bool {
		t.Helper()
		b := m.one(t, "variable", name)
		vars := tfVars(true)
		vars[name] = v
		ctx := m.evalContext(t, vars)
		for _, vb := range b.Body.Blocks {
			if vb.Type != "validation" {
				continue
			}
			r, diags := vb.Body.Attributes["condition"].Expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("variable %s validation: %v", name, diags)
			}
			if r.False() {
				return false
			}
		}
		return true
	}
	s := cty.StringVal
	for _, tc := range []struct {
		name string
		v    cty.Value
		ok   bool
	}{
		{"trusted_principal_arn", s(testPrincipal), true},
		{"trusted_principal_arn", s("arn:aws:iam::111122223333:root"), true},
		{"trusted_principal_arn", s("ProwlerScan"), false},
		{"trusted_principal_arn", cty.NullVal(cty.String), true}, // with existing_role_name; the role's precondition requires it otherwise
		{"external_id", cty.NullVal(cty.String), true},
		{"existing_role_name", s(""), true},
		{"existing_role_name", s("ExporterRole"), true},
		{"existing_role_name", s("arn:aws:iam::111122223333:role/ExporterRole"), false},
		{"external_id", s(testExternalID), true},
		{"external_id", s("x"), false},
		{"external_id", s("has space"), false},
		{"s3_integration_bucket_name", s(testBucket), true},
		{"s3_integration_bucket_name", s("Bad_Bucket"), false},
		{"s3_integration_bucket_name", s("bucket/prefix"), false},
		{"s3_integration_bucket_account", s(testBucketAccount), true},
		{"s3_integration_bucket_account", s("1234"), false},
		{"bucket_policy_source_account_ids", cty.ListVal([]cty.Value{s("111111111111"), s("222222222222")}), true},
		{"bucket_policy_source_account_ids", cty.ListVal([]cty.Value{s("111111111111"), s("nope")}), false},
		{"max_session_duration", cty.NumberIntVal(3600), true},
		{"max_session_duration", cty.NumberIntVal(60), false},
	} {
		if got := valid(tc.name, tc.v); got != tc.ok {
			t.Errorf("%s = %#v valid=%v, want %v", tc.name, tc.v, got, tc.ok)
		}
	}
}

// TestTerraformReferencesResolve checks that every var., local., data. and
// resource reference names something the module declares.
func TestTerraformReferencesResolve(t *testing.T) {
	m := loadTerraform(t)
	declared := map[string]bool{}
	for _, b := range m.blocks {
		switch b.Type {
		case "variable":
			declared["var."+b.Labels[0]] = true
		case "locals":
			for n := range b.Body.Attributes {
				declared["local."+n] = true
			}
		case "data":
			declared["data."+b.Labels[0]+"."+b.Labels[1]] = true
		case "resource":
			declared[b.Labels[0]+"."+b.Labels[1]] = true
		}
	}
	var outputs []string
	for _, b := range m.blocks {
		if b.Type == "output" {
			outputs = append(outputs, b.Labels[0])
		}
		hclsyntax.VisitAll(b.Body, func(n hclsyntax.Node) hcl.Diagnostics {
			e, ok := n.(*hclsyntax.ScopeTraversalExpr)
			if !ok {
				return nil
			}
			ref := traversalString(e.Traversal)
			parts := strings.Split(ref, ".")
			var key string
			switch root := parts[0]; {
			case root == "var" || root == "local":
				key = strings.Join(parts[:2], ".")
			case root == "data" && len(parts) >= 3:
				key = strings.Join(parts[:3], ".")
			case strings.HasPrefix(root, "aws_") && len(parts) >= 2:
				key = strings.Join(parts[:2], ".")
			default:
				return nil // for-expression names, count, each
			}
			if !declared[key] {
				t.Errorf("%s %v refers to undeclared %s", b.Type, b.Labels, key)
			}
			return nil
		})
	}
	slices.Sort(outputs)
	for _, o := range []string{"bucket_policy_json", "external_id", "role_arn"} {
		if !slices.Contains(outputs, o) {
			t.Errorf("no output %s (have %v)", o, outputs)
		}
	}
}

// traversalString renders var.x.y, dropping index steps.
func traversalString(tr hcl.Traversal) string {
	var parts []string
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, s.Name)
		case hcl.TraverseAttr:
			parts = append(parts, s.Name)
		}
	}
	return strings.Join(parts, ".")
}

// TestTerraformProwlerAppOutputsPolicy: the optional part (contract v1.2)
// attaches to the exporter's own role exactly s3:GetObject on the output
// bucket's objects and s3:GetBucketLocation on it, and is absent unless
// prowler_app_output_bucket_name is set; the role's name is then required.
func TestTerraformProwlerAppOutputsPolicy(t *testing.T) {
	m := loadTerraform(t)
	doc := m.one(t, "data", "aws_iam_policy_document", "prowler_app_outputs")
	pol := m.one(t, "resource", "aws_iam_role_policy", "prowler_app_outputs")
	off := m.evalContext(t, tfVars(true))
	for _, b := range []*hclsyntax.Block{doc, pol} {
		if n := evalCount(t, off, b); n != 0 {
			t.Errorf("%v count %d without an output bucket, want 0", b.Labels, n)
		}
	}
	vars := tfVars(false)
	vars["prowler_app_output_bucket_name"] = cty.StringVal("prowler-app-outputs")
	vars["exporter_role_name"] = cty.StringVal("s3-exporter")
	on := m.evalContext(t, vars)
	for _, b := range []*hclsyntax.Block{doc, pol} {
		if n := evalCount(t, on, b); n != 1 {
			t.Errorf("%v count %d with an output bucket, want 1", b.Labels, n)
		}
	}
	assertPolicy(t, "output bucket read policy", m.policyDocument(t, on, "prowler_app_outputs"), outputsReadPolicy("prowler-app-outputs"))
	if v, diags := pol.Body.Attributes["role"].Expr.Value(on); diags.HasErrors() || v.AsString() != "s3-exporter" {
		t.Errorf("read policy attached to %#v (%v), want s3-exporter", v, diags)
	}
	var cond *hclsyntax.Attribute
	for _, lb := range pol.Body.Blocks {
		for _, pb := range lb.Body.Blocks {
			if pb.Type == "precondition" {
				cond = pb.Body.Attributes["condition"]
			}
		}
	}
	if cond == nil {
		t.Fatal("the read policy has no precondition on exporter_role_name")
	}
	vars["exporter_role_name"] = cty.StringVal("")
	if v, _ := cond.Expr.Value(m.evalContext(t, vars)); !v.False() {
		t.Error("the read policy's precondition accepts an empty exporter_role_name")
	}
}

// TestTerraformKmsKey: with s3_integration_kms_key_arn the role may use that
// one key through S3 (kms:GenerateDataKey, kms:Decrypt for multipart
// uploads), in a policy of its own; without it, nothing KMS.
func TestTerraformKmsKey(t *testing.T) {
	m := loadTerraform(t)
	doc := m.one(t, "data", "aws_iam_policy_document", "kms_key")
	pol := m.one(t, "resource", "aws_iam_role_policy", "kms_key")
	for _, b := range []*hclsyntax.Block{doc, pol} {
		if n := evalCount(t, m.evalContext(t, tfVars(true)), b); n != 0 {
			t.Errorf("%v count %d without a key, want 0", b.Labels, n)
		}
	}
	vars := tfVars(true)
	vars["s3_integration_kms_key_arn"] = cty.StringVal(testKmsKey)
	ctx := m.evalContext(t, vars)
	for _, b := range []*hclsyntax.Block{doc, pol} {
		if n := evalCount(t, ctx, b); n != 1 {
			t.Errorf("%v count %d with a key, want 1", b.Labels, n)
		}
	}
	assertPolicy(t, "KMS key policy", m.policyDocument(t, ctx, "kms_key"), kmsKeyPolicy(testKmsKey))
	vars["enable_s3_integration"] = cty.BoolVal(false)
	if n := evalCount(t, m.evalContext(t, vars), pol); n != 0 {
		t.Errorf("KMS key policy count %d with the integration disabled, want 0", n)
	}
}
