package monitoring_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

var monitorFile = filepath.Join(repoRoot, "config", "prometheus", "monitor.yaml")

// loadEndpoints reads the endpoints of the ServiceMonitor in monitor.yaml.
func loadEndpoints(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(monitorFile)
	if err != nil {
		t.Fatal(err)
	}
	var sm struct {
		Kind string `json:"kind"`
		Spec struct {
			Endpoints []map[string]any `json:"endpoints"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &sm); err != nil || sm.Kind != "ServiceMonitor" || len(sm.Spec.Endpoints) == 0 {
		t.Fatalf("%s: want a ServiceMonitor with endpoints (%v)", monitorFile, err)
	}
	return sm.Spec.Endpoints
}

// scrapeTarget is where and how the test's Prometheus scrapes what a
// ServiceMonitor endpoint names: the manager's address for the Service port,
// a token file for the pod's service account token, a short interval.
type scrapeTarget struct {
	job, address, tokenFile string
	interval                time.Duration
	// labels are target labels, as the Prometheus Operator's relabelling
	// adds them (namespace: the metrics Service's).
	labels map[string]string
}

// scrapeConfig translates one ServiceMonitor endpoint into the scrape
// config the Prometheus Operator would generate for it
// (https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.Endpoint),
// with the target static. A field it does not know is an error, so that
// what monitor.yaml ships is all in the test's Prometheus.
func scrapeConfig(ep map[string]any, tg scrapeTarget) (map[string]any, error) {
	sc := map[string]any{
		"job_name":        tg.job,
		"scrape_interval": tg.interval.String(),
		"scrape_timeout":  tg.interval.String(),
		"static_configs":  []any{map[string]any{"targets": []string{tg.address}, "labels": tg.labels}},
	}
	for _, k := range slices.Sorted(maps.Keys(ep)) {
		v := ep[k]
		switch k {
		case "port":
			// The Service's port: the manager's address in tg.
			if v != "https" {
				return nil, fmt.Errorf("port %v: the manager's metrics Service port is https", v)
			}
		case "path":
			sc["metrics_path"] = v
		case "scheme":
			sc["scheme"] = v
		case "bearerTokenFile":
			// The pod's service account token: a TokenRequest token here.
			if tg.tokenFile != "" {
				sc["authorization"] = map[string]any{"type": "Bearer", "credentials_file": tg.tokenFile}
			}
		case "tlsConfig":
			tls, _ := v.(map[string]any)
			out := map[string]any{}
			for tk, tv := range tls {
				if tk != "insecureSkipVerify" {
					return nil, fmt.Errorf("tlsConfig.%s: not translated by this test", tk)
				}
				out["insecure_skip_verify"] = tv
			}
			sc["tls_config"] = out
		case "interval":
			if _, err := time.ParseDuration(fmt.Sprint(v)); err != nil {
				return nil, fmt.Errorf("interval %v: %w", v, err)
			}
		case "honorLabels":
			sc["honor_labels"] = v
		default:
			return nil, fmt.Errorf("endpoint field %s: not translated by this test; teach scrapeConfig", k)
		}
	}
	return sc, nil
}

// prometheusConfig is the test Prometheus's configuration: one job per
// target, the rule files, a one-second evaluation.
func prometheusConfig(t *testing.T, ep map[string]any, ruleFile string, targets ...scrapeTarget) []byte {
	t.Helper()
	var jobs []any
	for _, tg := range targets {
		sc, err := scrapeConfig(ep, tg)
		if err != nil {
			t.Fatalf("%s: %v", monitorFile, err)
		}
		jobs = append(jobs, sc)
	}
	b, err := yaml.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files":     []string{ruleFile},
		"scrape_configs": jobs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScrapeConfigFromServiceMonitor(t *testing.T) {
	eps := loadEndpoints(t)
	if len(eps) != 1 {
		t.Fatalf("%s has %d endpoints; the Prometheus test scrapes one", monitorFile, len(eps))
	}
	tg := scrapeTarget{job: "j", address: "127.0.0.1:1", tokenFile: "/tok", interval: time.Second}
	sc, err := scrapeConfig(eps[0], tg)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(sc)
	for _, want := range []string{"scheme: https", "metrics_path: /metrics", "credentials_file: /tok", "insecure_skip_verify: true", "honor_labels: true"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("scrape config lacks %q:\n%s", want, got)
		}
	}
	// A field the translation does not know fails rather than being dropped.
	for _, change := range []func(map[string]any){
		func(ep map[string]any) { ep["metricRelabelings"] = []any{} },
		func(ep map[string]any) { ep["tlsConfig"] = map[string]any{"ca": "x"} },
	} {
		ep := maps.Clone(eps[0])
		change(ep)
		if _, err := scrapeConfig(ep, tg); err == nil {
			t.Errorf("scrapeConfig(%v) accepted a field it does not translate", ep)
		}
	}
}
