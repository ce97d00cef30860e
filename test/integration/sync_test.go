package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

func TestSyncCreatesTargetSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled)
	k.Spec.Target.Labels = map[string]string{"team": "quant"}
	k.Spec.Target.Annotations = map[string]string{"note": "x"}
	create(t, k)

	got := waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(cond(got, keyopsv1.ConditionSecretSynced)).To(Equal("True/Synced"))
	g.Expect(cond(got, keyopsv1.ConditionKeyValid)).To(Equal("Unknown/ValidationDisabled"))
	g.Expect(got.Status.KeyID).To(Equal(keyid.Mask(c.APIKey)))
	g.Expect(got.Status.KeyID).To(HaveLen(11))
	g.Expect(got.Status.KeyFingerprint).To(Equal(keyid.Fingerprint(c.APIKey)))
	g.Expect(got.Status.TargetSecretName).To(Equal("bot"))
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	for _, cd := range got.Status.Conditions {
		g.Expect(cd.ObservedGeneration).To(Equal(got.Generation), cd.Type)
	}

	s := getSecret(g, ns, "bot")
	g.Expect(string(s.Data["apiKey"])).To(Equal(c.APIKey))
	g.Expect(string(s.Data["apiSecret"])).To(Equal(c.APISecret))
	g.Expect(s.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "exchange-key-operator"))
	g.Expect(s.Labels).To(HaveKeyWithValue("team", "quant"))
	g.Expect(s.Annotations).To(HaveKeyWithValue("note", "x"))
	g.Expect(metav1.IsControlledBy(s, got)).To(BeTrue())
	// The first handover is recorded in status (no Event: see target.go).
	g.Expect(got.Status.History).To(ContainElement(HaveField("Outcome", "Accepted")))

	// Nothing about the key material leaks into status or Events.
	raw, _ := json.Marshal(got.Status)
	g.Expect(string(raw)).NotTo(ContainSubstring(c.APISecret))
	g.Expect(string(raw)).NotTo(ContainSubstring(c.APIKey))
	g.Expect(allEventText(t, ns)).NotTo(ContainSubstring(c.APISecret))
	g.Expect(allEventText(t, ns)).NotTo(ContainSubstring(c.APIKey))
}

func TestFormatsAndTemplate(t *testing.T) {
	ns := newNamespace(t)
	c := creds(exchange.OKX)
	cases := map[string]func(*keyopsv1.ExchangeAPIKey){
		"env":       func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Target.Format = keyopsv1.FormatEnv },
		"ccxt":      func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Target.Format = keyopsv1.FormatCCXT },
		"freqtrade": func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Target.Format = keyopsv1.FormatFreqtrade },
		"tmpl": func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Target.Template = map[string]string{"bot.env": "KEY={{ .APIKey }}\nEX={{ .Exchange }}"}
		},
	}
	for name, mut := range cases {
		putSource(t, ns, name+"-source", c)
		k := newKey(ns, name, exchange.OKX, keyopsv1.ValidationDisabled)
		mut(k)
		create(t, k)
	}
	g := NewWithT(t)
	for name := range cases {
		waitCond(t, ns, name, keyopsv1.ConditionReady, "True/Ready")
	}
	env := getSecret(g, ns, "env")
	g.Expect(string(env.Data["OKX_API_KEY"])).To(Equal(c.APIKey))
	g.Expect(string(env.Data["OKX_API_SECRET"])).To(Equal(c.APISecret))
	g.Expect(string(env.Data["OKX_API_PASSPHRASE"])).To(Equal(c.Passphrase))
	var ccxt map[string]string
	g.Expect(json.Unmarshal(getSecret(g, ns, "ccxt").Data["ccxt.json"], &ccxt)).To(Succeed())
	g.Expect(ccxt).To(Equal(map[string]string{"apiKey": c.APIKey, "secret": c.APISecret, "password": c.Passphrase}))
	var ft struct {
		Exchange map[string]string `json:"exchange"`
	}
	g.Expect(json.Unmarshal(getSecret(g, ns, "freqtrade").Data["config.json"], &ft)).To(Succeed())
	g.Expect(ft.Exchange).To(Equal(map[string]string{"name": "okx", "key": c.APIKey, "secret": c.APISecret, "password": c.Passphrase}))
	g.Expect(string(getSecret(g, ns, "tmpl").Data["bot.env"])).To(Equal("KEY=" + c.APIKey + "\nEX=okx"))
}

func TestSourceChangeAndDriftRepair(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	putSource(t, ns, "bot-source", creds(exchange.Bybit))
	create(t, newKey(ns, "bot", exchange.Bybit, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	// A new key in the source reaches the target at once.
	c2 := creds(exchange.Bybit)
	putSource(t, ns, "bot-source", c2)
	g.Eventually(func(g Gomega) {
		g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c2.APIKey))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	// Hand edits are reverted.
	s := getSecret(g, ns, "bot")
	s.Data["apiSecret"] = []byte("edited")
	g.Expect(k8s.Update(ctx(), s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(string(getSecret(g, ns, "bot").Data["apiSecret"])).To(Equal(c2.APISecret))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	// A deleted target comes back.
	g.Expect(k8s.Delete(ctx(), getSecret(g, ns, "bot"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c2.APIKey))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
}

func TestNeverTakesOverForeignSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot"}, Data: map[string][]byte{"mine": []byte("keep")}}
	create(t, foreign)
	putSource(t, ns, "bot-source", creds(exchange.Binance))
	create(t, newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled))

	k := waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "False/SecretConflict")
	g.Expect(syncedMessage(k)).To(ContainSubstring("already exists"))
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/SecretConflict"))
	s := getSecret(g, ns, "bot")
	g.Expect(s.Data).To(Equal(map[string][]byte{"mine": []byte("keep")}))
	g.Expect(s.OwnerReferences).To(BeEmpty())

	// A second ExchangeAPIKey cannot take a target the first one owns.
	putSource(t, ns, "owner-source", creds(exchange.Binance))
	putSource(t, ns, "other-source", creds(exchange.Binance))
	create(t, newKey(ns, "owner", exchange.Binance, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "owner", keyopsv1.ConditionReady, "True/Ready")
	thief := newKey(ns, "other", exchange.Binance, keyopsv1.ValidationDisabled)
	thief.Spec.Target.Name = "owner"
	create(t, thief)
	waitCond(t, ns, "other", keyopsv1.ConditionSecretSynced, "False/SecretConflict")
}

// TestClearedConflictIsNoticed: the user clears a SecretConflict as its
// message says, by deleting the foreign Secret (or by taking it off the
// key's target name): the key syncs at once, not at its next revalidation.
// The keys are in Enforce mode (revalidated hourly) and Disabled mode (never
// revalidated): either way nothing but the Secret's watch brings them back.
func TestClearedConflictIsNoticed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, mode := range []keyopsv1.ValidationMode{keyopsv1.ValidationEnforce, keyopsv1.ValidationDisabled} {
		name := "bot-" + strings.ToLower(string(mode))
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"mine": []byte("keep")}})
		c := creds(exchange.Binance)
		register(exchange.Binance, c, "read")
		putSource(t, ns, name+"-source", c)
		create(t, newKey(ns, name, exchange.Binance, mode))
		waitCond(t, ns, name, keyopsv1.ConditionReady, "False/"+keyopsv1.ReasonSecretConflict)

		g.Expect(k8s.Delete(ctx(), getSecret(g, ns, name))).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(cond(getKey(g, ns, name), keyopsv1.ConditionReady)).To(Equal("True/Ready"))
			g.Expect(string(getSecret(g, ns, name).Data["apiKey"])).To(Equal(c.APIKey))
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed(), "mode %s: the cleared conflict was not noticed", mode)
	}
}

func TestBadSourceKeepsLastGoodTarget(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	good := creds(exchange.Kraken)
	putSource(t, ns, "bot-source", good)
	create(t, newKey(ns, "bot", exchange.Kraken, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	check := func(reason, wantMsg string) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			k := getKey(g, ns, "bot")
			g.Expect(cond(k, keyopsv1.ConditionSecretSynced)).To(Equal("False/" + reason))
			g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/" + reason))
			g.Expect(syncedMessage(k)).To(ContainSubstring(wantMsg))
		}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
		s := getSecret(g, ns, "bot")
		g.Expect(string(s.Data["apiSecret"])).To(Equal(good.APISecret), "last good target must be kept")
	}

	// Kraken secrets are base64: this one cannot be right.
	var src corev1.Secret
	g.Expect(k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "bot-source"}, &src)).To(Succeed())
	src.Data["apiSecret"] = []byte("not*base64!")
	g.Expect(k8s.Update(ctx(), &src)).To(Succeed())
	check(keyopsv1.ReasonMalformedCredentials, "bot-source")

	src.Data["apiSecret"] = []byte{}
	g.Expect(k8s.Update(ctx(), &src)).To(Succeed())
	check(keyopsv1.ReasonMalformedCredentials, `"apiSecret" is empty`)

	delete(src.Data, "apiSecret")
	g.Expect(k8s.Update(ctx(), &src)).To(Succeed())
	check(keyopsv1.ReasonSourceKeyMissing, `has no key "apiSecret"`)

	g.Expect(k8s.Delete(ctx(), &src)).To(Succeed())
	check(keyopsv1.ReasonSourceSecretMissing, "bot-source not found")

	// Fixing the source recovers.
	putSource(t, ns, "bot-source", good)
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
}

func TestMissingSourceFromTheStart(t *testing.T) {
	ns := newNamespace(t)
	k := newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled)
	k.Spec.CredentialsSecretRef.APIKeyKey = "key"
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "False/SourceSecretMissing")
	putSource(t, ns, "bot-source", creds(exchange.Binance)) // has apiKey, not key
	waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "False/SourceKeyMissing")
	var s corev1.Secret
	err := k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "bot"}, &s)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("target Secret must not exist, got %v", err)
	}
}

func TestDeletionPolicies(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	putSource(t, ns, "del-source", creds(exchange.Binance))
	putSource(t, ns, "keep-source", creds(exchange.Binance))
	create(t, newKey(ns, "del", exchange.Binance, keyopsv1.ValidationDisabled))
	keep := newKey(ns, "keep", exchange.Binance, keyopsv1.ValidationDisabled)
	keep.Spec.Target.DeletionPolicy = keyopsv1.DeletionPolicyRetain
	create(t, keep)
	waitCond(t, ns, "del", keyopsv1.ConditionReady, "True/Ready")
	k := waitCond(t, ns, "keep", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(k.Finalizers).To(ContainElement(keyopsv1.FinalizerRetain))

	// Delete: the target carries a controller reference, so the garbage
	// collector removes it with its owner (envtest runs no garbage
	// collector, so the reference is what is checked).
	delObj := getKey(g, ns, "del")
	g.Expect(metav1.IsControlledBy(getSecret(g, ns, "del"), delObj)).To(BeTrue())
	g.Expect(delObj.Finalizers).To(BeEmpty())

	// Retain: the finalizer detaches the target before the object goes.
	g.Expect(k8s.Delete(ctx(), k)).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(ctx(), client.ObjectKeyFromObject(k), &keyopsv1.ExchangeAPIKey{})
		return apierrors.IsNotFound(err)
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	s := getSecret(g, ns, "keep")
	g.Expect(s.OwnerReferences).To(BeEmpty())
	g.Expect(s.Data).To(HaveKey("apiKey"))
}

func TestSuspend(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	k := getKey(g, ns, "bot")
	k.Spec.Suspend = true
	g.Expect(k8s.Update(ctx(), k)).To(Succeed())
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "False/Suspended")
	putSource(t, ns, "bot-source", creds(exchange.Binance))
	g.Consistently(func(g Gomega) {
		g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c.APIKey))
	}, 2*time.Second, 100*time.Millisecond).Should(Succeed())

	k = getKey(g, ns, "bot")
	k.Spec.Suspend = false
	g.Expect(k8s.Update(ctx(), k)).To(Succeed())
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).NotTo(Equal(c.APIKey))
}

func TestNoOpReconcileWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	putSource(t, ns, "bot-source", creds(exchange.Binance))
	create(t, newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	before := getKey(g, ns, "bot").ResourceVersion
	targetBefore := getSecret(g, ns, "bot").ResourceVersion
	eventsBefore := events(t, ns, "bot")

	// Touch the source without changing it: a reconcile runs, changes nothing.
	var src corev1.Secret
	g.Expect(k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "bot-source"}, &src)).To(Succeed())
	src.Labels = map[string]string{"touched": "yes"}
	g.Expect(k8s.Update(ctx(), &src)).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getKey(g, ns, "bot").ResourceVersion).To(Equal(before))
		g.Expect(getSecret(g, ns, "bot").ResourceVersion).To(Equal(targetBefore))
	}, 2*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(events(t, ns, "bot")).To(Equal(eventsBefore))
}

func TestInvalidTemplateIsReported(t *testing.T) {
	ns := newNamespace(t)
	putSource(t, ns, "bot-source", creds(exchange.Binance))
	k := newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled)
	k.Spec.Target.Template = map[string]string{"cfg": "{{ .Nope }}"}
	create(t, k)
	got := waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "False/InvalidTemplate")
	for _, c := range got.Status.Conditions {
		if c.Type == keyopsv1.ConditionSecretSynced && !strings.Contains(c.Message, "target.template[cfg]") {
			t.Fatalf("message should name the template key: %q", c.Message)
		}
	}
}

func syncedMessage(k *keyopsv1.ExchangeAPIKey) string {
	for _, c := range k.Status.Conditions {
		if c.Type == keyopsv1.ConditionSecretSynced {
			return c.Message
		}
	}
	return ""
}
