package exchangeapikey

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
)

// verdictSpecHash identifies the spec fields a probe's verdict depends on.
// It is every field but those listed here, which change no verdict:
//
//   - validation.interval: only when the next probe is due (replan);
//   - target (name, type, formats): what the target Secret looks like;
//   - rotation (maxAge, reminders, webhook): the rotation schedule;
//   - restartTargets, restartDebounce: what rolls for a new key;
//   - suspend: resuming finds the plan as it was (due if it passed).
//
// Everything else revalidates when it changes, a field added later
// included: exchange, endpoint and demoTrading (which host, which answer),
// credentialsSecretRef (which material), issue (which key is issued),
// permissions (what the verdict checks), validation.mode and
// validation.nonceUnit (how the request is signed).
func verdictSpecHash(spec *keyopsv1.ExchangeAPIKeySpec) string {
	v := *spec
	v.Validation.Interval = nil
	v.Target = keyopsv1.TargetSpec{}
	v.Rotation = keyopsv1.RotationSpec{}
	v.RestartTargets, v.RestartDebounce = nil, nil
	v.Suspend = false
	return jsonHash(v)
}

// jsonHash identifies a part of a spec for status bookkeeping (what a
// verdict or a restart was made for). A spec the API server stored always
// marshals; should it not, "" counts as unknown: the next generation acts.
func jsonHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// verdictSpecChanged: a spec field the last verdict depends on changed
// since. A key an earlier version validated has no hash: any new
// generation counts, as it did then.
func verdictSpecChanged(k *keyopsv1.ExchangeAPIKey) bool {
	if k.Status.ValidatedSpecHash == "" {
		return k.Status.ObservedGeneration != k.Generation
	}
	return k.Status.ValidatedSpecHash != verdictSpecHash(&k.Spec)
}

// replan moves a validation plan made with interval old to interval new,
// without a probe: the last validation plus the new interval, jittered,
// but never later than the old plan when the interval shrank, nor earlier
// when it grew (so that no probe comes sooner than either interval asks).
// A plan already past stays past: that probe was due anyway.
func replan(last, plan time.Time, old, new time.Duration, jitter float64) time.Time {
	next := last.Add(shared.Jittered(new, jitter))
	switch {
	case new < old && next.After(plan), new > old && next.Before(plan):
		return plan
	}
	return next
}

// phaseSchedule keeps the validation plan in step with the effective
// interval and records what the verdict was reached for. It runs after
// phaseValidation, whatever it did.
func phaseSchedule(s *phaseState) bool {
	st, prev := s.st, s.prev
	if s.obs.probe != nil || st.NextValidationTime == nil || (prev.ValidatedSpecHash == "" && prev.ObservedGeneration == s.k.Generation) {
		// A probe was made for this spec; or none is planned (Disabled,
		// no usable source), so the next one is due whatever the spec; or
		// an earlier version's status, whose last probe was for this
		// generation, is adopted as is. Set in the reconcile's one status
		// write, never in a write of its own.
		st.ValidatedSpecHash = verdictSpecHash(&s.k.Spec)
	}
	if st.NextValidationTime == nil {
		st.ValidationInterval = nil
		return true
	}
	interval := &metav1.Duration{Duration: s.interval}
	if s.obs.probe == nil && prev.ValidationInterval != nil && prev.ValidationInterval.Duration != s.interval &&
		st.TransientFailures == 0 && st.UnconfirmedAnswer == nil && st.LastValidationTime != nil {
		// Only a regular plan follows the interval; a backoff or a
		// confirming probe keeps its own time.
		next := metav1.NewTime(replan(st.LastValidationTime.Time, st.NextValidationTime.Time, prev.ValidationInterval.Duration, s.interval, s.obs.jitter))
		st.NextValidationTime = &next
	}
	st.ValidationInterval = interval
	return true
}
