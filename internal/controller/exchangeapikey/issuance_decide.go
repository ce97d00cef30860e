package exchangeapikey

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// Backoff of failed issuing attempts: 30 s, doubling, at most an hour, so
// that the reminder window before the deadline (14 days by default) holds
// many attempts.
const (
	issueMinBackoff = 30 * time.Second
	issueMaxBackoff = time.Hour
)

// ConditionKeyIssued reports zero-touch rotation; the reasons are in the API.
const conditionKeyIssued = keyopsv1.ConditionKeyIssued

// Why a key is created (issueDue), as the KeyIssued Event says it.
const (
	dueFirstKey  = "first key"
	dueRequested = "rotation requested"
	dueScheduled = "rotation due"
	dueReplace   = "replacing a key the exchange no longer accepts"
)

// Self-healing: an issued key the exchange no longer accepts is replaced at
// once, then after each further loss within replaceWindow after the backoff
// of its rank (DefaultReplaceBackoff: at once, 1 min, 5 min, 30 min). Once
// as many replacements as the backoff has steps were made within the
// window, none follows until the oldest of them leaves the window, spec
// changes, or the rotate annotation gets a new value (RepeatedlyRevoked):
// something keeps revoking the keys, and replacing them faster would only
// hand that something more keys.
const replaceWindow = 24 * time.Hour

// DefaultReplaceBackoff is the wait before the first, second, ...
// replacement within replaceWindow, counted from the one before; its
// length is how many replacements the window allows.
var DefaultReplaceBackoff = []time.Duration{0, time.Minute, 5 * time.Minute, 30 * time.Minute}

// maxReplacementsKept caps the replacement times the issuance Secret keeps.
const maxReplacementsKept = 10

// issueObservation is what the issuing step found and did, for decide.
type issueObservation struct {
	status   metav1.ConditionStatus
	reason   string
	message  string
	issued   *keyopsv1.IssuedKeyStatus
	previous *keyopsv1.PreviousKeyStatus
	rotate   string
	// events are recorded by Reconcile as soon as the step returns (the
	// exchange-side action is done), not through decide.
	events []event
	wake   time.Duration
	// endpoint and demo the issued key is probed with.
	endpoint string
	demo     bool
	// acctGen is the ExchangeAccount's generation (refusedCreate).
	acctGen int64
	// previousDead: the previous key was replaced because the exchange no
	// longer accepts it, and is deleted without waiting for the overlap.
	previousDead bool
}

// issueProblem is why no exchange call can be made now.
type issueProblem struct{ reason, message string }

// issuanceInput is what decideIssuance decides on, all read before.
type issuanceInput struct {
	key    *keyopsv1.ExchangeAPIKey
	record issuance
	// account is why the ExchangeAccount cannot be used now (nil: it can).
	account *issueProblem
	// acctGen is the ExchangeAccount's generation (what a refusal was for).
	acctGen int64
	now     time.Time
	// unlisted: the sub-account's key list, read this reconcile, lacks the
	// current key (read only when deadVerdict asks for it).
	unlisted bool
	// backoff is the replacement backoff (DefaultReplaceBackoff if nil).
	backoff []time.Duration
}

// issuanceAction is the kind of step to take.
type issuanceAction string

const (
	// issueNothing: the key is issued and nothing is due.
	issueNothing issuanceAction = "Nothing"
	// issueCreate: create a key (why says why).
	issueCreate issuanceAction = "Create"
	// issueFinishPending: find, adopt, verify and promote or drop the
	// pending key.
	issueFinishPending issuanceAction = "FinishPending"
	// issueRetire: delete the previous key, its overlap has passed.
	issueRetire issuanceAction = "Retire"
	// issueWait: nothing to call yet (backoff, handover, overlap); wake.
	issueWait issuanceAction = "Wait"
	// issueBlocked: no call can help until something changes (report).
	issueBlocked issuanceAction = "Blocked"
)

// issueReport is what a step that calls no exchange says: the KeyIssued
// condition (an empty status or reason keeps True/Issued) and when to look
// again.
type issueReport struct {
	status  metav1.ConditionStatus
	reason  string
	message string
	wake    time.Duration
}

func (rep issueReport) applyTo(io *issueObservation) {
	if rep.status != "" {
		io.status = rep.status
	}
	if rep.reason != "" {
		io.reason, io.message = rep.reason, rep.message
	}
	io.wake = rep.wake
}

// issuanceStep is the one step decideIssuance chose.
type issuanceStep struct {
	action issuanceAction
	// why a key is created (issueCreate): dueFirstKey, dueRequested,
	// dueScheduled.
	why string
	// recordRequest is a rotate request to record as handled before the
	// step: one made while the previous key waits for its overlap belongs
	// to the rotation that made it previous.
	recordRequest string
	// report is the condition of issueWait and issueBlocked.
	report issueReport
	// dead is the verdict on the current key when the exchange no longer
	// accepts it (deadVerdict): a create replaces it.
	dead string
}

// decideIssuance chooses the next step of issuing or rotating the key. Pure:
// everything it needs was read before, the clock included.
func decideIssuance(in issuanceInput) issuanceStep {
	k, is, now := in.key, in.record, in.now
	if p := in.account; p != nil {
		return issuanceStep{action: issueBlocked, report: issueReport{status: metav1.ConditionFalse, reason: p.reason, message: p.message, wake: time.Minute}}
	}
	var step issuanceStep
	// Rotate requests while the previous key waits for its overlap are the
	// rotation that made it previous. A request made while a key is
	// pending is recorded only when that key is promoted: a pending intent
	// may still be dropped (a crash before its key was recorded, a create
	// that timed out), and the request must then start the next attempt.
	if ann := k.Annotations[keyopsv1.AnnotationRotate]; ann != "" && ann != is.get(issuedRotateRequest) &&
		is.get(issuedPrevious) != "" {
		step.recordRequest = ann
	}
	step.dead = in.dead()
	switch {
	case is.get(pendingLabel) != "":
		step.action = issueFinishPending
	case is.get(issuedPrevious) != "":
		step.action, step.report = decideRetire(k, is, now, step.dead)
	default:
		step.action, step.why, step.report = decideCreate(k, is, in.acctGen, now, step.dead, in.backoff)
	}
	return step
}

// dead is the verdict on the current issued key when the exchange no
// longer accepts it ("" otherwise).
func (in issuanceInput) dead() string {
	cur := in.record.current()
	if cur.APIKey == "" {
		return ""
	}
	reason, needList := deadVerdict(&in.key.Status, keyid.Fingerprint(cur.APIKey), keyid.CredentialsHash(cur.APIKey, cur.APISecret, cur.Passphrase), in.now)
	if needList && !in.unlisted {
		return ""
	}
	return reason
}

// deadVerdict says whether status holds a verdict that the exchange no
// longer accepts the key fp with material: its KeyValid reason, and
// whether the sub-account's key list must confirm it first. Only verdicts
// count, never a single ambiguous answer (holdUnconfirmed keeps KeyValid
// until a second one confirms it):
//   - Revoked, InvalidKey: the exchange says it does not know the key. An
//     issued key was verified by the operator when it was created, so
//     either means it was revoked or deleted since.
//   - Inactive once the expiry the exchange reported has passed: an
//     expired key. Inactive before that is a frozen key or account, which
//     a new key would not cure.
//   - KeyOrIPRejected (Binance -2015, which names the key and the IP
//     alike): only when the sub-account's key list, read with the master
//     key, lacks the key (needList).
func deadVerdict(st *keyopsv1.ExchangeAPIKeyStatus, fp, material string, now time.Time) (reason string, needList bool) {
	if st.KeyFingerprint != fp || st.CredentialsHash != material {
		return "", false
	}
	kv := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionKeyValid)
	if kv == nil || kv.Status != metav1.ConditionFalse {
		return "", false
	}
	switch kv.Reason {
	case keyopsv1.ReasonRevoked, keyopsv1.ReasonInvalidKey:
		return kv.Reason, false
	case keyopsv1.ReasonInactive:
		if st.KeyExpiresAt != nil && !now.Before(st.KeyExpiresAt.Time) {
			return kv.Reason, false
		}
	case keyopsv1.ReasonKeyOrIPRejected:
		return kv.Reason, true
	}
	return "", false
}

// deadWords says a verdict of deadVerdict in words, for Events and
// messages.
func deadWords(reason string) string {
	switch reason {
	case keyopsv1.ReasonInactive:
		return "it expired (" + reason + ")"
	case keyopsv1.ReasonKeyOrIPRejected:
		return "the exchange rejects it and it is gone from the sub-account's key list (" + reason + ")"
	}
	return "the exchange no longer knows it: revoked or deleted (" + reason + ")"
}

// decideRetire: the previous key is deleted once the bots have run on the
// new one for spec.rotation.overlap; at once when it was replaced because
// the exchange no longer accepted it (no bot can use it), or when the bots
// run on a current key the exchange no longer accepts (dead): its
// replacement needs the previous key's place, and the bots no longer hold
// the previous key.
func decideRetire(k *keyopsv1.ExchangeAPIKey, is issuance, now time.Time, dead string) (issuanceAction, issueReport) {
	if is.get(previousDead) != "" {
		return issueRetire, issueReport{}
	}
	start := overlapStart(k, is.current())
	if start != nil && dead != "" {
		return issueRetire, issueReport{}
	}
	if start == nil {
		rep := issueReport{reason: keyopsv1.ReasonIssuing, message: fmt.Sprintf("key %s is being handed to the bots; key %s is deleted %s after they run on it", keyid.Mask(is.current().APIKey), keyid.Mask(is.get(issuedPrevious)), k.Spec.Rotation.OverlapOrDefault())}
		// Status writes (the handover, the restart) do not trigger a
		// reconcile: look again soon, less often the longer it takes.
		rep.wake = time.Second
		if t, err := time.Parse(time.RFC3339, is.get(issuedCreatedAt)); err == nil {
			rep.wake = min(max(now.Sub(t)/4, time.Second), time.Minute)
		}
		return issueWait, rep
	}
	if left := start.Add(k.Spec.Rotation.OverlapOrDefault()).Sub(now); left > 0 {
		return issueWait, issueReport{wake: left}
	}
	return issueRetire, issueReport{}
}

// decideCreate: a key is created when one is due, unless the last attempt
// says it cannot succeed yet.
func decideCreate(k *keyopsv1.ExchangeAPIKey, is issuance, acctGen int64, now time.Time, dead string, backoff []time.Duration) (issuanceAction, string, issueReport) {
	due := issueDue(k, is.current().APIKey, is.get(issuedRotateRequest), now)
	if due == "" && dead != "" {
		due = dueReplace
	}
	if due == "" {
		return issueNothing, "", issueReport{}
	}
	failReason := failReason(k, is.current().APIKey != "")
	if is.int(issuedRefusedGen) == k.Generation {
		rep := issueReport{status: metav1.ConditionFalse, reason: keyopsv1.ReasonIssuedKeyTooPowerful,
			message: "the exchange gave the last key created more than spec.permissions allows, and it was deleted; change spec.permissions or spec.issue to try again"}
		if c := meta.FindStatusCondition(k.Status.Conditions, conditionKeyIssued); c != nil && c.Reason == rep.reason {
			rep.message = c.Message // says which permissions
		}
		return issueBlocked, due, rep
	}
	if ref := is.get(refusedCreate); ref != "" && ref == refusalKey(k, acctGen) {
		// The exchange refused this very request for good: no call
		// until the spec, the account or the rotate annotation changes.
		return issueBlocked, due, issueReport{status: metav1.ConditionFalse, reason: failReason, message: is.get(refusedCreateMsg)}
	}
	if due == dueReplace {
		if action, rep := replacementWait(k, is, now, dead, backoff); action != "" {
			return action, due, rep
		}
	}
	if k.Spec.Permissions.RequireIPRestriction && len(k.Spec.Issue.IPAllowlist) == 0 {
		// The key would be refused after creation: say so before.
		return issueBlocked, due, issueReport{status: metav1.ConditionFalse, reason: failReason,
			message: "spec.permissions.requireIPRestriction is true and spec.issue.ipAllowlist is empty: the key would work from any IP; list the egress IPs of the bots and the operator in spec.issue.ipAllowlist"}
	}
	if wait := is.retryAt().Sub(now); wait > 0 && !newRequest(k, is) {
		return issueWait, due, waitRetry(k, is, wait)
	}
	return issueCreate, due, issueReport{}
}

// replacementWait says whether the replacement of the current key, which
// the exchange no longer accepts (dead), must wait (issueWait: its backoff;
// issueBlocked: the window's replacements are spent) and what to report;
// "" when it may start now.
func replacementWait(k *keyopsv1.ExchangeAPIKey, is issuance, now time.Time, dead string, backoff []time.Duration) (issuanceAction, issueReport) {
	if backoff == nil {
		backoff = DefaultReplaceBackoff
	}
	var recent []time.Time
	for _, t := range is.replacements(k) {
		if now.Sub(t) < replaceWindow {
			recent = append(recent, t)
		}
	}
	n := len(recent)
	if n == 0 {
		return "", issueReport{}
	}
	masked := keyid.Mask(is.current().APIKey)
	since := recent[0].UTC().Format(time.RFC3339)
	again := fmt.Sprintf("spec changes or the annotation %s gets a new value", keyopsv1.AnnotationRotate)
	if n >= len(backoff) {
		until := recent[n-len(backoff)].Add(replaceWindow)
		return issueBlocked, issueReport{status: metav1.ConditionFalse, reason: keyopsv1.ReasonRepeatedlyRevoked, wake: until.Sub(now),
			message: fmt.Sprintf("key %s is not accepted any more: %s. The exchange stopped accepting %d keys issued for this ExchangeAPIKey since %s, each replaced: "+
				"someone or some policy keeps revoking them (check the sub-account %s's API key management and audit log at the exchange, and any security rule or tool that disables keys), "+
				"or the exchange deletes them (check that spec.issue.ipAllowlist holds the egress IPs of the bots and the operator). "+
				"No key is created until %s, or until %s",
				masked, deadWords(dead), n, since, k.Spec.Issue.SubAccount, until.UTC().Format(time.RFC3339), again)}
	}
	at := recent[n-1].Add(backoff[n])
	if wait := at.Sub(now); wait > 0 {
		return issueWait, issueReport{status: metav1.ConditionFalse, reason: keyopsv1.ReasonReplacementBackoff, wake: wait,
			message: fmt.Sprintf("key %s is not accepted any more: %s. %d issued keys were lost since %s, this one included; its replacement is created at %s (backoff %s), or at once when %s",
				masked, deadWords(dead), n+1, since, at.UTC().Format(time.RFC3339), backoff[n], again)}
	}
	return "", issueReport{}
}

// issueDue says why k needs a new key now ("" when it does not).
func issueDue(k *keyopsv1.ExchangeAPIKey, current, handledRotate string, now time.Time) string {
	switch {
	case current == "":
		return dueFirstKey
	case k.Annotations[keyopsv1.AnnotationRotate] != "" && k.Annotations[keyopsv1.AnnotationRotate] != handledRotate:
		return dueRequested
	}
	st := k.Status
	// The schedule is the handed-over key's: rotate at remindAt, leaving the
	// reminder window for retries before the deadline.
	if st.TargetKeyFingerprint == keyid.Fingerprint(current) && st.Rotation != nil && st.Rotation.RemindAt != nil && !now.Before(st.Rotation.RemindAt.Time) {
		return dueScheduled
	}
	return ""
}

// newRequest: the rotate annotation has a value neither handled nor
// already tried and failed: an explicit request, which does not wait for
// the backoff.
func newRequest(k *keyopsv1.ExchangeAPIKey, is issuance) bool {
	ann := k.Annotations[keyopsv1.AnnotationRotate]
	return ann != "" && ann != is.get(issuedRotateRequest) && ann != is.get(failedRequest)
}

// failure is a failed attempt at now: the values to record (saved with the
// step's own write) and how long until the next attempt.
func failure(k *keyopsv1.ExchangeAPIKey, is issuance, now time.Time, retryAfter time.Duration) (map[string]string, time.Duration) {
	n := is.int(failedAttempts) + 1
	wait := issueMinBackoff
	for i := int64(1); i < n && wait < issueMaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, issueMaxBackoff)
	if retryAfter > wait {
		wait = retryAfter
	}
	return map[string]string{
		failedAttempts: strconv.FormatInt(n, 10),
		// Rounded up to the second: the Secret holds RFC 3339 seconds.
		failedRetryAt: now.Add(wait + time.Second).UTC().Format(time.RFC3339),
		failedRequest: k.Annotations[keyopsv1.AnnotationRotate],
	}, wait + time.Second
}

// promotion is what the issuance Secret records when the pending key
// passes: it becomes current, current becomes previous, and the rotate
// request it answers (and any made meanwhile) is handled — only now, so
// that a request whose rotation did not complete starts the next attempt.
func promotion(k *keyopsv1.ExchangeAPIKey, is issuance, now time.Time) map[string]string {
	creds := is.pending()
	promote := map[string]string{
		issuedAPIKey: creds.APIKey, issuedAPISecret: creds.APISecret, issuedPassphrase: creds.Passphrase,
		issuedLabel: is.get(pendingLabel), issuedGeneration: is.get(pendingGeneration), issuedCreatedAt: now.UTC().Format(time.RFC3339),
		issuedRotateRequest: k.Annotations[keyopsv1.AnnotationRotate],
		issuedExchangeID:    is.get(pendingExchangeID),
		issuedExpiresAt:     is.get(pendingExpiresAt),
	}
	if cur := is.current().APIKey; cur != "" {
		promote[issuedPrevious], promote[issuedPrevLabel] = cur, is.get(issuedLabel)
		promote[previousExchangeID] = is.get(issuedExchangeID)
		if exchange.DeleteNeedsPassphrase(exchange.Name(k.Spec.Exchange)) {
			promote[previousPassphrase] = is.get(issuedPassphrase)
		}
		if replacing(is) {
			promote[previousDead] = is.get(replacingReason)
			times := is.replacements(k)
			if len(times) >= maxReplacementsKept {
				times = times[len(times)-maxReplacementsKept+1:]
			}
			fields := make([]string, 0, len(times)+1)
			for _, t := range append(times, now) {
				fields = append(fields, t.UTC().Format(time.RFC3339))
			}
			promote[replacedAt], promote[replacedFor] = strings.Join(fields, " "), replacementScope(k)
		}
	}
	return promote
}

// replacing says whether the pending key replaces the current one because
// the exchange no longer accepts it (recorded with the intent).
func replacing(is issuance) bool {
	cur := is.current().APIKey
	return cur != "" && is.get(replacingKey) == keyid.Fingerprint(cur)
}

// promotionDrops are the keys of the issuance Secret a promotion clears:
// the pending key, the failed attempts and a refusal.
var promotionDrops = []string{pendingLabel, pendingGeneration, pendingAPIKey, pendingAPISecret, pendingPassphrase, failedAttempts, failedRetryAt, failedRequest, pendingExchangeID, pendingExpiresAt, refusedCreate, refusedCreateMsg, replacingKey, replacingReason}

// issuedKeyVerdict checks a new key's reported permissions against the
// key's own policy and then the cluster's policy floor, which applies to
// issued keys as to any key (policies and nsLabels as observed).
func issuedKeyVerdict(k *keyopsv1.ExchangeAPIKey, perms *keyopsv1.PermissionsStatus, policies []keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string) (reason, msg string) {
	reason, msg = evaluatePolicy(k.Spec.Permissions, perms)
	if reason == keyopsv1.ReasonCompliant {
		if vs := clusterpolicy.Evaluate(policies, nsLabels, k, perms); len(vs) > 0 {
			reason, msg = keyopsv1.ReasonPolicyViolation, clusterpolicy.Message(vs)
		}
	}
	return reason, msg
}

// issueLabel is the label of generation gen: unique per live key (OKX
// refuses duplicates), attributable to k through its UID, within 20
// characters.
func issueLabel(k *keyopsv1.ExchangeAPIKey, gen int64) string {
	prefix := labelPrefix(k)
	return prefix + strconv.FormatInt(gen, 10)
}

// ownLabel says whether label is one of k's: its prefix and a generation.
// With a user-chosen label ("bot" -> "bot-3") the digits-only rest keeps
// another key's labels ("bot-x-1") out.
func ownLabel(k *keyopsv1.ExchangeAPIKey, label string) bool {
	rest, ok := strings.CutPrefix(label, labelPrefix(k))
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func labelPrefix(k *keyopsv1.ExchangeAPIKey) string {
	if l := k.Spec.Issue.Label; l != "" {
		if len(l) > 14 {
			l = l[:14]
		}
		return l + "-"
	}
	uid := strings.ReplaceAll(string(k.UID), "-", "")
	if len(uid) > 10 {
		uid = uid[:10]
	}
	return "eko" + uid + "g"
}

// overlapStart is when the bots started running on current: the restart of
// the restart targets, or the target Secret's switch when there are none;
// nil while that has not happened.
func overlapStart(k *keyopsv1.ExchangeAPIKey, current exchange.Credentials) *time.Time {
	st := k.Status
	if st.TargetKeyFingerprint != keyid.Fingerprint(current.APIKey) || st.TargetCredentialsHash != keyid.CredentialsHash(current.APIKey, current.APISecret, current.Passphrase) {
		return nil
	}
	if len(k.Spec.RestartTargets) > 0 {
		if st.RestartedFor != st.TargetCredentialsHash || st.RestartedAt == nil {
			return nil
		}
		return &st.RestartedAt.Time
	}
	if st.Rotation == nil || st.Rotation.LastRotationTime == nil {
		// The first key has no predecessor; a handover without a recorded
		// rotation counts from the last validation.
		if st.LastValidationTime == nil {
			return nil
		}
		return &st.LastValidationTime.Time
	}
	return &st.Rotation.LastRotationTime.Time
}

// failReason is IssueFailed for the first key, RotationFailed once the
// bots have one (issued: the issuance Secret holds a current key).
func failReason(k *keyopsv1.ExchangeAPIKey, issued bool) string {
	if issued || k.Status.Issued != nil {
		return keyopsv1.ReasonRotationFailed
	}
	return keyopsv1.ReasonIssueFailed
}

func (io *issueObservation) failReason(k *keyopsv1.ExchangeAPIKey) string {
	return failReason(k, io.issued != nil)
}

// waitRetry reports a failed attempt whose backoff has not passed: the
// condition it left, and when the next attempt is.
func waitRetry(k *keyopsv1.ExchangeAPIKey, is issuance, wait time.Duration) issueReport {
	rep := issueReport{status: metav1.ConditionFalse, reason: failReason(k, is.current().APIKey != ""), wake: wait}
	rep.message = fmt.Sprintf("the last attempt failed; retrying at %s", is.retryAt().UTC().Format(time.RFC3339))
	if c := meta.FindStatusCondition(k.Status.Conditions, conditionKeyIssued); c != nil && c.Status == metav1.ConditionFalse {
		rep.reason, rep.message = c.Reason, c.Message
	}
	return rep
}

// failed records an exchange error of a step.
func (io *issueObservation) failed(k *keyopsv1.ExchangeAPIKey, what string, err error) {
	reason := io.failReason(k)
	if exchange.KindOf(err) == exchange.SubAccountNotFound {
		reason = keyopsv1.ReasonSubAccountNotFound
	}
	io.status, io.reason = metav1.ConditionFalse, reason
	io.message = fmt.Sprintf("%s: %v; retrying", what, err)
	if io.failReason(k) == keyopsv1.ReasonRotationFailed {
		io.message = fmt.Sprintf("%s: %v; the bots keep the key they have; retrying", what, err)
	}
	io.wake = time.Minute
	if e, ok := exchange.AsError(err); ok && e.RetryAfter > io.wake {
		io.wake = e.RetryAfter
	}
	io.events = append(io.events, event{Warning: true, Reason: reason, Message: io.message})
}

// fill derives the issued-key status from the issuance Secret.
func (io *issueObservation) fill(k *keyopsv1.ExchangeAPIKey, is issuance) {
	io.issued, io.previous, io.previousDead = nil, nil, false
	if cur := is.current().APIKey; cur != "" {
		io.issued = &keyopsv1.IssuedKeyStatus{KeyID: keyid.Mask(cur), Fingerprint: keyid.Fingerprint(cur), Label: is.get(issuedLabel), Generation: is.int(issuedGeneration),
			ExchangeKeyID: exchangeKeyID(is.get(issuedExchangeID), cur)}
		for _, t := range is.replacements(k) {
			io.issued.Replacements = append(io.issued.Replacements, metav1.NewTime(t))
		}
		if t, err := time.Parse(time.RFC3339, is.get(issuedCreatedAt)); err == nil {
			io.issued.CreatedAt = &metav1.Time{Time: t}
		}
		if t, err := time.Parse(time.RFC3339, is.get(issuedExpiresAt)); err == nil {
			io.issued.ExpiresAt = &metav1.Time{Time: t}
		}
	}
	if prev := is.get(issuedPrevious); prev != "" {
		io.previous = &keyopsv1.PreviousKeyStatus{KeyID: keyid.Mask(prev), Fingerprint: keyid.Fingerprint(prev), Label: is.get(issuedPrevLabel),
			ExchangeKeyID: exchangeKeyID(is.get(previousExchangeID), prev)}
		switch start := overlapStart(k, is.current()); {
		case is.get(previousDead) != "":
			// Replaced because the exchange no longer accepts it: deleted
			// at once (decideRetire).
			io.previousDead = true
		case start != nil:
			io.previous.DeleteAfter = &metav1.Time{Time: start.Add(k.Spec.Rotation.OverlapOrDefault())}
		}
	}
	io.rotate = is.get(issuedRotateRequest)
}

// exchangeKeyID is what status shows as the exchange's identifier of a key:
// its own id where it has one (Bybit), otherwise the API key, which is the
// identifier on OKX and Binance, masked as everywhere in status.
func exchangeKeyID(id, apiKey string) string {
	if id != "" {
		return id
	}
	return keyid.Mask(apiKey)
}

// refusalKey is what a create refused for good was refused for: the spec,
// the account and the rotate annotation as they were.
func refusalKey(k *keyopsv1.ExchangeAPIKey, acctGen int64) string {
	return fmt.Sprintf("%d/%d/%s", k.Generation, acctGen, k.Annotations[keyopsv1.AnnotationRotate])
}

// maxExchangeWords caps the exchange's own text quoted in a message.
const maxExchangeWords = 200

// refusalMessage says who refused what, quotes the exchange's own words
// (capped, and marked as its words), says what to do, and that nothing is
// retried until something changes.
func refusalMessage(k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, err error) string {
	var b strings.Builder
	e, ok := exchange.AsError(err)
	fromExchange := ok && e.HTTPStatus != 0
	if fromExchange {
		fmt.Fprintf(&b, "%s refused to create a key on sub-account %s", k.Spec.Exchange, req.SubAccount)
		if e.Code != "" {
			fmt.Fprintf(&b, " (code %s)", e.Code)
		}
		words := e.Message
		if rs := []rune(words); len(rs) > maxExchangeWords {
			words = string(rs[:maxExchangeWords]) + "…"
		}
		fmt.Fprintf(&b, "; the exchange's words: %q", words)
	} else {
		fmt.Fprintf(&b, "a key for sub-account %s cannot be requested: %s", req.SubAccount, sanitizeMessage(err))
	}
	switch {
	case ok && e.Exchange == exchange.Bybit && e.Code == "81007":
		b.WriteString("; Bybit Europe (bybit.eu) accounts cannot create API keys through the API (bybit-exchange.github.io/docs/v5/error, section User): create the key on the website and give it to the operator with spec.credentialsSecretRef instead of spec.issue")
	case ok && e.Exchange == exchange.Bybit && e.Code == "20096":
		b.WriteString("; Bybit creates API keys only for accounts that passed identity verification (KYC): complete it for the account, then set the annotation " + keyopsv1.AnnotationRotate + " to a new value to try again")
	case exchange.KindOf(err) == exchange.AccountCannotIssue:
		b.WriteString("; the account cannot create API keys now: settle it at the exchange, then set the annotation " + keyopsv1.AnnotationRotate + " to a new value to try again")
	default:
		b.WriteString("; the same request gets the same answer: change spec.issue or spec.permissions")
	}
	b.WriteString("; not retried until spec, the ExchangeAccount or the annotation " + keyopsv1.AnnotationRotate + " changes")
	return b.String()
}

// sanitizeMessage is err's text, capped.
func sanitizeMessage(err error) string {
	s := err.Error()
	if rs := []rune(s); len(rs) > 300 {
		s = string(rs[:300]) + "…"
	}
	return s
}
