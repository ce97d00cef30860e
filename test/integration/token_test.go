package integration_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// tokenPermissions asks the simulator's r/permissions with bfx-token alone,
// as a bot holding only the token would, and returns the HTTP status and
// the orders scope's [read, write] flags.
func tokenPermissions(t *testing.T, token string) (int, [2]float64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, simulator.BaseURL(simURL, exchange.Bitfinex)+"/v2/auth/r/permissions", bytes.NewReader([]byte("{}")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("bfx-token", token)
	req.Header.Set("bfx-nonce", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rows [][]any
	_ = json.NewDecoder(resp.Body).Decode(&rows)
	for _, r := range rows {
		if len(r) == 3 && r[0] == "orders" {
			return resp.StatusCode, [2]float64{r[1].(float64), r[2].(float64)}
		}
	}
	return resp.StatusCode, [2]float64{}
}

// A Bitfinex key with spec.token: the target Secret holds a token minted
// from the key, with its expiry, and never the key or its secret; a new
// token replaces it at renewalPercent of its TTL, before it expires; a
// refused mint keeps the last good token and says why.
func TestBitfinexTokenLifecycle(t *testing.T) {
	ns := newNamespace(t)
	c := creds(exchange.Bitfinex)
	register(exchange.Bitfinex, c, "read", "trade")
	putSource(t, ns, "bot-source", c)
	k := newKey(ns, "bot", exchange.Bitfinex, "")
	ten := int32(10)
	// The shortest TTL admitted, renewed at 10% of it: a new token every 6 s.
	k.Spec.Token = &keyopsv1.TokenSpec{TTL: &metav1.Duration{Duration: time.Minute}, Caps: []keyopsv1.TokenCap{"a", "o"}, WritePermission: true, RenewalPercent: &ten}
	create(t, k)
	waitCond(t, ns, "bot", keyopsv1.ConditionReady, "True/Ready")

	g := NewWithT(t)
	first := getSecret(g, ns, "bot")
	// Tokens are credentials: the suite's leak scan looks for each in the
	// manager log, Events, statuses and metrics.
	fixtures.add(string(first.Data["token"]), "a Bitfinex token in a target Secret")
	if len(first.Data) != 2 || len(first.Data["token"]) == 0 || len(first.Data["expiresAt"]) == 0 {
		t.Fatalf("target data keys: %v", keysOf(first.Data))
	}
	for kk, v := range first.Data {
		if bytes.Contains(v, []byte(c.APIKey)) || bytes.Contains(v, []byte(c.APISecret)) {
			t.Fatalf("target key %s holds the API key or secret", kk)
		}
	}
	exp, err := time.Parse(time.RFC3339, string(first.Data["expiresAt"]))
	if err != nil || exp.Before(time.Now()) || exp.After(time.Now().Add(time.Minute+time.Second)) {
		t.Fatalf("expiresAt %q (%v)", first.Data["expiresAt"], err)
	}
	// The token is what a bot authenticates with: the key's orders write,
	// through caps a and o.
	if status, orders := tokenPermissions(t, string(first.Data["token"])); status != http.StatusOK || orders != [2]float64{1, 1} {
		t.Fatalf("the target's token on r/permissions: %d orders %v", status, orders)
	}
	kk := getKey(g, ns, "bot")
	if kk.Status.Token == nil || kk.Status.Token.RenewAt == nil || kk.Status.Token.ExpiresAt == nil {
		t.Fatalf("status.token = %+v", kk.Status.Token)
	}
	if s, _ := json.Marshal(kk.Status); bytes.Contains(s, first.Data["token"]) {
		t.Fatal("status holds the token")
	}

	// Renewed at 10% of the TTL, long before the first token expires.
	var second []byte
	NewWithT(t).Eventually(func(g Gomega) {
		s := getSecret(g, ns, "bot")
		g.Expect(s.Data["token"]).NotTo(Equal(first.Data["token"]))
		second = s.Data["token"]
		fixtures.add(string(second), "a renewed Bitfinex token")
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	if time.Now().After(exp) {
		t.Fatalf("the first token expired (%s) before it was replaced", exp)
	}

	// The key refused (deactivated on the exchange): no new token, the
	// condition says why, and the target keeps the last good one.
	sim.SetState(exchange.Bitfinex, c.APIKey, simulator.Inactive)
	kk = waitCond(t, ns, "bot", keyopsv1.ConditionTokenIssued, "False/TokenRefused")
	held := getSecret(g, ns, "bot")
	fixtures.add(string(held.Data["token"]), "the last good Bitfinex token")
	if len(held.Data["token"]) == 0 || kk.Status.Token == nil || kk.Status.Token.Failures == 0 {
		t.Fatalf("after a refused mint: target %v, status.token %+v", keysOf(held.Data), kk.Status.Token)
	}
	if msg := meta.FindStatusCondition(kk.Status.Conditions, keyopsv1.ConditionTokenIssued).Message; !strings.Contains(msg, "keeps token") {
		t.Fatalf("TokenIssued message %q does not say the last token is kept", msg)
	}
	waitEvent(t, ns, "bot", keyopsv1.ReasonTokenRefused)

	// The key back: the next attempt mints, and says so.
	sim.SetState(exchange.Bitfinex, c.APIKey, simulator.Active)
	waitCond(t, ns, "bot", keyopsv1.ConditionTokenIssued, "True/TokenIssued")
	waitEvent(t, ns, "bot", keyopsv1.EventTokenRenewed)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(getSecret(g, ns, "bot").Data["token"]).NotTo(Or(Equal(held.Data["token"]), Equal(second)))
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	if text := allEventText(t, ns); strings.Contains(text, c.APIKey) || strings.Contains(text, string(held.Data["token"])) {
		t.Fatal("an Event quotes the key or a token")
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// spec.token is refused at admission where it cannot work, with a message
// that says what to change.
func TestTokenAdmission(t *testing.T) {
	ns := newNamespace(t)
	tok := func(caps ...keyopsv1.TokenCap) *keyopsv1.TokenSpec {
		return &keyopsv1.TokenSpec{Caps: caps, WritePermission: true}
	}
	for _, tc := range []struct {
		name string
		mut  func(*keyopsv1.ExchangeAPIKey)
		want string
	}{
		{"other exchange", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Exchange = "kraken"; k.Spec.Token = tok("o") }, "spec.token is only supported for bitfinex"},
		{"wd under the default policy", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Token = tok("o", "wd") }, "spec.token.caps includes wd (withdraw), which spec.permissions.forbidden forbids"},
		{"wd without writePermission", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Token = tok("wd")
			k.Spec.Token.WritePermission = false
			k.Spec.Permissions.Forbidden = []keyopsv1.Permission{"margin"}
		}, "needs spec.token.writePermission: true"},
		{"ccxt format", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Token = tok("o"); k.Spec.Target.Format = keyopsv1.FormatCCXT }, "the target Secret holds a token, not a key"},
		{"template", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Token = tok("o")
			k.Spec.Target.Template = map[string]string{"k": "{{ .APIKey }}"}
		}, "the target Secret holds a token, not a key"},
		{"no caps", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Token = tok() }, "spec.token.caps"},
		{"unknown cap", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Token = tok("x") }, `Unsupported value: "x"`},
		{"ttl too long", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Token = tok("o")
			k.Spec.Token.TTL = &metav1.Duration{Duration: 48 * time.Hour}
		}, "spec.token.ttl must be between 1m and 24h"},
		{"renewal percent", func(k *keyopsv1.ExchangeAPIKey) {
			p := int32(95)
			k.Spec.Token = tok("o")
			k.Spec.Token.RenewalPercent = &p
		}, "spec.token.renewalPercent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKey(ns, "k", exchange.Bitfinex, "")
			tc.mut(k)
			err := k8s.Create(ctx(), k)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
	// wd is admitted once the key's own policy allows withdraw.
	k := newKey(ns, "wd", exchange.Bitfinex, "")
	k.Spec.Token = tok("o", "wd")
	k.Spec.Permissions.Forbidden = []keyopsv1.Permission{"margin"}
	if err := k8s.Create(ctx(), k); err != nil {
		t.Fatalf("wd with withdraw allowed: %v", err)
	}
}
