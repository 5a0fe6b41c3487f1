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

	"gopkg.in/yaml.v3"
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

// cfnValue turns a YAML node into JSON-like values, short-form intrinsic
// functions (!Ref, !Sub, ...) into their long form ({"Ref": ...},
// {"Fn::Sub": ...}).
func cfnValue(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return cfnValue(n.Content[0])
	case yaml.AliasNode:
		return cfnValue(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := cfnValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			val, err := cfnValue(c)
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		v = l
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			v = n.Value
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
	}
	if fn, ok := strings.CutPrefix(n.Tag, "!"); ok && !strings.HasPrefix(fn, "!") {
		switch fn {
		case "Ref", "Condition":
			return map[string]any{fn: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				a, b, _ := strings.Cut(s, ".")
				v = []any{a, b}
			}
		}
		return map[string]any{"Fn::" + fn: v}, nil
	}
	return v, nil
}

type cfnTemplate struct {
	raw        map[string]any
	params     map[string]string
	conditions map[string]bool
}

func loadCFN(t *testing.T, params map[string]string) *cfnTemplate {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal(readFile(t, cfnPath), &n); err != nil {
		t.Fatalf("%s: %v", cfnPath, err)
	}
	v, err := cfnValue(&n)
	if err != nil {
		t.Fatalf("%s: %v", cfnPath, err)
	}
	tpl := &cfnTemplate{raw: v.(map[string]any), params: map[string]string{
		"AWS::Partition": "aws", "AWS::AccountId": "111122223333", "AWS::Region": "eu-west-1", "AWS::StackName": "test",
	}}
	decl, _ := tpl.raw["Parameters"].(map[string]any)
	for name, p := range decl {
		if def, ok := p.(map[string]any)["Default"]; ok {
			tpl.params[name] = fmt.Sprint(def)
		}
	}
	for k, val := range params {
		if _, ok := decl[k]; !ok {
			t.Fatalf("template has no parameter %s", k)
		}
		tpl.params[k] = val
	}
	for name := range decl {
		if _, ok := tpl.params[name]; !ok {
			t.Fatalf("parameter %s has no default and no test value", name)
		}
	}
	tpl.conditions = map[string]bool{}
	conds, _ := tpl.raw["Conditions"].(map[string]any)
	for name, c := range conds {
		b, ok := tpl.eval(t, c).(bool)
		if !ok {
			t.Fatalf("condition %s is not a boolean", name)
		}
		tpl.conditions[name] = b
	}
	return tpl
}

var subVarRE = regexp.MustCompile(`\$\{([^}!]+)\}`)

// eval resolves intrinsic functions against the parameters. A reference to
// a resource becomes "<ref:Name>" or "<getatt:Name.Attr>".
func (c *cfnTemplate) eval(t *testing.T, v any) any {
	t.Helper()
	switch v := v.(type) {
	case []any:
		out := []any{}
		for _, e := range v {
			if r := c.eval(t, e); r != noValue {
				out = append(out, r)
			}
		}
		return out
	case map[string]any:
		if len(v) == 1 {
			for k, arg := range v {
				switch k {
				case "Ref":
					name := arg.(string)
					if name == "AWS::NoValue" {
						return noValue
					}
					if p, ok := c.params[name]; ok {
						return p
					}
					return "<ref:" + name + ">"
				case "Fn::Sub":
					tmpl, ok := arg.(string)
					if !ok {
						t.Fatalf("Fn::Sub with variables is not supported here: %v", arg)
					}
					return subVarRE.ReplaceAllStringFunc(tmpl, func(m string) string {
						name := m[2 : len(m)-1]
						if p, ok := c.params[name]; ok {
							return p
						}
						if strings.Contains(name, ".") {
							return "<getatt:" + name + ">"
						}
						return "<ref:" + name + ">"
					})
				case "Fn::GetAtt":
					l := arg.([]any)
					return fmt.Sprintf("<getatt:%s.%s>", l[0], l[1])
				case "Fn::Equals":
					l := c.eval(t, arg).([]any)
					return fmt.Sprint(l[0]) == fmt.Sprint(l[1])
				case "Fn::Not":
					return !c.eval(t, arg).([]any)[0].(bool)
				case "Fn::And", "Fn::Or":
					all := k == "Fn::And"
					for _, b := range c.eval(t, arg).([]any) {
						if b.(bool) != all {
							return !all
						}
					}
					return all
				case "Condition":
					return c.conditions[arg.(string)]
				case "Fn::If":
					l := arg.([]any)
					if c.conditions[l[0].(string)] {
						return c.eval(t, l[1])
					}
					return c.eval(t, l[2])
				}
				if strings.HasPrefix(k, "Fn::") {
					t.Fatalf("intrinsic %s not supported by the test", k)
				}
			}
		}
		out := map[string]any{}
		for k, e := range v {
			if r := c.eval(t, e); r != noValue {
				out[k] = r
			}
		}
		return out
	}
	return v
}

type noValueType struct{}

var noValue = noValueType{}

type cfnResource struct {
	Type  string
	Props map[string]any
}

// resources returns the resources created with the template's parameters.
func (c *cfnTemplate) resources(t *testing.T) map[string]cfnResource {
	t.Helper()
	out := map[string]cfnResource{}
	for name, raw := range c.raw["Resources"].(map[string]any) {
		r := raw.(map[string]any)
		if cond, ok := r["Condition"].(string); ok && !c.conditions[cond] {
			continue
		}
		props, _ := c.eval(t, r["Properties"]).(map[string]any)
		out[name] = cfnResource{Type: r["Type"].(string), Props: props}
	}
	return out
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
			res := loadCFN(t, cfnParams(enable)).resources(t)
			var roleName string
			var policies []cfnResource
			for name, r := range res {
				switch r.Type {
				case "AWS::IAM::Role":
					if roleName != "" {
						t.Fatalf("two roles: %s and %s", roleName, name)
					}
					roleName = name
				case "AWS::IAM::RolePolicy":
					policies = append(policies, r)
				default:
					t.Errorf("resource %s of type %s: the template creates a role and its policy only", name, r.Type)
				}
			}
			if roleName == "" {
				t.Fatal("no AWS::IAM::Role")
			}
			role := res[roleName].Props
			for _, k := range []string{"Policies", "ManagedPolicyArns", "PermissionsBoundary"} {
				if _, ok := role[k]; ok {
					t.Errorf("role has %s: no permission beyond the S3 integration policy", k)
				}
			}
			assertPolicy(t, "trust policy", parsePolicy(t, role["AssumeRolePolicyDocument"]), trustPolicy(testPrincipal, testExternalID))

			if enable == "false" {
				if len(policies) != 0 {
					t.Errorf("%d policies with the integration disabled", len(policies))
				}
				return
			}
			if len(policies) != 1 {
				t.Fatalf("%d role policies, want 1", len(policies))
			}
			p := policies[0].Props
			if p["RoleName"] != "<ref:"+roleName+">" {
				t.Errorf("policy attached to %v, want the role %s", p["RoleName"], roleName)
			}
			assertPolicy(t, "S3 integration policy", parsePolicy(t, p["PolicyDocument"]), integrationPolicy(testBucket, testBucketAccount))
		})
	}
}

func TestCloudFormationParameterPatterns(t *testing.T) {
	tpl := loadCFN(t, cfnParams("true"))
	decl := tpl.raw["Parameters"].(map[string]any)
	pattern := func(name string) *regexp.Regexp {
		p, ok := decl[name].(map[string]any)["AllowedPattern"].(string)
		if !ok {
			t.Fatalf("parameter %s has no AllowedPattern", name)
		}
		return regexp.MustCompile("^(?:" + p + ")$") // CloudFormation matches the whole value
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
		if _, ok := tpl.raw["Outputs"].(map[string]any)[out]; !ok {
			t.Errorf("no output %s", out)
		}
	}
}

// TestCloudFormationDefaultRoleName: the default must not be ProwlerScan, the
// name of Prowler's own scan role (the two would collide in one account).
func TestCloudFormationDefaultRoleName(t *testing.T) {
	tpl := loadCFN(t, cfnParams("true"))
	def := tpl.raw["Parameters"].(map[string]any)["RoleName"].(map[string]any)["Default"]
	if def == "ProwlerScan" || def == nil || def == "" {
		t.Errorf("RoleName default %v", def)
	}
	if got := tpl.resources(t)["Role"].Props["RoleName"]; got != def {
		t.Errorf("role named %v, want the default %v", got, def)
	}
}

// TestCloudFormationExistingRole: with ExistingRoleName the template creates
// no role and attaches the same S3 integration policy to the named one, as
// Prowler's own Terraform for the S3 integration allows.
func TestCloudFormationExistingRole(t *testing.T) {
	params := cfnParams("true")
	params["ExistingRoleName"] = "ExporterRole"
	params["TrustedPrincipalArn"], params["ExternalId"] = "", ""
	tpl := loadCFN(t, params)
	res := tpl.resources(t)
	if len(res) != 1 {
		t.Fatalf("resources %v, want the policy only", slices.Collect(maps.Keys(res)))
	}
	for _, r := range res {
		if r.Type != "AWS::IAM::RolePolicy" {
			t.Fatalf("resource of type %s", r.Type)
		}
		if r.Props["RoleName"] != "ExporterRole" {
			t.Errorf("policy attached to %v, want ExporterRole", r.Props["RoleName"])
		}
		assertPolicy(t, "S3 integration policy", parsePolicy(t, r.Props["PolicyDocument"]), integrationPolicy(testBucket, testBucketAccount))
	}
	// A new role needs the trust inputs: a Rule says so before anything is
	// created.
	rule := tpl.raw["Rules"].(map[string]any)["TrustRequiredForANewRole"].(map[string]any)
	if tpl.eval(t, rule["RuleCondition"]) != false {
		t.Error("TrustRequiredForANewRole applies with ExistingRoleName set")
	}
	withNew := loadCFN(t, cfnParams("true"))
	if withNew.eval(t, rule["RuleCondition"]) != true {
		t.Error("TrustRequiredForANewRole does not apply when a role is created")
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
