package chart_test

import (
	"strings"
	"testing"
)

// TestSchemaRefusesBadValues: helm refuses each bad value with a message that
// names it (values.schema.json, or a template's fail for rules across values).
func TestSchemaRefusesBadValues(t *testing.T) {
	cases := []struct {
		name, values string
		want         []string // substrings of helm's error
	}{
		{"replicas as a string", `replicaCount: "two"`, []string{"/replicaCount", "want integer"}},
		{"no replicas", `replicaCount: 0`, []string{"/replicaCount", "minimum"}},
		{"unknown top-level key", `replicas: 2`, []string{"replicas", "additional properties"}},
		{"unknown nested key", `manager: {maxConcurrentReconcile: 4}`, []string{"/manager", "maxConcurrentReconcile"}},
		{"negative qps", `manager: {kubeAPIQPS: -5}`, []string{"/manager/kubeAPIQPS"}},
		{"negative burst", `manager: {kubeAPIBurst: -1}`, []string{"/manager/kubeAPIBurst"}},
		{"rate limit of an unknown exchange", `manager: {exchangeRateLimits: {bitmex: {requestsPerSecond: 1, burst: 1}}}`, []string{"/manager/exchangeRateLimits", "bitmex"}},
		{"rate limit without burst", `manager: {exchangeRateLimits: {binance: {requestsPerSecond: 10}}}`, []string{"/manager/exchangeRateLimits/binance", "burst"}},
		{"rate limit as a flag string", `manager: {exchangeRateLimits: {binance: "10:20"}}`, []string{"/manager/exchangeRateLimits/binance", "want object"}},
		{"negative rate", `manager: {exchangeRateLimits: {okx: {requestsPerSecond: -1, burst: 5}}}`, []string{"/manager/exchangeRateLimits/okx/requestsPerSecond"}},
		{"endpoint without scheme", `manager: {allowedEndpoints: [proxy.example:8443]}`, []string{"/manager/allowedEndpoints/0"}},
		{"unknown log level", `manager: {logLevel: verbose}`, []string{"/manager/logLevel"}},
		{"insecure endpoints as a string", `manager: {allowInsecureEndpoints: "yes"}`, []string{"/manager/allowInsecureEndpoints", "want boolean"}},
		{"watch namespace not a DNS label", `watchNamespaces: [Team_A]`, []string{"/watchNamespaces/0"}},
		{"watch namespaces as a string", `watchNamespaces: "a,b"`, []string{"/watchNamespaces", "want array"}},
		{"key selector as a list", `keySelector: [shard=a]`, []string{"/keySelector", "want string"}},
		{"metrics port out of range", `metrics: {port: 70000}`, []string{"/metrics/port"}},
		{"metrics secure as a string", `metrics: {secure: "no"}`, []string{"/metrics/secure", "want boolean"}},
		{"ServiceMonitor with plain HTTP metrics", "serviceMonitor: {enabled: true}\nmetrics: {secure: false}", []string{"serviceMonitor.enabled needs metrics.secure"}},
		{"pull policy", `image: {pullPolicy: Sometimes}`, []string{"/image/pullPolicy"}},
		{"proxy without scheme", `proxy: {httpsProxy: "egress:3128"}`, []string{"/proxy/httpsProxy"}},
		{"ServiceMonitor without metrics", "serviceMonitor: {enabled: true}\nmetrics: {enabled: false}", []string{"serviceMonitor.enabled needs metrics.enabled"}},
		{"replicas without leader election", "leaderElection: {enabled: false}", []string{"needs leaderElection.enabled"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := render(t, tc.values)
			if err == nil {
				t.Fatalf("helm accepted %s; rendered %d bytes", tc.values, len(out))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("helm's error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
