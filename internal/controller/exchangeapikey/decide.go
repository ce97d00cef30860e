package exchangeapikey

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/permissionpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

// Backoff bounds for transient probe failures.
const (
	historyLimit = 10
)

// confirmDelay is how long after an ambiguous answer (one the exchange also
// gives to valid keys) the confirming probe goes out, spread by
// confirmJitter (2 to 6 s): long enough for a spurious answer to pass,
// short enough that a verdict is not an interval late.
const (
	confirmDelay  = 4 * time.Second
	confirmJitter = 0.5
)

// observation is everything one reconcile read, before any decision.
type observation struct {
	now    time.Time
	source shared.Source
	target targetObservation
	// probe is the exchange's answer when a probe was due, else nil.
	probe *probecache.Result
	// endpointErr: the manager refuses spec.endpoint (not an official host
	// of the exchange, nor allowed by the administrator); no request is made.
	endpointErr error
	// jitter in [-1, 1] spreads revalidations of keys created together.
	jitter float64
	// issue is what the issuing step found and did (spec.issue only).
	issue *issueObservation
	// policies are the ClusterExchangeKeyPolicies, and nsLabels the labels
	// of the key's namespace they select by.
	policies []keyopsv1.ClusterExchangeKeyPolicy
	nsLabels map[string]string

	// Outcomes of this reconcile's own actions, fed back for a final
	// decision: the target Secret was written (created, updated, repaired),
	// restart targets were processed, a reminder was delivered.
	targetWritten bool
	restarts      *restartOutcome
	notified      string
	// minted and mintErr are the outcome of a token mint (spec.token).
	minted  *exchange.Token
	mintErr error
}

// restartOutcome is what restarting the restart targets found.
type restartOutcome struct {
	// failed lists targets that could not be restarted, with why.
	failed []string
	// deferred lists workloads whose restart waits for other keys of the
	// same workload that are still being validated.
	deferred []string
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
	// token is the token it holds (spec.token).
	token heldToken
}

// event is an Event a decision asks for.
type event = shared.Event

// decision is what the reconciler must do.
type decision struct {
	status keyopsv1.ExchangeAPIKeyStatus
	// syncTarget: the target Secret must hold the current source key.
	syncTarget bool
	// restart: the restart targets must be rolled for the current material.
	restart bool
	events  []event
	// requeueAfter is when something is next due (0: nothing scheduled).
	requeueAfter time.Duration
	// notify is the rotation reminder owed to the webhook, if any.
	notify string
	// announce is the KeyRotated Event owed for the last recorded rotation.
	announce *announcement
	// mintToken: a token is due (spec.token); token is the one the target
	// Secret must hold.
	mintToken bool
	token     *heldToken
}

// probeDue says whether this reconcile must ask the exchange, and whether
// the shared result cache must be bypassed (an explicit revalidate request).
func probeDue(k *keyopsv1.ExchangeAPIKey, src shared.Source, endpointErr error, mode keyopsv1.ValidationMode, now time.Time) (due, force bool) {
	st := &k.Status
	if k.Spec.Suspend || endpointErr != nil || !src.OK() || mode == keyopsv1.ValidationDisabled {
		return false, false
	}
	if v := k.Annotations[keyopsv1.AnnotationRevalidate]; v != "" && v != st.RevalidateRequest {
		return true, true
	}
	switch {
	case st.KeyFingerprint != src.Fingerprint, st.CredentialsHash != src.Material, verdictSpecChanged(k),
		st.NextValidationTime == nil, !now.Before(st.NextValidationTime.Time):
		return true, false
	case keyValidReason(st) == keyopsv1.ReasonEndpointNotAllowed:
		// The manager refused the endpoint before, and admits it now (the
		// administrator's remedy, then a restart): the validation it held
		// back is due, not the next scheduled one.
		return true, false
	}
	return false, false
}

func keyValidReason(st *keyopsv1.ExchangeAPIKeyStatus) string {
	if c := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionKeyValid); c != nil {
		return c.Reason
	}
	return ""
}

// decide turns an observation into the desired status, the actions and the
// events. It is pure: everything time- or world-dependent is in obs, and the
// outcomes of earlier actions of the same reconcile (a conflict found on
// write, restarts done, a reminder delivered) come back as observations, so
// that every piece of bookkeeping is derived from what was observed or
// persisted, never patched in afterwards.
//
// It runs small phases in order, cert-manager style; each may stop the chain.
func decide(k *keyopsv1.ExchangeAPIKey, obs observation) decision {
	s := newPhaseState(k, obs)
	for _, phase := range []func(*phaseState) bool{
		phaseIssue, phaseSource, phaseValidation, phaseSchedule, phasePolicy, phaseTarget, phaseRotation, phaseReadiness,
	} {
		if !phase(s) {
			break
		}
	}
	s.d.status = *s.st
	return s.d
}

// phaseState is what the phases share: the input, the status being built,
// and the verdicts of earlier phases.
type phaseState struct {
	k        *keyopsv1.ExchangeAPIKey
	obs      observation
	prev     keyopsv1.ExchangeAPIKeyStatus
	st       *keyopsv1.ExchangeAPIKeyStatus
	d        decision
	now      metav1.Time
	mode     keyopsv1.ValidationMode
	interval time.Duration

	// noSource: the source Secret gave no usable material; only the
	// rotation schedule of the key the target holds goes on.
	noSource bool
	// fp is the current source key's fingerprint; newKey: status did not
	// know it yet.
	fp     string
	newKey bool
	// inGrace: transient exchange failures of a verified key that the
	// target already holds, not yet older than one interval.
	inGrace bool
	// usable: verified (or in grace) for the current material.
	usable    bool
	compliant bool
	// specViolation: the policy floor is broken by the spec alone (a mode
	// or exchange the policy does not allow), whatever the exchange says.
	specViolation bool
	// approved: the target may hold the current material.
	approved bool
	rot      rotationDecision
	// extraWake is a requeue owed to something other than validation and
	// rotation (a restart waiting for its debounce window).
	extraWake time.Duration
}

func newPhaseState(k *keyopsv1.ExchangeAPIKey, obs observation) *phaseState {
	s := &phaseState{
		k: k, obs: obs, prev: k.Status, st: k.Status.DeepCopy(),
		now: metav1.NewTime(obs.now), mode: effectiveMode(k, obs.policies, obs.nsLabels), interval: clusterpolicy.ValidationInterval(obs.policies, obs.nsLabels, k),
	}
	s.st.ObservedGeneration = k.Generation
	s.st.TargetSecretName = k.TargetName()
	return s
}

func (s *phaseState) set(typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: s.k.Generation})
}

func (s *phaseState) cond(typ string) *metav1.Condition {
	return meta.FindStatusCondition(s.st.Conditions, typ)
}

// phaseSource stops the chain when suspended. When the source Secret gave no
// usable material, the target is left as it was and only the rotation
// schedule goes on: reminders are owed for the key the bots hold, whatever
// happened to the source.
func phaseSource(s *phaseState) bool {
	if s.k.Spec.Suspend {
		s.set(keyopsv1.ConditionReady, metav1.ConditionFalse, keyopsv1.ReasonSuspended, "spec.suspend is true: no writes and no exchange calls until it is cleared")
		return false
	}
	src := s.obs.source
	if !src.OK() {
		s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, src.Reason, src.Message+"; the target Secret is left as it was")
		if s.cond(keyopsv1.ConditionKeyValid) == nil {
			s.set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationPending, "no usable key material in the source Secret")
		}
		// No probe can be made until the source changes, and its watch
		// brings the key back then: nothing is scheduled meanwhile.
		s.st.NextValidationTime = nil
		s.noSource = true
		return true
	}
	s.fp = src.Fingerprint
	s.newKey = s.prev.KeyFingerprint != s.fp
	s.st.KeyID = keyid.Mask(src.Creds.APIKey)
	s.st.KeyFingerprint = s.fp
	if s.newKey {
		s.st.History = recordSeen(s.st.History, s.st.KeyID, s.fp, s.now)
	}
	return true
}

// phaseValidation sets KeyValid from the exchange's answer, if one was due.
func phaseValidation(s *phaseState) bool {
	if s.noSource {
		return true
	}
	k, st, obs := s.k, s.st, s.obs
	switch {
	case obs.endpointErr != nil:
		s.set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonEndpointNotAllowed, obs.endpointErr.Error())
	case s.mode == keyopsv1.ValidationDisabled:
		s.set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationDisabled, "spec.validation.mode is Disabled: the key is not checked with the exchange")
		st.NextValidationTime, st.FailingSince, st.TransientFailures, st.UnconfirmedAnswer = nil, nil, 0, nil
	case obs.probe != nil:
		if !s.holdUnconfirmed() {
			applyProbe(k, st, obs, s.interval, s.set)
		}
		if nonceUnitUndeclared(k) {
			s.d.events = append(s.d.events, event{Warning: true, Reason: keyopsv1.EventNonceUnitUndeclared, Message: nonceUpgradeHint})
		}
		if v := k.Annotations[keyopsv1.AnnotationRevalidate]; v != "" {
			st.RevalidateRequest = v
		}
	case s.newKey:
		s.set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationPending, "waiting for the exchange to answer")
	}
	kv := s.cond(keyopsv1.ConditionKeyValid)
	material := obs.source.Material
	if obs.issue != nil {
		// A new verdict that the exchange no longer accepts the issued key:
		// the issuing step, which decides on the persisted status, replaces
		// it (deadVerdict). The status write triggers no reconcile: ask for
		// one.
		if now, _ := deadVerdict(st, s.fp, material, obs.now); now != "" {
			if before, _ := deadVerdict(&s.prev, s.fp, material, obs.now); before == "" {
				s.wake(time.Second)
			}
		}
	}
	s.inGrace = kv != nil && kv.Status == metav1.ConditionUnknown && isTransientReason(kv.Reason) &&
		st.VerifiedFingerprint == s.fp && st.FailingSince != nil && obs.now.Sub(st.FailingSince.Time) <= s.interval &&
		// Grace keeps what the target already holds; material that never
		// verified gets none.
		obs.target.material == material
	s.usable = kv != nil && (kv.Status == metav1.ConditionTrue && st.CredentialsHash == material || s.inGrace)
	return true
}

// phasePolicy sets PermissionsCompliant.
func phasePolicy(s *phaseState) bool {
	if s.noSource {
		return true
	}
	st := s.st
	kv := s.cond(keyopsv1.ConditionKeyValid)
	switch {
	case s.mode == keyopsv1.ValidationDisabled || s.obs.endpointErr != nil:
		s.set(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionUnknown, kv.Reason, "permissions are not checked: "+kv.Message)
	case st.VerifiedFingerprint == s.fp && st.Permissions != nil && s.usable:
		reason, msg := evaluatePolicy(s.k.Spec.Permissions, st.Permissions)
		s.compliant = reason == keyopsv1.ReasonCompliant
		status := metav1.ConditionFalse
		if s.compliant {
			status = metav1.ConditionTrue
		}
		s.set(keyopsv1.ConditionPermissionsCompliant, status, reason, msg)
	default:
		s.set(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionUnknown, keyopsv1.ReasonPermissionsUnknown, "the key's permissions are known once it verifies")
	}
	// The cluster's policy floor, which the key cannot relax: checked
	// against what the key is verified to hold, and its spec.
	var perms *keyopsv1.PermissionsStatus
	if st.VerifiedFingerprint == s.fp && s.usable {
		perms = st.Permissions
	}
	if vs := clusterpolicy.Evaluate(s.obs.policies, s.obs.nsLabels, s.k, perms); len(vs) > 0 {
		s.compliant = false
		s.set(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionFalse, keyopsv1.ReasonPolicyViolation, clusterpolicy.Message(vs))
		s.specViolation = perms == nil || len(clusterpolicy.Evaluate(s.obs.policies, s.obs.nsLabels, s.k, nil)) > 0
	}
	s.approved = s.mode != keyopsv1.ValidationEnforce || (s.usable && s.compliant && st.VerifiedFingerprint == s.fp)
	if s.obs.endpointErr != nil && s.mode == keyopsv1.ValidationEnforce {
		s.approved = false
	}
	return true
}

// holdUnconfirmed keeps the previous verdict on a first ambiguous answer:
// one the exchange also gives to valid keys (exchange.Error.Ambiguous:
// Coinbase's bare 401, Binance -2015). It records the answer in
// status.unconfirmedAnswer, so that a restart does not forget it, and asks
// for a confirming probe after confirmDelay. It returns false when the
// answer is to be applied as it is: not ambiguous, the second ambiguous
// answer in a row for the same material (the verdict), or the verdict the
// key already has (no probe is spent confirming it again).
//
// A key that never verified gets the same rule: its KeyValid stays
// Unknown/ValidationPending until the confirming probe, a few seconds, so
// that a spurious answer is not reported (and recorded in the history) as
// a rejection of a freshly pasted key either.
func (s *phaseState) holdUnconfirmed() bool {
	k, st, obs := s.k, s.st, s.obs
	res, material := obs.probe, obs.source.Material
	e, _ := exchange.AsError(res.Err)
	if e == nil || !e.Ambiguous {
		return false
	}
	if p := st.UnconfirmedAnswer; p != nil && p.CredentialsHash == material {
		return false // confirmed
	}
	reason, _ := definiteReason(k, st, e, s.fp)
	kv := s.cond(keyopsv1.ConditionKeyValid)
	sameMaterial := st.CredentialsHash == material && kv != nil
	if sameMaterial && kv.Status == metav1.ConditionFalse && kv.Reason == reason {
		return false // already the verdict
	}
	wait := time.Duration(float64(confirmDelay) * (1 + confirmJitter*obs.jitter))
	next := metav1.NewTime(obs.now.Add(wait))
	st.NextValidationTime = &next
	st.UnconfirmedAnswer = &keyopsv1.UnconfirmedAnswer{
		Reason: reason, Message: e.Error(), CredentialsHash: material,
		ReceivedAt: metav1.NewTime(res.At.UTC().Truncate(time.Second)),
	}
	msg := fmt.Sprintf("%s gave an answer it also gives to valid keys (%s); key %s keeps its verdict until a second probe in %s confirms it", k.Spec.Exchange, e.Error(), st.KeyID, wait.Round(100*time.Millisecond))
	if !sameMaterial {
		// Nothing is known of this material yet: say what is awaited.
		st.CredentialsHash = material
		s.set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, keyopsv1.ReasonValidationPending, msg)
	}
	s.event(false, keyopsv1.EventAnswerUnconfirmed, msg)
	return true
}

// effectiveMode is the key's validation mode under the policy floor: a mode
// a selecting policy does not allow counts as Enforce, so that
// allowedValidationModes: [Enforce] is a hard floor, not a report.
func effectiveMode(k *keyopsv1.ExchangeAPIKey, policies []keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string) keyopsv1.ValidationMode {
	mode := k.Spec.Validation.ModeOrDefault()
	for _, v := range clusterpolicy.Evaluate(policies, nsLabels, k, nil) {
		if v.Rule == clusterpolicy.RuleAllowedValidationModes {
			return keyopsv1.ValidationEnforce
		}
	}
	return mode
}

// applyProbe records the exchange's answer: a key accepted (or one whose
// signature is good but may not even read), a transient failure that says
// nothing about the key, or a definite answer about it.
func applyProbe(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, obs observation, interval time.Duration, set func(string, metav1.ConditionStatus, string, string)) {
	res := obs.probe
	st.CredentialsHash = obs.source.Material
	regular := shared.Jittered(interval, obs.jitter)
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
	// A definite or good answer ends the wait for a confirmation; a
	// transient one says nothing about the key and leaves it pending.
	unconfirmed := st.UnconfirmedAnswer
	if unconfirmed != nil && unconfirmed.CredentialsHash != obs.source.Material {
		unconfirmed, st.UnconfirmedAnswer = nil, nil
	}
	if e, ok := exchange.AsError(res.Err); !ok || !e.Kind.Transient() {
		st.UnconfirmedAnswer = nil
	}
	if perms != nil {
		applyAccepted(k, st, obs, perms, regular, set)
		return
	}
	e, _ := exchange.AsError(res.Err)
	if e == nil {
		e = &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: exchange.Name(k.Spec.Exchange), Message: "unclassified error"}
	}
	if e.Kind.Transient() {
		applyTransient(k, st, obs, e, interval, set)
		return
	}
	applyDefinite(k, st, obs, e, unconfirmed, regular, set)
}

// probeNext is now+d as a status time.
func probeNext(obs observation, d time.Duration) *metav1.Time {
	t := metav1.NewTime(obs.now.Add(d))
	return &t
}

// applyAccepted records a key the exchange accepted, with what it reported
// of its permissions.
func applyAccepted(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, obs observation, p *exchange.Permissions, regular time.Duration, set func(string, metav1.ConditionStatus, string, string)) {
	at := metav1.NewTime(obs.probe.At)
	st.VerifiedFingerprint = obs.source.Fingerprint
	st.LastValidationTime = &at
	st.Permissions = permissionpolicy.Status(p)
	st.NonceUnit = keyopsv1.NonceUnit(p.NonceUnit)
	st.KeyCreatedAt = timePtr(p.CreatedAt)
	st.KeyExpiresAt = timePtr(p.ExpiresAt)
	st.TransientFailures, st.FailingSince = 0, nil
	st.NextValidationTime = probeNext(obs, regular)
	msg := fmt.Sprintf("%s accepted key %s", k.Spec.Exchange, st.KeyID)
	if len(p.Unchecked) > 0 {
		msg += fmt.Sprintf("; it cannot report %s", strings.Join(p.Unchecked, ","))
	}
	set(keyopsv1.ConditionKeyValid, metav1.ConditionTrue, keyopsv1.ReasonVerified, msg)
}

// applyTransient records a failure that says nothing about the key (rate
// limit, outage, nonce conflict, garbage): KeyValid Unknown, and the next
// probe after a backoff (or the exchange's Retry-After).
func applyTransient(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, obs observation, e *exchange.Error, interval time.Duration, set func(string, metav1.ConditionStatus, string, string)) {
	st.TransientFailures++
	if st.FailingSince == nil {
		st.FailingSince = &metav1.Time{Time: obs.now}
	}
	wait := shared.Backoff(st.TransientFailures, interval)
	if e.RetryAfter > wait {
		wait = e.RetryAfter
	}
	st.NextValidationTime = probeNext(obs, wait)
	reason := map[exchange.Kind]string{exchange.RateLimited: keyopsv1.ReasonRateLimited, exchange.Unavailable: keyopsv1.ReasonExchangeUnavailable, exchange.NonceConflict: keyopsv1.ReasonNonceConflict}[e.Kind]
	if reason == "" {
		reason = keyopsv1.ReasonUnexpectedResponse
	}
	msg := fmt.Sprintf("%s; retrying in %s", e.Error(), wait.Round(time.Second))
	if e.Kind == exchange.NonceConflict && !exchange.NoNonceSent(e) {
		msg = nonceConflictMessage(k, st.KeyID, wait)
	}
	if st.VerifiedFingerprint == obs.source.Fingerprint && st.LastValidationTime != nil {
		msg += fmt.Sprintf(" (last verified %s)", st.LastValidationTime.UTC().Format(time.RFC3339))
	}
	set(keyopsv1.ConditionKeyValid, metav1.ConditionUnknown, reason, msg)
}

// applyDefinite records a definite answer about the key (invalid, revoked,
// expired, ...): KeyValid False, and the verified permissions dropped.
func applyDefinite(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, obs observation, e *exchange.Error, unconfirmed *keyopsv1.UnconfirmedAnswer, regular time.Duration, set func(string, metav1.ConditionStatus, string, string)) {
	fp := obs.source.Fingerprint
	at := metav1.NewTime(obs.probe.At)
	st.LastValidationTime = &at
	st.TransientFailures, st.FailingSince = 0, nil
	st.NextValidationTime = probeNext(obs, regular)
	reason, msg := definiteReason(k, st, e, fp)
	if e.Ambiguous && unconfirmed != nil {
		msg += fmt.Sprintf(" (the same kind of answer twice, %s apart)", obs.probe.At.Sub(unconfirmed.ReceivedAt.Time).Round(time.Second))
	}
	if st.VerifiedFingerprint == fp && reason != keyopsv1.ReasonRevoked {
		// The verified permissions are no longer trustworthy for this key.
		st.VerifiedFingerprint = ""
	}
	if st.VerifiedFingerprint != fp {
		st.Permissions = nil
	}
	set(keyopsv1.ConditionKeyValid, metav1.ConditionFalse, reason, msg)
}

// nonceConflictMessage says why every nonce was refused and what resolves
// it. The operator sends nonces only in the declared unit, at most its
// clock, so another client of the key has sent a larger one: either its
// clock runs ahead, or it counts in a larger unit.
func nonceConflictMessage(k *keyopsv1.ExchangeAPIKey, keyID string, wait time.Duration) string {
	unit := k.Spec.Validation.NonceUnitOrDefault()
	msg := fmt.Sprintf("%s refused every nonce the operator sent for key %s in %s (its clock, never more): another client of the key has sent a larger nonce. "+
		"Either that client's clock runs ahead of the operator's (sync the clocks, or give the bot and the operator separate keys), "+
		"or it counts in a larger unit: declare the unit its bots use in spec.validation.nonceUnit (Milliseconds for ccxt and freqtrade, Microseconds for Bitfinex's own SDKs). "+
		"No verdict on the key; the target Secret is left as it was", k.Spec.Exchange, keyID, unit)
	if nonceUnitUndeclared(k) {
		msg += ". " + nonceUpgradeHint
	}
	return fmt.Sprintf("%s; retrying in %s", msg, wait.Round(time.Second))
}

// nonceUpgradeHint explains a status.nonceUnit of Microseconds left by an
// earlier version, which switched units by itself after refused nonces.
const nonceUpgradeHint = "status.nonceUnit is Microseconds, chosen by an earlier version of the operator after refused nonces; this version probes only in the declared unit, " +
	"Milliseconds unless spec.validation.nonceUnit says otherwise. If the bots of this key count in microseconds, set spec.validation.nonceUnit: Microseconds. " +
	"If they count in milliseconds and the exchange now refuses them too, the earlier microsecond probes lifted the key's nonce floor above the millisecond clock: replace the key"

// nonceUnitUndeclared: status.nonceUnit says Microseconds (only an earlier
// version wrote that by itself) and the spec declares no unit.
func nonceUnitUndeclared(k *keyopsv1.ExchangeAPIKey) bool {
	return k.Status.NonceUnit == keyopsv1.NonceUnitMicroseconds && k.Spec.Validation.NonceUnit == "" &&
		exchange.CapabilitiesOf(exchange.Name(k.Spec.Exchange)).CounterNonce
}

// definiteReason maps a non-transient probe error to a KeyValid reason and a
// message that says how to fix it.
func definiteReason(k *keyopsv1.ExchangeAPIKey, st *keyopsv1.ExchangeAPIKeyStatus, e *exchange.Error, fp string) (string, string) {
	ex := k.Spec.Exchange
	switch e.Kind {
	case exchange.InvalidKey:
		if st.VerifiedFingerprint == fp {
			return keyopsv1.ReasonRevoked, fmt.Sprintf("%s no longer knows key %s, which verified before: it was revoked or deleted; %s", ex, st.KeyID, replaceKeyAdvice(k))
		}
		return keyopsv1.ReasonInvalidKey, fmt.Sprintf("%s does not know key %s (%s): check that the key was copied whole and belongs to this exchange and environment", ex, st.KeyID, e.Error())
	case exchange.InvalidSignature:
		return keyopsv1.ReasonInvalidSignature, fmt.Sprintf("%s rejected the signature made with key %s's secret: the secret in Secret %s does not belong to this key", ex, st.KeyID, sourceName(k))
	case exchange.WrongPassphrase:
		return keyopsv1.ReasonWrongPassphrase, fmt.Sprintf("%s rejected the passphrase of key %s: check Secret %s", ex, st.KeyID, sourceName(k))
	case exchange.Inactive:
		return keyopsv1.ReasonInactive, fmt.Sprintf("key %s exists on %s but is not active (not activated, frozen or expired): %s", st.KeyID, ex, e.Error())
	case exchange.IPNotAllowed:
		return keyopsv1.ReasonIPNotAllowed, fmt.Sprintf("the operator's egress IP is not on key %s's IP allowlist on %s: add the egress IP to the key's allowlist, or route the operator through a proxy with an allowlisted static IP (HTTPS_PROXY)", st.KeyID, ex)
	case exchange.KeyOrIPRejected:
		saw := ""
		if e.IP != "" {
			saw = fmt.Sprintf(" (%s saw the request come from %s)", ex, e.IP)
		}
		causes := exchange.KeyOrIPCauses(exchange.Name(ex))
		return keyopsv1.ReasonKeyOrIPRejected, fmt.Sprintf("%s rejected key %s with one answer for %d causes%s, which it does not tell apart: %s; check each (the key material is in Secret %s, and the operator's egress IP must be on the allowlist)",
			ex, st.KeyID, len(causes), saw, orList(causes), sourceName(k))
	case exchange.ClockSkew:
		return keyopsv1.ReasonClockSkew, fmt.Sprintf("%s rejected the request's timestamp or nonce even after resynchronising with its clock: check the node's time (NTP)", ex)
	}
	return keyopsv1.ReasonUnexpectedResponse, e.Error()
}

// orList joins "a", "b" and "c" as "either a, b, or c".
func orList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	case 2:
		return "either " + items[0] + ", or " + items[1]
	}
	return "either " + strings.Join(items[:len(items)-1], ", ") + ", or " + items[len(items)-1]
}

// evaluatePolicy checks reported permissions against the key's own policy,
// by the rules `kubectl eak check` applies too.
func evaluatePolicy(pol keyopsv1.PermissionPolicy, p *keyopsv1.PermissionsStatus) (string, string) {
	r := permissionpolicy.Evaluate(pol, p)
	return r.Reason, r.Message
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
	if k.Spec.Token != nil && st.Token != nil && st.Token.ExpiresAt != nil {
		msg = fmt.Sprintf("Secret %s holds token %s of key %s, valid until %s", k.TargetName(), st.Token.Fingerprint, st.KeyID, st.Token.ExpiresAt.UTC().Format(time.RFC3339))
		if ti := get(keyopsv1.ConditionTokenIssued); ti != nil && ti.Status != metav1.ConditionTrue {
			msg += fmt.Sprintf("; minting the next token fails (%s)", ti.Reason)
		}
	}
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
		keyopsv1.ReasonExchangeUnavailable, keyopsv1.ReasonRateLimited, keyopsv1.ReasonUnexpectedResponse, keyopsv1.ReasonNonceConflict:
		return false
	}
	return true
}

func isTransientReason(r string) bool {
	return r == keyopsv1.ReasonExchangeUnavailable || r == keyopsv1.ReasonRateLimited || r == keyopsv1.ReasonUnexpectedResponse || r == keyopsv1.ReasonNonceConflict
}

// transitionEvents emits Events only when a condition's reason changes.
func transitionEvents(before, after []metav1.Condition) []event {
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
		switch c.Status {
		case metav1.ConditionTrue:
			out = append(out, event{Reason: keyopsv1.EventVerified, Message: c.Message})
		case metav1.ConditionFalse:
			out = append(out, event{Warning: true, Reason: c.Reason, Message: c.Message})
		}
	}
	if c, ok := changed(keyopsv1.ConditionPermissionsCompliant); ok && c.Status == metav1.ConditionFalse {
		reason := keyopsv1.EventPermissionViolation
		if c.Reason == keyopsv1.ReasonPolicyViolation {
			reason = keyopsv1.EventPolicyViolation
		}
		out = append(out, event{Warning: true, Reason: reason, Message: c.Message})
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
		if h[i].Outcome == "" || h[i].Outcome == keyopsv1.HistoryRejected {
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

// recordReplaced marks the newest entry for fp as replaced for reason.
func recordReplaced(h []keyopsv1.KeyHistoryEntry, fp, reason string, now metav1.Time) []keyopsv1.KeyHistoryEntry {
	for i := range h {
		if h[i].Fingerprint != fp {
			continue
		}
		out := append([]keyopsv1.KeyHistoryEntry(nil), h...)
		t := now
		out[i].Outcome, out[i].Reason, out[i].DecidedAt = keyopsv1.HistoryReplaced, reason, &t
		return out
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
