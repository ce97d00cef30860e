package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestChartInStepWithConfig: what the chart copies from config/ (by
// hack/sync-chart.sh, run by `make manifests`) is the same, byte for byte,
// and no stale copy is left.
func TestChartInStepWithConfig(t *testing.T) {
	// As in hack/sync-chart.sh.
	copies := []struct {
		from []string
		to   string
	}{
		{[]string{"config/crd/bases/*.yaml"}, "crds"},
		{[]string{"config/rbac/leader_election_role.yaml", "config/rbac/metrics_*.yaml"}, "files/rbac"},
		{[]string{"config/rbac/*_editor_role.yaml", "config/rbac/*_viewer_role.yaml"}, "files/rbac/aggregate"},
		{[]string{"config/prometheus/monitor.yaml", "config/prometheus/rules.yaml"}, "files/prometheus"},
		{[]string{"config/grafana/dashboard.json"}, "files/grafana"},
	}
	for _, c := range copies {
		var src, want []string
		for _, p := range c.from {
			src = append(src, configFiles(t, p)...)
		}
		for _, f := range src {
			want = append(want, filepath.Base(f))
			got, err := os.ReadFile(filepath.Join(chartDir, c.to, filepath.Base(f)))
			if err != nil || !bytes.Equal(got, read(t, f)) {
				rel, _ := filepath.Rel(repoRoot, f)
				t.Errorf("chart's %s/%s differs from %s: run `make manifests` (hack/sync-chart.sh)", c.to, filepath.Base(f), rel)
			}
		}
		entries, err := os.ReadDir(filepath.Join(chartDir, c.to))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() && !slices.Contains(want, e.Name()) && !(c.to == "files/rbac" && e.Name() == "manager-rules.yaml") {
				t.Errorf("chart's %s/%s has no source in %s: run `make manifests` (hack/sync-chart.sh)", c.to, e.Name(), c.from)
			}
		}
	}

	var got []any
	rules := read(t, filepath.Join(chartDir, "files/rbac/manager-rules.yaml"))
	for _, o := range decode(t, "rules:\n"+string(rules)) {
		got, _, _ = unstructured.NestedSlice(o.Object, "rules")
	}
	if want := configManagerRules(t); !reflect.DeepEqual(got, want) {
		t.Errorf("chart's files/rbac/manager-rules.yaml differs from the rules of ClusterRole manager-role in config/rbac/role.yaml: run `make manifests`")
	}
}

// configManagerRules returns the rules of ClusterRole manager-role in
// config/rbac/role.yaml (controller-gen's output).
func configManagerRules(t *testing.T) []any {
	t.Helper()
	for _, o := range decode(t, string(read(t, filepath.Join(repoRoot, "config/rbac/role.yaml")))) {
		if o.GetKind() == "ClusterRole" && o.GetName() == "manager-role" {
			r, _, _ := unstructured.NestedSlice(o.Object, "rules")
			return r
		}
	}
	t.Fatal("config/rbac/role.yaml has no ClusterRole manager-role")
	return nil
}

// configObject returns the first object of a file under config/.
func configObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	return decode(t, string(read(t, filepath.Join(repoRoot, path))))[0]
}

// configEndpoints returns the endpoints of config/prometheus/monitor.yaml.
func configEndpoints(t *testing.T) []any {
	t.Helper()
	m := decode(t, string(read(t, filepath.Join(repoRoot, "config/prometheus/monitor.yaml"))))[0]
	eps, _, _ := unstructured.NestedSlice(m.Object, "spec", "endpoints")
	return eps
}

// configFiles globs under the repository root; none is an error.
func configFiles(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s (%v)", pattern, err)
	}
	return files
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
