package integration_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// The policy floor as tenants meet it: a key that breaks a rule of a policy
// selecting its namespace is Ready False with reason PolicyViolation and a
// message naming the policy and the rule, gets a Warning Event, is not
// synced when new, keeps its target when already synced, and a key in
// Observe mode is held to Enforce when the policy allows only Enforce. A
// policy change re-evaluates the keys at once.
func TestPolicyFloorOnKeys(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	labelNamespace(t, ns, ns)

	// A synced key, before any policy: it can transfer.
	synced := creds(exchange.Binance)
	register(exchange.Binance, synced, "read", "trade", "transfer")
	putSource(t, ns, "synced-source", synced)
	create(t, newKey(ns, "synced", exchange.Binance, ""))
	waitCond(t, ns, "synced", keyopsv1.ConditionReady, "True/Ready")

	pol := &keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "floor-" + ns},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: ns}},
			Forbidden:              []keyopsv1.Permission{"transfer"},
			AllowedValidationModes: []keyopsv1.ValidationMode{keyopsv1.ValidationEnforce},
		},
	}
	create(t, pol)
	t.Cleanup(func() { _ = k8s.Delete(ctx(), pol) })

	// The policy change alone re-evaluates the synced key: reported, and
	// its target kept.
	got := waitCond(t, ns, "synced", keyopsv1.ConditionReady, "False/"+keyopsv1.ReasonPolicyViolation)
	msg := meta.FindStatusCondition(got.Status.Conditions, keyopsv1.ConditionReady).Message
	g.Expect(msg).To(ContainSubstring(pol.Name))
	g.Expect(msg).To(ContainSubstring("transfer"))
	g.Expect(string(getSecret(g, ns, "synced").Data["apiKey"])).To(Equal(synced.APIKey))
	waitEvent(t, ns, "synced", keyopsv1.EventPolicyViolation)

	// A new key in Observe mode that breaks the floor is held as in
	// Enforce: never synced.
	observed := creds(exchange.Binance)
	register(exchange.Binance, observed, "read", "trade", "transfer")
	putSource(t, ns, "observed-source", observed)
	create(t, newKey(ns, "observed", exchange.Binance, keyopsv1.ValidationObserve))
	waitCond(t, ns, "observed", keyopsv1.ConditionPermissionsCompliant, "False/"+keyopsv1.ReasonPolicyViolation)
	g.Consistently(func() bool {
		return k8s.Get(ctx(), keyName(ns, "observed"), newSecret()) != nil
	}, 3*time.Second, 100*time.Millisecond).Should(BeTrue(), "a violating key is not synced, even in Observe mode")
	got = getKey(g, ns, "observed")
	g.Expect(cond(got, keyopsv1.ConditionSecretSynced)).To(Equal("False/" + keyopsv1.ReasonAwaitingValidation))

	// Relaxing the policy lets it through at once.
	var p keyopsv1.ClusterExchangeKeyPolicy
	g.Expect(k8s.Get(ctx(), client.ObjectKeyFromObject(pol), &p)).To(Succeed())
	p.Spec.Forbidden, p.Spec.AllowedValidationModes = nil, nil
	g.Expect(k8s.Update(ctx(), &p)).To(Succeed())
	waitCond(t, ns, "observed", keyopsv1.ConditionSecretSynced, "True/Synced")
	waitCond(t, ns, "synced", keyopsv1.ConditionReady, "True/Ready")
}

// TestPolicyFloorModeIsTheReadyReason: a key in Disabled mode in a namespace
// whose policy allows only Enforce is held as Enforce; what the user must
// change is its mode, so Ready says PolicyViolation and names the policy
// (the REASON column of an Enforce key breaking the floor), whether the key
// verifies or not.
func TestPolicyFloorModeIsTheReadyReason(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	labelNamespace(t, ns, ns)
	pol := &keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "modes-" + ns},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: ns}},
			AllowedValidationModes: []keyopsv1.ValidationMode{keyopsv1.ValidationEnforce},
		},
	}
	create(t, pol)
	t.Cleanup(func() { _ = k8s.Delete(ctx(), pol) })

	good := creds(exchange.Binance)
	register(exchange.Binance, good, "read", "trade")
	putSource(t, ns, "good-source", good)
	create(t, newKey(ns, "good", exchange.Binance, keyopsv1.ValidationDisabled))
	// Never registered: the exchange does not know it.
	putSource(t, ns, "unknown-source", creds(exchange.Binance))
	create(t, newKey(ns, "unknown", exchange.Binance, keyopsv1.ValidationDisabled))
	for _, name := range []string{"good", "unknown"} {
		k := waitCond(t, ns, name, keyopsv1.ConditionReady, "False/"+keyopsv1.ReasonPolicyViolation)
		msg := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionReady).Message
		g.Expect(msg).To(ContainSubstring(pol.Name), name)
		g.Expect(msg).To(ContainSubstring("Disabled"), name)
	}
	g.Consistently(func() bool {
		return k8s.Get(ctx(), keyName(ns, "good"), newSecret()) != nil
	}, 2*time.Second, 100*time.Millisecond).Should(BeTrue(), "a key in a mode the policy forbids was synced")
}
