package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// statement is an IAM policy statement in a comparable form.
type statement struct {
	Effect     string
	Principals []string // AWS principals, sorted
	Actions    []string // sorted
	Resources  []string // sorted
	Conditions map[string]map[string][]string
}

func (s statement) String() string {
	return fmt.Sprintf("{%s %v %v on %v if %v}", s.Effect, s.Principals, s.Actions, s.Resources, s.Conditions)
}

const (
	testBucket        = "my-security-findings-bucket"
	testBucketAccount = "444455556666"
	testPrincipal     = "arn:aws:iam::111122223333:role/s3-exporter"
	testExternalID    = "0b7e2f1c-tenant"
	beacon            = "test-prowler-connection.txt"
)

// integrationPolicy is the contract's S3 integration policy (contract §5).
func integrationPolicy(bucket, account string) []statement {
	cond := map[string]map[string][]string{"StringEquals": {"s3:ResourceAccount": {account}}}
	return []statement{
		{Effect: "Allow", Actions: []string{"s3:PutObject"}, Resources: []string{"arn:aws:s3:::" + bucket + "/*"}, Conditions: cond},
		{Effect: "Allow", Actions: []string{"s3:DeleteObject"}, Resources: []string{"arn:aws:s3:::" + bucket + "/*" + beacon}, Conditions: cond},
		{Effect: "Allow", Actions: []string{"s3:GetBucketLocation"}, Resources: []string{"arn:aws:s3:::" + bucket}, Conditions: cond},
	}
}

// outputsReadPolicy is the exporter's own role's read policy on Prowler App's
// output bucket (contract v1.2 §9).
func outputsReadPolicy(bucket string) []statement {
	return []statement{
		{Effect: "Allow", Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::" + bucket + "/*"}},
		{Effect: "Allow", Actions: []string{"s3:GetBucketLocation"}, Resources: []string{"arn:aws:s3:::" + bucket}},
	}
}

const testKmsKey = "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// kmsKeyPolicy is the use of the bucket's KMS key through S3 (docs/tenant-buckets.md).
func kmsKeyPolicy(key string) []statement {
	return []statement{{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, Resources: []string{key},
		Conditions: map[string]map[string][]string{"StringLike": {"kms:ViaService": {"s3.*.amazonaws.com"}}}}}
}

// bucketPolicy is the cross-account bucket policy granting the same actions
// to the given roles.
func bucketPolicy(bucket string, roles []string) []statement {
	roles = slices.Sorted(slices.Values(roles))
	return []statement{
		{Effect: "Allow", Principals: roles, Actions: []string{"s3:PutObject"}, Resources: []string{"arn:aws:s3:::" + bucket + "/*"}},
		{Effect: "Allow", Principals: roles, Actions: []string{"s3:DeleteObject"}, Resources: []string{"arn:aws:s3:::" + bucket + "/*" + beacon}},
		{Effect: "Allow", Principals: roles, Actions: []string{"s3:GetBucketLocation"}, Resources: []string{"arn:aws:s3:::" + bucket}},
	}
}

func trustPolicy(principal, externalID string) []statement {
	return []statement{{
		Effect: "Allow", Principals: []string{principal}, Actions: []string{"sts:AssumeRole"},
		Conditions: map[string]map[string][]string{"StringEquals": {"sts:ExternalId": {externalID}}},
	}}
}

func sortStatements(st []statement) []statement {
	st = slices.Clone(st)
	slices.SortFunc(st, func(a, b statement) int { return strings.Compare(a.String(), b.String()) })
	return st
}

// policyDiff describes how got differs from want, statement order aside;
// "" when they are the same.
func policyDiff(got, want []statement) string {
	got, want = sortStatements(got), sortStatements(want)
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("\n got  %v\n want %v", got, want)
}

func assertPolicy(t *testing.T, what string, got, want []statement) {
	t.Helper()
	if d := policyDiff(got, want); d != "" {
		t.Errorf("%s:%s", what, d)
	}
}

// strs turns a JSON-like string or list of strings into a sorted list.
func strs(t *testing.T, v any) []string {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				t.Fatalf("%v (%T) in a string list", e, e)
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
	t.Fatalf("%v (%T) is not a string or a list", v, v)
	return nil
}

// parsePolicy normalises a JSON-like policy document.
func parsePolicy(t *testing.T, doc any) []statement {
	t.Helper()
	d, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("policy document %v is not an object", doc)
	}
	if d["Version"] != "2012-10-17" {
		t.Errorf("policy Version %v, want 2012-10-17", d["Version"])
	}
	list, ok := d["Statement"].([]any)
	if !ok {
		t.Fatalf("policy Statement %v is not a list", d["Statement"])
	}
	var out []statement
	for _, raw := range list {
		m := raw.(map[string]any)
		for k := range m {
			if !slices.Contains([]string{"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}, k) {
				t.Errorf("statement has an unexpected %s (NotAction, NotResource and NotPrincipal widen grants)", k)
			}
		}
		s := statement{Effect: m["Effect"].(string), Actions: strs(t, m["Action"]), Resources: strs(t, m["Resource"])}
		if p, ok := m["Principal"]; ok {
			pm, ok := p.(map[string]any)
			if !ok || len(pm) != 1 {
				t.Fatalf("Principal %v: want {AWS: ...}", p)
			}
			s.Principals = strs(t, pm["AWS"])
		}
		if c, ok := m["Condition"].(map[string]any); ok {
			s.Conditions = map[string]map[string][]string{}
			for op, kv := range c {
				s.Conditions[op] = map[string][]string{}
				for k, v := range kv.(map[string]any) {
					s.Conditions[op][k] = strs(t, v)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// --- CloudFormation ---------------------------------------------------------

const cfnPath = "aws/cloudformation/prowler-s3-integration-role.yaml"

// cfnStack is the template as CloudFormation would create it with the given
// parameters. goformation does the work: it reads the short-form tags (!Ref,
// !Sub, !If, ...), resolves the intrinsic functions against the parameters
// and the conditions, and its typed resources refuse a property the
// resource type does not have.
type cfnStack struct {
	decl      map[string]cfnParameter // as declared: defaults, patterns
	outputs   map[string]any          // resolved
	rules     map[string]any          // resolved
	resources map[string]cfnResource  // the ones created
}

type cfnParameter struct {
	Default        any
	AllowedPattern *string
}

// cfnResource is a created resource: Typed is goformation's *iam.Role or
// *iam.RolePolicy, nil for any other type.
type cfnResource struct {
	Type  string
	Typed any
}

// cfnTypes are the types the template may create, decoded into goformation's
// structs, whose UnmarshalJSON refuses unknown properties. Its Template type
// (package cloudformation) would decode any type, but it imports every AWS
// service's package: about 250 packages and 35 CPU seconds of cold build for
// the two types we need.
var cfnTypes = map[string]func() any{
	"AWS::IAM::Role":       func() any { return new(iam.Role) },
	"AWS::IAM::RolePolicy": func() any { return new(iam.RolePolicy) },
}

// loadCFN resolves the template with params overriding the defaults.
func loadCFN(t *testing.T, params map[string]string) *cfnStack {
	t.Helper()
	// Long form only: short-form tags become {"Ref": ...}, {"Fn::Sub": ...}.
	longForm, err := intrinsics.ProcessYAML(readFile(t, cfnPath), &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatalf("%s: %v", cfnPath, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(longForm, &raw); err != nil {
		t.Fatalf("%s: %v", cfnPath, err)
	}
	st := &cfnStack{}
	if err := remarshal(raw["Parameters"], &st.decl); err != nil {
		t.Fatalf("%s Parameters: %v", cfnPath, err)
	}
	// goformation ignores an override of an undeclared parameter and
	// resolves a Ref to a parameter with no value to null; CloudFormation
	// refuses both.
	overrides := map[string]any{}
	for k, v := range params {
		if _, ok := st.decl[k]; !ok {
			t.Fatalf("template has no parameter %s", k)
		}
		overrides[k] = v
	}
	for name, p := range st.decl {
		if _, ok := params[name]; !ok && p.Default == nil {
			t.Fatalf("parameter %s has no default and no test value", name)
		}
	}

	// Our own part, because goformation cannot express it:
	//  - With EvaluateConditions it replaces any object that has a
	//    "Condition": "<name>" key by the condition's value, so a conditional
	//    resource or output becomes `true` (goformation issue 224). The
	//    Condition keys are lifted out here; a resource's is applied below
	//    (the tests read only the outputs' names).
	//  - Its Ref knows AWS::AccountId, Region and StackName but not
	//    AWS::Partition, and its Fn::Sub calls that Ref directly (not an
	//    override) and drops what it cannot resolve. Declared as a
	//    parameter, AWS::Partition resolves in both.
	//  - Its Ref to a resource gives null; the handler below names the
	//    resource instead, so a test can see which role a policy attaches to.
	conditionOf := map[string]string{} // resource name: condition
	for _, section := range []string{"Resources", "Outputs"} {
		entries, _ := raw[section].(map[string]any)
		for name, e := range entries {
			if m, ok := e.(map[string]any); ok {
				if c, ok := m["Condition"].(string); ok {
					if section == "Resources" {
						conditionOf[name] = c
					}
					delete(m, "Condition")
				}
			}
		}
	}
	raw["Parameters"].(map[string]any)["AWS::Partition"] = map[string]any{"Type": "String", "Default": "aws"}
	resources, _ := raw["Resources"].(map[string]any)
	var unresolved []any // CloudFormation refuses a Ref to nothing; goformation gives null
	ref := func(name string, input, template any) any {
		if v := intrinsics.Ref(name, input, template); v != nil {
			return v
		}
		if s, ok := input.(string); ok && resources[s] != nil {
			return "<ref:" + s + ">"
		}
		if input != "AWS::NoValue" {
			unresolved = append(unresolved, input)
		}
		return nil
	}

	longForm, err = json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := intrinsics.ProcessJSON(longForm, &intrinsics.ProcessorOptions{
		ParameterOverrides:        overrides,
		EvaluateConditions:        true,
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{"Ref": ref},
	})
	if err != nil {
		t.Fatalf("%s: %v", cfnPath, err)
	}
	if len(unresolved) > 0 {
		t.Fatalf("%s: Ref to nothing: %v", cfnPath, unresolved)
	}
	var sections struct {
		Conditions, Outputs, Rules map[string]any
		Resources                  map[string]json.RawMessage
	}
	if err := json.Unmarshal(resolved, &sections); err != nil {
		t.Fatal(err)
	}
	st.outputs, st.rules = sections.Outputs, sections.Rules

	holds := map[string]bool{}
	for name, c := range sections.Conditions {
		b, ok := c.(bool)
		if !ok {
			t.Fatalf("condition %s is not a boolean: %v", name, c)
		}
		holds[name] = b
	}
	st.resources = map[string]cfnResource{}
	for name, r := range sections.Resources {
		if c, ok := conditionOf[name]; ok {
			b, declared := holds[c]
			if !declared {
				t.Fatalf("resource %s has an undeclared condition %s", name, c)
			}
			if !b {
				continue
			}
		}
		var head struct{ Type string }
		if err := json.Unmarshal(r, &head); err != nil {
			t.Fatalf("resource %s: %v", name, err)
		}
		res := cfnResource{Type: head.Type}
		if newTyped, ok := cfnTypes[head.Type]; ok {
			res.Typed = newTyped()
			if err := json.Unmarshal(r, res.Typed); err != nil {
				t.Fatalf("resource %s (%s): %v", name, head.Type, err)
			}
		}
		st.resources[name] = res
	}
	return st
}

// remarshal decodes a JSON-like value into a typed one.
func remarshal(v, into any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func cfnParams(enable string) map[string]string {
	return map[string]string{
		"TrustedPrincipalArn":        testPrincipal,
		"ExternalId":                 testExternalID,
		"EnableS3Integration":        enable,
		"S3IntegrationBucketName":    testBucket,
		"S3IntegrationBucketAccount": testBucketAccount,
	}
}

func TestCloudFormationRoleAndPolicy(t *testing.T) {
	for _, enable := range []string{"true", "false"} {
		t.Run("EnableS3Integration="+enable, func(t *testing.T) {
			res := loadCFN(t, cfnParams(enable)).resources
			var roleName string
			var role *iam.Role
			var policies []*iam.RolePolicy
			for name, r := range res {
				switch typed := r.Typed.(type) {
				case *iam.Role:
					if roleName != "" {
						t.Fatalf("two roles: %s and %s", roleName, name)
					}
					roleName, role = name, typed
				case *iam.RolePolicy:
					policies = append(policies, typed)
				default:
					t.Errorf("resource %s of type %s: the template creates a role and its policy only", name, r.Type)
				}
			}
			if role == nil {
				t.Fatal("no AWS::IAM::Role")
			}
			// nil, not empty: an empty Policies list in the template is
			// still a property that should not be there.
			for k, set := range map[string]bool{
				"Policies":            role.Policies != nil,
				"ManagedPolicyArns":   role.ManagedPolicyArns != nil,
				"PermissionsBoundary": role.PermissionsBoundary != nil,
			} {
				if set {
					t.Errorf("role has %s: no permission beyond the S3 integration policy", k)
				}
			}
			assertPolicy(t, "trust policy", parsePolicy(t, role.AssumeRolePolicyDocument), trustPolicy(testPrincipal, testExternalID))

			if enable == "false" {
				if len(policies) != 0 {
					t.Errorf("%d policies with the integration disabled", len(policies))
				}
				return
			}
			if len(policies) != 1 {
				t.Fatalf("%d role policies, want 1", len(policies))
			}
			p := policies[0]
			if p.RoleName != "<ref:"+roleName+">" {
				t.Errorf("policy attached to %v, want the role %s", p.RoleName, roleName)
			}
			assertPolicy(t, "S3 integration policy", parsePolicy(t, p.PolicyDocument), integrationPolicy(testBucket, testBucketAccount))
		})
	}
}

func TestCloudFormationParameterPatterns(t *testing.T) {
	st := loadCFN(t, cfnParams("true"))
	pattern := func(name string) *regexp.Regexp {
		p := st.decl[name].AllowedPattern
		if p == nil {
			t.Fatalf("parameter %s has no AllowedPattern", name)
		}
		return regexp.MustCompile("^(?:" + *p + ")$") // CloudFormation matches the whole value
	}
	for _, tc := range []struct {
		param, value string
		ok           bool
	}{
		{"S3IntegrationBucketName", testBucket, true},
		{"S3IntegrationBucketName", "", false}, // required: an empty default made cfn-lint W1031 fire
		{"S3IntegrationBucketName", "My_Bucket", false},
		{"S3IntegrationBucketName", "s3://bucket", false},
		{"S3IntegrationBucketName", "bucket/prefix", false},
		{"S3IntegrationBucketAccount", testBucketAccount, true},
		{"S3IntegrationBucketAccount", "12345", false},
		{"TrustedPrincipalArn", testPrincipal, true},
		{"TrustedPrincipalArn", "arn:aws:iam::111122223333:root", true},
		{"TrustedPrincipalArn", "111122223333", false},
		{"ExternalId", testExternalID, true},
		{"ExternalId", "has space", false},
		{"RoleName", "ProwlerS3Exporter", true},
		{"ExistingRoleName", "", true},
		{"ExistingRoleName", "ExporterRole", true},
		{"ExistingRoleName", "arn:aws:iam::111122223333:role/ExporterRole", false},
		{"TrustedPrincipalArn", "", true}, // with ExistingRoleName; a Rule requires it otherwise
		{"ExternalId", "", true},
		{"ExternalId", "x", false},
	} {
		if got := pattern(tc.param).MatchString(tc.value); got != tc.ok {
			t.Errorf("%s %q accepted=%v, want %v", tc.param, tc.value, got, tc.ok)
		}
	}
	for _, out := range []string{"RoleArn", "ExternalId"} {
		if _, ok := st.outputs[out]; !ok {
			t.Errorf("no output %s", out)
		}
	}
}

// TestCloudFormationDefaultRoleName: the default must not be ProwlerScan, the
// name of Prowler's own scan role (the two would collide in one account).
func TestCloudFormationDefaultRoleName(t *testing.T) {
	st := loadCFN(t, cfnParams("true"))
	def := st.decl["RoleName"].Default
	if def == "ProwlerScan" || def == nil || def == "" {
		t.Errorf("RoleName default %v", def)
	}
	role, ok := st.resources["Role"].Typed.(*iam.Role)
	if !ok {
		t.Fatalf("no AWS::IAM::Role named Role: %v", st.resources["Role"])
	}
	if role.RoleName == nil || *role.RoleName != def {
		t.Errorf("role named %v, want the default %v", role.RoleName, def)
	}
}

// TestCloudFormationExistingRole: with ExistingRoleName the template creates
// no role and attaches the same S3 integration policy to the named one, as
// Prowler's own Terraform for the S3 integration allows.
func TestCloudFormationExistingRole(t *testing.T) {
	params := cfnParams("true")
	params["ExistingRoleName"] = "ExporterRole"
	params["TrustedPrincipalArn"], params["ExternalId"] = "", ""
	st := loadCFN(t, params)
	if len(st.resources) != 1 {
		t.Fatalf("resources %v, want the policy only", slices.Collect(maps.Keys(st.resources)))
	}
	for _, r := range st.resources {
		p, ok := r.Typed.(*iam.RolePolicy)
		if !ok {
			t.Fatalf("resource of type %s", r.Type)
		}
		if p.RoleName != "ExporterRole" {
			t.Errorf("policy attached to %v, want ExporterRole", p.RoleName)
		}
		assertPolicy(t, "S3 integration policy", parsePolicy(t, p.PolicyDocument), integrationPolicy(testBucket, testBucketAccount))
	}
	// A new role needs the trust inputs: a Rule says so before anything is
	// created.
	ruleCondition := func(st *cfnStack) any {
		rule, ok := st.rules["TrustRequiredForANewRole"].(map[string]any)
		if !ok {
			t.Fatalf("no rule TrustRequiredForANewRole: %v", st.rules)
		}
		return rule["RuleCondition"]
	}
	if ruleCondition(st) != false {
		t.Error("TrustRequiredForANewRole applies with ExistingRoleName set")
	}
	if ruleCondition(loadCFN(t, cfnParams("true"))) != true {
		t.Error("TrustRequiredForANewRole does not apply when a role is created")
	}
}

// TestCloudFormationKmsKey: with S3IntegrationKmsKeyArn the role gets a
// second policy, the use of that one key through S3; none without it, nor
// with the integration disabled.
func TestCloudFormationKmsKey(t *testing.T) {
	policies := func(params map[string]string) map[string][]statement {
		out := map[string][]statement{}
		for _, r := range loadCFN(t, params).resources {
			if p, ok := r.Typed.(*iam.RolePolicy); ok {
				out[p.PolicyName] = parsePolicy(t, p.PolicyDocument)
			}
		}
		return out
	}
	if got := policies(cfnParams("true")); len(got) != 1 {
		t.Errorf("without a key: policies %v, want S3Integration only", slices.Collect(maps.Keys(got)))
	}
	params := cfnParams("true")
	params["S3IntegrationKmsKeyArn"] = testKmsKey
	got := policies(params)
	if len(got) != 2 {
		t.Fatalf("with a key: policies %v, want S3Integration and S3IntegrationKmsKey", slices.Collect(maps.Keys(got)))
	}
	assertPolicy(t, "S3 integration policy", got["S3Integration"], integrationPolicy(testBucket, testBucketAccount))
	assertPolicy(t, "KMS key policy", got["S3IntegrationKmsKey"], kmsKeyPolicy(testKmsKey))
	params = cfnParams("false")
	params["S3IntegrationKmsKeyArn"] = testKmsKey
	if got := policies(params); len(got) != 0 {
		t.Errorf("integration disabled: policies %v, want none", slices.Collect(maps.Keys(got)))
	}
}

// TestCfnLint runs cfn-lint when it is installed (pip install cfn-lint).
func TestCfnLint(t *testing.T) {
	if testing.Short() {
		t.Skip("cfn-lint takes about 20 s")
	}
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint not on PATH")
	}
	if out, err := exec.CommandContext(t.Context(), lint, cfnPath).CombinedOutput(); err != nil {
		t.Errorf("cfn-lint %s: %v\n%s", cfnPath, err, out)
	}
}

// --- bucket-policy.json -----------------------------------------------------

func TestBucketPolicyJSON(t *testing.T) {
	var doc any
	if err := json.Unmarshal(readFile(t, "aws/bucket-policy.json"), &doc); err != nil {
		t.Fatal(err)
	}
	roles := []string{"arn:aws:iam::111111111111:role/ProwlerS3Exporter", "arn:aws:iam::222222222222:role/ProwlerS3Exporter"}
	assertPolicy(t, "bucket-policy.json", parsePolicy(t, doc), bucketPolicy(testBucket, roles))
}

// The comparison itself notices an extra action, resource or condition.
func TestPolicyDiffNoticesWidening(t *testing.T) {
	want := integrationPolicy(testBucket, testBucketAccount)
	rev := slices.Clone(want)
	slices.Reverse(rev)
	if d := policyDiff(rev, want); d != "" {
		t.Errorf("order should not matter: %s", d)
	}
	for name, widen := range map[string]func(s []statement) []statement{
		"extra action": func(s []statement) []statement {
			s[0].Actions = []string{"s3:PutObject", "s3:PutObjectAcl"}
			return s
		},
		"wider resource": func(s []statement) []statement {
			s[1].Resources = []string{"arn:aws:s3:::" + testBucket + "/*"}
			return s
		},
		"no condition": func(s []statement) []statement {
			s[2].Conditions = nil
			return s
		},
		"extra principal": func(s []statement) []statement {
			s[0].Principals = []string{"*"}
			return s
		},
		"extra statement": func(s []statement) []statement {
			return append(s, statement{Effect: "Allow", Actions: []string{"s3:*"}, Resources: []string{"*"}})
		},
	} {
		if policyDiff(widen(integrationPolicy(testBucket, testBucketAccount)), want) == "" {
			t.Errorf("%s went unnoticed", name)
		}
	}
}

// TestCloudFormationProwlerAppOutputsPolicy: the optional part (contract
// v1.2) attaches to the exporter's own role exactly s3:GetObject on the
// output bucket's objects and s3:GetBucketLocation on it, and nothing is
// created for it unless ProwlerAppOutputBucketName is set.
func TestCloudFormationProwlerAppOutputsPolicy(t *testing.T) {
	for name := range loadCFN(t, cfnParams("true")).resources {
		if name == "ProwlerAppOutputsReadPolicy" {
			t.Error("the read policy exists without an output bucket")
		}
	}
	params := cfnParams("false")
	params["ExistingRoleName"] = "s3-exporter"
	params["TrustedPrincipalArn"], params["ExternalId"] = "", ""
	params["ProwlerAppOutputBucketName"] = "prowler-app-outputs"
	st := loadCFN(t, params)
	if len(st.resources) != 1 {
		t.Fatalf("resources %v, want the read policy only", slices.Collect(maps.Keys(st.resources)))
	}
	p, ok := st.resources["ProwlerAppOutputsReadPolicy"].Typed.(*iam.RolePolicy)
	if !ok {
		t.Fatalf("no AWS::IAM::RolePolicy ProwlerAppOutputsReadPolicy: %v", st.resources)
	}
	if p.RoleName != "s3-exporter" {
		t.Errorf("read policy attached to %v, want the default exporter role s3-exporter", p.RoleName)
	}
	assertPolicy(t, "output bucket read policy", parsePolicy(t, p.PolicyDocument), outputsReadPolicy("prowler-app-outputs"))
}
