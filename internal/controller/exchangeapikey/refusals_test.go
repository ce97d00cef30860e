package exchangeapikey

import (
	"errors"
	"testing"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// After the administrator admits an endpoint the manager
// refused (a restart with --allowed-endpoints), the first reconcile of the
// key (every key is reconciled when the manager starts) makes the
// validation that was held back, instead of keeping EndpointNotAllowed
// until the next scheduled validation, up to an interval away.
func TestAdmittedEndpointIsValidatedAtOnce(t *testing.T) {
	k := testKey("")
	s := src("AAAAkey-number-one-ZZZZ")
	step(k, observation{now: t0, source: s, probe: ok("read"), target: holding(s)})
	// The spec moves to an endpoint the manager does not admit (yet).
	k.Generation = 2
	k.Spec.Endpoint = "https://binance.internal.example"
	refused := errors.New("endpoint https://binance.internal.example is not allowed")
	d := step(k, observation{now: t0.Add(time.Minute), source: s, target: holding(s), endpointErr: refused})
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/EndpointNotAllowed" {
		t.Fatalf("Ready = %s", got)
	}
	// The manager restarts admitting it: the held-back validation is due.
	now := t0.Add(2 * time.Minute)
	due, force := probeDue(k, s, nil, keyopsv1.ValidationEnforce, now)
	if !due || force {
		t.Fatalf("admitted endpoint: due=%v force=%v, want due (not forced: the shared cache may answer)", due, force)
	}
	d = step(k, observation{now: now, source: s, target: holding(s), probe: ok("read")})
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "True/Ready" {
		t.Fatalf("after the remedy: Ready = %s", got)
	}
	// And no call beyond those due afterwards.
	if due, _ := probeDue(k, s, nil, keyopsv1.ValidationEnforce, now.Add(time.Minute)); due {
		t.Fatal("a probe is due again right after the held-back validation")
	}
}
