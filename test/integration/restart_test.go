package integration_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

var installRollouts sync.Once

// Restart targets selected by label, and an Argo Rollout restarted through
// spec.restartAt; the workload itself gets the Event.
func TestRestartTargetsBySelectorAndRollout(t *testing.T) {
	g := NewWithT(t)
	installRollouts.Do(func() {
		_, err := envtest.InstallCRDs(restCfg, envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "crds")}})
		g.Expect(err).NotTo(HaveOccurred())
	})
	ns := newNamespace(t)
	for _, name := range []string{"bot-a", "bot-b", "other"} {
		d := deployment(ns, name)
		if name != "other" {
			d.Labels = map[string]string{"tier": "bots"}
		}
		create(t, d)
	}
	ro := &unstructured.Unstructured{}
	ro.SetGroupVersionKind(schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"})
	ro.SetNamespace(ns)
	ro.SetName("canary-bot")
	g.Eventually(func() error { return k8s.Create(ctx(), ro) }, 10*time.Second, 100*time.Millisecond).Should(Succeed())

	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.RestartDebounce = &metav1.Duration{}
	k.Spec.RestartTargets = []keyopsv1.RestartTarget{
		{Kind: keyopsv1.KindDeployment, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "bots"}}},
		{Kind: keyopsv1.KindRollout, Name: "canary-bot"},
	}
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"bot-a", "bot-b"} {
			var d appsv1.Deployment
			g.Expect(k8s.Get(ctx(), keyName(ns, name), &d)).To(Succeed())
			g.Expect(d.Generation).To(Equal(int64(2)), name)
			g.Expect(d.Spec.Template.Annotations).To(HaveKey(keyopsv1.AnnotationRestartedAt))
		}
		g.Expect(k8s.Get(ctx(), keyName(ns, "canary-bot"), ro)).To(Succeed())
		restartAt, _, _ := unstructured.NestedString(ro.Object, "spec", "restartAt")
		g.Expect(restartAt).NotTo(BeEmpty())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	var other appsv1.Deployment
	g.Expect(k8s.Get(ctx(), keyName(ns, "other"), &other)).To(Succeed())
	g.Expect(other.Generation).To(Equal(int64(1)), "a workload the selector does not match is left alone")
	NewWithT(t).Eventually(func() map[string]int { return events(t, ns, "bot-a") }, 20*time.Second, 100*time.Millisecond).Should(HaveKey(keyopsv1.EventWorkloadRestarted))
	g.Expect(scrape()).To(ContainSubstring(fmt.Sprintf(`exchangeapikey_workload_restarts_total{kind="Rollout",name="canary-bot",namespace="%s"} 1`, ns)))
}

// Three keys of one bot changed by one commit roll it once, after all of
// them reached the target Secret.
func TestKeysChangedTogetherRollOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	create(t, deployment(ns, "multi-bot"))
	exs := []exchange.Name{exchange.Binance, exchange.Bybit, exchange.OKX}
	for i, ex := range exs {
		c := creds(ex)
		register(ex, c, "read", "trade")
		name := fmt.Sprintf("key%d", i)
		putSource(t, ns, name+"-source", c)
		k := newKey(ns, name, ex, "")
		k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "multi-bot"}}
		create(t, k)
	}
	gen := func(g Gomega) int64 {
		var d appsv1.Deployment
		g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "multi-bot"}, &d)).To(Succeed())
		return d.Generation
	}
	settled := func(g Gomega) {
		for i := range exs {
			k := getKey(g, ns, fmt.Sprintf("key%d", i))
			g.Expect(k.Status.RestartedFor).NotTo(BeEmpty(), "%s: %+v", k.Name, k.Status.Conditions)
			g.Expect(k.Status.RestartedFor).To(Equal(k.Status.TargetCredentialsHash))
		}
	}
	g.Eventually(settled, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(gen(g)).To(Equal(int64(2)), "three new keys at once: one roll")

	// One commit rotates all three.
	for i, ex := range exs {
		c := creds(ex)
		register(ex, c, "read", "trade")
		putSource(t, ns, fmt.Sprintf("key%d-source", i), c)
	}
	g.Eventually(func(g Gomega) {
		for i := range exs {
			k := getKey(g, ns, fmt.Sprintf("key%d", i))
			g.Expect(k.Status.Rotation.LastRotationTime).NotTo(BeNil())
		}
		settled(g)
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(gen(g)).To(Equal(int64(3))) }, 6*time.Second, 200*time.Millisecond).Should(Succeed())
}
