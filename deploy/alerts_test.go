package deploy

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	alertsPath     = "prometheus/alerts.yml"
	alertTestsPath = "prometheus/alerts_test.yml"
)

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, alertsPath))))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", alertsPath)
	}
	return rules
}

// The alerts issue 5 asks for.
var requiredAlerts = []string{
	"S3ExporterExportsFailing",
	"S3ExporterDeadLettersGrowing",
	"S3ExporterConsumerLagGrowing",
	"S3ExporterNoReadyReplica",
	"S3ExporterIntegrationsDisconnected",
	"S3ExporterNATSDisconnected",
	"S3ExporterExportFailures", // issue 13: occasional permanent failures
}

var (
	aggregationRE = regexp.MustCompile(`\b(sum|max|min|avg|count|topk|bottomk)\s+(by|without)\s*\(([^)]*)\)`)
	absentRE      = regexp.MustCompile(`\babsent(_over_time)?\s*\(([^()]*(\([^()]*\))?[^()]*)\)`)
)

// TestAlertsAggregateByNamespaceAndJob: every aggregation keeps namespace and
// job, so two installations (two namespaces, or two jobs) never add up into
// one alert or hide each other; every absent() names the job, or any other
// exporter's series would satisfy it.
func TestAlertsAggregateByNamespaceAndJob(t *testing.T) {
	for _, r := range loadAlerts(t) {
		name := r.Alert + r.Record
		for _, m := range aggregationRE.FindAllStringSubmatch(r.Expr, -1) {
			if m[2] == "without" {
				t.Errorf("%s: %s without (…) — keep the labels explicit", name, m[1])
				continue
			}
			labels := map[string]bool{}
			for l := range strings.SplitSeq(m[3], ",") {
				labels[strings.TrimSpace(l)] = true
			}
			if !labels["namespace"] || !labels["job"] {
				t.Errorf("%s: %s by (%s) drops namespace or job", name, m[1], m[3])
			}
		}
		if strings.Contains(r.Expr, "absent") {
			ms := absentRE.FindAllStringSubmatch(r.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("%s: cannot read its absent(): %s", name, r.Expr)
			}
			for _, m := range ms {
				if !strings.Contains(m[2], `job="`) {
					t.Errorf("%s: %s is not scoped to a job", name, m[0])
				}
			}
		}
	}
}

func TestAlertsNameRealMetrics(t *testing.T) {
	exposed := exposedMetricNames(t)
	for _, r := range loadAlerts(t) {
		name := r.Alert + r.Record
		if len(metricNamesIn(r.Expr)) == 0 {
			t.Errorf("%s: expr names no exporter metric: %s", name, r.Expr)
		}
		if bad := unknownMetrics(r.Expr, exposed); len(bad) > 0 {
			t.Errorf("%s: expr names metrics the exporter does not expose %v: %s", name, bad, r.Expr)
		}
		for k, v := range r.Annotations {
			if bad := unknownMetrics(v, exposed); len(bad) > 0 {
				t.Errorf("%s: annotation %s names unknown metrics %v", name, k, bad)
			}
		}
		if !balanced(r.Expr) {
			t.Errorf("%s: unbalanced expr: %s", name, r.Expr)
		}
	}
}

func TestAlertsAreDocumented(t *testing.T) {
	anchors := markdownAnchors(t, operationsDoc())
	seen := map[string]bool{}
	for _, r := range loadAlerts(t) {
		if r.Alert == "" {
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		if _, old := r.Annotations["runbook"]; old {
			t.Errorf("%s: annotation runbook; Alertmanager and Grafana read runbook_url", r.Alert)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[k]) == "" {
				t.Errorf("%s: no %s annotation", r.Alert, k)
			}
		}
		u, err := url.Parse(r.Annotations["runbook_url"])
		if err != nil || !strings.HasSuffix(u.Path, "/docs/operations.md") || u.Fragment == "" {
			t.Errorf("%s: runbook_url %q does not point to a section of docs/operations.md", r.Alert, r.Annotations["runbook_url"])
			continue
		}
		if !anchors[u.Fragment] {
			t.Errorf("%s: runbook anchor #%s is no heading of docs/operations.md", r.Alert, u.Fragment)
		}
		if u.Fragment != strings.ToLower(r.Alert) {
			t.Errorf("%s: runbook anchor #%s, want #%s", r.Alert, u.Fragment, strings.ToLower(r.Alert))
		}
	}
	for _, a := range requiredAlerts {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// seriesNameRE takes the metric name of a promtool input series.
var seriesNameRE = regexp.MustCompile(`^\s*([A-Za-z_:][A-Za-z0-9_:]*)`)

func TestAlertUnitTestsCoverEveryAlert(t *testing.T) {
	var tests ruleTests
	if err := yaml.Unmarshal(readFile(t, alertTestsPath), &tests); err != nil {
		t.Fatalf("%s: %v", alertTestsPath, err)
	}
	if len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != "alerts.yml" {
		t.Errorf("rule_files = %v, want [alerts.yml]", tests.RuleFiles)
	}
	exposed := exposedMetricNames(t)
	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			m := seriesNameRE.FindStringSubmatch(s.Series)
			if m == nil {
				t.Errorf("%s: series %q has no name", tc.Name, s.Series)
				continue
			}
			if m[1] != "up" && !exposed[m[1]] {
				t.Errorf("%s: input series %s is no exporter metric", tc.Name, m[1])
			}
		}
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	for _, r := range loadAlerts(t) {
		if r.Alert == "" {
			continue
		}
		if firing[r.Alert] == 0 {
			t.Errorf("%s: no unit test where it fires", r.Alert)
		}
		if quiet[r.Alert] == 0 {
			t.Errorf("%s: no unit test where it does not fire", r.Alert)
		}
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "prometheus", "check", "rules", "alerts.yml")
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, "prometheus", "test", "rules", "alerts_test.yml")
}
