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
)

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
	switch {
	case is.get(pendingLabel) != "":
		step.action = issueFinishPending
	case is.get(issuedPrevious) != "":
		step.action, step.report = decideRetire(k, is, now)
	default:
		step.action, step.why, step.report = decideCreate(k, is, in.acctGen, now)
	}
	return step
}

// decideRetire: the previous key is deleted once the bots have run on the
// new one for spec.rotation.overlap.
func decideRetire(k *keyopsv1.ExchangeAPIKey, is issuance, now time.Time) (issuanceAction, issueReport) {
	start := overlapStart(k, is.current())
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
func decideCreate(k *keyopsv1.ExchangeAPIKey, is issuance, acctGen int64, now time.Time) (issuanceAction, string, issueReport) {
	due := issueDue(k, is.current().APIKey, is.get(issuedRotateRequest), now)
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
	}
	if cur := is.current().APIKey; cur != "" {
		promote[issuedPrevious], promote[issuedPrevLabel] = cur, is.get(issuedLabel)
		promote[previousExchangeID] = is.get(issuedExchangeID)
	}
	return promote
}

// promotionDrops are the keys of the issuance Secret a promotion clears:
// the pending key, the failed attempts and a refusal.
var promotionDrops = []string{pendingLabel, pendingGeneration, pendingAPIKey, pendingAPISecret, pendingPassphrase, failedAttempts, failedRetryAt, failedRequest, pendingExchangeID, refusedCreate, refusedCreateMsg}

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
	io.issued, io.previous = nil, nil
	if cur := is.current().APIKey; cur != "" {
		io.issued = &keyopsv1.IssuedKeyStatus{KeyID: keyid.Mask(cur), Fingerprint: keyid.Fingerprint(cur), Label: is.get(issuedLabel), Generation: is.int(issuedGeneration),
			ExchangeKeyID: exchangeKeyID(is.get(issuedExchangeID), cur)}
		if t, err := time.Parse(time.RFC3339, is.get(issuedCreatedAt)); err == nil {
			io.issued.CreatedAt = &metav1.Time{Time: t}
		}
	}
	if prev := is.get(issuedPrevious); prev != "" {
		io.previous = &keyopsv1.PreviousKeyStatus{KeyID: keyid.Mask(prev), Fingerprint: keyid.Fingerprint(prev), Label: is.get(issuedPrevLabel),
			ExchangeKeyID: exchangeKeyID(is.get(previousExchangeID), prev)}
		if start := overlapStart(k, is.current()); start != nil {
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
