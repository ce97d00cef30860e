package exchangeapikey

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

// An answer the exchange also gives to valid keys (Coinbase's
// bare 401, Binance -2015) is no verdict until a second probe, a few seconds
// later, gives it again.

// coinbaseKey is a Coinbase key in Enforce mode.
func coinbaseKey() *keyopsv1.ExchangeAPIKey {
	k := testKey("")
	k.Spec.Exchange = "coinbase"
	return k
}

// bare401 is Coinbase's bare 401 as the driver classifies it, received at.
func bare401(at time.Time) *probecache.Result {
	return &probecache.Result{Err: &exchange.Error{Kind: exchange.KeyOrIPRejected, Exchange: exchange.Coinbase, HTTPStatus: 401,
		Message: "Coinbase rejected the JWT without a reason", Ambiguous: true}, At: at}
}

func okAt(at time.Time, perms ...string) *probecache.Result {
	r := ok(perms...)
	r.At = at
	return r
}

func failAt(at time.Time, kind exchange.Kind) *probecache.Result {
	r := fail(kind)
	r.At = at
	return r
}

// roundTrip stores and reads back k's status as the API server would (times
// to the second), so that what the next reconcile sees is what survives.
func roundTrip(t *testing.T, k *keyopsv1.ExchangeAPIKey) {
	t.Helper()
	raw, err := json.Marshal(k.Status)
	if err != nil {
		t.Fatal(err)
	}
	var st keyopsv1.ExchangeAPIKeyStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	k.Status = st
}

func TestAmbiguousAnswerIsConfirmedBeforeAVerdict(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	verified := func(t *testing.T) *keyopsv1.ExchangeAPIKey {
		k := coinbaseKey()
		step(k, observation{now: t0, source: a, probe: okAt(t0, "read")})
		step(k, observation{now: t0, source: a, target: holding(a), probe: nil})
		roundTrip(t, k)
		if condOf(k.Status, keyopsv1.ConditionReady) != "True/Ready" {
			t.Fatalf("setup: Ready %s", condOf(k.Status, keyopsv1.ConditionReady))
		}
		return k
	}
	t1 := t0.Add(2 * time.Hour)

	// Each case: a verified key that the target holds gets these answers,
	// each a confirmDelay after the one before.
	cases := []struct {
		name    string
		answers []*probecache.Result
		// want is KeyValid and Ready after the last answer.
		wantKV, wantReady string
		// pending: an answer still waits for its confirmation.
		pending bool
	}{
		{"one ambiguous answer keeps the verdict", []*probecache.Result{bare401(t1)}, "True/Verified", "True/Ready", true},
		{"confirmed good", []*probecache.Result{bare401(t1), okAt(t1.Add(confirmDelay), "read")}, "True/Verified", "True/Ready", false},
		{"confirmed bad", []*probecache.Result{bare401(t1), bare401(t1.Add(confirmDelay))}, "False/KeyOrIPRejected", "False/KeyOrIPRejected", false},
		// A transient answer says nothing about the key: it neither
		// confirms nor clears the wait.
		{"a transient answer between", []*probecache.Result{bare401(t1), failAt(t1.Add(confirmDelay), exchange.Unavailable), bare401(t1.Add(time.Minute))}, "False/KeyOrIPRejected", "False/KeyOrIPRejected", false},
		{"transient, still waiting", []*probecache.Result{bare401(t1), failAt(t1.Add(confirmDelay), exchange.Unavailable)}, "Unknown/ExchangeUnavailable", "True/Ready", true},
		// A definite answer that names its cause is a verdict at once.
		{"then a definite answer", []*probecache.Result{bare401(t1), failAt(t1.Add(confirmDelay), exchange.InvalidSignature)}, "False/InvalidSignature", "False/InvalidSignature", false},
		// A good answer between two ambiguous ones starts over.
		{"good between", []*probecache.Result{bare401(t1), okAt(t1.Add(confirmDelay), "read"), bare401(t1.Add(time.Hour))}, "True/Verified", "True/Ready", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := verified(t)
			var d decision
			for _, res := range c.answers {
				d = step(k, observation{now: res.At, source: a, target: holding(a), probe: res})
				roundTrip(t, k)
			}
			if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != c.wantKV {
				t.Errorf("KeyValid %s, want %s", got, c.wantKV)
			}
			if got := condOf(d.status, keyopsv1.ConditionReady); got != c.wantReady {
				t.Errorf("Ready %s, want %s", got, c.wantReady)
			}
			if got := d.status.UnconfirmedAnswer != nil; got != c.pending {
				t.Errorf("unconfirmed answer recorded = %v (%+v), want %v", got, d.status.UnconfirmedAnswer, c.pending)
			}
			if d.status.TargetKeyFingerprint != a.Fingerprint {
				t.Error("the target no longer holds the key")
			}
			for _, e := range d.events {
				if e.Reason == keyopsv1.ReasonRevoked {
					t.Errorf("an ambiguous answer revoked the key: %+v", e)
				}
			}
		})
	}
}

// The first ambiguous answer: the verdict, the target and the history stay,
// an Event and status say what is awaited, and the confirming probe is
// scheduled a few seconds out, spread by the jitter.
func TestFirstAmbiguousAnswerSchedulesOneConfirmation(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	for _, c := range []struct {
		jitter float64
		want   time.Duration
	}{{0, 4 * time.Second}, {1, 6 * time.Second}, {-1, 2 * time.Second}} {
		k := coinbaseKey()
		step(k, observation{now: t0, source: a, probe: okAt(t0, "read")})
		before := k.Status.DeepCopy()
		t1 := t0.Add(time.Hour)
		d := step(k, observation{now: t1, source: a, target: holding(a), probe: bare401(t1), jitter: c.jitter})
		if d.requeueAfter != c.want || !d.status.NextValidationTime.Time.Equal(t1.Add(c.want)) {
			t.Errorf("jitter %v: requeue %s, next %s; want %s", c.jitter, d.requeueAfter, d.status.NextValidationTime, c.want)
		}
		if !d.syncTarget {
			t.Error("the verified key must stay in the target")
		}
		if !d.status.LastValidationTime.Equal(before.LastValidationTime) || d.status.VerifiedFingerprint != a.Fingerprint || d.status.Permissions == nil {
			t.Errorf("the unconfirmed answer changed the verdict's record: %+v", d.status)
		}
		if len(d.status.History) != len(before.History) || d.status.History[0].Outcome != "Accepted" {
			t.Errorf("history changed: %+v", d.status.History)
		}
		u := d.status.UnconfirmedAnswer
		if u == nil || u.Reason != keyopsv1.ReasonKeyOrIPRejected || u.CredentialsHash != a.Material || !u.ReceivedAt.Time.Equal(t1) {
			t.Errorf("unconfirmed answer %+v", u)
		}
		var note string
		for _, e := range d.events {
			if e.Warning {
				t.Errorf("warning Event for an unconfirmed answer: %+v", e)
			}
			if e.Reason == keyopsv1.EventAnswerUnconfirmed {
				note = e.Message
			}
		}
		if !strings.Contains(note, "second probe") || !strings.Contains(note, "AAAA...ZZZZ") {
			t.Errorf("Event %q does not say what is awaited", note)
		}
		// The confirming probe must be a new request: neither k's own
		// ambiguous answer nor another key's older copy of it may pass for it.
		roundTrip(t, k)
		if fa := freshAfter(k, k.Spec.Validation.IntervalOrDefault(), t1.Add(c.want)); !fa.After(t1) {
			t.Errorf("freshAfter %s lets the ambiguous answer of %s confirm itself", fa, t1)
		}
		// Nothing is due before the confirmation time, so watch events
		// (the status write itself) cost no request.
		if due, _ := probeDue(k, a, nil, keyopsv1.ValidationEnforce, t1.Add(time.Second)); due {
			t.Error("probe due before the confirmation time")
		}
		if due, _ := probeDue(k, a, nil, keyopsv1.ValidationEnforce, t1.Add(c.want)); !due {
			t.Error("confirming probe not due at the confirmation time")
		}
	}
}

// The confirmed verdict names every cause the answer covers, says it was
// confirmed, and brings the next probe back to the interval: one more
// request, not a loop.
func TestConfirmedAmbiguousAnswerVerdict(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	k := coinbaseKey()
	step(k, observation{now: t0, source: a, probe: okAt(t0, "read")})
	t1 := t0.Add(time.Hour)
	step(k, observation{now: t1, source: a, target: holding(a), probe: bare401(t1)})
	roundTrip(t, k)
	t2 := t1.Add(confirmDelay)
	d := step(k, observation{now: t2, source: a, target: holding(a), probe: bare401(t2)})
	msg := condMessage(d.status, keyopsv1.ConditionKeyValid)
	for _, want := range []string{"unknown", "deleted", "private key", "allowlist", "Secret src", "twice, 4s apart"} {
		if !strings.Contains(msg, want) {
			t.Errorf("verdict %q lacks %q", msg, want)
		}
	}
	if d.status.UnconfirmedAnswer != nil {
		t.Errorf("still waiting: %+v", d.status.UnconfirmedAnswer)
	}
	if d.requeueAfter < time.Hour*9/10 {
		t.Errorf("next probe in %s, want about the interval", d.requeueAfter)
	}
	if !d.syncTarget && d.status.TargetKeyFingerprint != a.Fingerprint {
		t.Error("the target must keep the key it holds")
	}
	// The same answer at the next interval is the verdict the key already
	// has: no confirmation is spent on it.
	roundTrip(t, k)
	t3 := t2.Add(time.Hour)
	d = step(k, observation{now: t3, source: a, target: holding(a), probe: bare401(t3)})
	if d.status.UnconfirmedAnswer != nil || d.requeueAfter < time.Hour*9/10 || condOf(d.status, keyopsv1.ConditionKeyValid) != "False/KeyOrIPRejected" {
		t.Errorf("repeated verdict: unconfirmed %+v, requeue %s, KeyValid %s", d.status.UnconfirmedAnswer, d.requeueAfter, condOf(d.status, keyopsv1.ConditionKeyValid))
	}
}

// A key that never verified gets the same rule: no verdict (and no
// rejection in the history) on one ambiguous answer; the second one is the
// verdict. Answers not marked ambiguous are verdicts at once, as before.
func TestAmbiguousAnswerForANewKey(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	k := coinbaseKey()
	d := step(k, observation{now: t0, source: a, probe: bare401(t0)})
	if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != "Unknown/ValidationPending" {
		t.Fatalf("KeyValid %s after one ambiguous answer, want Unknown/ValidationPending", got)
	}
	if d.syncTarget || d.status.UnconfirmedAnswer == nil || d.requeueAfter != confirmDelay {
		t.Fatalf("sync %v, unconfirmed %+v, requeue %s", d.syncTarget, d.status.UnconfirmedAnswer, d.requeueAfter)
	}
	if h := d.status.History; len(h) != 1 || h[0].Outcome != "" {
		t.Fatalf("history %+v: an unconfirmed answer is no rejection", h)
	}
	roundTrip(t, k)
	t1 := t0.Add(confirmDelay)
	d = step(k, observation{now: t1, source: a, probe: bare401(t1)})
	if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != "False/KeyOrIPRejected" {
		t.Fatalf("KeyValid %s after the confirmation, want False/KeyOrIPRejected", got)
	}
	if h := d.status.History; h[0].Outcome != "Rejected" || h[0].Reason != keyopsv1.ReasonKeyOrIPRejected {
		t.Fatalf("history %+v", h)
	}

	// Not marked ambiguous (a driver that names its cause): at once.
	k = coinbaseKey()
	d = step(k, observation{now: t0, source: a, probe: fail(exchange.KeyOrIPRejected)})
	if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != "False/KeyOrIPRejected" || d.status.UnconfirmedAnswer != nil {
		t.Fatalf("unmarked answer: KeyValid %s, unconfirmed %+v", got, d.status.UnconfirmedAnswer)
	}
}

// An answer about other material confirms nothing: a new secret for the key
// (or a new key) starts its own confirmation, and KeyValid does not carry
// the old material's verdict over to it.
func TestUnconfirmedAnswerIsPerMaterial(t *testing.T) {
	a := src("AAAAkey-number-one-ZZZZ")
	a2 := shared.Source{Creds: a.Creds, Fingerprint: a.Fingerprint, Material: "sha256:other"}
	k := coinbaseKey()
	step(k, observation{now: t0, source: a, probe: okAt(t0, "read")})
	t1 := t0.Add(time.Hour)
	step(k, observation{now: t1, source: a, target: holding(a), probe: bare401(t1)})
	roundTrip(t, k)
	t2 := t1.Add(confirmDelay)
	d := step(k, observation{now: t2, source: a2, target: holding(a), probe: bare401(t2)})
	if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != "Unknown/ValidationPending" {
		t.Fatalf("KeyValid %s for new material after one ambiguous answer", got)
	}
	if u := d.status.UnconfirmedAnswer; u == nil || u.CredentialsHash != a2.Material {
		t.Fatalf("unconfirmed %+v, want one for the new material", u)
	}
	if d.status.TargetCredentialsHash != a.Material {
		t.Fatal("unverified material reached the target")
	}
	// Disabling validation drops the wait.
	k.Spec.Validation.Mode = keyopsv1.ValidationDisabled
	if d = decide(k, observation{now: t2, source: a2, target: holding(a)}); d.status.UnconfirmedAnswer != nil {
		t.Fatal("Disabled kept an unconfirmed answer")
	}
}
