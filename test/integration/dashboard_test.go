package integration_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/metrics"
	"github.com/keyops-io/exchange-key-operator/test/internal/grafana"
)

var grafanaDir = filepath.Join("..", "..", "config", "grafana")

// The dashboard model and its queries: test/internal/grafana, shared with
// test/monitoring's real-Prometheus check.
type (
	dashboard    = grafana.Dashboard
	dashRef      = grafana.Ref
	dashVariable = grafana.Variable
	dashPanel    = grafana.Panel
	dashTarget   = grafana.Target
)

// Every query goes to the data source the user picks in $datasource.
var promVariable = dashRef{Type: "prometheus", UID: "${datasource}"}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	d, err := grafana.Load(filepath.Join(grafanaDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// structureProblems checks what Grafana needs to show the dashboard with
// the data source and filters the user picks.
func structureProblems(d dashboard) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if d.UID == "" || d.Title == "" {
		add("the dashboard needs a uid and a title")
	}
	// 42 is the last version of the classic model
	// (grafana/grafana apps/dashboard/pkg/migration/schemaversion/README.md).
	if d.SchemaVersion < 42 {
		add("schemaVersion %d: want 42 or later", d.SchemaVersion)
	}
	vars := map[string]dashVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		add("variable $datasource: want type datasource of query prometheus, have type %q query %s", v.Type, v.Query)
	}
	for _, name := range []string{"namespace", "exchange"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" || v.Datasource == nil || *v.Datasource != promVariable || !strings.Contains(string(v.Query), "label_values(") {
			add("variable $%s: want a label_values query on ${datasource}, have %+v", name, v)
		}
	}
	ids := map[int]string{}
	for _, p := range d.AllPanels() {
		what := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			add("%s: no id", what)
		} else if other, dup := ids[p.ID]; dup {
			add("%s: id also used by %q", what, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			add("%s: no title", what)
		}
		if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			add("%s: gridPos %+v outside the 24 columns", what, p.GridPos)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				add("%s: a row has no queries", what)
			}
			continue
		}
		if p.Datasource == nil || *p.Datasource != promVariable {
			add("%s: datasource %+v, want %+v", what, p.Datasource, promVariable)
		}
		if len(p.Targets) == 0 {
			add("%s: no targets", what)
		}
		refs := map[string]bool{}
		for _, t := range p.Targets {
			if t.RefID == "" || refs[t.RefID] {
				add("%s: target refId %q missing or repeated", what, t.RefID)
			}
			refs[t.RefID] = true
			if t.Datasource == nil || *t.Datasource != promVariable {
				add("%s target %s: datasource %+v, want %+v", what, t.RefID, t.Datasource, promVariable)
			}
			if strings.TrimSpace(t.Expr) == "" {
				add("%s target %s: no expr", what, t.RefID)
			}
		}
	}
	return problems
}

// Grafana's range variables are durations; PromQL has no variables.
var grafanaDuration = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)

// metricNames parses expr as PromQL and returns the metric name of every
// vector selector in it (range selectors and subqueries included). Label
// values such as "$namespace" are strings to the parser.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaDuration.ReplaceAllString(expr, "5m"))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if name == "" && m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			err = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, err
}

// exposedNames are the series names a query may use: each family of a
// scrape (with its _bucket, _sum and _count series for histograms and
// summaries), and each family the operator registers, which a scrape lacks
// while it has no sample (the issue counters, unless a test issued a key).
func exposedNames(families map[string]*dto.MetricFamily, registered []string) map[string]bool {
	out := map[string]bool{}
	for name, f := range families {
		out[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = true, true
		}
	}
	for _, name := range registered {
		out[name] = true
	}
	return out
}

// unexposed reports each query that uses a metric not in exposed, or that
// cannot be checked.
func unexposed(queries []grafana.Query, exposed map[string]bool) []string {
	var problems []string
	for _, q := range queries {
		names, err := metricNames(q.Expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", q.Where, err))
			continue
		}
		if len(names) == 0 {
			problems = append(problems, fmt.Sprintf("%s: queries no metric: %s", q.Where, q.Expr))
		}
		for _, n := range names {
			if n != "" && !exposed[n] {
				problems = append(problems, fmt.Sprintf("%s: %s is not a metric the operator exposes", q.Where, n))
			}
		}
	}
	return problems
}

func TestDashboardStructure(t *testing.T) {
	for _, p := range structureProblems(loadDashboard(t)) {
		t.Error(p)
	}
	// The check itself: each change to the dashboard is one problem.
	fixed := dashRef{Type: "prometheus", UID: "prometheus"}
	for _, tc := range []struct {
		name   string
		change func(d *dashboard)
		want   string
	}{
		{"a panel without id", func(d *dashboard) { d.Panels[1].ID = 0 }, "no id"},
		{"two panels with one id", func(d *dashboard) { d.Panels[2].ID = d.Panels[1].ID }, "id also used"},
		{"a panel without title", func(d *dashboard) { d.Panels[1].Title = "" }, "no title"},
		{"a panel wider than the grid", func(d *dashboard) { d.Panels[1].GridPos.X = 20 }, "outside the 24 columns"},
		{"a panel on a fixed data source", func(d *dashboard) { d.Panels[1].Datasource = &fixed }, "datasource"},
		{"a target on a fixed data source", func(d *dashboard) { d.Panels[1].Targets[0].Datasource = &fixed }, "target A: datasource"},
		{"a panel without targets", func(d *dashboard) { d.Panels[1].Targets = nil }, "no targets"},
		{"a target without refId", func(d *dashboard) { d.Panels[1].Targets[0].RefID = "" }, "refId"},
		{"a target without expr", func(d *dashboard) { d.Panels[1].Targets[0].Expr = " " }, "no expr"},
		{"no namespace variable", func(d *dashboard) {
			d.Templating.List = slices.DeleteFunc(d.Templating.List, func(v dashVariable) bool { return v.Name == "namespace" })
		}, "variable $namespace"},
		{"a data source variable of any type", func(d *dashboard) {
			for i := range d.Templating.List {
				if d.Templating.List[i].Name == "datasource" {
					d.Templating.List[i].Query = json.RawMessage(`""`)
				}
			}
		}, "variable $datasource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := loadDashboard(t)
			if d.Panels[0].Type != "row" || d.Panels[1].Type == "row" || len(d.Panels[1].Targets) == 0 {
				t.Fatal("the cases expect a row, then a panel with targets")
			}
			tc.change(&d)
			problems := structureProblems(d)
			if len(problems) != 1 || !strings.Contains(problems[0], tc.want) {
				t.Errorf("want one problem about %q, have %q", tc.want, problems)
			}
		})
	}
}

// Every metric the dashboard queries is one the operator exposes: the scrape
// of the suite's manager after this test made each kind of sample (a key
// validated at the simulator, a workload restarted for it), plus the
// families it registers (metrics.Names, checked against Register in
// internal/metrics).
func TestDashboardQueriesExposedMetrics(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	create(t, deployment(ns, "bot"))
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.RestartDebounce = &metav1.Duration{}
	k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	series := fmt.Sprintf(`exchange="binance",name="bot",namespace="%s"`, ns)
	g.Eventually(scrape, 20*time.Second, 100*time.Millisecond).Should(And(
		ContainSubstring(`exchangeapikey_condition{`+series+`,reason="Ready",status="True",type="Ready"} 1`),
		ContainSubstring(`exchangeapikey_rotation_deadline_timestamp_seconds{`+series+`}`),
		ContainSubstring(`exchangeapikey_key_age_seconds{`+series+`}`),
		ContainSubstring(`exchangeapikey_exchange_request_duration_seconds_bucket{exchange="binance"`),
		ContainSubstring(fmt.Sprintf(`exchangeapikey_workload_restarts_total{kind="Deployment",name="bot",namespace="%s"} 1`, ns)),
	))
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(strings.NewReader(scrape()))
	g.Expect(err).NotTo(HaveOccurred())
	exposed := exposedNames(families, metrics.Names())

	// Names() is complete: the operator exposes no family of its own
	// that it does not list.
	for name := range families {
		if strings.HasPrefix(name, "exchangeapikey_") {
			g.Expect(metrics.Names()).To(ContainElement(name), "exposed but not in metrics.Names()")
		}
	}

	d := loadDashboard(t)
	// with adds a panel to the dashboard, as a change to it would.
	with := func(exprs ...string) dashboard {
		p := dashPanel{ID: 999, Type: "timeseries", Title: "added", Datasource: &promVariable}
		for i, e := range exprs {
			p.Targets = append(p.Targets, dashTarget{RefID: string(rune('A' + i)), Datasource: &promVariable, Expr: e})
		}
		out := d
		out.Panels = append(slices.Clone(d.Panels), p)
		return out
	}
	withVariable := func(query string) dashboard {
		out := d
		out.Templating.List = append(slices.Clone(d.Templating.List), dashVariable{Name: "added", Type: "query", Query: json.RawMessage(fmt.Sprintf("%q", query))})
		return out
	}
	for _, tc := range []struct {
		name string
		d    dashboard
		// want: the metric names (or words) the problems must name, one problem each.
		want []string
	}{
		{"config/grafana/dashboard.json", d, nil},
		{"a panel querying a metric the operator does not have", with(`sum by (exchange) (rate(exchangeapikey_exchange_requests_totals{exchange=~"$exchange"}[$__rate_interval]))`),
			[]string{"exchangeapikey_exchange_requests_totals"}},
		{"the bogus metric on the other side of a binary operation", with(`exchangeapikey_rotation_deadline_timestamp_seconds - on (namespace, name) exchangeapikey_bogus_seconds`),
			[]string{"exchangeapikey_bogus_seconds"}},
		{"a _bucket series of a gauge", with(`histogram_quantile(0.9, sum by (le) (rate(exchangeapikey_key_age_seconds_bucket[5m])))`),
			[]string{"exchangeapikey_key_age_seconds_bucket"}},
		{"a selector by regular expression cannot be checked", with(`count({__name__=~"exchangeapikey_.*"})`),
			[]string{"names no metric"}},
		{"PromQL that does not parse", with(`sum by (exchange) (rate(exchangeapikey_exchange_requests_total[$window]))`),
			[]string{"parse error"}},
		{"a variable querying a metric the operator does not have", withVariable(`label_values(exchangeapikey_bogus{namespace=~"$namespace"}, exchange)`),
			[]string{"exchangeapikey_bogus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := unexposed(tc.d.Queries(), exposed)
			if len(problems) != len(tc.want) {
				t.Fatalf("want %d problems (%v), have %d:\n%s", len(tc.want), tc.want, len(problems), strings.Join(problems, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(problems[i], w) {
					t.Errorf("problem %q does not name %q", problems[i], w)
				}
			}
		})
	}

	// Each of the dashboard's queries named at least one metric, all of
	// them the operator's own.
	for _, q := range d.Queries() {
		names, err := metricNames(q.Expr)
		g.Expect(err).NotTo(HaveOccurred(), q.Where)
		g.Expect(names).NotTo(BeEmpty(), q.Where)
		for _, n := range names {
			g.Expect(n).To(HavePrefix("exchangeapikey_"), q.Where)
		}
	}
}

// config/grafana renders with kustomize to the ConfigMap Grafana's sidecar
// loads: labelled grafana_dashboard: "1", holding dashboard.json unchanged
// under the same key as the Helm chart's.
func TestDashboardKustomization(t *testing.T) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), grafanaDir)
	if err != nil {
		t.Fatal(err)
	}
	if n := resources.Size(); n != 1 {
		t.Fatalf("config/grafana renders %d objects, want the ConfigMap only", n)
	}
	cm := resources.Resources()[0]
	if cm.GetKind() != "ConfigMap" || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("%s %s labels %v: want a ConfigMap labelled grafana_dashboard: \"1\"", cm.GetKind(), cm.GetName(), cm.GetLabels())
	}
	want, err := os.ReadFile(filepath.Join(grafanaDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	const key = "exchange-key-operator.json"
	chart, err := os.ReadFile(filepath.Join("..", "..", "charts", "exchange-key-operator", "templates", "grafana-dashboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(chart), "\n  "+key+": ") {
		t.Errorf("the chart's dashboard ConfigMap has no data key %s", key)
	}
	if got := cm.GetDataMap()[key]; got != string(want) {
		t.Errorf("ConfigMap data %s (%d bytes) is not config/grafana/dashboard.json (%d bytes); keys %v", key, len(got), len(want), slices.Sorted(maps.Keys(cm.GetDataMap())))
	}
}
