package integration_test

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Defect: removing the operator's label hid the target from the cache, so
// drift went unrepaired and status kept saying Synced.
func TestTargetFoundWithoutItsLabel(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Binance, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	s := getSecret(g, ns, "bot")
	delete(s.Labels, keyopsv1.LabelManaged)
	delete(s.Labels, keyopsv1.LabelManagedBy)
	s.Data["apiKey"] = []byte("hacked")
	g.Expect(k8s.Update(ctx(), s)).To(Succeed())
	revalidate(t, ns, "bot", "after-label-removal")

	g.Eventually(func(g Gomega) {
		s := getSecret(g, ns, "bot")
		g.Expect(string(s.Data["apiKey"])).To(Equal(c.APIKey))
		g.Expect(s.Labels).To(HaveKeyWithValue(keyopsv1.LabelManaged, keyopsv1.LabelManagedValue))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	waitEvent(t, ns, "bot", keyopsv1.EventSecretSynced)
	g.Expect(cond(getKey(g, ns, "bot"), keyopsv1.ConditionSecretSynced)).To(Equal("True/Synced"))
}

// A target written by an earlier version carries only the shared
// app.kubernetes.io/managed-by label: it is adopted and relabelled.
func TestTargetWithOnlyTheOldLabelIsMigrated(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Binance, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	s := getSecret(g, ns, "bot")
	delete(s.Labels, keyopsv1.LabelManaged)
	g.Expect(k8s.Update(ctx(), s)).To(Succeed())
	revalidate(t, ns, "bot", "migrate")
	g.Eventually(func(g Gomega) {
		g.Expect(getSecret(g, ns, "bot").Labels).To(HaveKeyWithValue(keyopsv1.LabelManaged, keyopsv1.LabelManagedValue))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
}

// Defect: with Retain, a target whose label was removed was not found by
// the finalizer, kept its owner reference, and was garbage collected.
func TestRetainedTargetWithoutItsLabelIsReleased(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.Target.DeletionPolicy = keyopsv1.DeletionPolicyRetain
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	s := getSecret(g, ns, "bot")
	delete(s.Labels, keyopsv1.LabelManaged)
	delete(s.Labels, keyopsv1.LabelManagedBy)
	g.Expect(k8s.Update(ctx(), s)).To(Succeed())

	g.Expect(k8s.Delete(ctx(), getKey(g, ns, "bot"))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx(), keyName(ns, "bot"), &keyopsv1.ExchangeAPIKey{}))
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	// envtest runs no garbage collector: the owner reference is what would
	// let one delete the Secret, so its absence is the assertion.
	g.Expect(getSecret(g, ns, "bot").OwnerReferences).To(BeEmpty())
}

// Defect: adding the Retain finalizer with a full-object Update dropped an
// explicit empty list (forbidden: []), and the key was then refused for the
// default forbidden permission.
func TestFinalizerNeverRewritesSpec(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade", "withdraw")
	putSource(t, ns, "bot-source", c)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "exchange.keyops.io/v1alpha1", "kind": "ExchangeAPIKey",
		"metadata": map[string]any{"namespace": ns, "name": "bot"},
		"spec": map[string]any{
			"exchange":             "binance",
			"endpoint":             newKey(ns, "bot", exchange.Binance, "").Spec.Endpoint,
			"credentialsSecretRef": map[string]any{"name": "bot-source"},
			"permissions":          map[string]any{"forbidden": []any{}},
			"target":               map[string]any{"deletionPolicy": "Retain"},
		},
	}}
	g.Expect(k8s.Create(ctx(), u)).To(Succeed())
	got := waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(got.Finalizers).To(ContainElement(keyopsv1.FinalizerRetain))
	g.Expect(got.Status.Permissions.Canonical).To(ContainElement("withdraw"))

	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(schema.GroupVersionKind{Group: "exchange.keyops.io", Version: "v1alpha1", Kind: "ExchangeAPIKey"})
	g.Expect(k8s.Get(ctx(), keyName(ns, "bot"), stored)).To(Succeed())
	forbidden, found, err := unstructured.NestedSlice(stored.Object, "spec", "permissions", "forbidden")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "spec.permissions.forbidden: [] must survive the finalizer")
	g.Expect(forbidden).To(BeEmpty())
	g.Expect(stored.GetGeneration()).To(Equal(int64(1)), "the operator must never write spec")
}

// Defect: keys sharing a restart target overwrote one shared annotation and
// rolled the workload on every reconcile of either.
func TestSharedRestartTargetRollsOncePerChange(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("%d keys", n), func(t *testing.T) { sharedRestartTarget(t, n) })
	}
}

func sharedRestartTarget(t *testing.T, n int) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := deployment(ns, "multi-bot")
	create(t, d)
	exchanges := []exchange.Name{exchange.Binance, exchange.Kraken, exchange.Bybit, exchange.OKX, exchange.KuCoin}
	keys := make([]exchange.Credentials, n)
	for i := 0; i < n; i++ {
		ex := exchanges[i]
		keys[i] = creds(ex)
		register(ex, keys[i], "read", "trade")
		name := fmt.Sprintf("key%d", i)
		putSource(t, ns, name+"-source", keys[i])
		k := newKey(ns, name, ex, "")
		k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "multi-bot"}}
		create(t, k)
	}
	for i := 0; i < n; i++ {
		waitCond(t, ns, fmt.Sprintf("key%d", i), keyopsv1.ConditionReady, "True/Ready")
	}
	settled := func(g Gomega) int64 {
		var dep appsv1.Deployment
		g.Expect(k8s.Get(ctx(), client.ObjectKeyFromObject(d), &dep)).To(Succeed())
		for i := 0; i < n; i++ {
			g.Expect(dep.Annotations).To(HaveKeyWithValue(keyopsv1.RestartAnnotationPrefix+fmt.Sprintf("key%d", i), materialOf(keys[i])))
		}
		return dep.Generation
	}
	var gen int64
	g.Eventually(func(g Gomega) { gen = settled(g) }, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	// A revalidation of every key (asked for: intervals are at least a
	// minute): the workload stays.
	before := map[string]string{}
	for i := 0; i < n; i++ {
		before[fmt.Sprintf("key%d", i)] = getKey(g, ns, fmt.Sprintf("key%d", i)).Status.LastValidationTime.String()
	}
	time.Sleep(1100 * time.Millisecond) // status times are kept to the second
	for i := 0; i < n; i++ {
		revalidate(t, ns, fmt.Sprintf("key%d", i), "again")
	}
	g.Eventually(func(g Gomega) {
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("key%d", i)
			g.Expect(getKey(g, ns, name).Status.LastValidationTime.String()).NotTo(Equal(before[name]), "%s revalidated", name)
		}
		g.Expect(settled(g)).To(Equal(gen))
	}, 20*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(settled(g)).To(Equal(gen)) }, 5*time.Second, 100*time.Millisecond).Should(Succeed())

	// Rotating one key rolls the workload exactly once.
	next := creds(exchanges[0])
	register(exchanges[0], next, "read", "trade")
	putSource(t, ns, "key0-source", next)
	keys[0] = next
	g.Eventually(func(g Gomega) { g.Expect(settled(g)).To(Equal(gen + 1)) }, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(settled(g)).To(Equal(gen + 1)) }, 5*time.Second, 100*time.Millisecond).Should(Succeed())
}

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "bot"}}},
			},
		},
	}
}
