// Package grafana reads the Grafana dashboard the operator ships
// (config/grafana/dashboard.json) for the tests that check it: its
// structure (test/integration) and its queries against a real Prometheus
// (test/monitoring). One reader, so that both see the same queries.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

// Dashboard is as much of Grafana's classic dashboard model as the checks
// read (https://grafana.com/docs/grafana/latest/visualizations/dashboards/build-dashboards/view-dashboard-json-model/).
type Dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Ref names a data source.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a templating variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *Ref            `json:"datasource"`
	Query      json.RawMessage `json:"query"`
}

// Panel is a panel or a row.
type Panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *Ref   `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []Target `json:"targets"`
	// Panels are a collapsed row's.
	Panels []Panel `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string `json:"refId"`
	Datasource *Ref   `json:"datasource"`
	Expr       string `json:"expr"`
}

// Load reads a dashboard file.
func Load(path string) (Dashboard, error) {
	var d Dashboard
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// AllPanels flattens collapsed rows (at any depth).
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func(ps []Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Query is one PromQL expression of the dashboard and where it is.
type Query struct {
	Where, Expr string
	// Variable: the query of a query variable. Its Expr is the selector of
	// label_values(selector, label) when LabelValues, else the query as
	// written (which names no metric a check could verify).
	Variable, LabelValues bool
}

// labelValues is Grafana's Prometheus variable query label_values(selector, label)
// (https://grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/).
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// Queries lists the query of every query variable and every panel
// target's expression.
func (d Dashboard) Queries() []Query {
	var out []Query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// The editor writes {"query": "...", ...}; older dashboards a string.
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			_ = json.Unmarshal(v.Query, &obj)
			q = obj.Query
		}
		vq := Query{Where: "variable $" + v.Name, Expr: q, Variable: true}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			vq.Expr, vq.LabelValues = m[1], true
		}
		out = append(out, vq)
	}
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			out = append(out, Query{Where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, t.RefID), Expr: t.Expr})
		}
	}
	return out
}
