package integration_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// TestMasterKeyIsNeverABotKey: a Secret an ExchangeAccount names as its
// master key cannot be an ExchangeAPIKey's source, even with validation
// Disabled: the key says why (SourceIsMasterKey) and no target Secret is
// written. When the account stops naming the Secret, the key syncs.
func TestMasterKeyIsNeverABotKey(t *testing.T) {
	ns := newNamespace(t)
	g := NewWithT(t)
	master := creds(exchange.Bybit)
	a := newAccount(ns, "master", exchange.Bybit)
	create(t, sourceSecret(ns, a.Spec.CredentialsSecretRef.Name, master))
	create(t, a)
	// The check reads ExchangeAccounts from the manager's cache: the
	// account's first status (any verdict) proves the cache holds it.
	g.Eventually(func(g Gomega) {
		g.Expect(getAccount(g, ns, "master").Status.Conditions).NotTo(BeEmpty())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	k := newKey(ns, "bot", exchange.Bybit, keyopsv1.ValidationDisabled)
	k.Spec.CredentialsSecretRef.Name = a.Spec.CredentialsSecretRef.Name
	create(t, k)

	got := waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "False/"+keyopsv1.ReasonSourceIsMasterKey)
	g.Expect(cond(got, keyopsv1.ConditionReady)).To(Equal("False/" + keyopsv1.ReasonSourceIsMasterKey))
	msg := meta.FindStatusCondition(got.Status.Conditions, keyopsv1.ConditionSecretSynced).Message
	g.Expect(msg).To(ContainSubstring("master key of ExchangeAccount master"))
	g.Expect(got.Status.KeyID).To(BeEmpty(), "nothing of the master key is shown")
	g.Consistently(func() error {
		return k8s.Get(ctx(), keyName(ns, "bot"), &corev1.Secret{})
	}, time.Second, 100*time.Millisecond).ShouldNot(Succeed(), "the master key was copied into a target Secret")

	// The account moves to another Secret: the key is no longer refused.
	create(t, sourceSecret(ns, "other-master", creds(exchange.Bybit)))
	g.Eventually(func(g Gomega) {
		acct := getAccount(g, ns, "master")
		acct.Spec.CredentialsSecretRef.Name = "other-master"
		g.Expect(k8s.Update(ctx(), acct)).To(Succeed())
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	waitCond(t, ns, "bot", keyopsv1.ConditionSecretSynced, "True/"+keyopsv1.ReasonSynced)
}
