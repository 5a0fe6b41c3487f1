package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type grafanaTarget struct {
	Expr  string `json:"expr"`
	RefID string `json:"refId"`
}

type grafanaPanel struct {
	ID      int             `json:"id"`
	Type    string          `json:"type"`
	Title   string          `json:"title"`
	Targets []grafanaTarget `json:"targets"`
	Panels  []grafanaPanel  `json:"panels"` // collapsed rows
}

type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

const dashboardPath = "grafana/s3-exporter.json"

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal(readFile(t, dashboardPath), &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// dashboardExprs returns every PromQL expression of the dashboard, keyed by
// where it is: panel targets and template variable queries.
func dashboardExprs(t *testing.T, d grafanaDashboard) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %s has an empty expr", p.Title, tg.RefID)
				}
				exprs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		var q string
		switch query := v.Query.(type) {
		case string:
			q = query
		case map[string]any:
			q, _ = query["query"].(string)
		}
		if v.Type == "query" {
			exprs["variable "+v.Name] = q
		}
	}
	return exprs
}

func TestDashboardQueriesNameRealMetrics(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both are needed", d.UID, d.Title)
	}
	exposed := exposedMetricNames(t)
	exprs := dashboardExprs(t, d)
	if len(exprs) < 15 {
		t.Fatalf("only %d queries found in %s", len(exprs), dashboardPath)
	}
	used := map[string]bool{}
	for where, expr := range exprs {
		names := metricNamesIn(expr)
		if len(names) == 0 {
			t.Errorf("%s names no exporter metric: %s", where, expr)
		}
		if bad := unknownMetrics(expr, exposed); len(bad) > 0 {
			t.Errorf("%s names metrics the exporter does not expose %v: %s", where, bad, expr)
		}
		for _, n := range names {
			used[familyOf(n, exposed)] = true
		}
		if !balanced(expr) {
			t.Errorf("%s has unbalanced brackets or quotes: %s", where, expr)
		}
	}
	// Every metric is on the dashboard: a new metric needs a panel.
	for name := range exposed {
		if fam := familyOf(name, exposed); !used[fam] {
			t.Errorf("metric %s is on no panel", fam)
		}
	}
}

func TestDashboardLatencyPanelsUseHistogramQuantile(t *testing.T) {
	exprs := dashboardExprs(t, loadDashboard(t))
	for _, h := range []string{"s3exporter_upload_duration_seconds_bucket", "s3exporter_export_duration_seconds_bucket"} {
		var quantiles []string
		for _, e := range exprs {
			if strings.Contains(e, h) && strings.Contains(e, "histogram_quantile(") && strings.Contains(e, "le") {
				for _, q := range []string{"0.5", "0.99"} {
					if strings.Contains(e, "histogram_quantile("+q+",") {
						quantiles = append(quantiles, q)
					}
				}
			}
		}
		slices.Sort(quantiles)
		if !slices.Equal(slices.Compact(quantiles), []string{"0.5", "0.99"}) {
			t.Errorf("%s: quantiles %v, want p50 and p99", h, quantiles)
		}
	}
}

func TestDashboardPanelIDsUnique(t *testing.T) {
	seen := map[int]string{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.ID == 0 {
				t.Errorf("panel %q has no id", p.Title)
			} else if other, dup := seen[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", p.Title, other, p.ID)
			}
			seen[p.ID] = p.Title
			walk(p.Panels)
		}
	}
	walk(loadDashboard(t).Panels)
}

// TestDashboardQueriesParse has promtool parse every query, with Grafana's
// variables replaced, as recording rules.
func TestDashboardQueriesParse(t *testing.T) {
	promtool(t)
	exprs := dashboardExprs(t, loadDashboard(t))
	r := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m", "$job", ".+", "$instance", ".+")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, where := range slices.Sorted(maps.Keys(exprs)) {
		e := exprs[where]
		if strings.HasPrefix(where, "variable ") {
			continue // label_values() is Grafana's, not PromQL
		}
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: r.Replace(e)})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, ".", "check", "rules", path)
}

// balanced reports whether brackets pair up and quotes close, outside
// quoted strings.
func balanced(s string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var quote rune
	for i, r := range s {
		if quote != 0 {
			if r == quote && (i == 0 || s[i-1] != '\\') {
				quote = 0
			}
			continue
		}
		switch r {
		case '"', '\'', '`':
			quote = r
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return quote == 0 && len(stack) == 0
}

func TestBalanced(t *testing.T) {
	for s, want := range map[string]bool{
		`sum(rate(x{a="(b"}[5m]))`: true,
		`sum(rate(x[5m])`:          false,
		`x{a="b}`:                  false,
		`max(x) by (le]`:           false,
	} {
		if got := balanced(s); got != want {
			t.Errorf("balanced(%q) = %v, want %v", s, got, want)
		}
	}
}
