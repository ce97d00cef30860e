package integration_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// startBfxBot starts a Bitfinex bot that trades on a key every 150 ms
// with nonces from its own clock, as ccxt (milliseconds) or Bitfinex's SDKs
// (microseconds) do (exchangetest.Bot).
func startBfxBot(t *testing.T, c exchange.Credentials, nonce func(time.Time) uint64) *exchangetest.Bot {
	t.Helper()
	const path = "/v2/auth/r/permissions"
	return exchangetest.StartBot(t, 150*time.Millisecond, func() (bool, string) {
		n := strconv.FormatUint(nonce(time.Now()), 10)
		mac := hmac.New(sha512.New384, []byte(c.APISecret))
		mac.Write([]byte("/api" + path + n + "{}"))
		req, _ := http.NewRequest(http.MethodPost, simulator.BaseURL(simURL, exchange.Bitfinex)+path, bytes.NewReader([]byte("{}")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("bfx-apikey", c.APIKey)
		req.Header.Set("bfx-nonce", n)
		req.Header.Set("bfx-signature", hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, n + ": " + string(body)
	})
}

func waitRevalidated(t *testing.T, ns, name, value, want string) *keyopsv1.ExchangeAPIKey {
	t.Helper()
	revalidate(t, ns, name, value)
	var k *keyopsv1.ExchangeAPIKey
	NewWithT(t).Eventually(func(g Gomega) {
		k = getKey(g, ns, name)
		g.Expect(k.Status.RevalidateRequest).To(Equal(value))
		g.Expect(cond(k, keyopsv1.ConditionKeyValid)).To(Equal(want), "conditions: %+v", k.Status.Conditions)
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return k
}

// A millisecond bot whose clock runs 1.5 s ahead of the operator's, trading
// every 150 ms on the key, through the first verification and a forced
// revalidation: never refused. The operator sends no nonce above its own
// clock, so it cannot verify the key meanwhile: NonceConflict, no verdict,
// the last good target kept.
func TestNonceMillisecondBotAheadNeverRefused(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Bitfinex)
	register(exchange.Bitfinex, c, "read")
	putSource(t, ns, "bot-source", c)
	ahead := func(now time.Time) uint64 { return uint64(now.Add(1500 * time.Millisecond).UnixMilli()) }

	// First verification while the bot trades.
	b := startBfxBot(t, c, ahead)
	create(t, newKey(ns, "bot", exchange.Bitfinex, ""))
	k := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/"+keyopsv1.ReasonNonceConflict)
	msg := meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionKeyValid).Message
	for _, want := range []string{"clock runs ahead", "larger unit", "spec.validation.nonceUnit"} {
		g.Expect(msg).To(ContainSubstring(want))
	}
	g.Expect(secretExists(ns, "bot")).To(BeFalse())
	b.Check(t, 2)

	// The bot pauses long enough for the clock to pass its nonces: the key
	// verifies in milliseconds and the target is written.
	time.Sleep(1700 * time.Millisecond)
	k = waitRevalidated(t, ns, "bot", "1", "True/Verified")
	g.Expect(k.Status.NonceUnit).To(Equal(keyopsv1.NonceUnitMilliseconds))
	var target map[string][]byte
	g.Eventually(func(g Gomega) { target = getSecret(g, ns, "bot").Data }, 20*time.Second, 50*time.Millisecond).Should(Succeed())

	// A forced revalidation while the bot trades again: NonceConflict, the
	// target as it was, the bot never refused.
	b = startBfxBot(t, c, ahead)
	waitRevalidated(t, ns, "bot", "2", "Unknown/"+keyopsv1.ReasonNonceConflict)
	g.Consistently(func(g Gomega) { g.Expect(getSecret(g, ns, "bot").Data).To(Equal(target)) }, time.Second, 100*time.Millisecond).Should(Succeed())
	b.Check(t, 2)
	g.Expect(events(t, ns, "bot")).NotTo(HaveKey(keyopsv1.EventNonceUnitUndeclared))
}

// A microsecond bot (Bitfinex's own SDKs): without a declaration every
// millisecond probe is refused (NonceConflict naming the setting) and the
// bot never is; a status left by an earlier version that inferred
// Microseconds is not used, but warned about; with spec.validation.nonceUnit:
// Microseconds the key verifies, first time and on revalidation, and the
// bot is still never refused.
func TestNonceMicrosecondBotDeclared(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := creds(exchange.Bitfinex)
	register(exchange.Bitfinex, c, "read")
	putSource(t, ns, "bot-source", c)
	b := startBfxBot(t, c, func(now time.Time) uint64 { return uint64(now.Add(30 * time.Millisecond).UnixMicro()) })

	create(t, newKey(ns, "bot", exchange.Bitfinex, ""))
	k := waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "Unknown/"+keyopsv1.ReasonNonceConflict)
	g.Expect(meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionKeyValid).Message).To(ContainSubstring("spec.validation.nonceUnit"))

	// What an earlier version left in status after switching by itself.
	g.Eventually(func() error {
		k := getKey(g, ns, "bot")
		k.Status.NonceUnit = keyopsv1.NonceUnitMicroseconds
		return k8s.Status().Update(ctx(), k)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	k = waitRevalidated(t, ns, "bot", "1", "Unknown/"+keyopsv1.ReasonNonceConflict)
	g.Expect(meta.FindStatusCondition(k.Status.Conditions, keyopsv1.ConditionKeyValid).Message).To(ContainSubstring("earlier version"))
	waitEvent(t, ns, "bot", keyopsv1.EventNonceUnitUndeclared)

	// Declared.
	g.Eventually(func() error {
		k := getKey(g, ns, "bot")
		k.Spec.Validation.NonceUnit = keyopsv1.NonceUnitMicroseconds
		return k8s.Update(ctx(), k)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	k = waitCond(t, ns, "bot", keyopsv1.ConditionKeyValid, "True/Verified")
	g.Expect(k.Status.NonceUnit).To(Equal(keyopsv1.NonceUnitMicroseconds))
	waitRevalidated(t, ns, "bot", "2", "True/Verified")
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")
	b.Check(t, 2)
}
