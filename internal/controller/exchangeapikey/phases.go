package exchangeapikey

import (
	"fmt"

	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// phaseTarget decides what the target Secret must hold and records each
// handover of a key to the bots. The record is derived from the persisted
// status (what the target was last written with), not from the Secret as
// found: if a previous reconcile wrote the Secret and then failed to save
// status, the retry finds the Secret already up to date, yet still records
// the rotation, once.
func phaseTarget(s *phaseState) bool {
	if s.noSource {
		return true
	}
	if s.k.Spec.Token != nil {
		return phaseToken(s)
	}
	meta.RemoveStatusCondition(&s.st.Conditions, keyopsv1.ConditionTokenIssued)
	s.st.Token = nil
	k, st, src, target := s.k, s.st, s.obs.source, s.obs.target
	switch {
	case target.conflict != "":
		s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonSecretConflict, target.conflict)
		st.TargetKeyFingerprint, st.TargetCredentialsHash = "", ""
	case s.approved:
		s.d.syncTarget = true
		s.recordHandover()
		st.TargetKeyFingerprint, st.TargetCredentialsHash = s.fp, src.Material
		msg := fmt.Sprintf("Secret %s holds key %s", k.TargetName(), st.KeyID)
		if pending := s.restartTargets(src.Material); len(pending) > 0 {
			msg += fmt.Sprintf("; restart targets not restarted yet: %s", strings.Join(pending, ", "))
		}
		s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionTrue, keyopsv1.ReasonSynced, msg)
	default:
		if target.exists && target.fingerprint != "" && target.fingerprint != s.prev.TargetKeyFingerprint {
			// The target holds a key status does not know it holds: an
			// earlier reconcile handed it over and lost its status write
			// before this key was refused or replaced. Record it now.
			s.recordHandoverOf(target.fingerprint, maskedFor(st.History, target.fingerprint), target.material)
		}
		why := blockingReason(st.Conditions)
		if rejected(why) {
			st.History = recordDecision(st.History, s.fp, keyopsv1.HistoryRejected, why, s.now)
		}
		st.TargetKeyFingerprint, st.TargetCredentialsHash = target.fingerprint, target.material
		switch {
		case target.exists && target.material == src.Material:
			// A verified key that went bad stays in place: the bots fail
			// either way, and deleting would lose the audit trail.
			s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionTrue, keyopsv1.ReasonSynced,
				fmt.Sprintf("Secret %s holds key %s, which no longer validates (%s); it is kept", k.TargetName(), st.KeyID, why))
		case target.exists:
			s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonPreviousKeyKept,
				fmt.Sprintf("new key %s is not accepted (%s); Secret %s keeps the previous key %s", st.KeyID, why, k.TargetName(), maskedFor(st.History, target.fingerprint)))
		default:
			s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonAwaitingValidation,
				fmt.Sprintf("Secret %s is created once key %s verifies and complies (%s)", k.TargetName(), st.KeyID, why))
		}
	}
	return true
}

// recordHandover records, from the persisted status, what handing the
// current material to the bots means: a first key, a rotation, new secret
// material for the same key, or (when the Secret had to be written although
// status says it holds this material) a repair.
func (s *phaseState) recordHandover() {
	s.recordHandoverOf(s.fp, s.st.KeyID, s.obs.source.Material)
}

// recordHandoverOf records the handover of the key fp (masked, material).
func (s *phaseState) recordHandoverOf(fp, masked, material string) {
	k, st := s.k, s.st
	prevFP, prevMaterial := s.prev.TargetKeyFingerprint, s.prev.TargetCredentialsHash
	switch {
	case prevFP == fp && (prevMaterial == material || prevMaterial == ""):
		// Already handed over (an empty hash is a status written before the
		// hash was recorded). A write now can only be a repair.
		if s.obs.targetWritten {
			s.event(false, keyopsv1.EventSecretSynced, fmt.Sprintf("Secret %s restored to the key %s", k.TargetName(), masked))
		}
	case prevFP == fp:
		s.event(false, keyopsv1.EventSecretSynced, fmt.Sprintf("Secret %s updated: key %s has new secret material", k.TargetName(), masked))
	case prevFP == "":
		// The first key is what the user asked for: status (SecretSynced,
		// history) records it, and an Event per key would double the
		// writes of applying a fleet. Events are for what changes later.
		st.History = recordDecision(st.History, fp, keyopsv1.HistoryAccepted, "", s.now)
	default:
		st.History = recordDecision(st.History, fp, keyopsv1.HistoryAccepted, "", s.now)
		if k.Spec.Issue != nil {
			// An issued key replaced because the exchange no longer
			// accepted it: its entry says so, and why.
			if dead, _ := deadVerdict(&s.prev, prevFP, prevMaterial, s.obs.now); dead != "" {
				st.History = recordReplaced(st.History, prevFP, dead, s.now)
			}
		}
		if st.Rotation == nil {
			st.Rotation = &keyopsv1.RotationStatus{}
		}
		now := s.now
		st.Rotation.LastRotationTime = &now
		st.Rotation.RotatedFrom, st.Rotation.RotatedTo = maskedFor(st.History, prevFP), masked
		// The KeyRotated Event is announced from the persisted record
		// (phaseRotation), once, whatever happens after this write.
	}
}

// restartTargets decides whether the restart targets must be rolled for the
// material handed over, and records it once the rolls are done. Restart
// targets are read only when the material or spec.restartTargets changed
// since the last roll, not on every reconcile nor on other edits, and only once the debounce window
// after the handover has passed, so that keys changed together roll a
// shared workload once. It returns what to report about targets that
// failed or wait.
func (s *phaseState) restartTargets(material string) []string {
	k, st := s.k, s.st
	if len(k.Spec.RestartTargets) == 0 {
		st.RestartedFor, st.RestartedGeneration, st.RestartedTargetsHash, st.RestartPendingSince = "", 0, "", nil
		return nil
	}
	targets := jsonHash(k.Spec.RestartTargets)
	if st.RestartedFor == material && (st.RestartedTargetsHash == targets || st.RestartedTargetsHash == "" && st.RestartedGeneration == k.Generation) {
		// Nothing the targets depend on changed (an interval edit is a
		// new generation, not a reason to read them again).
		st.RestartedGeneration, st.RestartedTargetsHash, st.RestartPendingSince = k.Generation, targets, nil
		return nil
	}
	if st.RestartPendingSince == nil {
		now := s.now
		st.RestartPendingSince = &now
	}
	if wait := st.RestartPendingSince.Add(k.Spec.RestartDebounceOrDefault()).Sub(s.obs.now); wait > 0 {
		s.wake(wait)
		return nil
	}
	out := s.obs.restarts
	if out == nil {
		s.d.restart = true
		return nil
	}
	if len(out.failed) > 0 || len(out.deferred) > 0 {
		// Try again: a deferred restart once the window has passed, a failed
		// one (a conflict with another key's restart, a missing workload)
		// soon, and again at every later reconcile.
		s.wake(k.Spec.RestartDebounceOrDefault() + time.Second)
		return append(append([]string{}, out.failed...), out.deferred...)
	}
	now := s.now
	st.RestartedFor, st.RestartedGeneration, st.RestartedTargetsHash, st.RestartPendingSince, st.RestartedAt = material, k.Generation, targets, nil, &now
	return nil
}

// wake asks for a reconcile after d at the latest.
func (s *phaseState) wake(d time.Duration) {
	if s.extraWake == 0 || d < s.extraWake {
		s.extraWake = d
	}
}

func (s *phaseState) event(warning bool, reason, msg string) {
	s.d.events = append(s.d.events, event{Warning: warning, Reason: reason, Message: msg})
}

// phaseRotation sets the rotation schedule and RotationDue, and records a
// reminder delivered in this reconcile.
func phaseRotation(s *phaseState) bool {
	// (RotatedFrom is recorded with each rotation since announcements
	// exist: rotations recorded before an upgrade are not announced again.)
	if r := s.st.Rotation; r != nil && r.LastRotationTime != nil && r.RotatedFrom != "" && r.Announced != announceID(s.st) {
		s.d.announce = &announcement{
			id:      announceID(s.st),
			message: fmt.Sprintf("Secret %s now holds key %s (was %s)", s.k.TargetName(), r.RotatedTo, r.RotatedFrom),
		}
	}
	s.rot = decideRotation(s.k, s.st, s.obs.now)
	if s.obs.notified != "" && s.rot.notify == s.obs.notified {
		s.st.Rotation.NotifiedReason = s.obs.notified
		s.rot.notify = ""
	}
	s.d.events = append(s.d.events, s.rot.events...)
	s.d.notify = s.rot.notify
	return true
}

// phaseReadiness summarises the conditions in Ready, emits the transition
// Events and schedules the next wake-up.
func phaseReadiness(s *phaseState) bool {
	st := s.st
	reason, msg := readiness(s.k, *st, s.inGrace, s.rot.overdueEnforced)
	if s.noSource {
		reason, msg = s.obs.source.Reason, s.obs.source.Message
	} else if s.specViolation {
		// What the user must change is in the spec: that is the reason,
		// whatever the exchange says and whichever mode the key asks for.
		pc := s.cond(keyopsv1.ConditionPermissionsCompliant)
		reason, msg = pc.Reason, pc.Message
	}
	if reason == keyopsv1.ReasonReady {
		s.set(keyopsv1.ConditionReady, metav1.ConditionTrue, reason, msg)
	} else {
		s.set(keyopsv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	}
	s.d.events = append(transitionEvents(s.prev.Conditions, st.Conditions), s.d.events...)
	s.d.requeueAfter = nextWake(*st, s.rot.next, s.obs.now)
	if s.extraWake > 0 && (s.d.requeueAfter == 0 || s.extraWake < s.d.requeueAfter) {
		s.d.requeueAfter = s.extraWake
	}
	return true
}

// phaseIssue records the issuing step (spec.issue): the KeyIssued
// condition, the issued and previous keys as the issuance Secret knows them,
// and its Events and wake-up.
func phaseIssue(s *phaseState) bool {
	io := s.obs.issue
	if io == nil {
		meta.RemoveStatusCondition(&s.st.Conditions, keyopsv1.ConditionKeyIssued)
		s.st.Issued, s.st.PreviousKey = nil, nil
		return true
	}
	msg := io.message
	if msg == "" && io.issued != nil {
		msg = fmt.Sprintf("key %s (label %s) was created on sub-account %s", io.issued.KeyID, io.issued.Label, s.k.Spec.Issue.SubAccount)
		switch {
		case io.previous != nil && io.previousDead:
			msg += fmt.Sprintf("; it replaces key %s, which the exchange no longer accepts and which is deleted now", io.previous.KeyID)
		case io.previous != nil:
			msg += fmt.Sprintf("; the previous key %s is deleted after the overlap", io.previous.KeyID)
		}
	}
	if msg == "" {
		msg = "no key has been created yet"
	}
	s.set(keyopsv1.ConditionKeyIssued, io.status, io.reason, msg)
	s.st.Issued, s.st.PreviousKey, s.st.RotateRequest = io.issued, io.previous, io.rotate
	if io.wake > 0 {
		s.wake(io.wake)
	}
	return true
}

// announcement is a KeyRotated Event owed for a recorded rotation.
type announcement struct {
	// id names the rotation: its time and the keys it swapped, so that a
	// key rotated back in later is announced again.
	id      string
	message string
}

// announceID identifies the last rotation in status.
func announceID(st *keyopsv1.ExchangeAPIKeyStatus) string {
	if st.Rotation == nil || st.Rotation.LastRotationTime == nil {
		return ""
	}
	r := st.Rotation
	return fmt.Sprintf("%d.%s", r.LastRotationTime.Unix(), keyid.Short(keyid.Fingerprint(r.RotatedFrom+">"+r.RotatedTo)))
}
