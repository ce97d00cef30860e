package integration_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// selfHealBackoff is the suite's wait before the second replacement within
// a day; a third loss stops the replacements (testManagerOptions).
const selfHealBackoff = 15 * time.Second

// TestIssuedKeySelfHeals: an issued key revoked at the exchange (in its web
// UI, say) is replaced by the operator: a new key verified and handed over,
// the bots restarted once, the dead key deleted without waiting for the
// overlap, an Event and a history entry that say why. Revoked again right
// after, the next replacement waits its backoff; a third time, the
// replacements stop with RepeatedlyRevoked, and no key is created however
// long one watches, until the rotate annotation asks for one. Binance
// answers a revoked key with -2015, which names the key and the IP alike
// and is ambiguous: the operator confirms it, then finds the key gone from
// the sub-account's list before replacing it.
func TestIssuedKeySelfHeals(t *testing.T) {
	t.Cleanup(func() { noIssuePanics(t) })
	for _, ex := range issueExchanges {
		t.Run(string(ex), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			e := newIssueEnv(t, ex)
			create(t, deployment(e.ns, "bot"))
			k := e.issuedKey("bot")
			k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
			// A day of overlap: a dead key goes at once all the same.
			k.Spec.Rotation.Overlap = &metav1.Duration{Duration: 24 * time.Hour}
			create(t, k)
			e.waitIssued("bot", 1)
			first := e.current(g, "bot")
			g.Eventually(func(g Gomega) int64 { return deploymentGeneration(g, e.ns, "bot") }, 10*time.Second, 50*time.Millisecond).Should(Equal(int64(2)))
			g.Expect(sim.SubKeysCreated(ex, e.sub)).To(Equal(1))

			// Revoked in the exchange's web UI; the next validation finds it.
			g.Expect(sim.SetState(ex, first.APIKey, simulator.Revoked)).To(BeTrue())
			revalidate(t, e.ns, "bot", "1")
			k = e.waitIssuedAfterWithin("bot", 1, 2, 40*time.Second)
			second := e.current(g, "bot")
			g.Expect(second.APIKey).NotTo(Equal(first.APIKey))
			g.Expect(e.target(g, "bot")).To(Equal(second))
			g.Expect(k.Status.Issued.Replacements).To(HaveLen(1))
			waitEvent(t, e.ns, "bot", keyopsv1.EventIssuedKeyReplaced)
			waitEvent(t, e.ns, "bot", keyopsv1.EventPreviousKeyDeleted)
			g.Eventually(func(g Gomega) {
				k := getKey(g, e.ns, "bot")
				g.Expect(k.Status.PreviousKey).To(BeNil(), "the dead key waits for no overlap")
				g.Expect(k.Status.History).To(ContainElement(And(
					HaveField("KeyID", keyid.Mask(first.APIKey)), HaveField("Outcome", keyopsv1.HistoryReplaced),
					HaveField("Reason", BeElementOf(keyopsv1.ReasonRevoked, keyopsv1.ReasonKeyOrIPRejected)))))
			}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
			g.Expect(deploymentGeneration(g, e.ns, "bot")).To(Equal(int64(3)), "one restart for the replacement")
			g.Expect(sim.SubKeysCreated(ex, e.sub)).To(Equal(2))
			g.Expect(e.ownKeys(g, strings.TrimSuffix(k.Status.Issued.Label, "2"))).To(HaveLen(1), "only the replacement lives")

			// Revoked again right away: the second replacement waits its
			// backoff, and says so.
			g.Expect(sim.SetState(ex, second.APIKey, simulator.Revoked)).To(BeTrue())
			revalidate(t, e.ns, "bot", "2")
			g.Eventually(func(g Gomega) string { return cond(getKey(g, e.ns, "bot"), keyopsv1.ConditionKeyIssued) }, 20*time.Second, 20*time.Millisecond).
				Should(Equal("False/" + keyopsv1.ReasonReplacementBackoff))
			g.Expect(sim.SubKeysCreated(ex, e.sub)).To(Equal(2), "created during the backoff")
			k = e.waitIssuedAfterWithin("bot", 2, 3, 40*time.Second)
			third := e.current(g, "bot")
			g.Expect(e.target(g, "bot")).To(Equal(third))
			g.Expect(k.Status.Issued.Replacements).To(HaveLen(2))
			last := k.Status.Issued.Replacements[1].Time
			g.Expect(last.Sub(k.Status.Issued.Replacements[0].Time)).To(BeNumerically(">=", selfHealBackoff-time.Second), "the backoff was kept")

			// And again: the replacements stop, and the condition says why
			// and what to check.
			g.Expect(sim.SetState(ex, third.APIKey, simulator.Revoked)).To(BeTrue())
			revalidate(t, e.ns, "bot", "3")
			var msg string
			g.Eventually(func(g Gomega) {
				k := getKey(g, e.ns, "bot")
				g.Expect(cond(k, keyopsv1.ConditionKeyIssued)).To(Equal("False/" + keyopsv1.ReasonRepeatedlyRevoked))
				msg = condMsg(k, keyopsv1.ConditionKeyIssued)
			}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
			g.Expect(msg).To(And(ContainSubstring("stopped accepting 2 keys"), ContainSubstring("ipAllowlist"), ContainSubstring(keyopsv1.AnnotationRotate)))
			// Longer than the backoff: nothing is created, the condition
			// stays, and the bots keep the (dead) key they have.
			g.Consistently(func(g Gomega) {
				g.Expect(sim.SubKeysCreated(ex, e.sub)).To(Equal(3))
				g.Expect(cond(getKey(g, e.ns, "bot"), keyopsv1.ConditionKeyIssued)).To(Equal("False/" + keyopsv1.ReasonRepeatedlyRevoked))
			}, selfHealBackoff+2*time.Second, 200*time.Millisecond).Should(Succeed())
			g.Expect(e.target(g, "bot")).To(Equal(third))
			g.Expect(deploymentGeneration(g, e.ns, "bot")).To(Equal(int64(4)), "one restart per replacement")

			// The rotate annotation asks for a key: it is issued.
			annotateRotate(t, e.ns, "bot", "after-incident")
			e.waitIssuedAfterWithin("bot", 3, 4, 40*time.Second)
			g.Expect(sim.SubKeysCreated(ex, e.sub)).To(Equal(4))
			text := allEventText(t, e.ns)
			for _, c := range []exchange.Credentials{first, second, third} {
				g.Expect(text).NotTo(ContainSubstring(c.APIKey))
				g.Expect(text).NotTo(ContainSubstring(c.APISecret))
			}
		})
	}
}

// TestIssuedKeyAmbiguousAnswerIsNoReplacement: one answer that Binance also
// gives to valid keys (-2015) about an issued key is no verdict: the
// confirming probe a few seconds later finds the key working, and no key is
// created, however long one watches.
func TestIssuedKeyAmbiguousAnswerIsNoReplacement(t *testing.T) {
	t.Cleanup(func() { noIssuePanics(t) })
	g := NewWithT(t)
	e := newIssueEnv(t, exchange.Binance)
	create(t, e.issuedKey("bot"))
	e.waitIssued("bot", 1)
	first := e.current(g, "bot")

	// The key is unknown for one answer only.
	g.Expect(sim.SetState(exchange.Binance, first.APIKey, simulator.Revoked)).To(BeTrue())
	revalidate(t, e.ns, "bot", "1")
	g.Eventually(func(g Gomega) {
		g.Expect(getKey(g, e.ns, "bot").Status.UnconfirmedAnswer).NotTo(BeNil())
	}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
	g.Expect(sim.SetState(exchange.Binance, first.APIKey, simulator.Active)).To(BeTrue())
	// The confirming probe clears it; nothing is created meanwhile or after.
	g.Eventually(func(g Gomega) {
		k := getKey(g, e.ns, "bot")
		g.Expect(k.Status.UnconfirmedAnswer).To(BeNil())
		g.Expect(cond(k, keyopsv1.ConditionKeyValid)).To(Equal("True/Verified"))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Consistently(func(g Gomega) {
		k := getKey(g, e.ns, "bot")
		g.Expect(cond(k, keyopsv1.ConditionKeyIssued)).To(Equal("True/" + keyopsv1.ReasonKeyIssuedOK))
		g.Expect(k.Status.Issued.Generation).To(Equal(int64(1)))
		g.Expect(sim.SubKeysCreated(exchange.Binance, e.sub)).To(Equal(1))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(e.current(g, "bot")).To(Equal(first))
	g.Expect(events(t, e.ns, "bot")).NotTo(HaveKey(keyopsv1.EventIssuedKeyReplaced))
}
