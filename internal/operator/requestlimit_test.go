package operator

import (
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// TestRequestLimitIsOneBucket: with --kube-api-qps every REST client of
// the manager (one per resource type) draws from the same token bucket, so
// the flag bounds the manager's requests, not each resource's.
func TestRequestLimitIsOneBucket(t *testing.T) {
	cfg := withRequestLimit(&rest.Config{Host: "https://127.0.0.1:6443"}, 50, 0)
	if cfg.RateLimiter == nil {
		t.Fatal("no shared limiter for --kube-api-qps=50")
	}
	if got := cfg.RateLimiter.QPS(); got != 50 {
		t.Fatalf("limiter QPS %v, want 50", got)
	}
	hc := &http.Client{}
	var limiters []any
	for _, gvk := range []schema.GroupVersionKind{corev1.SchemeGroupVersion.WithKind("Secret"), keyopsv1.GroupVersion.WithKind("ExchangeAPIKey")} {
		rc, err := apiutil.RESTClientForGVK(gvk, false, false, cfg, scheme.Codecs, hc)
		if err != nil {
			t.Fatal(err)
		}
		limiters = append(limiters, rc.GetRateLimiter())
	}
	if limiters[0] != limiters[1] {
		t.Fatal("the Secrets and ExchangeAPIKeys clients have limiters of their own: --kube-api-qps would allow its rate per resource type")
	}
}

func TestRequestLimitOff(t *testing.T) {
	// 0 (the default) is no client-side limit, not client-go's 5 a second.
	cfg := withRequestLimit(&rest.Config{Host: "https://127.0.0.1:6443", QPS: 0}, 0, 0)
	if cfg.QPS >= 0 || cfg.RateLimiter != nil {
		t.Fatalf("QPS %v, limiter %v: want no client-side limit", cfg.QPS, cfg.RateLimiter)
	}
	rc, err := rest.RESTClientFor(&rest.Config{Host: cfg.Host, QPS: cfg.QPS, ContentConfig: rest.ContentConfig{GroupVersion: &corev1.SchemeGroupVersion, NegotiatedSerializer: scheme.Codecs}})
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetRateLimiter() != nil {
		t.Fatal("a client built from the config has a limiter")
	}
	if got := withRequestLimit(&rest.Config{}, 10, 0).Burst; got != 20 {
		t.Fatalf("burst %d with --kube-api-qps=10 and no --kube-api-burst, want 20", got)
	}
}
