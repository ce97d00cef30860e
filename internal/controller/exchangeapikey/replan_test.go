package exchangeapikey

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Which spec edits of a validated key revalidate it at once (issue #22): a
// field the verdict depends on does, the others (interval, target formats,
// rotation reminders, restart targets, suspend) do not. On the code before
// the fix, every edit (a new generation) probed.
func TestSpecEditRevalidatesOnlyForTheVerdict(t *testing.T) {
	minutes := func(m int) *metav1.Duration { return &metav1.Duration{Duration: time.Duration(m) * time.Minute} }
	for _, tc := range []struct {
		name string
		edit func(*keyopsv1.ExchangeAPIKeySpec)
		due  bool
	}{
		{"interval shortened", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Validation.Interval = minutes(30) }, false},
		{"interval lengthened", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Validation.Interval = minutes(120) }, false},
		{"target format", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Target.Format = "env" }, false},
		{"target name", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Target.Name = "other" }, false},
		{"rotation reminder", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Rotation.ReminderBefore = minutes(60 * 24) }, false},
		{"rotation max age", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Rotation.MaxAge = minutes(60 * 24 * 30) }, false},
		{"restart targets", func(s *keyopsv1.ExchangeAPIKeySpec) {
			s.RestartTargets = []keyopsv1.RestartTarget{{Kind: "Deployment", Name: "bot"}}
		}, false},
		{"restart debounce", func(s *keyopsv1.ExchangeAPIKeySpec) { s.RestartDebounce = minutes(1) }, false},

		{"exchange", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Exchange = "kraken" }, true},
		{"endpoint", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Endpoint = "https://api1.binance.com" }, true},
		{"demo trading", func(s *keyopsv1.ExchangeAPIKeySpec) { s.DemoTrading = true }, true},
		{"source ref", func(s *keyopsv1.ExchangeAPIKeySpec) { s.CredentialsSecretRef.Name = "other-src" }, true},
		{"permissions policy", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Permissions.Forbidden = []keyopsv1.Permission{"withdraw"} }, true},
		{"validation mode", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Validation.Mode = keyopsv1.ValidationObserve }, true},
		{"nonce unit", func(s *keyopsv1.ExchangeAPIKeySpec) { s.Validation.NonceUnit = keyopsv1.NonceUnitMicroseconds }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKey("")
			s := src("AAAAkey-number-one-ZZZZ")
			step(k, observation{now: t0, source: s, probe: ok("read")})
			k.Generation++
			tc.edit(&k.Spec)
			due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), t0.Add(time.Minute))
			if due != tc.due {
				t.Errorf("due = %v after editing the %s, want %v", due, tc.name, tc.due)
			}
		})
	}
}

// A changed interval moves the plan from the last validation, jittered,
// never later than the old plan when it shrank nor earlier when it grew.
func TestReplan(t *testing.T) {
	last := t0
	for _, tc := range []struct {
		name     string
		plan     time.Duration // old plan, after last
		old, new time.Duration
		jitter   float64
		want     time.Duration // new plan, after last
	}{
		{"shorter", 60 * time.Minute, time.Hour, 30 * time.Minute, 0, 30 * time.Minute},
		{"shorter, jittered", 60 * time.Minute, time.Hour, 30 * time.Minute, 1, 33 * time.Minute},
		{"shorter never later than the old plan", 56 * time.Minute, time.Hour, 55 * time.Minute, 1, 56 * time.Minute},
		{"longer", 60 * time.Minute, time.Hour, 2 * time.Hour, 0, 2 * time.Hour},
		{"longer never earlier than the old plan", 66 * time.Minute, time.Hour, 62 * time.Minute, -1, 66 * time.Minute},
		{"shorter and already past: due", 60 * time.Minute, time.Hour, time.Minute, 0, time.Minute},
	} {
		got := replan(last, last.Add(tc.plan), tc.old, tc.new, tc.jitter).Sub(last)
		if got != tc.want {
			t.Errorf("%s: plan at +%s, want +%s", tc.name, got, tc.want)
		}
	}
}

// decide re-plans an interval edit without a probe, in one status change,
// and leaves a backoff alone; a policy floor is an interval change too.
func TestDecideIntervalEditReplans(t *testing.T) {
	s := src("AAAAkey-number-one-ZZZZ")
	k := testKey("")
	step(k, observation{now: t0, source: s, probe: ok("read"), target: holding(s)})
	if k.Status.ValidationInterval == nil || k.Status.ValidationInterval.Duration != time.Hour {
		t.Fatalf("validationInterval = %v, want 1h", k.Status.ValidationInterval)
	}
	now := t0.Add(10 * time.Minute)
	k.Generation++
	k.Spec.Validation.Interval = &metav1.Duration{Duration: 20 * time.Minute}
	if due, _ := probeDue(k, s, nil, k.Spec.Validation.ModeOrDefault(), now); due {
		t.Fatal("an interval edit probes")
	}
	d := step(k, observation{now: now, source: s, target: holding(s)})
	if got := k.Status.NextValidationTime.Sub(t0); got != 20*time.Minute {
		t.Errorf("next validation %s after the last one, want 20m", got)
	}
	if k.Status.ValidationInterval.Duration != 20*time.Minute {
		t.Errorf("validationInterval = %s", k.Status.ValidationInterval.Duration)
	}
	if len(d.events) != 0 {
		t.Errorf("events %+v", d.events)
	}
	// Same again: nothing changes (no second status write).
	before := k.Status.DeepCopy()
	step(k, observation{now: now.Add(time.Second), source: s, target: holding(s)})
	if k.Status.NextValidationTime.Compare(before.NextValidationTime.Time) != 0 {
		t.Errorf("the plan moved again: %s -> %s", before.NextValidationTime, k.Status.NextValidationTime)
	}

	// A policy raising the floor to 2h moves the plan out, no probe.
	floor := []keyopsv1.ClusterExchangeKeyPolicy{{Spec: keyopsv1.ClusterExchangeKeyPolicySpec{MinValidationInterval: &metav1.Duration{Duration: 2 * time.Hour}}}}
	step(k, observation{now: now, source: s, target: holding(s), policies: floor})
	if got := k.Status.NextValidationTime.Sub(t0); got != 2*time.Hour {
		t.Errorf("under a 2h floor the next validation is %s after the last one", got)
	}

	// A backoff after a transient failure keeps its time.
	step(k, observation{now: t0.Add(2 * time.Hour), source: s, probe: fail(exchange.Unavailable), target: holding(s), policies: floor})
	backoff := *k.Status.NextValidationTime
	k.Spec.Validation.Interval = &metav1.Duration{Duration: 3 * time.Hour}
	step(k, observation{now: t0.Add(2*time.Hour + time.Second), source: s, target: holding(s), policies: floor})
	if !k.Status.NextValidationTime.Equal(&backoff) {
		t.Errorf("the backoff moved: %s -> %s", backoff, k.Status.NextValidationTime)
	}
}

// The verdict's spec hash and the plan's interval are recorded in the
// reconcile's own status write: the reconcile after it (the target
// Secret's or the status' own event) finds nothing to change, for a new
// Disabled key as for a new Enforce one.
func TestScheduleBookkeepingNeedsNoSecondWrite(t *testing.T) {
	for _, mode := range []keyopsv1.ValidationMode{keyopsv1.ValidationDisabled, keyopsv1.ValidationEnforce} {
		s := src("AAAAkey-number-one-ZZZZ")
		k := testKey(mode)
		var probe = ok("read")
		if mode == keyopsv1.ValidationDisabled {
			probe = nil
		}
		step(k, observation{now: t0, source: s, probe: probe, targetWritten: true, target: holding(s)})
		first := k.Status.DeepCopy()
		step(k, observation{now: t0.Add(time.Second), source: s, target: holding(s)})
		if !equality.Semantic.DeepEqual(first, &k.Status) {
			t.Errorf("%s: the second reconcile changed status:\n%+v\n%+v", mode, first, k.Status)
		}
	}
}

// An edit of another field does not read the restart targets again (on the
// code before, any new generation set restartPendingSince: a second status
// write and a restart pass per key after an interval edit); an edit of the
// restart targets does.
func TestRestartTargetsReadOnlyWhenTheyChange(t *testing.T) {
	s := src("AAAAkey-number-one-ZZZZ")
	k := testKey(keyopsv1.ValidationDisabled)
	k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
	step(k, observation{now: t0, source: s, target: holding(s)})
	k.Status.RestartedFor, k.Status.RestartedGeneration, k.Status.RestartPendingSince = s.Material, k.Generation, nil
	k.Status.RestartedTargetsHash = jsonHash(k.Spec.RestartTargets)

	k.Generation++
	k.Spec.Validation.Interval = &metav1.Duration{Duration: 2 * time.Hour}
	d := step(k, observation{now: t0.Add(time.Minute), source: s, target: holding(s)})
	if d.restart || k.Status.RestartPendingSince != nil {
		t.Errorf("an interval edit reads the restart targets again: restart %v, pending since %v", d.restart, k.Status.RestartPendingSince)
	}

	k.Generation++
	k.Spec.RestartTargets = append(k.Spec.RestartTargets, keyopsv1.RestartTarget{Kind: keyopsv1.KindDeployment, Name: "other"})
	step(k, observation{now: t0.Add(2 * time.Minute), source: s, target: holding(s)})
	if k.Status.RestartPendingSince == nil {
		t.Error("a new restart target is not read")
	}
}
