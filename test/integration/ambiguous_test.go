package integration_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// Against the simulator: Coinbase's bare 401, which it also
// gives now and then to a correctly signed token, never costs a verified
// key its verdict on its own. The confirming probe goes out a few seconds
// later, once: exactly one more request.
func TestCoinbaseBare401IsConfirmedBeforeAVerdict(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Coinbase)
	register(exchange.Coinbase, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Coinbase, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	target := getSecret(g, ns, "bot")
	defer sim.ClearFaults()

	// One 401 during a forced revalidation.
	requests := sim.Requests(exchange.Coinbase, c.APIKey)
	sim.SetKeyFault(exchange.Coinbase, c.APIKey, simulator.Fault{Kind: simulator.FaultUnauthorized, Times: 1})
	revalidate(t, ns, "bot", "1")
	var k *keyopsv1.ExchangeAPIKey
	g.Eventually(func(g Gomega) {
		k = getKey(g, ns, "bot")
		g.Expect(k.Status.RevalidateRequest).To(Equal("1"))
		g.Expect(k.Status.UnconfirmedAnswer).NotTo(BeNil())
	}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
	g.Expect(cond(k, keyopsv1.ConditionKeyValid)).To(Equal("True/Verified"))
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("True/Ready"))
	g.Expect(k.Status.UnconfirmedAnswer.Reason).To(Equal(keyopsv1.ReasonKeyOrIPRejected))
	// The confirming probe (the simulator now accepts the key) clears it.
	g.Eventually(func(g Gomega) {
		k = getKey(g, ns, "bot")
		g.Expect(k.Status.UnconfirmedAnswer).To(BeNil())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Expect(cond(k, keyopsv1.ConditionKeyValid)).To(Equal("True/Verified"))
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("True/Ready"))
	g.Expect(sim.Requests(exchange.Coinbase, c.APIKey)).To(Equal(requests+2), "the forced probe and one confirming probe")
	g.Consistently(func() int { return sim.Requests(exchange.Coinbase, c.APIKey) }, 3*time.Second, 100*time.Millisecond).Should(Equal(requests + 2))
	after := getSecret(g, ns, "bot")
	g.Expect(after.ResourceVersion).To(Equal(target.ResourceVersion), "the target Secret is untouched")
	waitEvent(t, ns, "bot", keyopsv1.EventAnswerUnconfirmed)
	ev := events(t, ns, "bot")
	g.Expect(ev).NotTo(HaveKey(keyopsv1.ReasonRevoked))
	g.Expect(ev).NotTo(HaveKey(keyopsv1.ReasonKeyOrIPRejected))

	// A persistent 401: confirmed once, then the verdict names every cause.
	requests = sim.Requests(exchange.Coinbase, c.APIKey)
	sim.SetKeyFault(exchange.Coinbase, c.APIKey, simulator.Fault{Kind: simulator.FaultUnauthorized})
	revalidate(t, ns, "bot", "2")
	k = waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "False/KeyOrIPRejected")
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/KeyOrIPRejected"))
	msg := condMsg(k, keyopsv1.ConditionKeyValid)
	for _, want := range []string{"unknown", "deleted", "private key", "allowlist", "bot-source", "twice"} {
		g.Expect(msg).To(ContainSubstring(want))
	}
	g.Expect(sim.Requests(exchange.Coinbase, c.APIKey)).To(Equal(requests+2), "one confirming probe, not a storm")
	g.Consistently(func() int { return sim.Requests(exchange.Coinbase, c.APIKey) }, 3*time.Second, 100*time.Millisecond).Should(Equal(requests + 2))
	g.Expect(k.Status.UnconfirmedAnswer).To(BeNil())
	g.Expect(time.Until(k.Status.NextValidationTime.Time)).To(BeNumerically(">", 30*time.Minute), "the next probe is an interval out")
	g.Expect(cond(k, keyopsv1.ConditionSecretSynced)).To(Equal("True/Synced"), "the target is kept")
	g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c.APIKey))
	g.Expect(events(t, ns, "bot")).NotTo(HaveKey(keyopsv1.ReasonRevoked))
}

// condMsg returns a condition's message.
func condMsg(k *keyopsv1.ExchangeAPIKey, typ string) string {
	for _, c := range k.Status.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}
