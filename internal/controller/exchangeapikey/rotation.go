package exchangeapikey

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// rotationDecision is the rotation part of a decision.
type rotationDecision struct {
	events []event
	// next is the next boundary (remindAt or rotateBy) still ahead.
	next *time.Time
	// overdueEnforced: overdue, and spec.rotation.enforceDeadline is set.
	overdueEnforced bool
	// notify is the reminder transition still to be delivered to the
	// webhook ("" when none is due or it was delivered).
	notify string
}

// schedule is the rotate-by arithmetic, kept apart so it can be tested alone.
type schedule struct {
	basis    keyopsv1.AgeBasis
	basisAt  time.Time
	rotateBy time.Time
	remindAt time.Time
}

// computeSchedule: the deadline is the earlier of basis + maxAge and the
// exchange-reported expiry; the basis is the exchange's creation time when it
// reports one, else when this operator first saw the key.
func computeSchedule(firstSeen time.Time, createdAt, expiresAt *time.Time, maxAge, reminderBefore time.Duration) schedule {
	s := schedule{basis: keyopsv1.AgeBasisFirstSeen, basisAt: firstSeen}
	if createdAt != nil && !createdAt.IsZero() {
		s.basis, s.basisAt = keyopsv1.AgeBasisExchangeCreateTime, *createdAt
	}
	s.rotateBy = s.basisAt.Add(maxAge)
	if expiresAt != nil && !expiresAt.IsZero() && expiresAt.Before(s.rotateBy) {
		s.rotateBy = *expiresAt
	}
	s.remindAt = s.rotateBy.Add(-reminderBefore)
	return s
}

// decideRotation sets status.rotation and RotationDue for the key in use (the
// one the target holds; before any target exists, the source key).
func decideRotation(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, now time.Time) rotationDecision {
	var d rotationDecision
	fp := st.TargetKeyFingerprint
	if fp == "" {
		fp = st.KeyFingerprint
	}
	if fp == "" {
		return d
	}
	firstSeen := now
	for _, e := range st.History {
		if e.Fingerprint == fp {
			firstSeen = e.FirstSeen.Time
			break
		}
	}
	var created, expires *time.Time
	if st.VerifiedFingerprint == fp {
		if st.KeyCreatedAt != nil {
			created = &st.KeyCreatedAt.Time
		}
		if st.KeyExpiresAt != nil {
			expires = &st.KeyExpiresAt.Time
		}
	}
	rs := k.Spec.Rotation
	s := computeSchedule(firstSeen, created, expires, rs.MaxAgeOrDefault(), rs.ReminderBeforeOrDefault())
	if st.Rotation == nil {
		st.Rotation = &keyopsv1.RotationStatus{}
	}
	st.Rotation.AgeBasis = s.basis
	st.Rotation.FirstSeen = &metav1.Time{Time: firstSeen}
	st.Rotation.RotateBy = &metav1.Time{Time: s.rotateBy}
	st.Rotation.RemindAt = &metav1.Time{Time: s.remindAt}

	masked := maskedFor(st.History, fp)
	var status metav1.ConditionStatus
	var reason, msg string
	switch {
	case now.Before(s.remindAt):
		status, reason = metav1.ConditionFalse, keyopsv1.ReasonWithinPolicy
		msg = fmt.Sprintf("key %s must be rotated by %s; reminders start %s", masked, s.rotateBy.UTC().Format(time.RFC3339), s.remindAt.UTC().Format(time.RFC3339))
		d.next = &s.remindAt
	case now.Before(s.rotateBy):
		status, reason = metav1.ConditionTrue, keyopsv1.ReasonRotationDueSoon
		msg = fmt.Sprintf("key %s must be rotated by %s: %s", masked, s.rotateBy.UTC().Format(time.RFC3339), newKeyAdvice(k))
		d.next = &s.rotateBy
	default:
		status, reason = metav1.ConditionTrue, keyopsv1.ReasonRotationOverdue
		msg = fmt.Sprintf("key %s was due for rotation on %s: %s", masked, s.rotateBy.UTC().Format(time.RFC3339), newKeyAdvice(k))
		d.overdueEnforced = rs.EnforceDeadline
	}
	before := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionRotationDue)
	if status == metav1.ConditionTrue && (before == nil || before.Reason != reason) {
		d.events = append(d.events, event{Warning: true, Reason: reason, Message: msg})
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: keyopsv1.ConditionRotationDue, Status: status, Reason: reason, Message: msg, ObservedGeneration: k.Generation})

	// Webhook reminders are recorded per transition and key, so that neither
	// a restart nor a reconcile that changes nothing sends one twice.
	if rs.Notify != nil && status == metav1.ConditionTrue {
		if token := reason + "/" + keyid.Short(fp); st.Rotation.NotifiedReason != token {
			d.notify = token
		}
	}
	return d
}
