package exchangeapikey

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

func tokenKey(caps ...keyopsv1.TokenCap) *keyopsv1.ExchangeAPIKey {
	k := testKey("")
	k.Spec.Exchange = keyopsv1.ExchangeBitfinex
	k.Spec.Token = &keyopsv1.TokenSpec{TTL: &metav1.Duration{Duration: time.Hour}, Caps: caps, WritePermission: true}
	return k
}

// tokenWorld plays the reconciler around decide: it mints with mint when
// the decision asks, writes the target with the decision's token, and
// remembers what the target holds.
type tokenWorld struct {
	t      *testing.T
	k      *keyopsv1.ExchangeAPIKey
	src    shared.Source
	target targetObservation
	mints  int
}

func (w *tokenWorld) reconcile(now time.Time, probe bool, mint func(now time.Time) (*exchange.Token, error)) decision {
	w.t.Helper()
	obs := observation{now: now, source: w.src, target: w.target}
	if probe {
		obs.probe = ok("read", "trade")
		obs.probe.At = now
	}
	d := decide(w.k, obs)
	if d.mintToken {
		if mint == nil {
			w.t.Fatalf("%s: unexpected mint", now.Sub(t0))
		}
		w.mints++
		obs.minted, obs.mintErr = mint(now)
		d = decide(w.k, obs)
		if d.mintToken {
			w.t.Fatal("a mint's outcome must not ask for another mint")
		}
	}
	if d.syncTarget {
		if d.token == nil {
			w.t.Fatal("spec.token: the target is written with the key, not a token")
		}
		w.target = targetObservation{exists: true, fingerprint: d.token.keyFingerprint, material: d.token.material, token: *d.token}
	}
	w.k.Status = d.status
	return d
}

func minted(value string, ttl time.Duration) func(time.Time) (*exchange.Token, error) {
	return func(now time.Time) (*exchange.Token, error) {
		return &exchange.Token{Value: value, IssuedAt: now, ExpiresAt: now.Add(ttl)}, nil
	}
}

func failing(kind exchange.Kind, retryAfter time.Duration) func(time.Time) (*exchange.Token, error) {
	return func(time.Time) (*exchange.Token, error) {
		return nil, &exchange.Error{Kind: kind, Exchange: exchange.Bitfinex, Message: "refused", RetryAfter: retryAfter}
	}
}

// A token is minted once the key verifies, and renewed at renewalPercent
// (67 by default) of its TTL, not before.
func TestTokenRenewedAtRenewalPercent(t *testing.T) {
	w := &tokenWorld{t: t, k: tokenKey("a", "o"), src: src("AAAAbitfinex-key-ZZZZ")}
	d := w.reconcile(t0, true, minted("tok-1", time.Hour))
	if w.mints != 1 || w.target.token.value != "tok-1" {
		t.Fatalf("mints %d, target %q", w.mints, w.target.token.value)
	}
	if got := condOf(d.status, keyopsv1.ConditionTokenIssued); got != "True/TokenIssued" {
		t.Fatalf("TokenIssued = %s", got)
	}
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "True/Ready" {
		t.Fatalf("Ready = %s (%+v)", got, d.status.Conditions)
	}
	renew := t0.Add(40*time.Minute + 12*time.Second) // 67% of 1h
	if tk := d.status.Token; tk == nil || !tk.RenewAt.Time.Equal(renew) || !tk.ExpiresAt.Time.Equal(t0.Add(time.Hour)) || tk.Fingerprint == "" {
		t.Fatalf("status.token = %+v", d.status.Token)
	}
	if d.requeueAfter != renew.Sub(t0) {
		t.Fatalf("requeue after %s, want the renewal in %s", d.requeueAfter, renew.Sub(t0))
	}
	if strings.Contains(d.status.Conditions[0].Message, "tok-1") {
		t.Fatal("a token value in a condition")
	}
	w.reconcile(renew.Add(-time.Second), false, nil)
	if w.mints != 1 {
		t.Fatal("renewed before renewalPercent")
	}
	w.reconcile(renew, false, minted("tok-2", time.Hour))
	if w.mints != 2 || w.target.token.value != "tok-2" {
		t.Fatalf("not renewed at renewalPercent: mints %d, target %q", w.mints, w.target.token.value)
	}
	// A change of caps mints a token with the new caps at once.
	w.k.Spec.Token.Caps = []keyopsv1.TokenCap{"a"}
	w.reconcile(renew.Add(time.Minute), false, minted("tok-3", time.Hour))
	if w.mints != 3 {
		t.Fatal("a change of spec.token kept the old token")
	}
}

// A failed mint keeps the last good token until it expires, says why, and
// retries within the token's remaining life; once it expires the key is
// not Ready.
func TestTokenMintFailureKeepsLastGoodToken(t *testing.T) {
	w := &tokenWorld{t: t, k: tokenKey("o"), src: src("AAAAbitfinex-key-ZZZZ")}
	w.reconcile(t0, true, minted("tok-1", time.Hour))
	renew := t0.Add(40*time.Minute + 12*time.Second)

	d := w.reconcile(renew, false, failing(exchange.RateLimited, time.Minute))
	if got := condOf(d.status, keyopsv1.ConditionTokenIssued); got != "False/RateLimited" {
		t.Fatalf("TokenIssued = %s", got)
	}
	if w.target.token.value != "tok-1" {
		t.Fatalf("target lost its last good token: %q", w.target.token.value)
	}
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "True/Ready" {
		t.Fatalf("Ready = %s while the token is valid", got)
	}
	if !hasEvent(d.events, keyopsv1.ReasonRateLimited) {
		t.Fatalf("no Warning for the failed mint: %+v", d.events)
	}
	// Retry after the exchange's Retry-After (60 s > the 5 s first backoff).
	if got := d.status.Token.RenewAt.Time; !got.Equal(renew.Add(time.Minute)) {
		t.Fatalf("retry at %s, want %s", got, renew.Add(time.Minute))
	}
	w.reconcile(renew.Add(59*time.Second), false, nil) // backing off: no mint
	d = w.reconcile(renew.Add(time.Minute), false, failing(exchange.InvalidKey, 0))
	if got := condOf(d.status, keyopsv1.ConditionTokenIssued); got != "False/TokenRefused" {
		t.Fatalf("TokenIssued = %s", got)
	}
	// Retries stay within a quarter of the time the token has left.
	left := t0.Add(time.Hour).Sub(renew.Add(time.Minute))
	if wait := d.status.Token.RenewAt.Sub(renew.Add(time.Minute)); wait > left/4 || wait <= 0 {
		t.Fatalf("retry in %s with %s left", wait, left)
	}
	// Still failing when the token expires: the key is not Ready.
	exp := t0.Add(time.Hour)
	d = w.reconcile(exp, false, failing(exchange.InvalidKey, 0))
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/TokenExpired" {
		t.Fatalf("Ready = %s after the token expired", got)
	}
	// The key works again: the next attempt mints, and says so once.
	d = w.reconcile(d.status.Token.RenewAt.Time, false, minted("tok-2", time.Hour))
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "True/Ready" || w.target.token.value != "tok-2" {
		t.Fatalf("Ready = %s, target %q", got, w.target.token.value)
	}
	if !hasEvent(d.events, keyopsv1.EventTokenRenewed) || d.status.Token.Failures != 0 {
		t.Fatalf("events %+v failures %d", d.events, d.status.Token.Failures)
	}
}

// No token is minted for a key that has not verified, nor for caps the
// policy forbids.
func TestTokenNotMintedUnapprovedOrForbidden(t *testing.T) {
	k := tokenKey("o")
	d := decide(k, observation{now: t0, source: src("AAAAbitfinex-key-ZZZZ"), probe: fail(exchange.InvalidSignature)})
	if d.mintToken || d.syncTarget || condOf(d.status, keyopsv1.ConditionTokenIssued) != "Unknown/TokenPending" {
		t.Fatalf("unverified key: mint=%v sync=%v TokenIssued=%s", d.mintToken, d.syncTarget, condOf(d.status, keyopsv1.ConditionTokenIssued))
	}

	// wd grants withdraw, which spec.permissions forbids by default (the
	// CEL rule refuses it at admission; the controller holds the line for
	// objects stored before).
	k = tokenKey("o", "wd")
	d = decide(k, observation{now: t0, source: src("AAAAbitfinex-key-ZZZZ"), probe: ok("read", "trade")})
	if d.mintToken || condOf(d.status, keyopsv1.ConditionTokenIssued) != "False/ForbiddenPermission" || condOf(d.status, keyopsv1.ConditionReady) != "False/ForbiddenPermission" {
		t.Fatalf("wd: mint=%v TokenIssued=%s Ready=%s", d.mintToken, condOf(d.status, keyopsv1.ConditionTokenIssued), condOf(d.status, keyopsv1.ConditionReady))
	}

	// The cluster floor: a policy forbidding margin refuses o with write
	// (orders write places margin orders), not o read-only.
	floor := keyopsv1.ClusterExchangeKeyPolicy{ObjectMeta: metav1.ObjectMeta{Name: "floor"}, Spec: keyopsv1.ClusterExchangeKeyPolicySpec{Forbidden: []keyopsv1.Permission{"margin"}}}
	k = tokenKey("o")
	obs := observation{now: t0, source: src("AAAAbitfinex-key-ZZZZ"), probe: ok("read", "trade"), policies: []keyopsv1.ClusterExchangeKeyPolicy{floor}}
	d = decide(k, obs)
	if d.mintToken || condOf(d.status, keyopsv1.ConditionTokenIssued) != "False/PolicyViolation" {
		t.Fatalf("floor: mint=%v TokenIssued=%s", d.mintToken, condOf(d.status, keyopsv1.ConditionTokenIssued))
	}
	k.Spec.Token.WritePermission = false
	if d = decide(k, obs); !d.mintToken {
		t.Fatalf("a read-only token breaks no floor: TokenIssued=%s", condOf(d.status, keyopsv1.ConditionTokenIssued))
	}
}

// The target Secret holds the token and its expiry, never the key or
// secret, in both formats.
func TestTokenTargetHoldsNoKey(t *testing.T) {
	s := src("AAAAbitfinex-key-ZZZZ")
	tok := &heldToken{value: "tok-1", issuedAt: t0, expiresAt: t0.Add(time.Hour), spec: "x", keyFingerprint: s.Fingerprint, material: s.Material}
	for format, keys := range map[keyopsv1.SecretFormat][2]string{
		keyopsv1.FormatPlain: {"token", "expiresAt"},
		keyopsv1.FormatEnv:   {"BITFINEX_API_TOKEN", "BITFINEX_API_TOKEN_EXPIRES_AT"},
	} {
		k := tokenKey("o")
		k.Spec.Target.Format = format
		sec, err := desiredTarget(k, s, tok)
		if err != nil {
			t.Fatal(err)
		}
		if len(sec.Data) != 2 || string(sec.Data[keys[0]]) != "tok-1" || string(sec.Data[keys[1]]) != "2026-11-21T13:00:00Z" {
			t.Fatalf("%s: data %v", format, sec.Data)
		}
		for kk, v := range sec.Data {
			if strings.Contains(string(v), s.Creds.APIKey) || strings.Contains(string(v), s.Creds.APISecret+"\x00") {
				t.Fatalf("%s: %s holds key material", format, kk)
			}
		}
		if got := readHeldToken(k, sec); got != *tok {
			t.Fatalf("%s: read back %+v, want %+v", format, got, *tok)
		}
		// A token edited by hand is not the operator's: replaced.
		tk, _ := tokenDataKeys(k)
		sec.Data[tk] = []byte("tok-edited")
		if readHeldToken(k, sec).ok() {
			t.Fatalf("%s: a token edited by hand passes for the operator's", format)
		}
	}
}

func TestTokenRetry(t *testing.T) {
	for _, tc := range []struct {
		failures         int32
		left, retryAfter time.Duration
		want             time.Duration
	}{
		{1, 0, 0, 5 * time.Second},
		{3, 0, 0, 20 * time.Second},
		{20, 0, 0, 5 * time.Minute},
		{20, 8 * time.Minute, 0, 2 * time.Minute},
		{1, 2 * time.Second, 0, time.Second},
		{1, 8 * time.Minute, time.Minute, time.Minute},
	} {
		if got := tokenRetry(tc.failures, tc.left, tc.retryAfter); got != tc.want {
			t.Errorf("tokenRetry(%d, %s, %s) = %s, want %s", tc.failures, tc.left, tc.retryAfter, got, tc.want)
		}
	}
}

// Restart targets roll for every new token (environment variables only
// change with a restart), and not again for the same token.
func TestTokenRestartsForEachToken(t *testing.T) {
	k := tokenKey("o")
	zero := metav1.Duration{}
	k.Spec.RestartDebounce = &zero
	k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
	w := &tokenWorld{t: t, k: k, src: src("AAAAbitfinex-key-ZZZZ")}
	restarted := func(now time.Time, probe bool, mint func(time.Time) (*exchange.Token, error)) (bool, decision) {
		d := w.reconcile(now, probe, mint)
		if !d.restart {
			return false, d
		}
		// The restart happened: decide again with its outcome.
		d = decide(w.k, observation{now: now, source: w.src, target: w.target, restarts: &restartOutcome{}})
		w.k.Status = d.status
		return true, d
	}
	if rolled, d := restarted(t0, true, minted("tok-1", time.Hour)); !rolled || d.status.RestartedFor != w.target.token.hash() {
		t.Fatalf("first token: rolled %v, restartedFor %q", rolled, d.status.RestartedFor)
	}
	if rolled, _ := restarted(t0.Add(time.Minute), false, nil); rolled {
		t.Fatal("rolled again for the same token")
	}
	renew := t0.Add(40*time.Minute + 12*time.Second)
	if rolled, d := restarted(renew, false, minted("tok-2", time.Hour)); !rolled || d.status.RestartedFor != w.target.token.hash() {
		t.Fatalf("renewed token: rolled %v", rolled)
	}
}

// Setting spec.token on a key whose target already holds the key removes
// the key from the target at once, even while no token can be minted.
func TestTokenModeEmptiesAKeyTarget(t *testing.T) {
	k := tokenKey("o")
	s := src("AAAAbitfinex-key-ZZZZ")
	d := decide(k, observation{now: t0, source: s, target: holding(s), probe: fail(exchange.InvalidSignature)})
	if !d.syncTarget || d.token == nil {
		t.Fatalf("the key is left in the target: sync=%v token=%v", d.syncTarget, d.token)
	}
	sec, err := desiredTarget(k, s, d.token)
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data) != 0 || sec.Annotations[keyopsv1.AnnotationCredentialsHash] != "" {
		t.Fatalf("target data %v, annotations %v", sec.Data, sec.Annotations)
	}
	if got := condOf(d.status, keyopsv1.ConditionSecretSynced); got != "False/AwaitingValidation" {
		t.Fatalf("SecretSynced = %s", got)
	}
}
