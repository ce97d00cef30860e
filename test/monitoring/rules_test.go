// Package monitoring_test checks what the operator ships for monitoring
// against the real tools: the alert rules of config/prometheus/rules.yaml
// with `promtool test rules` (testdata/rules), and a real Prometheus scraping
// the manager as config/prometheus/monitor.yaml describes (prometheus_test.go).
// `make test` provides promtool and prometheus (make prometheus-tools) and
// passes their paths in PROMTOOL and PROMETHEUS.
package monitoring_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var (
	repoRoot  = filepath.Join("..", "..")
	rulesFile = filepath.Join(repoRoot, "config", "prometheus", "rules.yaml")
	// Every file here is a promtool rule test; a new alert adds its own.
	ruleTests = filepath.Join("testdata", "rules", "*.yaml")
)

// tool is the path of a binary make provides in the environment variable env.
func tool(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run `make test` or `make test-monitoring` (make prometheus-tools provides promtool and prometheus)", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v (make prometheus-tools)", env, p, err)
	}
	return p
}

// ruleGroups is the rule groups of the PrometheusRule in rules.yaml (its
// spec): the rule file Prometheus and promtool read.
type ruleGroups struct {
	Groups []struct {
		Name  string           `json:"name"`
		Rules []map[string]any `json:"rules"`
	} `json:"groups"`
}

func loadRules(t *testing.T) ruleGroups {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string     `json:"kind"`
		Spec ruleGroups `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil || pr.Kind != "PrometheusRule" {
		t.Fatalf("%s: want a PrometheusRule (%v)", rulesFile, err)
	}
	return pr.Spec
}

// alerts lists the alert names of the groups, in order.
func (g ruleGroups) alerts() []string {
	var out []string
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			if a, ok := r["alert"].(string); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// writeRuleFile writes the groups as a Prometheus rule file.
func writeRuleFile(t *testing.T, g ruleGroups, path string) {
	t.Helper()
	b, err := yaml.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ruleTest is as much of a promtool rule test file as the coverage check reads.
type ruleTest struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// coverage lists the problems of a set of rule test files against the
// alerts: an alert without a firing case (with labels and annotations) or
// without a not-firing case, a case about an alert that does not exist
// (promtool passes it: no such alert ever fires), a file that does not load
// rules.yaml.
func coverage(alerts []string, files map[string]ruleTest) []string {
	var problems []string
	firing, silent := map[string]bool{}, map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f := files[name]
		if !slices.Equal(f.RuleFiles, []string{"rules.yaml"}) {
			problems = append(problems, fmt.Sprintf("%s: rule_files %v, want [rules.yaml]", name, f.RuleFiles))
		}
		for _, tc := range f.Tests {
			for _, a := range tc.AlertRuleTest {
				if !slices.Contains(alerts, a.Alertname) {
					problems = append(problems, fmt.Sprintf("%s: alertname %q at %s is not an alert of rules.yaml", name, a.Alertname, a.EvalTime))
					continue
				}
				if len(a.ExpAlerts) == 0 {
					silent[a.Alertname] = true
					continue
				}
				complete := true
				for _, e := range a.ExpAlerts {
					complete = complete && len(e.ExpLabels) > 0 && len(e.ExpAnnotations) > 0
				}
				if !complete {
					problems = append(problems, fmt.Sprintf("%s: %s at %s: each expected alert needs exp_labels and exp_annotations", name, a.Alertname, a.EvalTime))
				}
				firing[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !firing[a] {
			problems = append(problems, fmt.Sprintf("alert %s has no firing case in %s", a, ruleTests))
		}
		if !silent[a] {
			problems = append(problems, fmt.Sprintf("alert %s has no not-firing case (exp_alerts: []) in %s", a, ruleTests))
		}
	}
	return problems
}

func loadRuleTests(t *testing.T) map[string]ruleTest {
	t.Helper()
	paths, err := filepath.Glob(ruleTests)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no rule tests in %s (%v)", ruleTests, err)
	}
	out := map[string]ruleTest{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var rt ruleTest
		if err := yaml.Unmarshal(b, &rt); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = rt
	}
	return out
}

// promtoolTest runs `promtool test rules` on every rule test, against the
// groups written as rules.yaml beside them, in a directory of its own.
func promtoolTest(t *testing.T, g ruleGroups) (string, error) {
	t.Helper()
	dir := t.TempDir()
	writeRuleFile(t, g, filepath.Join(dir, "rules.yaml"))
	paths, _ := filepath.Glob(ruleTests)
	args := []string{"test", "rules"}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Base(p))
	}
	cmd := exec.Command(tool(t, "PROMTOOL"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAlertRules runs the promtool rule tests of testdata/rules against
// config/prometheus/rules.yaml (the chart's PrometheusRule renders the same
// spec: test/chart checks it) and checks that every alert has a firing and
// a not-firing case.
func TestAlertRules(t *testing.T) {
	rules := loadRules(t)
	alerts := rules.alerts()
	if len(alerts) == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
	files := loadRuleTests(t)
	for _, p := range coverage(alerts, files) {
		t.Error(p)
	}
	out, err := promtoolTest(t, rules)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("promtool test rules: %d files, alerts %v", len(files), alerts)

	// The coverage check itself: each change is one problem.
	t.Run("coverage", func(t *testing.T) {
		base := files
		for _, tc := range []struct {
			name   string
			alerts []string
			change func(map[string]ruleTest)
			want   string
		}{
			{"a new alert without tests", append(slices.Clone(alerts), "ExchangeAPIKeyNew"), nil, "ExchangeAPIKeyNew has no firing case"},
			{"a case about an alert that does not exist", alerts, func(m map[string]ruleTest) {
				f := m["revoked_test.yaml"]
				f.Tests = slices.Clone(f.Tests)
				f.Tests[0].AlertRuleTest = slices.Clone(f.Tests[0].AlertRuleTest)
				f.Tests[0].AlertRuleTest[0].Alertname = "ExchangeAPIKeyRevokd"
				m["revoked_test.yaml"] = f
			}, `"ExchangeAPIKeyRevokd" at 3m is not an alert`},
			{"a file on another rule file", alerts, func(m map[string]ruleTest) {
				f := m["revoked_test.yaml"]
				f.RuleFiles = []string{"../../../config/prometheus/rules.yaml"}
				m["revoked_test.yaml"] = f
			}, "rule_files"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := maps.Clone(base)
				if tc.change != nil {
					tc.change(m)
				}
				problems := coverage(tc.alerts, m)
				if len(problems) < 1 || !strings.Contains(strings.Join(problems, "\n"), tc.want) {
					t.Errorf("want a problem about %q, have %q", tc.want, problems)
				}
			})
		}
	})

	// The tests pin each for: duration: with it shortened by a minute,
	// an alert fires where a test expects none.
	for gi, grp := range rules.Groups {
		for ri, r := range grp.Rules {
			f, ok := r["for"].(string)
			if !ok {
				continue
			}
			t.Run("for "+f+" of "+r["alert"].(string)+" is tested", func(t *testing.T) {
				changed := loadRules(t)
				d := strings.TrimSuffix(f, "m")
				var n int
				if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n < 2 || d+"m" != f {
					t.Fatalf("for: %q: the check shortens whole minutes", f)
				}
				changed.Groups[gi].Rules[ri]["for"] = fmt.Sprintf("%dm", n-1)
				if out, err := promtoolTest(t, changed); err == nil {
					t.Errorf("with for: %dm the rule tests still pass:\n%s", n-1, out)
				}
			})
		}
	}
}
