package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

func TestEnforceVerifiesAndSyncs(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.Permissions.Required = []keyopsv1.Permission{"read", "trade"}
	create(t, k)

	got := waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(cond(got, keyopsv1.ConditionKeyValid)).To(Equal("True/Verified"))
	g.Expect(cond(got, keyopsv1.ConditionPermissionsCompliant)).To(Equal("True/Compliant"))
	// Binance's enableSpotAndMarginTrading grants margin as well.
	g.Expect(got.Status.Permissions.Canonical).To(Equal([]string{"read", "trade", "margin"}))
	g.Expect(got.Status.Permissions.Summary).To(Equal("read,trade,margin"))
	g.Expect(got.Status.Permissions.Native).NotTo(BeEmpty())
	g.Expect(got.Status.LastValidationTime).NotTo(BeNil())
	g.Expect(got.Status.KeyCreatedAt).NotTo(BeNil(), "binance reports createTime")
	g.Expect(got.Status.VerifiedFingerprint).To(Equal(keyid.Fingerprint(c.APIKey)))
	g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c.APIKey))
	waitEvent(t, ns, "bot", "Verified")
	g.Expect(allEventText(t, ns)).NotTo(ContainSubstring(c.APISecret))
}

// TestEachKeyValidReason drives every definite failure the exchange can
// report, on the exchange that reports it, and checks the reason, that no
// target Secret appears and that a Warning Event names the reason.
func TestEachKeyValidReason(t *testing.T) {
	cases := []struct {
		name   string
		ex     exchange.Name
		setup  func(c *exchange.Credentials) // adjusts the simulator or the credentials
		reason string
		msg    string
	}{
		{"unknown key", exchange.Kraken, func(c *exchange.Credentials) {}, keyopsv1.ReasonInvalidKey, "does not know key"},
		{"wrong secret", exchange.Binance, func(c *exchange.Credentials) {
			register(exchange.Binance, *c, "read")
			c.APISecret = creds(exchange.Binance).APISecret
		}, keyopsv1.ReasonInvalidSignature, "does not belong to this key"},
		{"wrong passphrase", exchange.OKX, func(c *exchange.Credentials) {
			register(exchange.OKX, *c, "read")
			c.Passphrase = "wrong"
		}, keyopsv1.ReasonWrongPassphrase, "passphrase"},
		{"inactive", exchange.Bybit, func(c *exchange.Credentials) {
			register(exchange.Bybit, *c, "read")
			sim.SetState(exchange.Bybit, c.APIKey, simulator.Inactive)
		}, keyopsv1.ReasonInactive, "not active"},
		{"ip not allowed", exchange.KuCoin, func(c *exchange.Credentials) {
			sim.AddKey(simulator.Key{Exchange: exchange.KuCoin, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read"}, AllowedIPs: []string{"203.0.113.9"}})
		}, keyopsv1.ReasonIPNotAllowed, "add the egress IP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			c := creds(tc.ex)
			tc.setup(&c)
			putSource(t, ns, "bot-source", c)
			create(t, newKey(ns, "bot", tc.ex, ""))
			k := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "False/"+tc.reason)
			g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/" + tc.reason))
			g.Expect(cond(k, keyopsv1.ConditionSecretSynced)).To(Equal("False/AwaitingValidation"))
			g.Expect(meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionKeyValid).Message).To(ContainSubstring(tc.msg))
			waitEvent(t, ns, "bot", tc.reason)
			g.Consistently(func() bool { return secretExists(ns, "bot") }, time.Second, 100*time.Millisecond).Should(BeFalse(), "a key that never verified must create no target")
			text := allEventText(t, ns) + fmt.Sprint(k.Status)
			g.Expect(text).NotTo(ContainSubstring(c.APISecret))
			g.Expect(text).NotTo(ContainSubstring(c.APIKey))
		})
	}
}

// A key whose nonce floor is above every nonce the probe may send gets no
// verdict: KeyValid Unknown/NonceConflict, no target, no key material.
func TestNonceConflictIsNoVerdict(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Bitfinex)
	register(exchange.Bitfinex, c, "read")
	sim.AdvanceNonce(exchange.Bitfinex, c.APIKey, 1<<53-1)
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Bitfinex, ""))
	k := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/"+keyopsv1.ReasonNonceConflict)
	g.Expect(cond(k, keyopsv1.ConditionSecretSynced)).To(Equal("False/AwaitingValidation"))
	g.Expect(meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionKeyValid).Message).To(ContainSubstring("spec.validation.nonceUnit"))
	text := allEventText(t, ns) + fmt.Sprint(k.Status)
	g.Expect(text).NotTo(ContainSubstring(c.APISecret))
	g.Expect(text).NotTo(ContainSubstring(c.APIKey))
}

func TestPolicyViolations(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)

	withdraw := creds(exchange.KuCoin)
	register(exchange.KuCoin, withdraw, "read", "trade", "withdraw")
	putSource(t, ns, "withdraw-source", withdraw)
	create(t, newKey(ns, "withdraw", exchange.KuCoin, ""))
	k := waitCond(t, ns, "withdraw", keyopsv1.ConditionPermissionsCompliant, "False/ForbiddenPermission")
	g.Expect(cond(k, keyopsv1.ConditionKeyValid)).To(Equal("True/Verified"))
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/ForbiddenPermission"))
	g.Expect(meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionPermissionsCompliant).Message).To(ContainSubstring("withdraw"))
	waitEvent(t, ns, "withdraw", "PermissionViolation")
	g.Expect(secretExists(ns, "withdraw")).To(BeFalse())

	readOnly := creds(exchange.OKX)
	register(exchange.OKX, readOnly, "read")
	putSource(t, ns, "ro-source", readOnly)
	ro := newKey(ns, "ro", exchange.OKX, "")
	ro.Spec.Permissions.Required = []keyopsv1.Permission{"read", "trade"}
	create(t, ro)
	k = waitCond(t, ns, "ro", keyopsv1.ConditionPermissionsCompliant, "False/MissingPermission")
	g.Expect(meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionPermissionsCompliant).Message).To(ContainSubstring("trade"))

	open := creds(exchange.Binance)
	register(exchange.Binance, open, "read")
	putSource(t, ns, "open-source", open)
	op := newKey(ns, "open", exchange.Binance, "")
	op.Spec.Permissions.RequireIPRestriction = true
	create(t, op)
	waitCond(t, ns, "open", keyopsv1.ConditionPermissionsCompliant, "False/IPRestrictionMissing")

	// Observe mode syncs regardless and still reports.
	obs := creds(exchange.KuCoin)
	register(exchange.KuCoin, obs, "read", "withdraw")
	putSource(t, ns, "observe-source", obs)
	create(t, newKey(ns, "observe", exchange.KuCoin, keyopsv1.ValidationObserve))
	k = waitCond(t, ns, "observe", keyopsv1.ConditionPermissionsCompliant, "False/ForbiddenPermission")
	g.Eventually(func() bool { return secretExists(ns, "observe") }, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/ForbiddenPermission"))
}

func TestSafeRolloutKeepsPreviousKey(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	good := creds(exchange.Kraken)
	register(exchange.Kraken, good, "read", "trade")
	putSource(t, ns, "bot-source", good)
	create(t, newKey(ns, "bot", exchange.Kraken, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	bads := []struct {
		name   string
		make   func() exchange.Credentials
		reason string
	}{
		{"wrong secret pasted", func() exchange.Credentials {
			c := creds(exchange.Kraken)
			register(exchange.Kraken, c, "read")
			c.APISecret = creds(exchange.Kraken).APISecret
			return c
		}, keyopsv1.ReasonInvalidSignature},
		{"withdraw enabled", func() exchange.Credentials {
			c := creds(exchange.Kraken)
			register(exchange.Kraken, c, "read", "trade", "withdraw")
			return c
		}, keyopsv1.ReasonForbiddenPermission},
		{"same key, wrong secret", func() exchange.Credentials {
			c := good
			c.APISecret = creds(exchange.Kraken).APISecret
			return c
		}, keyopsv1.ReasonInvalidSignature},
		{"revoked key", func() exchange.Credentials {
			c := creds(exchange.Kraken)
			register(exchange.Kraken, c, "read")
			sim.SetState(exchange.Kraken, c.APIKey, simulator.Revoked)
			return c
		}, keyopsv1.ReasonInvalidKey},
	}
	for _, b := range bads {
		bad := b.make()
		putSource(t, ns, "bot-source", bad)
		g.Eventually(func(g Gomega) {
			k := getKey(g, ns, "bot")
			g.Expect(k.Status.KeyFingerprint).To(Equal(keyid.Fingerprint(bad.APIKey)))
			g.Expect(cond(k, keyopsv1.ConditionSecretSynced)).To(Equal("False/PreviousKeyKept"), b.name)
			g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/"+b.reason), b.name)
			g.Expect(k.Status.TargetKeyFingerprint).To(Equal(keyid.Fingerprint(good.APIKey)))
			g.Expect(k.Status.CredentialsHash).To(Equal(keyid.CredentialsHash(bad.APIKey, bad.APISecret, "")))
			if bad.APIKey != good.APIKey {
				g.Expect(k.Status.History[0].Outcome).To(Equal("Rejected"))
				g.Expect(k.Status.History[0].Reason).To(Equal(b.reason))
			}
		}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
		s := getSecret(g, ns, "bot")
		g.Expect(string(s.Data["apiKey"])).To(Equal(good.APIKey), b.name)
		g.Expect(string(s.Data["apiSecret"])).To(Equal(good.APISecret), b.name)
	}
	g.Expect(events(t, ns, "bot")).To(HaveKey("InvalidSignature"))
	g.Expect(events(t, ns, "bot")).To(HaveKey("PermissionViolation"))
}

func TestRevokedAfterVerification(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Bitfinex)
	register(exchange.Bitfinex, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Bitfinex, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	sim.SetState(exchange.Bitfinex, c.APIKey, simulator.Revoked)
	revalidate(t, ns, "bot", "1")
	k := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "False/Revoked")
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/Revoked"))
	g.Expect(cond(k, keyopsv1.ConditionSecretSynced)).To(Equal("True/Synced"), "the target is kept")
	waitEvent(t, ns, "bot", "Revoked")
	g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c.APIKey))

	// Made inactive instead (a different key on the same exchange).
	c2 := creds(exchange.Bitfinex)
	register(exchange.Bitfinex, c2, "read")
	putSource(t, ns, "b2-source", c2)
	create(t, newKey(ns, "b2", exchange.Bitfinex, ""))
	waitCond(t, ns, "b2", keyopsv1.ConditionReady, "True/Ready")
	sim.SetState(exchange.Bitfinex, c2.APIKey, simulator.Inactive)
	revalidate(t, ns, "b2", "1")
	waitCond(t, ns, "b2", keyopsv1.ConditionReady, "False/Inactive")
	waitEvent(t, ns, "b2", "Inactive")
	g.Expect(secretExists(ns, "b2")).To(BeTrue())
}

func TestTransientFailuresBackOffAndKeepReady(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Bitstamp)
	register(exchange.Bitstamp, c, "read")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Bitstamp, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	// The exchange fails: the verified key stays Ready, KeyValid says why,
	// and the next try is 30 s out (the first backoff step).
	sim.SetFault(exchange.Bitstamp, simulator.Fault{Kind: simulator.FaultServerError})
	defer sim.ClearFaults()
	revalidate(t, ns, "bot", "1")
	k := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/ExchangeUnavailable")
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("True/Ready"))
	g.Expect(k.Status.TransientFailures).To(Equal(int32(1)))
	g.Expect(k.Status.NextValidationTime.Sub(k.Status.LastValidationTime.Time)).To(BeNumerically(">", 0))
	g.Expect(time.Until(k.Status.NextValidationTime.Time)).To(BeNumerically("~", 30*time.Second, 5*time.Second))

	// A garbage answer (an HTML page) is reported as such, not as a verdict.
	sim.SetFault(exchange.Bitstamp, simulator.Fault{Kind: simulator.FaultHTML})
	revalidate(t, ns, "bot", "2")
	k = waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/UnexpectedResponse")
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("True/Ready"))
	g.Expect(k.Status.TransientFailures).To(Equal(int32(2)))
	g.Expect(time.Until(k.Status.NextValidationTime.Time)).To(BeNumerically("~", 60*time.Second, 5*time.Second), "second backoff step")

	// A rate limit with Retry-After pushes the next try out that far.
	sim.SetFault(exchange.Bitstamp, simulator.Fault{Kind: simulator.FaultRateLimit, RetryAfter: 300 * time.Second})
	c2 := creds(exchange.Bitstamp)
	register(exchange.Bitstamp, c2, "read")
	putSource(t, ns, "rl-source", c2)
	create(t, newKey(ns, "rl", exchange.Bitstamp, ""))
	k = waitCond(t, ns, "rl", keyopsv1.ConditionKeyValid, "Unknown/RateLimited")
	g.Expect(time.Until(k.Status.NextValidationTime.Time)).To(BeNumerically("~", 300*time.Second, 10*time.Second))
	g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("False/RateLimited"), "a key that never verified is not Ready")
	g.Expect(secretExists(ns, "rl")).To(BeFalse())
}

func TestDuplicateKeysShareOneProbe(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Coinbase)
	register(exchange.Coinbase, c, "read", "trade")
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("bot%d", i)
		putSource(t, ns, name+"-source", c)
		create(t, newKey(ns, name, exchange.Coinbase, ""))
	}
	for i := 0; i < 4; i++ {
		waitCond(t, ns, fmt.Sprintf("bot%d", i), keyopsv1.ConditionReady, "True/Ready")
	}
	g.Expect(sim.Requests(exchange.Coinbase, c.APIKey)).To(Equal(1))
}

func TestRevalidateAnnotationAndNoIdleCalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Bybit)
	register(exchange.Bybit, c, "read")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Bybit, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(sim.Requests(exchange.Bybit, c.APIKey)).To(Equal(1))

	// Reconciles with nothing due make no exchange call: touch the source
	// Secret (reconciles) and the target (drift repair) a few times.
	for i := 0; i < 3; i++ {
		src := getSecret(g, ns, "bot-source")
		src.Labels = map[string]string{"touch": fmt.Sprint(i)}
		g.Expect(k8s.Update(ctx(), src)).To(Succeed())
	}
	tgt := getSecret(g, ns, "bot")
	tgt.Data["apiKey"] = []byte("tampered")
	g.Expect(k8s.Update(ctx(), tgt)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(string(getSecret(g, ns, "bot").Data["apiKey"])).To(Equal(c.APIKey))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Consistently(func() int { return sim.Requests(exchange.Bybit, c.APIKey) }, 2*time.Second, 100*time.Millisecond).Should(Equal(1))

	// The revalidate annotation asks once per value.
	revalidate(t, ns, "bot", "2026-11-21T10:00:00Z")
	g.Eventually(func() int { return sim.Requests(exchange.Bybit, c.APIKey) }, 20*time.Second, 50*time.Millisecond).Should(Equal(2))
	g.Eventually(func(g Gomega) {
		g.Expect(getKey(g, ns, "bot").Status.RevalidateRequest).To(Equal("2026-11-21T10:00:00Z"))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Consistently(func() int { return sim.Requests(exchange.Bybit, c.APIKey) }, 2*time.Second, 100*time.Millisecond).Should(Equal(2))
}

func TestDisabledMakesNoExchangeCalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	register(exchange.Binance, c, "read", "withdraw")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Binance, keyopsv1.ValidationDisabled))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Consistently(func() int { return sim.Requests(exchange.Binance, c.APIKey) }, time.Second, 100*time.Millisecond).Should(Equal(0))
}

func TestInsecureEndpointRefusedWithoutFlag(t *testing.T) {
	// The suite's manager allows http:// endpoints; the decision is unit
	// tested in decide_test.go. Here: an https endpoint that nobody serves
	// ends as ExchangeUnavailable, not as a verdict on the key.
	ns := newNamespace(t)
	c := creds(exchange.Binance)
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Binance, "")
	k.Spec.Endpoint = "https://127.0.0.1:1"
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/ExchangeUnavailable")
}

func TestMetricsEndpoint(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.OKX)
	register(exchange.OKX, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.OKX, ""))
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	// The exposition format sorts labels by name.
	series := fmt.Sprintf(`exchange="okx",name="bot",namespace="%s"`, ns)
	g.Eventually(scrape, 10*time.Second, 100*time.Millisecond).Should(And(
		ContainSubstring(`exchangeapikey_ready{`+series+`} 1`),
		ContainSubstring(`exchangeapikey_condition{`+series+`,reason="Verified",status="True",type="KeyValid"} 1`),
		ContainSubstring(`exchangeapikey_last_validation_timestamp_seconds{`+series+`}`),
		ContainSubstring(`exchangeapikey_rotation_deadline_timestamp_seconds{`+series+`}`),
		ContainSubstring(`exchangeapikey_key_age_seconds{`+series+`}`),
		ContainSubstring(`exchangeapikey_exchange_requests_total{exchange="okx",outcome="ok"}`),
		ContainSubstring(`exchangeapikey_exchange_request_duration_seconds_bucket{exchange="okx"`),
	))
	g.Expect(scrape()).NotTo(ContainSubstring(c.APIKey))

	// A deleted key leaves no series behind.
	g.Expect(k8s.Delete(ctx(), getKey(g, ns, "bot"))).To(Succeed())
	g.Eventually(scrape, 10*time.Second, 100*time.Millisecond).ShouldNot(ContainSubstring(series))
}

func scrape() string {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func revalidate(t *testing.T, ns, name, value string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		k := getKey(NewWithT(t), ns, name)
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[keyopsv1.AnnotationRevalidate] = value
		return k8s.Update(ctx(), k)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
}

func secretExists(ns, name string) bool {
	return k8s.Get(ctx(), keyName(ns, name), newSecret()) == nil
}

// An edit that changes no verdict (the interval, a rotation reminder)
// re-plans nextValidationTime without an exchange call; an edit of the
// permissions policy revalidates at once (issue #22).
func TestIntervalEditReplansWithoutProbe(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Kraken)
	register(exchange.Kraken, c, "read")
	putSource(t, ns, "bot-source", c)
	create(t, newKey(ns, "bot", exchange.Kraken, ""))
	k := waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(sim.Requests(exchange.Kraken, c.APIKey)).To(Equal(1))
	last := k.Status.LastValidationTime.Time

	g.Eventually(func(g Gomega) {
		k := getKey(g, ns, "bot")
		k.Spec.Validation.Interval = &metav1.Duration{Duration: 30 * time.Minute}
		k.Spec.Rotation.ReminderBefore = &metav1.Duration{Duration: 240 * time.Hour}
		g.Expect(k8s.Update(ctx(), k)).To(Succeed())
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	// The reconcile of the edit ran: the plan follows the new interval
	// (30m from the last validation, ±10 %), and the verdict stands.
	g.Eventually(func(g Gomega) {
		k := getKey(g, ns, "bot")
		g.Expect(k.Status.ObservedGeneration).To(Equal(k.Generation))
		g.Expect(k.Status.ValidationInterval).NotTo(BeNil())
		g.Expect(k.Status.ValidationInterval.Duration).To(Equal(30 * time.Minute))
		g.Expect(k.Status.NextValidationTime.Sub(last)).To(BeNumerically("<=", 33*time.Minute))
		g.Expect(k.Status.LastValidationTime.Time).To(Equal(last))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Consistently(func() int { return sim.Requests(exchange.Kraken, c.APIKey) }, 2*time.Second, 100*time.Millisecond).Should(Equal(1))

	g.Eventually(func(g Gomega) {
		k := getKey(g, ns, "bot")
		k.Spec.Permissions.Forbidden = []keyopsv1.Permission{"withdraw"}
		g.Expect(k8s.Update(ctx(), k)).To(Succeed())
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() int { return sim.Requests(exchange.Kraken, c.APIKey) }, 20*time.Second, 50*time.Millisecond).Should(Equal(2))
}
