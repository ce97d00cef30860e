package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

// Backoff bounds for transient probe failures.
const (
	minBackoff     = 30 * time.Second
	jitterFraction = 0.1
	historyLimit   = 10
)

// observation is everything one reconcile read, before any decision.
type observation struct {
	now    time.Time
	source sourceResult
	target targetObservation
	// probe is the exchange's answer when a probe was due, else nil.
	probe *probecache.Result
	// endpointErr: the manager's endpoint policy refuses spec.endpoint;
	// nothing is sent to it.
	endpointErr error
	// jitter in [-1, 1] spreads revalidations of keys created together.
	jitter float64
}

// targetObservation is the target Secret as found.
type targetObservation struct {
	exists bool
	// conflict is set when a Secret this object does not own has the name.
	conflict string
	// fingerprint of the key it holds, from its annotation.
	fingerprint string
	// material is the credentials hash of what it holds.
	material string
}

// event is a Kubernetes Event to emit. Messages never carry key material.
type event struct {
	warning bool
	reason  string
	message string
}

// decision is what the reconciler must do.
type decision struct {
	status keyopsv1.ExchangeAPIKeyStatus
	// syncTarget: the target Secret must hold the current source key.
	syncTarget bool
	events     []event
	// requeueAfter is when something is next due (0: nothing scheduled).
	requeueAfter time.Duration
	// notify is the rotation reminder owed to the webhook, if any.
	notify string
}

// probeDue says whether this reconcile must ask the exchange, and whether
// the shared result cache must be bypassed (an explicit revalidate request).
func probeDue(k *keyopsv1.ExchangeAPIKey, src sourceResult, endpointRefused bool, now time.Time) (due, force bool) {
	st := &k.Status
	if k.Spec.Suspend || endpointRefused || !src.ok() || k.Spec.Validation.ModeOrDefault() == keyopsv1.ValidationDisabled {
		return false, false
	}
	if v := k.Annotations[keyopsv1.AnnotationRevalidate]; v != "" && v != st.RevalidateRequest {
		return true, true
	}
	switch {
	case st.KeyFingerprint != src.fingerprint, st.CredentialsHash != src.material, st.ObservedGeneration != k.Generation,
		st.NextValidationTime == nil, !now.Before(st.NextValidationTime.Time):
		return true, false
	}
	return false, false
}

// decide turns an observation into the desired status, the target action
// and the events. It is pure: everything time- or world-dependent is in obs.
func decide(k *keyopsv1.ExchangeAPIKey, obs observation) decision {
	prev := k.Status
	st := *k.Status.DeepCopy()
	d := decision{}
	gen := k.Generation
	now := metav1.NewTime(obs.now)
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	mode := k.Spec.Validation.ModeOrDefault()
	interval := k.Spec.Validation.IntervalOrDefault()
	st.ObservedGeneration = gen
	st.TargetSecretName = k.TargetName()

	if k.Spec.Suspend {
		set(keyopsv1.ConditionReady, metav1.ConditionFalse, keyopsv1.ReasonSuspended, "spec.suspend is true: no writes and no exchange calls until it is cleared")
		d.status = st
		return d
	}

	src := obs.source
	if !src.ok() {
		set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, src.reason, src.message+"; the target Secret is left as it was")
		if meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionKeyValid) == nil {
			set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationPending, "no usable key material in the source Secret")
		}
		set(keyopsv1.ConditionReady, metav1.ConditionFalse, src.reason, src.message)
		d.status = st
		return d
	}

	fp := src.fingerprint
	newKey := prev.KeyFingerprint != fp
	st.KeyID = keyid.Mask(src.creds.APIKey)
	st.KeyFingerprint = fp
	if newKey {
		st.History = recordSeen(st.History, st.KeyID, fp, now)
	}

	// Validation: what the exchange says about the current key.
	switch {
	case obs.endpointErr != nil:
		set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonEndpointNotAllowed, obs.endpointErr.Error())
	case mode == keyopsv1.ValidationDisabled:
		set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationDisabled, "spec.validation.mode is Disabled: the key is not checked with the exchange")
		st.NextValidationTime, st.FailingSince, st.TransientFailures = nil, nil, 0
	case obs.probe != nil:
		applyProbe(k, &st, obs, interval, set)
		if v := k.Annotations[keyopsv1.AnnotationRevalidate]; v != "" {
			st.RevalidateRequest = v
		}
	case newKey:
		set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationPending, "waiting for the exchange to answer")
	}

	keyValid := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionKeyValid)
	inGrace := keyValid != nil && keyValid.Status == metav1.ConditionUnknown && isTransientReason(keyValid.Reason) &&
		st.VerifiedFingerprint == fp && st.FailingSince != nil && obs.now.Sub(st.FailingSince.Time) <= interval
	// Grace keeps what the target already holds; material that never
	// verified gets none.
	inGrace = inGrace && obs.target.material == src.material
	usable := keyValid != nil && (keyValid.Status == metav1.ConditionTrue && st.CredentialsHash == src.material || inGrace)

	// Policy.
	compliant := false
	switch {
	case mode == keyopsv1.ValidationDisabled || obs.endpointErr != nil:
		set(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionUnknown, keyValid.Reason, "permissions are not checked: "+keyValid.Message)
	case st.VerifiedFingerprint == fp && st.Permissions != nil && usable:
		reason, msg := evaluatePolicy(k.Spec.Permissions, st.Permissions)
		compliant = reason == keyopsv1.ReasonCompliant
		status := metav1.ConditionFalse
		if compliant {
			status = metav1.ConditionTrue
		}
		set(keyopsv1.ConditionPermissionsCompliant, status, reason, msg)
	default:
		set(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionUnknown, keyopsv1.ReasonPermissionsUnknown, "the key's permissions are known once it verifies")
	}

	approved := mode != keyopsv1.ValidationEnforce || (usable && compliant && st.VerifiedFingerprint == fp)
	if obs.endpointErr != nil && mode == keyopsv1.ValidationEnforce {
		approved = false
	}

	// The target Secret.
	target := obs.target
	switch {
	case target.conflict != "":
		set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonSecretConflict, target.conflict)
		st.TargetKeyFingerprint = ""
	case approved:
		d.syncTarget = true
		st.TargetKeyFingerprint = fp
		set(keyopsv1.ConditionSecretSynced, metav1.ConditionTrue, keyopsv1.ReasonSynced,
			fmt.Sprintf("Secret %s holds key %s", k.TargetName(), st.KeyID))
		switch {
		case target.material == src.material:
		case target.exists && target.fingerprint == fp:
			d.events = append(d.events, event{reason: "SecretSynced", message: fmt.Sprintf("Secret %s updated: key %s has new secret material", k.TargetName(), st.KeyID)})
		default:
			st.History = recordDecision(st.History, fp, "Accepted", "", now)
			if target.exists && target.fingerprint != "" {
				if st.Rotation == nil {
					st.Rotation = &keyopsv1.RotationStatus{}
				}
				st.Rotation.LastRotationTime = &now
				d.events = append(d.events, event{reason: "KeyRotated",
					message: fmt.Sprintf("Secret %s now holds key %s (was %s)", k.TargetName(), st.KeyID, maskedFor(st.History, target.fingerprint))})
			} else {
				d.events = append(d.events, event{reason: "SecretSynced", message: fmt.Sprintf("Secret %s created with key %s", k.TargetName(), st.KeyID)})
			}
		}
	default:
		why := blockingReason(st.Conditions)
		if rejected(why) {
			st.History = recordDecision(st.History, fp, "Rejected", why, now)
		}
		st.TargetKeyFingerprint = target.fingerprint
		switch {
		case target.exists && target.material == src.material:
			// A verified key that went bad stays in place: the bots fail
			// either way, and deleting would lose the audit trail.
			set(keyopsv1.ConditionSecretSynced, metav1.ConditionTrue, keyopsv1.ReasonSynced,
				fmt.Sprintf("Secret %s holds key %s, which no longer validates (%s); it is kept", k.TargetName(), st.KeyID, why))
		case target.exists:
			set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonPreviousKeyKept,
				fmt.Sprintf("new key %s is not accepted (%s); Secret %s keeps the previous key %s", st.KeyID, why, k.TargetName(), maskedFor(st.History, target.fingerprint)))
		default:
			set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonAwaitingValidation,
				fmt.Sprintf("Secret %s is created once key %s verifies and complies (%s)", k.TargetName(), st.KeyID, why))
		}
	}

	// Rotation schedule (RotationDue).
	rot := decideRotation(k, &st, obs.now)
	d.events = append(d.events, rot.events...)
	d.notify = rot.notify

	// Ready summarises.
	reason, msg := readiness(k, st, inGrace, rot.overdueEnforced)
	if reason == keyopsv1.ReasonReady {
		set(keyopsv1.ConditionReady, metav1.ConditionTrue, reason, msg)
	} else {
		set(keyopsv1.ConditionReady, metav1.ConditionFalse, reason, msg)
	}

	d.events = append(transitionEvents(prev.Conditions, st.Conditions, st.KeyID), d.events...)
	d.requeueAfter = nextWake(st, rot.next, obs.now)
	d.status = st
	return d
}

// applyProbe records the exchange's answer.
func applyProbe(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, obs observation, interval time.Duration, set func(string, metav1.ConditionStatus, string, string)) {
	res := obs.probe
	fp := obs.source.fingerprint
	st.CredentialsHash = obs.source.material
	at := metav1.NewTime(res.At)
	next := func(d time.Duration) *metav1.Time {
		t := metav1.NewTime(obs.now.Add(d))
		return &t
	}
	regular := time.Duration(float64(interval) * (1 + jitterFraction*obs.jitter))
	perms := res.Permissions
	if e, ok := exchange.AsError(res.Err); ok && e.Kind == exchange.PermissionDenied {
		// The key and its signature are good, but it may not even read:
		// exchanges without a permissions endpoint answer only this. The
		// policy then reports read as missing; nothing else is known.
		perms = &exchange.Permissions{Canonical: []string{}}
		for _, c := range exchange.CanonicalPermissions {
			if c != exchange.PermRead {
				perms.Unchecked = append(perms.Unchecked, c)
			}
		}
	} else if res.Err != nil {
		perms = nil
	}
	if perms != nil {
		p := perms
		st.VerifiedFingerprint = fp
		st.LastValidationTime = &at
		st.Permissions = permissionsStatus(p)
		st.NonceUnit = keyopsv1.NonceUnit(p.NonceUnit)
		st.KeyCreatedAt = timePtr(p.CreatedAt)
		st.KeyExpiresAt = timePtr(p.ExpiresAt)
		st.TransientFailures, st.FailingSince = 0, nil
		st.NextValidationTime = next(regular)
		msg := fmt.Sprintf("%s accepted key %s", k.Spec.Exchange, st.KeyID)
		if len(p.Unchecked) > 0 {
			msg += fmt.Sprintf("; it cannot report %s", strings.Join(p.Unchecked, ","))
		}
		set(keyopsv1.ConditionKeyValid, metav1.ConditionTrue, keyopsv1.ReasonVerified, msg)
		return
	}
	e, _ := exchange.AsError(res.Err)
	if e == nil {
		e = &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: exchange.Name(k.Spec.Exchange), Message: "unclassified error"}
	}
	if e.Kind.Transient() {
		st.TransientFailures++
		if st.FailingSince == nil {
			st.FailingSince = &metav1.Time{Time: obs.now}
		}
		wait := backoff(st.TransientFailures, interval)
		if e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		st.NextValidationTime = next(wait)
		reason := map[exchange.Kind]string{exchange.RateLimited: keyopsv1.ReasonRateLimited, exchange.Unavailable: keyopsv1.ReasonExchangeUnavailable, exchange.NonceConflict: keyopsv1.ReasonNonceConflict}[e.Kind]
		if reason == "" {
			reason = keyopsv1.ReasonUnexpectedResponse
		}
		msg := fmt.Sprintf("%s; retrying in %s", e.Error(), wait.Round(time.Second))
		if e.Kind == exchange.NonceConflict {
			msg = fmt.Sprintf("%s refused the probe's nonce in milliseconds and in microseconds: another client of key %s sends nonces larger than the microsecond clock (nanoseconds?), so the operator cannot call the exchange without breaking it; give the bot and the operator separate keys, or switch the bot to millisecond nonces (ccxt's default); retrying in %s", k.Spec.Exchange, st.KeyID, wait.Round(time.Second))
		}
		if st.VerifiedFingerprint == fp && st.LastValidationTime != nil {
			msg += fmt.Sprintf(" (last verified %s)", st.LastValidationTime.UTC().Format(time.RFC3339))
		}
		set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, reason, msg)
		return
	}
	// The exchange gave a definite answer about the key.
	st.LastValidationTime = &at
	st.TransientFailures, st.FailingSince = 0, nil
	st.NextValidationTime = next(regular)
	reason, msg := definiteReason(k, st, e, fp)
	if st.VerifiedFingerprint == fp && reason != keyopsv1.ReasonRevoked {
		// The verified permissions are no longer trustworthy for this key.
		st.VerifiedFingerprint = ""
	}
	if st.VerifiedFingerprint != fp {
		st.Permissions = nil
	}
	set(keyopsv1.ConditionKeyValid, metav1.ConditionFalse, reason, msg)
}

// definiteReason maps a non-transient probe error to a KeyValid reason and a
// message that says how to fix it.
func definiteReason(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, e *exchange.Error, fp string) (string, string) {
	ex := k.Spec.Exchange
	switch e.Kind {
	case exchange.InvalidKey:
		if st.VerifiedFingerprint == fp {
			return keyopsv1.ReasonRevoked, fmt.Sprintf("%s no longer knows key %s, which verified before: it was revoked or deleted; create a new key and update Secret %s", ex, st.KeyID, k.Spec.CredentialsSecretRef.Name)
		}
		return keyopsv1.ReasonInvalidKey, fmt.Sprintf("%s does not know key %s (%s): check that the key was copied whole and belongs to this exchange and environment", ex, st.KeyID, e.Error())
	case exchange.InvalidSignature:
		return keyopsv1.ReasonInvalidSignature, fmt.Sprintf("%s rejected the signature made with key %s's secret: the secret in Secret %s does not belong to this key", ex, st.KeyID, k.Spec.CredentialsSecretRef.Name)
	case exchange.WrongPassphrase:
		return keyopsv1.ReasonWrongPassphrase, fmt.Sprintf("%s rejected the passphrase of key %s: check Secret %s", ex, st.KeyID, k.Spec.CredentialsSecretRef.Name)
	case exchange.Inactive:
		return keyopsv1.ReasonInactive, fmt.Sprintf("key %s exists on %s but is not active (not activated, frozen or expired): %s", st.KeyID, ex, e.Error())
	case exchange.IPNotAllowed:
		return keyopsv1.ReasonIPNotAllowed, fmt.Sprintf("the operator's egress IP is not on key %s's IP allowlist on %s: add the egress IP to the key's allowlist, or route the operator through a proxy with an allowlisted static IP (HTTPS_PROXY)", st.KeyID, ex)
	case exchange.KeyOrIPRejected:
		saw := ""
		if e.IP != "" {
			saw = fmt.Sprintf(" (%s saw the request come from %s)", ex, e.IP)
		}
		return keyopsv1.ReasonKeyOrIPRejected, fmt.Sprintf("%s rejected key %s with one answer for two causes%s: either the key is unknown (deleted, revoked, mistyped, or from another environment), or the operator's egress IP is not on its allowlist; check the key on the exchange and its allowlist", ex, st.KeyID, saw)
	case exchange.ClockSkew:
		return keyopsv1.ReasonClockSkew, fmt.Sprintf("%s rejected the request's timestamp or nonce even after resynchronising with its clock: check the node's time (NTP)", ex)
	}
	return keyopsv1.ReasonUnexpectedResponse, e.Error()
}

// evaluatePolicy checks reported permissions against the policy.
// Permissions the exchange cannot report are named in the message, not
// guessed either way.
func evaluatePolicy(pol keyopsv1.PermissionPolicy, p *keyopsv1.PermissionsStatus) (string, string) {
	has := map[string]bool{}
	for _, c := range p.Canonical {
		has[c] = true
	}
	unchecked := map[string]bool{}
	for _, c := range p.Unchecked {
		unchecked[c] = true
	}
	var forbidden, missing, notChecked []string
	for _, f := range pol.ForbiddenOrDefault() {
		if has[string(f)] {
			forbidden = append(forbidden, string(f))
		} else if unchecked[string(f)] {
			notChecked = append(notChecked, string(f))
		}
	}
	for _, r := range pol.RequiredOrDefault() {
		if !has[string(r)] {
			if unchecked[string(r)] {
				notChecked = append(notChecked, string(r))
			} else {
				missing = append(missing, string(r))
			}
		}
	}
	switch {
	case len(forbidden) > 0:
		return keyopsv1.ReasonForbiddenPermission, fmt.Sprintf("the key has forbidden permission(s) %s: remove them on the exchange or change spec.permissions.forbidden", strings.Join(forbidden, ","))
	case len(missing) > 0:
		return keyopsv1.ReasonMissingPermission, fmt.Sprintf("the key lacks required permission(s) %s: grant them on the exchange or change spec.permissions.required", strings.Join(missing, ","))
	case pol.RequireIPRestriction && p.IPRestriction == keyopsv1.IPRestrictionFalse:
		return keyopsv1.ReasonIPRestrictionMissing, "the key works from any IP, and spec.permissions.requireIPRestriction is true: bind it to the operator's and bots' egress IPs"
	case pol.RequireIPRestriction && p.IPRestriction != keyopsv1.IPRestrictionTrue:
		return keyopsv1.ReasonIPRestrictionUnverifiable, "spec.permissions.requireIPRestriction is true, but this exchange does not report whether a key has an IP allowlist, so the operator cannot verify it: bind the key to your egress IPs on the exchange and set requireIPRestriction to false for this key"
	}
	msg := "permissions " + p.Summary + " meet the policy"
	if len(notChecked) > 0 {
		msg += "; the exchange cannot report " + strings.Join(notChecked, ",") + ", so they were not checked"
	}
	return keyopsv1.ReasonCompliant, msg
}

// readiness picks the most important failing reason, or Ready.
func readiness(k *keyopsv1.ExchangeAPIKey, st keyopsv1.ExchangeAPIKeyStatus, inGrace, overdueEnforced bool) (string, string) {
	get := func(t string) *metav1.Condition { return meta.FindStatusCondition(st.Conditions, t) }
	synced := get(keyopsv1.ConditionSecretSynced)
	kv := get(keyopsv1.ConditionKeyValid)
	pc := get(keyopsv1.ConditionPermissionsCompliant)
	if synced != nil && synced.Reason == keyopsv1.ReasonSecretConflict {
		return synced.Reason, synced.Message
	}
	if k.Spec.Validation.ModeOrDefault() != keyopsv1.ValidationDisabled {
		if kv != nil && kv.Status == metav1.ConditionFalse {
			return kv.Reason, kv.Message
		}
		if pc != nil && pc.Status == metav1.ConditionFalse {
			return pc.Reason, pc.Message
		}
		if kv != nil && kv.Status == metav1.ConditionUnknown && !inGrace {
			return kv.Reason, kv.Message
		}
	}
	if synced != nil && synced.Status != metav1.ConditionTrue {
		return synced.Reason, synced.Message
	}
	if st.TargetKeyFingerprint != st.KeyFingerprint {
		return keyopsv1.ReasonPreviousKeyKept, "the target Secret does not hold the current key"
	}
	if overdueEnforced {
		rd := get(keyopsv1.ConditionRotationDue)
		return keyopsv1.ReasonRotationOverdue, rd.Message
	}
	msg := fmt.Sprintf("Secret %s holds key %s", k.TargetName(), st.KeyID)
	if kv != nil && kv.Status == metav1.ConditionTrue && st.Permissions != nil {
		msg += ", verified with permissions " + st.Permissions.Summary
	}
	if inGrace {
		msg += fmt.Sprintf("; the exchange has not answered since %s (%s)", st.FailingSince.UTC().Format(time.RFC3339), kv.Reason)
	}
	return keyopsv1.ReasonReady, msg
}

// blockingReason is why a key is not approved, for messages and history.
func blockingReason(conds []metav1.Condition) string {
	for _, t := range []string{keyopsv1.ConditionKeyValid, keyopsv1.ConditionPermissionsCompliant} {
		if c := meta.FindStatusCondition(conds, t); c != nil && c.Status != metav1.ConditionTrue {
			return c.Reason
		}
	}
	return keyopsv1.ReasonValidationPending
}

// rejected says whether a reason is a final verdict on the key (as opposed
// to waiting for the exchange).
func rejected(reason string) bool {
	switch reason {
	case keyopsv1.ReasonValidationPending, keyopsv1.ReasonPermissionsUnknown, keyopsv1.ReasonInsecureEndpoint, keyopsv1.ReasonEndpointNotAllowed,
		keyopsv1.ReasonExchangeUnavailable, keyopsv1.ReasonRateLimited, keyopsv1.ReasonUnexpectedResponse:
		return false
	}
	return true
}

func isTransientReason(r string) bool {
	return r == keyopsv1.ReasonExchangeUnavailable || r == keyopsv1.ReasonRateLimited || r == keyopsv1.ReasonUnexpectedResponse
}

// backoff doubles from 30 s per consecutive failure, capped at the interval.
func backoff(failures int32, interval time.Duration) time.Duration {
	d := minBackoff
	for i := int32(1); i < failures && d < interval; i++ {
		d *= 2
	}
	if d > interval {
		d = interval
	}
	return d
}

// transitionEvents emits Events only when a condition's reason changes.
func transitionEvents(before, after []metav1.Condition, masked string) []event {
	var out []event
	changed := func(t string) (*metav1.Condition, bool) {
		a := meta.FindStatusCondition(after, t)
		b := meta.FindStatusCondition(before, t)
		if a == nil {
			return nil, false
		}
		return a, b == nil || b.Reason != a.Reason || b.Status != a.Status
	}
	if c, ok := changed(keyopsv1.ConditionKeyValid); ok {
		switch {
		case c.Status == metav1.ConditionTrue:
			out = append(out, event{reason: "Verified", message: c.Message})
		case c.Status == metav1.ConditionFalse:
			out = append(out, event{warning: true, reason: c.Reason, message: c.Message})
		}
	}
	if c, ok := changed(keyopsv1.ConditionPermissionsCompliant); ok && c.Status == metav1.ConditionFalse {
		out = append(out, event{warning: true, reason: "PermissionViolation", message: c.Message})
	}
	return out
}

// nextWake is the earliest of the next validation and rotation boundary.
func nextWake(st keyopsv1.ExchangeAPIKeyStatus, rotationNext *time.Time, now time.Time) time.Duration {
	var wake time.Duration
	consider := func(t time.Time) {
		d := t.Sub(now)
		if d <= 0 {
			d = time.Second
		}
		if wake == 0 || d < wake {
			wake = d
		}
	}
	if st.NextValidationTime != nil {
		consider(st.NextValidationTime.Time)
	}
	if rotationNext != nil {
		consider(*rotationNext)
	}
	return wake
}

func permissionsStatus(p *exchange.Permissions) *keyopsv1.PermissionsStatus {
	s := &keyopsv1.PermissionsStatus{
		Canonical:     append([]string(nil), p.Canonical...),
		Native:        append([]string(nil), p.Native...),
		Unchecked:     append([]string(nil), p.Unchecked...),
		IPRestriction: keyopsv1.IPRestriction(p.IPRestriction),
		AllowedIPs:    append([]string(nil), p.AllowedIPs...),
		Summary:       strings.Join(p.Canonical, ","),
	}
	if s.Summary == "" {
		s.Summary = "none"
	}
	if s.IPRestriction == "" {
		s.IPRestriction = keyopsv1.IPRestrictionUnknown
	}
	for _, g := range p.Grants {
		s.Grants = append(s.Grants, keyopsv1.PermissionGrant{Native: g.Native, Canonical: append([]string{}, g.Canonical...)})
	}
	return s
}

func timePtr(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	m := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &m
}

// recordSeen adds a newly seen key to the history, newest first.
func recordSeen(h []keyopsv1.KeyHistoryEntry, masked, fp string, now metav1.Time) []keyopsv1.KeyHistoryEntry {
	for _, e := range h {
		if e.Fingerprint == fp && e.Outcome == "" {
			return h
		}
	}
	out := append([]keyopsv1.KeyHistoryEntry{{KeyID: masked, Fingerprint: fp, FirstSeen: now}}, h...)
	if len(out) > historyLimit {
		out = out[:historyLimit]
	}
	return out
}

// recordDecision marks the newest undecided entry for fp.
func recordDecision(h []keyopsv1.KeyHistoryEntry, fp, outcome, reason string, now metav1.Time) []keyopsv1.KeyHistoryEntry {
	for i := range h {
		if h[i].Fingerprint != fp {
			continue
		}
		if h[i].Outcome == outcome && h[i].Reason == reason {
			return h
		}
		if h[i].Outcome == "" || h[i].Outcome == "Rejected" {
			out := append([]keyopsv1.KeyHistoryEntry(nil), h...)
			out[i].Outcome, out[i].Reason = outcome, reason
			t := now
			out[i].DecidedAt = &t
			return out
		}
		return h
	}
	return h
}

// maskedFor finds the masked ID of a fingerprint in the history.
func maskedFor(h []keyopsv1.KeyHistoryEntry, fp string) string {
	for _, e := range h {
		if e.Fingerprint == fp {
			return e.KeyID
		}
	}
	return keyid.Short(fp)
}
