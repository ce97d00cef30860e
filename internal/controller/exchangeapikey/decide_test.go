package exchangeapikey

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func testKey(mode keyopsv1.ValidationMode) *keyopsv1.ExchangeAPIKey {
	return &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot", Generation: 1},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange:             "binance",
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "src"},
			Validation:           keyopsv1.ValidationSpec{Mode: mode},
		},
	}
}

func src(apiKey string) shared.Source {
	return shared.Source{Creds: exchange.Credentials{APIKey: apiKey, APISecret: "s"}, Fingerprint: keyid.Fingerprint(apiKey), Material: keyid.CredentialsHash(apiKey, "s", "")}
}

// holding is the target as found when it holds s.
func holding(s shared.Source) targetObservation {
	return targetObservation{exists: true, fingerprint: s.Fingerprint, material: s.Material}
}

func ok(perms ...string) *probecache.Result {
	return &probecache.Result{Permissions: &exchange.Permissions{Canonical: perms, Native: perms}, At: t0}
}

func fail(kind exchange.Kind) *probecache.Result {
	return &probecache.Result{Err: &exchange.Error{Kind: kind, Exchange: "binance", RetryAfter: 0}, At: t0}
}

func condOf(st keyopsv1.ExchangeAPIKeyStatus, typ string) string {
	c := meta.FindStatusCondition(st.Conditions, typ)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// step applies a decision's status to the key, as the reconciler would.
func step(k *keyopsv1.ExchangeAPIKey, obs observation) decision {
	d := decide(k, obs)
	k.Status = d.status
	return d
}

func TestDecideEnforceHoldsBackUntilVerified(t *testing.T) {
	k := testKey("")
	s := src("AAAAkey-number-one-ZZZZ")
	d := step(k, observation{now: t0, source: s, probe: fail(exchange.InvalidSignature)})
	if d.syncTarget {
		t.Fatal("a key that failed must not be synced")
	}
	if got := condOf(d.status, keyopsv1.ConditionSecretSynced); got != "False/AwaitingValidation" {
		t.Fatalf("SecretSynced = %s", got)
	}
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/InvalidSignature" {
		t.Fatalf("Ready = %s", got)
	}
	if len(d.events) != 1 || !d.events[0].Warning || d.events[0].Reason != "InvalidSignature" {
		t.Fatalf("events = %+v", d.events)
	}
	// Same observation again: no new event (only transitions emit).
	d = step(k, observation{now: t0.Add(time.Minute), source: s})
	if len(d.events) != 0 {
		t.Fatalf("repeated event: %+v", d.events)
	}
}

func TestDecideRevokedOnlyAfterVerified(t *testing.T) {
	k := testKey("")
	s := src("AAAAkey-number-one-ZZZZ")
	d := step(k, observation{now: t0, source: s, probe: ok("read", "trade")})
	if !d.syncTarget || condOf(d.status, keyopsv1.ConditionReady) != "True/Ready" {
		t.Fatalf("verified key: sync=%v ready=%s", d.syncTarget, condOf(d.status, keyopsv1.ConditionReady))
	}
	d = step(k, observation{now: t0.Add(time.Hour), source: s, target: holding(s), probe: fail(exchange.InvalidKey)})
	if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != "False/Revoked" {
		t.Fatalf("KeyValid = %s", got)
	}
	if d.syncTarget {
		t.Fatal("a revoked key must not be rewritten")
	}
	if got := condOf(d.status, keyopsv1.ConditionSecretSynced); got != "True/Synced" {
		t.Fatalf("the target is kept: SecretSynced = %s", got)
	}
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/Revoked" {
		t.Fatalf("Ready = %s", got)
	}
}

func TestDecideTransientGraceAndBackoff(t *testing.T) {
	k := testKey("")
	s := src("AAAAkey-number-one-ZZZZ")
	tgt := holding(s)
	step(k, observation{now: t0, source: s, probe: ok("read")})

	// Failures within one interval keep Ready; backoff doubles from 30 s.
	now := t0.Add(time.Hour)
	for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		d := step(k, observation{now: now, source: s, target: tgt, probe: fail(exchange.Unavailable)})
		if got := condOf(d.status, keyopsv1.ConditionReady); got != "True/Ready" {
			t.Fatalf("failure %d: Ready = %s", i+1, got)
		}
		if got := d.status.NextValidationTime.Sub(now); got != want {
			t.Fatalf("failure %d: backoff %s, want %s", i+1, got, want)
		}
		now = now.Add(want)
	}
	// Past one full interval of failures, Ready turns False.
	d := step(k, observation{now: t0.Add(2*time.Hour + time.Minute), source: s, target: tgt, probe: fail(exchange.Unavailable)})
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/ExchangeUnavailable" {
		t.Fatalf("after an interval of failures: Ready = %s", got)
	}
	if got := shared.Backoff(20, time.Hour); got != time.Hour {
		t.Fatalf("backoff cap = %s", got)
	}

	// Retry-After wins over a shorter backoff.
	rl := fail(exchange.RateLimited)
	rl.Err.(*exchange.Error).RetryAfter = 10 * time.Minute
	k2 := testKey("")
	d = step(k2, observation{now: t0, source: s, probe: rl})
	if got := d.status.NextValidationTime.Sub(t0); got != 10*time.Minute {
		t.Fatalf("Retry-After not honoured: %s", got)
	}
}

func TestProbeDue(t *testing.T) {
	k := testKey("")
	s := src("AAAAkey-number-one-ZZZZ")
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0); !due {
		t.Fatal("a new key is due")
	}
	step(k, observation{now: t0, source: s, probe: ok("read"), jitter: 0.5})
	if got := k.Status.NextValidationTime.Sub(t0); got != 63*time.Minute {
		t.Fatalf("interval with +5%% jitter = %s", got)
	}
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); due {
		t.Fatal("nothing is due a minute later")
	}
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(63*time.Minute)); !due {
		t.Fatal("due at the interval")
	}
	if due, _ := probeDue(k, src("BBBBanother-key-YYYY"), nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); !due {
		t.Fatal("a changed key is due at once")
	}
	k.Annotations = map[string]string{keyopsv1.AnnotationRevalidate: "now"}
	if due, force := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); !due || !force {
		t.Fatal("the revalidate annotation forces a probe")
	}
	k.Status.RevalidateRequest = "now"
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); due {
		t.Fatal("a handled revalidate value is not due again")
	}
	k.Generation = 2
	k.Spec.Permissions.Forbidden = []keyopsv1.Permission{"withdraw"}
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); !due {
		t.Fatal("a change of the permissions policy is due at once")
	}
	k.Spec.Validation.Mode = keyopsv1.ValidationDisabled
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); due {
		t.Fatal("Disabled never probes")
	}
}

func TestDecideObserveAndDisabledSync(t *testing.T) {
	s := src("AAAAkey-number-one-ZZZZ")
	k := testKey(keyopsv1.ValidationObserve)
	d := step(k, observation{now: t0, source: s, probe: ok("read", "withdraw")})
	if !d.syncTarget {
		t.Fatal("Observe syncs regardless")
	}
	if got := condOf(d.status, keyopsv1.ConditionPermissionsCompliant); got != "False/ForbiddenPermission" {
		t.Fatalf("PermissionsCompliant = %s", got)
	}
	k = testKey(keyopsv1.ValidationDisabled)
	d = step(k, observation{now: t0, source: s})
	if !d.syncTarget || condOf(d.status, keyopsv1.ConditionKeyValid) != "Unknown/ValidationDisabled" || condOf(d.status, keyopsv1.ConditionReady) != "True/Ready" {
		t.Fatalf("Disabled: sync=%v %v", d.syncTarget, d.status.Conditions)
	}
}

func TestDecideEndpointNotAllowed(t *testing.T) {
	k := testKey("")
	k.Spec.Endpoint = "http://example.com"
	refused := errors.New("endpoint http://example.com is not allowed")
	d := step(k, observation{now: t0, source: src("AAAAkey-number-one-ZZZZ"), endpointErr: refused})
	if d.syncTarget || condOf(d.status, keyopsv1.ConditionReady) != "False/EndpointNotAllowed" {
		t.Fatalf("refused endpoint: sync=%v ready=%s", d.syncTarget, condOf(d.status, keyopsv1.ConditionReady))
	}
	if due, _ := probeDue(k, src("AAAAkey-number-one-ZZZZ"), refused, k.Spec.Validation.ModeOrDefault(), t0); due {
		t.Fatal("no probe to an insecure endpoint")
	}
}

func TestEvaluatePolicy(t *testing.T) {
	p := func(canonical, unchecked []string, restricted bool) *keyopsv1.PermissionsStatus {
		ip := keyopsv1.IPRestrictionFalse
		if restricted {
			ip = keyopsv1.IPRestrictionTrue
		}
		return &keyopsv1.PermissionsStatus{Canonical: canonical, Unchecked: unchecked, IPRestriction: ip, Summary: "x"}
	}
	unknownIP := &keyopsv1.PermissionsStatus{Canonical: []string{"read"}, IPRestriction: keyopsv1.IPRestrictionUnknown, Summary: "read"}
	cases := []struct {
		pol  keyopsv1.PermissionPolicy
		perm *keyopsv1.PermissionsStatus
		want string
	}{
		{keyopsv1.PermissionPolicy{}, p([]string{"read", "trade"}, nil, false), keyopsv1.ReasonCompliant},
		{keyopsv1.PermissionPolicy{}, p([]string{"read", "withdraw"}, nil, false), keyopsv1.ReasonForbiddenPermission},
		{keyopsv1.PermissionPolicy{Required: []keyopsv1.Permission{"read", "trade"}}, p([]string{"read"}, nil, false), keyopsv1.ReasonMissingPermission},
		{keyopsv1.PermissionPolicy{RequireIPRestriction: true}, p([]string{"read"}, nil, false), keyopsv1.ReasonIPRestrictionMissing},
		{keyopsv1.PermissionPolicy{RequireIPRestriction: true}, p([]string{"read"}, nil, true), keyopsv1.ReasonCompliant},
		// Bitstamp, Bitfinex, Coinbase: an allowlist nobody can see fails closed.
		{keyopsv1.PermissionPolicy{RequireIPRestriction: true}, unknownIP, keyopsv1.ReasonIPRestrictionUnverifiable},
		{keyopsv1.PermissionPolicy{}, unknownIP, keyopsv1.ReasonCompliant},
		{keyopsv1.PermissionPolicy{Forbidden: []keyopsv1.Permission{}}, p([]string{"read", "withdraw"}, nil, false), keyopsv1.ReasonCompliant},
		// Bitstamp: withdraw cannot be reported; it is named, not guessed.
		{keyopsv1.PermissionPolicy{}, p([]string{"read"}, []string{"trade", "withdraw"}, false), keyopsv1.ReasonCompliant},
	}
	for i, c := range cases {
		got, msg := evaluatePolicy(c.pol, c.perm)
		if got != c.want {
			t.Errorf("case %d: %s (%s), want %s", i, got, msg, c.want)
		}
	}
	if _, msg := evaluatePolicy(keyopsv1.PermissionPolicy{RequireIPRestriction: true}, unknownIP); !strings.Contains(msg, "does not report") {
		t.Errorf("IPRestrictionUnverifiable must say the exchange cannot report allowlists: %q", msg)
	}
	_, msg := evaluatePolicy(keyopsv1.PermissionPolicy{}, p([]string{"read"}, []string{"withdraw"}, false))
	if msg == "" || !strings.Contains(msg, "cannot report withdraw") {
		t.Errorf("unchecked permissions must be named: %q", msg)
	}
}

func TestDecidePermissionDeniedMeansNoRead(t *testing.T) {
	k := testKey("")
	k.Spec.Exchange = "bitstamp"
	d := step(k, observation{now: t0, source: src("AAAAkey-number-one-ZZZZ"), probe: &probecache.Result{Err: &exchange.Error{Kind: exchange.PermissionDenied, Exchange: "bitstamp"}, At: t0}})
	if got := condOf(d.status, keyopsv1.ConditionKeyValid); got != "True/Verified" {
		t.Fatalf("KeyValid = %s", got)
	}
	if got := condOf(d.status, keyopsv1.ConditionPermissionsCompliant); got != "False/MissingPermission" {
		t.Fatalf("PermissionsCompliant = %s", got)
	}
}

func TestDecideSourceFailureKeepsTarget(t *testing.T) {
	k := testKey(keyopsv1.ValidationDisabled)
	step(k, observation{now: t0, source: src("AAAAkey-number-one-ZZZZ")})
	d := step(k, observation{now: t0, source: shared.Source{Reason: keyopsv1.ReasonSourceKeyMissing, Message: "no key"}})
	if d.syncTarget || condOf(d.status, keyopsv1.ConditionReady) != "False/SourceKeyMissing" {
		t.Fatalf("sync=%v ready=%s", d.syncTarget, condOf(d.status, keyopsv1.ConditionReady))
	}
}

func TestDecideRotationDetectionAndHistory(t *testing.T) {
	k := testKey("")
	a, b := src("AAAAkey-number-one-ZZZZ"), src("BBBBkey-number-two-YYYY")
	step(k, observation{now: t0, source: a, probe: ok("read")})
	d := step(k, observation{now: t0.Add(24 * time.Hour), source: b, target: holding(a), probe: ok("read")})
	if !d.syncTarget || !(d.announce != nil) {
		t.Fatalf("rotation: sync=%v events=%+v", d.syncTarget, d.events)
	}
	r := d.status.Rotation
	if r.LastRotationTime == nil || !r.LastRotationTime.Time.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("lastRotationTime = %v", r.LastRotationTime)
	}
	if !r.FirstSeen.Time.Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("age basis did not restart: %v", r.FirstSeen)
	}
	if len(d.status.History) != 2 || d.status.History[0].Outcome != "Accepted" || d.status.History[1].Outcome != "Accepted" {
		t.Fatalf("history = %+v", d.status.History)
	}
	// Twelve more keys: history keeps the last ten.
	prev := b
	for i := 0; i < 12; i++ {
		next := src("CCCCkey-" + string(rune('a'+i)) + "-rotation-XXXX")
		step(k, observation{now: t0.Add(time.Duration(48+i) * time.Hour), source: next, target: holding(prev), probe: ok("read")})
		prev = next
	}
	if len(k.Status.History) != historyLimit || k.Status.History[0].Fingerprint != prev.Fingerprint {
		t.Fatalf("history trimmed to %d, newest %s", len(k.Status.History), k.Status.History[0].KeyID)
	}
}

func TestComputeSchedule(t *testing.T) {
	seen := t0
	created := t0.Add(-30 * 24 * time.Hour)
	expires := t0.Add(10 * 24 * time.Hour)
	s := computeSchedule(seen, nil, nil, keyopsv1.DefaultMaxAge, keyopsv1.DefaultReminderBefore)
	if s.basis != keyopsv1.AgeBasisFirstSeen || !s.rotateBy.Equal(t0.Add(90*24*time.Hour)) || !s.remindAt.Equal(t0.Add(76*24*time.Hour)) {
		t.Fatalf("defaults from first seen: %+v", s)
	}
	s = computeSchedule(seen, &created, nil, keyopsv1.DefaultMaxAge, keyopsv1.DefaultReminderBefore)
	if s.basis != keyopsv1.AgeBasisExchangeCreateTime || !s.rotateBy.Equal(created.Add(90*24*time.Hour)) {
		t.Fatalf("exchange creation time is the basis: %+v", s)
	}
	s = computeSchedule(seen, &created, &expires, keyopsv1.DefaultMaxAge, keyopsv1.DefaultReminderBefore)
	if !s.rotateBy.Equal(expires) || !s.remindAt.Equal(expires.Add(-14*24*time.Hour)) {
		t.Fatalf("an earlier expiry wins: %+v", s)
	}
	late := t0.Add(200 * 24 * time.Hour)
	s = computeSchedule(seen, nil, &late, keyopsv1.DefaultMaxAge, keyopsv1.DefaultReminderBefore)
	if !s.rotateBy.Equal(t0.Add(90 * 24 * time.Hour)) {
		t.Fatalf("a later expiry does not extend max age: %+v", s)
	}
}

func TestRotationTransitionsOnceEach(t *testing.T) {
	k := testKey(keyopsv1.ValidationDisabled)
	k.Spec.Rotation.Notify = &keyopsv1.NotifySpec{WebhookSecretRef: keyopsv1.SecretKeyRef{Name: "hook"}}
	s := src("AAAAkey-number-one-ZZZZ")
	tgt := holding(s)
	d := step(k, observation{now: t0, source: s})
	if got := condOf(d.status, keyopsv1.ConditionRotationDue); got != "False/WithinPolicy" {
		t.Fatalf("RotationDue = %s", got)
	}
	// The controller wakes exactly at the reminder boundary.
	if d.requeueAfter != 76*24*time.Hour {
		t.Fatalf("requeueAfter = %s", d.requeueAfter)
	}
	type want struct {
		at     time.Duration
		cond   string
		event  string
		notify string
		wake   time.Duration
	}
	for _, w := range []want{
		{76 * 24 * time.Hour, "True/RotationDueSoon", "RotationDueSoon", "RotationDueSoon/", 14 * 24 * time.Hour},
		{80 * 24 * time.Hour, "True/RotationDueSoon", "", "", 10 * 24 * time.Hour},
		{90 * 24 * time.Hour, "True/RotationOverdue", "RotationOverdue", "RotationOverdue/", 0},
		{95 * 24 * time.Hour, "True/RotationOverdue", "", "", 0},
	} {
		d := decide(k, observation{now: t0.Add(w.at), source: s, target: tgt})
		if got := condOf(d.status, keyopsv1.ConditionRotationDue); got != w.cond {
			t.Fatalf("at %s: RotationDue = %s, want %s", w.at, got, w.cond)
		}
		if w.event != "" && !hasEvent(d.events, w.event) || w.event == "" && len(d.events) != 0 {
			t.Fatalf("at %s: events %+v, want %q", w.at, d.events, w.event)
		}
		if (w.notify == "") != (d.notify == "") || w.notify != "" && !strings.Contains(d.notify, w.notify) {
			t.Fatalf("at %s: notify %q, want %q", w.at, d.notify, w.notify)
		}
		if d.requeueAfter != w.wake {
			t.Fatalf("at %s: wake in %s, want %s", w.at, d.requeueAfter, w.wake)
		}
		// The reconciler records a delivered notification; a restarted
		// operator starts from that status and repeats nothing.
		if d.notify != "" {
			d.status.Rotation.NotifiedReason = d.notify
		}
		k.Status = d.status
	}
	// Overdue is only reported unless the deadline is enforced.
	if got := condOf(k.Status, keyopsv1.ConditionReady); got != "True/Ready" {
		t.Fatalf("overdue without enforcement: Ready = %s", got)
	}
	k.Spec.Rotation.EnforceDeadline = true
	d = decide(k, observation{now: t0.Add(95 * 24 * time.Hour), source: s, target: tgt})
	if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/RotationOverdue" {
		t.Fatalf("enforced deadline: Ready = %s", got)
	}
}

func TestDecideSecretOnlyChangeIsValidated(t *testing.T) {
	k := testKey("")
	good := src("AAAAkey-number-one-ZZZZ")
	step(k, observation{now: t0, source: good, probe: ok("read")})
	bad := good
	bad.Creds.APISecret = "pasted-wrong"
	bad.Material = keyid.CredentialsHash(bad.Creds.APIKey, bad.Creds.APISecret, "")
	if due, _ := probeDue(k, bad, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute)); !due {
		t.Fatal("a changed secret is due for validation at once")
	}
	d := step(k, observation{now: t0.Add(time.Minute), source: bad, target: holding(good), probe: fail(exchange.InvalidSignature)})
	if d.syncTarget {
		t.Fatal("an unverified secret must not reach the target")
	}
	if got := condOf(d.status, keyopsv1.ConditionSecretSynced); got != "False/PreviousKeyKept" {
		t.Fatalf("SecretSynced = %s", got)
	}
	// A transient failure on new material gets no grace either.
	k2 := testKey("")
	step(k2, observation{now: t0, source: good, probe: ok("read")})
	d = step(k2, observation{now: t0.Add(time.Minute), source: bad, target: holding(good), probe: fail(exchange.Unavailable)})
	if d.syncTarget || condOf(d.status, keyopsv1.ConditionReady) == "True/Ready" {
		t.Fatalf("unverified material approved during an outage: %v", d.status.Conditions)
	}
}

func hasEvent(evs []event, reasons ...string) bool {
	for _, e := range evs {
		for _, r := range reasons {
			if e.Reason == r {
				return true
			}
		}
	}
	return false
}

// TestDecideSpecPolicyViolationIsTheReadyReason: a violation of the policy
// floor that follows from the spec alone (here a mode the policy does not
// allow) is Ready's reason, naming the policy, whatever the exchange says
// and before any answer; the key is held as Enforce meanwhile.
func TestDecideSpecPolicyViolationIsTheReadyReason(t *testing.T) {
	enforceOnly := keyopsv1.ClusterExchangeKeyPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "enforce-only"},
		Spec: keyopsv1.ClusterExchangeKeyPolicySpec{
			NamespaceSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
			AllowedValidationModes: []keyopsv1.ValidationMode{keyopsv1.ValidationEnforce},
		},
	}
	s := src("AAAAkey-number-one-ZZZZ")
	for _, tc := range []struct {
		name  string
		mode  keyopsv1.ValidationMode
		probe *probecache.Result
	}{
		{"Disabled, no answer yet", keyopsv1.ValidationDisabled, nil},
		{"Disabled, verifies", keyopsv1.ValidationDisabled, ok("read", "trade")},
		{"Disabled, invalid", keyopsv1.ValidationDisabled, fail(exchange.InvalidKey)},
		{"Disabled, exchange down", keyopsv1.ValidationDisabled, fail(exchange.Unavailable)},
		{"Observe, verifies", keyopsv1.ValidationObserve, ok("read", "trade")},
		{"Observe, more than allowed", keyopsv1.ValidationObserve, ok("read", "withdraw")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKey(tc.mode)
			d := step(k, observation{now: t0, source: s, probe: tc.probe, policies: []keyopsv1.ClusterExchangeKeyPolicy{enforceOnly}, nsLabels: map[string]string{"tier": "prod"}})
			if got := condOf(d.status, keyopsv1.ConditionReady); got != "False/"+keyopsv1.ReasonPolicyViolation {
				t.Fatalf("Ready = %s, want False/PolicyViolation: %+v", got, d.status.Conditions)
			}
			if msg := meta.FindStatusCondition(d.status.Conditions, keyopsv1.ConditionReady).Message; !strings.Contains(msg, `"enforce-only"`) {
				t.Fatalf("Ready's message does not name the policy: %s", msg)
			}
			if d.syncTarget {
				t.Fatal("a key held as Enforce that breaks the floor was synced")
			}
		})
	}
	// Without the policy the same keys are not held back by it.
	k := testKey(keyopsv1.ValidationDisabled)
	if d := step(k, observation{now: t0, source: s}); condOf(d.status, keyopsv1.ConditionReady) != "True/Ready" {
		t.Fatalf("Disabled without a policy: %v", d.status.Conditions)
	}
}
