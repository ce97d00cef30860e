package integration_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// policyLabel selects the namespaces of one test only: the suite's cluster
// is shared, and a policy selecting every namespace would count the keys of
// the other tests.
const policyLabel = "policy-test.keyops.io/selected"

func labelNamespace(t *testing.T, ns, value string) {
	t.Helper()
	var n corev1.Namespace
	if err := k8s.Get(ctx(), types.NamespacedName{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[policyLabel] = value
	if err := k8s.Update(ctx(), &n); err != nil {
		t.Fatal(err)
	}
}

// waitPolicyCounts waits until the policy's status reads selected/violating
// for its current generation.
func waitPolicyCounts(t *testing.T, name string, selected, violating int32) *keyopsv1.ClusterExchangeKeyPolicy {
	t.Helper()
	var p keyopsv1.ClusterExchangeKeyPolicy
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx(), types.NamespacedName{Name: name}, &p)).To(Succeed())
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		g.Expect([]int32{p.Status.SelectedKeys, p.Status.ViolatingKeys}).To(Equal([]int32{selected, violating}), "status: %+v", p.Status)
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return &p
}

// TestClusterPolicyStatusCounts runs real keys against the simulator and
// checks the policy's counts follow every input: the keys' validated
// permissions, a namespace relabelled into the selection, a policy change
// and a key deleted.
func TestClusterPolicyStatusCounts(t *testing.T) {
	selectedNS, otherNS := newNamespace(t), newNamespace(t)
	labelNamespace(t, selectedNS, selectedNS)

	// selectedNS: a compliant key, a key that can transfer (a violation
	// only once the exchange reports it), and a kraken key (a violation
	// of the spec alone). otherNS: a key that can transfer, not selected.
	keyWith := func(ns, name string, perms ...string) {
		c := creds(exchange.Binance)
		register(exchange.Binance, c, perms...)
		putSource(t, ns, name+"-source", c)
		create(t, newKey(ns, name, exchange.Binance, keyopsv1.ValidationObserve))
	}
	keyWith(selectedNS, "good", "read", "trade")
	keyWith(selectedNS, "mover", "read", "trade", "transfer")
	keyWith(otherNS, "mover", "read", "trade", "transfer")
	create(t, &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: selectedNS, Name: "kraken"},
		Spec:       keyopsv1.ExchangeAPIKeySpec{Exchange: "kraken", CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "absent"}},
	})
	waitCond(t, selectedNS, "mover", keyopsv1.ConditionKeyValid, "True/Verified")
	waitCond(t, otherNS, "mover", keyopsv1.ConditionKeyValid, "True/Verified")

	name := "counts-" + selectedNS
	p := &keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: selectedNS}},
			Forbidden:         []keyopsv1.Permission{"transfer"},
			AllowedExchanges:  []keyopsv1.Exchange{"binance", "okx"},
		},
	}
	create(t, p)
	t.Cleanup(func() { _ = k8s.Delete(ctx(), p) })
	got := waitPolicyCounts(t, name, 3, 2)
	ready := meta.FindStatusCondition(got.Status.Conditions, keyopsv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != keyopsv1.ReasonPolicyActive || ready.Message != "selects 3 ExchangeAPIKey(s); 2 violate it" {
		t.Fatalf("Ready condition: %+v", ready)
	}

	// The map helpers the ExchangeAPIKey controller watches with name the
	// selected keys, and only those.
	reqs := shared.MapPolicyToKeys(k8s)(ctx(), got)
	var names []string
	for _, r := range reqs {
		names = append(names, r.Namespace+"/"+r.Name)
	}
	slices.Sort(names)
	if want := []string{selectedNS + "/good", selectedNS + "/kraken", selectedNS + "/mover"}; !slices.Equal(names, want) {
		t.Fatalf("MapPolicyToKeys = %v, want %v", names, want)
	}
	var otherObj corev1.Namespace
	if err := k8s.Get(ctx(), types.NamespacedName{Name: otherNS}, &otherObj); err != nil {
		t.Fatal(err)
	}
	if reqs := shared.MapNamespaceToKeys(k8s)(ctx(), &otherObj); len(reqs) != 1 || reqs[0].Name != "mover" || reqs[0].Namespace != otherNS {
		t.Fatalf("MapNamespaceToKeys = %v, want %s/mover", reqs, otherNS)
	}

	// A namespace labelled into the selection brings its key in.
	labelNamespace(t, otherNS, selectedNS)
	waitPolicyCounts(t, name, 4, 3)

	// A policy change recounts at once: without the forbidden rule only the
	// kraken key violates.
	if err := k8s.Get(ctx(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Forbidden = nil
	if err := k8s.Update(ctx(), p); err != nil {
		t.Fatal(err)
	}
	waitPolicyCounts(t, name, 4, 1)

	// A key that goes is no longer counted.
	if err := k8s.Delete(ctx(), &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: selectedNS, Name: "kraken"}}); err != nil {
		t.Fatal(err)
	}
	waitPolicyCounts(t, name, 3, 0)
}

// TestClusterPolicyRequireIPRestrictionCountsUnknownAsViolating: an
// exchange that cannot report allowlists (Bitstamp) fails the rule closed.
func TestClusterPolicyRequireIPRestrictionCountsUnknownAsViolating(t *testing.T) {
	ns := newNamespace(t)
	labelNamespace(t, ns, ns)
	for _, ex := range []exchange.Name{exchange.Bitstamp, exchange.Binance} {
		c := creds(ex)
		register(ex, c, "read", "trade")
		putSource(t, ns, string(ex)+"-source", c)
		create(t, newKey(ns, string(ex), ex, keyopsv1.ValidationObserve))
		waitCond(t, ns, string(ex), keyopsv1.ConditionKeyValid, "True/Verified")
	}
	if ip := getKey(NewWithT(t), ns, "bitstamp").Status.Permissions.IPRestriction; ip != keyopsv1.IPRestrictionUnknown {
		t.Fatalf("bitstamp reports ipRestriction %q; the test needs Unknown", ip)
	}
	name := "ip-" + ns
	p := &keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{policyLabel: ns}},
			RequireIPRestriction: true,
		},
	}
	create(t, p)
	t.Cleanup(func() { _ = k8s.Delete(ctx(), p) })
	// Both violate: Binance reports the key works from any IP, Bitstamp
	// cannot say.
	waitPolicyCounts(t, name, 2, 2)
}

// TestClusterPolicyAdmission checks that the API server refuses malformed
// policies with a message that says what to fix.
func TestClusterPolicyAdmission(t *testing.T) {
	dur := func(s string) *metav1.Duration {
		d := metav1.Duration{}
		_ = d.UnmarshalJSON([]byte(`"` + s + `"`))
		return &d
	}
	cases := []struct {
		name string
		mut  func(*keyopsv1.ClusterExchangeKeyPolicySpec)
		want string
	}{
		{"zero maxAge", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.MaxAge = dur("0s") }, "maxAge must be a positive duration such as 2160h"},
		{"malformed maxAge", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.MaxAge = &metav1.Duration{} }, "spec.maxAge"},
		{"unknown permission", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.Forbidden = []keyopsv1.Permission{"root"} }, `Unsupported value: "root"`},
		{"duplicate permission", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.Forbidden = []keyopsv1.Permission{"withdraw", "withdraw"}
		}, `Duplicate value: "withdraw"`},
		{"unknown exchange", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) { s.AllowedExchanges = []keyopsv1.Exchange{"mtgox"} }, `Unsupported value: "mtgox"`},
		{"unknown mode", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.AllowedValidationModes = []keyopsv1.ValidationMode{"Strict"}
		}, `Unsupported value: "Strict"`},
		{"unknown selector operator", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near", Values: []string{"prod"}}}}
		}, "operator must be one of In, NotIn, Exists, DoesNotExist"},
		{"In without values", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn}}}
		}, "values must be non-empty for In and NotIn"},
		{"Exists with values", func(s *keyopsv1.ClusterExchangeKeyPolicySpec) {
			s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpExists, Values: []string{"prod"}}}}
		}, "left out for Exists and DoesNotExist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &keyopsv1.ClusterExchangeKeyPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-"}}
			tc.mut(&p.Spec)
			err := k8s.Create(ctx(), p)
			if err == nil {
				_ = k8s.Delete(ctx(), p)
				t.Fatalf("accepted a malformed policy")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want message containing %q, got: %v", tc.want, err)
			}
		})
	}

	// The example of docs/policy.md is accepted as written. It selects
	// env=prod, which no namespace of the suite has.
	good := &keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-prod-floor"},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{"env": "prod"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"sandbox"}}, {Key: "team", Operator: metav1.LabelSelectorOpExists}},
			},
			Forbidden:              []keyopsv1.Permission{"withdraw", "transfer"},
			RequireIPRestriction:   true,
			MaxAge:                 dur("2160h"),
			AllowedExchanges:       []keyopsv1.Exchange{"binance", "okx"},
			AllowedValidationModes: []keyopsv1.ValidationMode{keyopsv1.ValidationEnforce},
		},
	}
	create(t, good)
	t.Cleanup(func() { _ = k8s.Delete(ctx(), good) })
	// Its controller reports it, selecting nothing here.
	got := waitPolicyCounts(t, good.Name, 0, 0)
	if c := meta.FindStatusCondition(got.Status.Conditions, keyopsv1.ConditionReady); c == nil || c.Reason != keyopsv1.ReasonPolicyActive {
		t.Fatalf("Ready condition: %+v", got.Status.Conditions)
	}
}
