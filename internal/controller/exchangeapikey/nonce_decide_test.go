package exchangeapikey

import (
	"strings"
	"testing"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// An upgrade from a version that switched units by itself: status says
// Microseconds, the spec declares nothing. The operator probes in
// Milliseconds (never the stored unit), says so in an Event and, while
// every nonce is refused, in the NonceConflict message; an accepted probe
// makes status mirror the declared unit again.
func TestNonceUnitUpgradeFromInferredMicroseconds(t *testing.T) {
	upgraded := func() *keyopsv1.ExchangeAPIKey {
		k := testKey("")
		k.Spec.Exchange = "bitfinex"
		k.Status.NonceUnit = keyopsv1.NonceUnitMicroseconds
		return k
	}
	s := src("AAAAkey-number-one-ZZZZ")
	hasEvent := func(d decision) bool {
		for _, e := range d.events {
			if e.Reason == keyopsv1.EventNonceUnitUndeclared {
				if !e.Warning || !strings.Contains(e.Message, "spec.validation.nonceUnit: Microseconds") {
					t.Errorf("event %+v", e)
				}
				return true
			}
		}
		return false
	}

	k := upgraded()
	d := step(k, observation{now: t0, source: s, probe: fail(exchange.NonceConflict)})
	msg := condMessage(d.status, keyopsv1.ConditionKeyValid)
	for _, want := range []string{"earlier version", "spec.validation.nonceUnit: Microseconds", "replace the key", "clock runs ahead"} {
		if !strings.Contains(msg, want) {
			t.Errorf("NonceConflict message %q lacks %q", msg, want)
		}
	}
	if !hasEvent(d) || d.syncTarget || d.status.NonceUnit != keyopsv1.NonceUnitMicroseconds {
		t.Fatalf("refused: event %v, sync %v, status unit %q", hasEvent(d), d.syncTarget, d.status.NonceUnit)
	}
	// Accepted in milliseconds: status mirrors the declared unit.
	res := ok("read")
	res.Permissions.NonceUnit = exchange.NonceMilliseconds
	d = step(k, observation{now: t0.Add(time.Hour), source: s, probe: res})
	if !hasEvent(d) || d.status.NonceUnit != keyopsv1.NonceUnitMilliseconds || condOf(d.status, keyopsv1.ConditionKeyValid) != "True/Verified" {
		t.Fatalf("accepted: event %v, status unit %q, %s", hasEvent(d), d.status.NonceUnit, condOf(d.status, keyopsv1.ConditionKeyValid))
	}
	if d = step(k, observation{now: t0.Add(2 * time.Hour), source: s, probe: res}); hasEvent(d) {
		t.Fatal("the warning outlived the stored unit")
	}

	// Declared: no warning, and the message has no upgrade hint.
	k = upgraded()
	k.Spec.Validation.NonceUnit = keyopsv1.NonceUnitMicroseconds
	d = step(k, observation{now: t0, source: s, probe: fail(exchange.NonceConflict)})
	if hasEvent(d) || strings.Contains(condMessage(d.status, keyopsv1.ConditionKeyValid), "earlier version") ||
		!strings.Contains(condMessage(d.status, keyopsv1.ConditionKeyValid), "in Microseconds") {
		t.Fatalf("declared: %q", condMessage(d.status, keyopsv1.ConditionKeyValid))
	}
}
