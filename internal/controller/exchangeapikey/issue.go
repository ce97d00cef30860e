package exchangeapikey

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/permissionpolicy"
)

// Zero-touch rotation (spec.issue). The operator creates the key on a
// sub-account with the ExchangeAccount's master key and keeps everything it
// must not lose in one Secret it owns, the issuance Secret, which is also
// the ExchangeAPIKey's source: the rest of the reconcile validates and hands
// over its current key exactly as it does a key a person put in a Secret.
//
// The exchange shows a secret once, so every step writes what it needs
// before and right after the exchange call:
//
//	intent   pending label, generation, OKX passphrase or Binance private key
//	         (the private key never crosses the network) -> Secret
//	create   the exchange's answer (API key, secret)      -> Secret
//	verify   probe + policy; promote pending to current, current to previous
//	hand     the normal path writes the target and restarts the workloads
//	retire   after the overlap, delete previous at the exchange -> Secret
//
// A manager killed between any two steps finds the state in the Secret; a
// key created but not recorded is found by its label at the next step and
// deleted (or, for Binance, whose private key was recorded first, adopted).
//
// The issuance Secret is read from the API server, never from the cache:
// every step calls the exchange before it writes, so a stale copy (a
// pending intent already promoted) would delete a live key before the
// write's conflict could stop it.
//
// A failed attempt (create refused, new key refused) is recorded with a
// retry time (exponential backoff): each attempt writes the Secret, whose
// watch would otherwise start the next attempt at once. A rotate request
// is recorded as handled only when its key is promoted, so a failed one is
// retried; a new value of the annotation retries at once. A refusal the
// same request always gets (exchange.PermanentRefusal: the account cannot
// create keys, or a parameter is refused) gets no retry time: no attempt
// follows until the spec, the account or the annotation changes.

// Keys of the issuance Secret.
const (
	issuedAPIKey        = "apiKey"
	issuedAPISecret     = "apiSecret"
	issuedPassphrase    = "passphrase"
	issuedLabel         = "label"
	issuedGeneration    = "generation"
	issuedCreatedAt     = "createdAt"
	issuedPrevious      = "previousApiKey"
	issuedPrevLabel     = "previousLabel"
	pendingLabel        = "pendingLabel"
	pendingGeneration   = "pendingGeneration"
	pendingAPIKey       = "pendingApiKey"
	pendingAPISecret    = "pendingApiSecret"
	pendingPassphrase   = "pendingPassphrase"
	issuedRotateRequest = "rotateRequest"
	issuedRefusedGen    = "refusedSpecGeneration"
	// The last failed attempt: how many in a row, when to try again, and
	// the rotate annotation's value then (a new value does not wait).
	failedAttempts = "failedAttempts"
	failedRetryAt  = "retryAt"
	failedRequest  = "failedRotateRequest"
	// The exchange's own identifier of a key where it has one besides the
	// API key (Bybit's id): status.issued.exchangeKeyID.
	issuedExchangeID   = "exchangeKeyId"
	pendingExchangeID  = "pendingExchangeKeyId"
	previousExchangeID = "previousExchangeKeyId"
	// A create the exchange refused for good (the account cannot issue
	// keys, or a parameter is refused): what it was refused for (spec
	// generation, account generation, rotate annotation) and the message.
	// No attempt is made while all three are unchanged.
	refusedCreate    = "refusedCreate"
	refusedCreateMsg = "refusedCreateMessage"
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

// SubAccountManager creates, lists and deletes sub-account keys
// (*exchange.Prober).
type SubAccountManager interface {
	CreateSubAccountKey(ctx context.Context, r exchange.SubAccountRequest, k exchange.NewSubAccountKey) (*exchange.SubAccountKey, error)
	ListSubAccountKeys(ctx context.Context, r exchange.SubAccountRequest) ([]exchange.SubAccountKey, error)
	DeleteSubAccountKey(ctx context.Context, r exchange.SubAccountRequest, apiKey string) error
}

// issueObservation is what the issuing step found and did, for decide.
type issueObservation struct {
	status   metav1.ConditionStatus
	reason   string
	message  string
	issued   *keyopsv1.IssuedKeyStatus
	previous *keyopsv1.PreviousKeyStatus
	rotate   string
	events   []event
	wake     time.Duration
	// endpoint and demo the issued key is probed with.
	endpoint string
	demo     bool
	// acctGen is the ExchangeAccount's generation (refusedCreate).
	acctGen int64
}

// issuedSecretName is the issuance Secret of k.
func issuedSecretName(k *keyopsv1.ExchangeAPIKey) string { return k.Name + "-issued-key" }

// issuance is the issuance Secret, parsed.
type issuance struct {
	secret *corev1.Secret
}

func (is issuance) get(key string) string { return string(is.secret.Data[key]) }

func (is issuance) current() exchange.Credentials {
	return exchange.Credentials{APIKey: is.get(issuedAPIKey), APISecret: is.get(issuedAPISecret), Passphrase: is.get(issuedPassphrase)}
}

func (is issuance) pending() exchange.Credentials {
	return exchange.Credentials{APIKey: is.get(pendingAPIKey), APISecret: is.get(pendingAPISecret), Passphrase: is.get(pendingPassphrase)}
}

func (is issuance) int(key string) int64 {
	n, _ := strconv.ParseInt(is.get(key), 10, 64)
	return n
}

// retryAt is when a failed attempt may be repeated (zero: now).
func (is issuance) retryAt() time.Time {
	t, _ := time.Parse(time.RFC3339, is.get(failedRetryAt))
	return t
}

// newRequest: the rotate annotation has a value neither handled nor
// already tried and failed: an explicit request, which does not wait for
// the backoff.
func newRequest(k *keyopsv1.ExchangeAPIKey, is issuance) bool {
	ann := k.Annotations[keyopsv1.AnnotationRotate]
	return ann != "" && ann != is.get(issuedRotateRequest) && ann != is.get(failedRequest)
}

// failure records a failed attempt into set (saved with the step's own
// write) and returns how long until the next one.
func (r *Reconciler) failure(k *keyopsv1.ExchangeAPIKey, is issuance, set map[string]string, retryAfter time.Duration) time.Duration {
	n := is.int(failedAttempts) + 1
	wait := issueMinBackoff
	for i := int64(1); i < n && wait < issueMaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, issueMaxBackoff)
	if retryAfter > wait {
		wait = retryAfter
	}
	set[failedAttempts] = strconv.FormatInt(n, 10)
	// Rounded up to the second: the Secret holds RFC 3339 seconds.
	set[failedRetryAt] = r.now().Add(wait + time.Second).UTC().Format(time.RFC3339)
	set[failedRequest] = k.Annotations[keyopsv1.AnnotationRotate]
	return wait + time.Second
}

// reconcileIssue runs one step of issuing or rotating k's key. Errors are
// API-server errors (retried); the exchange's answers end in the condition.
func (r *Reconciler) reconcileIssue(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (issueObservation, error) {
	io := issueObservation{status: metav1.ConditionTrue, reason: keyopsv1.ReasonKeyIssuedOK}
	is, err := r.loadIssuance(ctx, k)
	if err != nil {
		return io, err
	}
	io.fill(k, is)
	acct, req, why := r.issueAccount(ctx, k)
	if acct != nil {
		io.endpoint, io.demo = acct.Spec.Endpoint, acct.Spec.DemoTrading
		io.acctGen = acct.Generation
	}
	if k.Spec.Endpoint != "" {
		io.endpoint = k.Spec.Endpoint
	}
	io.demo = io.demo || k.Spec.DemoTrading
	if why != nil {
		io.status, io.reason, io.message = metav1.ConditionFalse, why.reason, why.message
		io.wake = time.Minute
		return io, nil
	}
	now := r.now()
	// Rotate requests while the previous key waits for its overlap are the
	// rotation that made it previous. A request made while a key is
	// pending is recorded only when that key is promoted: a pending intent
	// may still be dropped (a crash before its key was recorded, a create
	// that timed out), and the request must then start the next attempt.
	if ann := k.Annotations[keyopsv1.AnnotationRotate]; ann != "" && ann != is.get(issuedRotateRequest) &&
		is.get(issuedPrevious) != "" {
		if err := r.save(ctx, is, map[string]string{issuedRotateRequest: ann}); err != nil {
			return io, err
		}
	}
	switch {
	case is.get(pendingLabel) != "":
		err = r.stepPending(ctx, k, req, is, &io)
	case is.get(issuedPrevious) != "":
		err = r.stepRetire(ctx, k, req, is, &io, now)
	default:
		due := issueDue(k, is.current().APIKey, is.get(issuedRotateRequest), now)
		if due == "" {
			break
		}
		if is.int(issuedRefusedGen) == k.Generation {
			io.status, io.reason = metav1.ConditionFalse, keyopsv1.ReasonIssuedKeyTooPowerful
			io.message = "the exchange gave the last key created more than spec.permissions allows, and it was deleted; change spec.permissions or spec.issue to try again"
			if c := meta.FindStatusCondition(k.Status.Conditions, conditionKeyIssued); c != nil && c.Reason == io.reason {
				io.message = c.Message // says which permissions
			}
			break
		}
		if ref := is.get(refusedCreate); ref != "" && ref == refusalKey(k, io.acctGen) {
			// The exchange refused this very request for good: no call
			// until the spec, the account or the rotate annotation changes.
			io.status, io.reason, io.message = metav1.ConditionFalse, io.failReason(k), is.get(refusedCreateMsg)
			break
		}
		if k.Spec.Permissions.RequireIPRestriction && len(k.Spec.Issue.IPAllowlist) == 0 {
			// The key would be refused after creation: say so before.
			io.status, io.reason = metav1.ConditionFalse, io.failReason(k)
			io.message = "spec.permissions.requireIPRestriction is true and spec.issue.ipAllowlist is empty: the key would work from any IP; list the egress IPs of the bots and the operator in spec.issue.ipAllowlist"
			break
		}
		if wait := is.retryAt().Sub(now); wait > 0 && !newRequest(k, is) {
			io.waitRetry(k, is, wait)
			break
		}
		err = r.stepCreate(ctx, k, req, is, &io, due)
	}
	io.fill(k, is)
	return io, err
}

// issueProblem is why no exchange call can be made now.
type issueProblem struct{ reason, message string }

// issueAccount finds the ExchangeAccount and its master key.
func (r *Reconciler) issueAccount(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (*keyopsv1.ExchangeAccount, exchange.SubAccountRequest, *issueProblem) {
	var req exchange.SubAccountRequest
	name := k.Spec.Issue.AccountRef.Name
	var acct keyopsv1.ExchangeAccount
	if err := r.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: name}, &acct); err != nil {
		return nil, req, &issueProblem{keyopsv1.ReasonAccountNotFound, fmt.Sprintf("ExchangeAccount %s/%s: %s", k.Namespace, name, reasonOf(err))}
	}
	if acct.Spec.Exchange != k.Spec.Exchange {
		return &acct, req, &issueProblem{keyopsv1.ReasonAccountExchangeMismatch, fmt.Sprintf("ExchangeAccount %s is on %s, this key on %s: point spec.issue.accountRef at an account on %s", name, acct.Spec.Exchange, k.Spec.Exchange, k.Spec.Exchange)}
	}
	if c := meta.FindStatusCondition(acct.Status.Conditions, keyopsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != acct.Generation {
		msg := "not checked yet"
		if c != nil {
			msg = c.Reason + ": " + c.Message
		}
		return &acct, req, &issueProblem{keyopsv1.ReasonAccountNotReady, fmt.Sprintf("ExchangeAccount %s is not Ready (%s); no key is created or deleted until it is", name, msg)}
	}
	if r.SubAccounts == nil {
		return &acct, req, &issueProblem{keyopsv1.ReasonIssueFailed, "this manager has no sub-account key client"}
	}
	if err := shared.CheckEndpoint(r.Endpoints, acct.Spec.Exchange, acct.Spec.Endpoint); err != nil {
		return &acct, req, &issueProblem{keyopsv1.ReasonEndpointNotAllowed, err.Error()}
	}
	ref := acct.Spec.CredentialsSecretRef
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: ref.Name}, &s); err != nil {
		return &acct, req, &issueProblem{keyopsv1.ReasonAccountNotReady, fmt.Sprintf("master key Secret %s/%s: %s", k.Namespace, ref.Name, reasonOf(err))}
	}
	master := shared.ReadCredentials(k.Namespace, acct.Spec.Exchange, ref, &s)
	if !master.OK() {
		return &acct, req, &issueProblem{keyopsv1.ReasonAccountNotReady, "master key: " + master.Message}
	}
	req = exchange.SubAccountRequest{
		Exchange: exchange.Name(acct.Spec.Exchange), Endpoint: acct.Spec.Endpoint, Demo: acct.Spec.DemoTrading,
		Master: master.Creds, SubAccount: k.Spec.Issue.SubAccount,
	}
	return &acct, req, nil
}

// loadIssuance reads the issuance Secret from the API server (see the
// header: never a cached copy), creating it (empty, owned by k, labelled so
// that the manager watches it) when it does not exist.
func (r *Reconciler) loadIssuance(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (issuance, error) {
	key := types.NamespacedName{Namespace: k.Namespace, Name: issuedSecretName(k)}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: key.Name, Labels: map[string]string{
				keyopsv1.LabelManaged: keyopsv1.LabelManagedValue, keyopsv1.LabelManagedBy: keyopsv1.ManagedByValue,
			}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{},
		}
		if err := controllerutil.SetControllerReference(k, &s, r.Scheme); err != nil {
			return issuance{}, err
		}
		if err := r.Create(ctx, &s); err != nil {
			return issuance{}, err
		}
		if s.Data == nil { // the answer to an empty Secret's create has none
			s.Data = map[string][]byte{}
		}
		return issuance{secret: &s}, nil
	}
	if err != nil {
		return issuance{}, err
	}
	if !metav1.IsControlledBy(&s, k) {
		return issuance{}, fmt.Errorf("Secret %s exists and is not this ExchangeAPIKey's: delete or rename it", key.Name)
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	return issuance{secret: &s}, nil
}

// save writes the issuance Secret; the resourceVersion makes a concurrent
// writer a conflict (retried from a fresh read), never a lost step.
func (r *Reconciler) save(ctx context.Context, is issuance, set map[string]string, drop ...string) error {
	for kk, v := range set {
		is.secret.Data[kk] = []byte(v)
	}
	for _, kk := range drop {
		delete(is.secret.Data, kk)
	}
	return r.Update(ctx, is.secret)
}

// issueDue says why k needs a new key now ("" when it does not).
func issueDue(k *keyopsv1.ExchangeAPIKey, current, handledRotate string, now time.Time) string {
	switch {
	case current == "":
		return "first key"
	case k.Annotations[keyopsv1.AnnotationRotate] != "" && k.Annotations[keyopsv1.AnnotationRotate] != handledRotate:
		return "rotation requested"
	}
	st := k.Status
	// The schedule is the handed-over key's: rotate at remindAt, leaving the
	// reminder window for retries before the deadline.
	if st.TargetKeyFingerprint == keyid.Fingerprint(current) && st.Rotation != nil && st.Rotation.RemindAt != nil && !now.Before(st.Rotation.RemindAt.Time) {
		return "rotation due"
	}
	return ""
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

// stepCreate records the intent, creates the key and records the answer.
func (r *Reconciler) stepCreate(ctx context.Context, k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, is issuance, io *issueObservation, due string) error {
	if err := r.deleteLeftovers(ctx, k, req, is, io); err != nil {
		io.failed(k, "listing the keys of sub-account "+req.SubAccount, err)
		return nil
	}
	gen := max(is.int(issuedGeneration), is.int(pendingGeneration)) + 1
	intent := map[string]string{pendingLabel: issueLabel(k, gen), pendingGeneration: strconv.FormatInt(gen, 10)}
	nk := exchange.NewSubAccountKey{Label: intent[pendingLabel], IPs: k.Spec.Issue.IPAllowlist}
	for _, p := range k.Spec.Permissions.RequiredOrDefault() {
		nk.Permissions = append(nk.Permissions, string(p))
	}
	switch k.Spec.Exchange {
	case "okx":
		nk.Passphrase = newPassphrase()
		intent[pendingPassphrase] = nk.Passphrase
	case "binance":
		// The key pair is made here and the private half saved before the
		// call that registers the public half: it never crosses the
		// network, and a crash after the call leaves a key we can adopt.
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return err
		}
		nk.PublicKey = pub
		intent[pendingAPISecret] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	delete(is.secret.Data, refusedCreate) // a refusal of another request
	delete(is.secret.Data, refusedCreateMsg)
	if err := r.save(ctx, is, intent); err != nil {
		return err
	}
	created, err := r.SubAccounts.CreateSubAccountKey(ctx, req, nk)
	if err != nil && exchange.PermanentRefusal(err) {
		return r.refuseCreate(ctx, k, req, is, io, err)
	}
	if err != nil {
		// Nothing was created: forget the intent so the next attempt starts
		// clean (a timeout is resolved through the label at the next step,
		// so the intent stays). Either way the attempt waits its backoff.
		io.failed(k, "creating a key on sub-account "+req.SubAccount, err)
		var drop []string
		if kind := exchange.KindOf(err); kind != exchange.Unavailable && kind != exchange.UnexpectedResponse {
			drop = []string{pendingLabel, pendingPassphrase, pendingAPISecret}
		}
		set := map[string]string{}
		retryAfter := time.Duration(0)
		if e, ok := exchange.AsError(err); ok {
			retryAfter = e.RetryAfter
		}
		io.wake = r.failure(k, is, set, retryAfter)
		r.countFailure(k, io.reason)
		return r.save(ctx, is, set, drop...)
	}
	rec := map[string]string{pendingAPIKey: created.APIKey}
	if created.ID != "" {
		rec[pendingExchangeID] = created.ID
	}
	if created.Secret != "" {
		rec[pendingAPISecret] = created.Secret
	}
	if err := r.save(ctx, is, rec); err != nil {
		// The key exists at the exchange but is not recorded: the next
		// step finds it by its label.
		return err
	}
	if r.Issued != nil {
		r.Issued(string(k.Spec.Exchange))
	}
	io.events = append(io.events, event{Reason: keyopsv1.EventKeyIssued, Message: fmt.Sprintf("created key %s on sub-account %s (%s, label %s)", keyid.Mask(created.APIKey), req.SubAccount, due, nk.Label)})
	return r.stepPending(ctx, k, req, is, io)
}

// stepPending finishes a key being issued: finds it when its creation was
// not recorded, verifies it, and promotes or deletes it.
func (r *Reconciler) stepPending(ctx context.Context, k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, is issuance, io *issueObservation) error {
	label := is.get(pendingLabel)
	if is.get(pendingAPIKey) == "" {
		keys, err := r.SubAccounts.ListSubAccountKeys(ctx, req)
		if err != nil {
			io.failed(k, "listing the keys of sub-account "+req.SubAccount, err)
			return nil
		}
		for _, sk := range keys {
			if sk.Label != label {
				continue
			}
			if k.Spec.Exchange == "binance" && is.get(pendingAPISecret) != "" {
				// The private key was saved before the call: adopt it.
				if err := r.save(ctx, is, map[string]string{pendingAPIKey: sk.APIKey}); err != nil {
					return err
				}
				return r.stepPending(ctx, k, req, is, io)
			}
			// Its secret was shown once and lost: delete it.
			if err := r.SubAccounts.DeleteSubAccountKey(ctx, req, sk.APIKey); err != nil {
				io.failed(k, "deleting an unrecorded key", err)
				return nil
			}
			r.countDeleted(k)
			io.events = append(io.events, event{Warning: true, Reason: keyopsv1.EventLeftoverKeyDeleted, Message: fmt.Sprintf("deleted key %s (label %s): it was created but its secret was not recorded", keyid.Mask(sk.APIKey), label)})
		}
		// Nothing to adopt: start over with the next generation.
		if err := r.save(ctx, is, nil, pendingLabel, pendingPassphrase, pendingAPISecret); err != nil {
			return err
		}
		if is.int(failedAttempts) > 0 {
			// The attempt failed (a create that timed out or kept
			// failing): that stays the condition until one succeeds.
			io.waitRetry(k, is, max(is.retryAt().Sub(r.now()), time.Second))
		}
		return nil
	}
	creds := is.pending()
	res := r.Probes.Probe(ctx, exchange.Request{Exchange: exchange.Name(k.Spec.Exchange), Endpoint: io.endpoint, Demo: io.demo, Credentials: creds}, time.Time{}, true)
	if res.Err != nil {
		if exchange.KindOf(res.Err).Transient() {
			io.status, io.reason = metav1.ConditionUnknown, keyopsv1.ReasonIssuing
			io.message = fmt.Sprintf("verifying new key %s: %v", keyid.Mask(creds.APIKey), res.Err)
			io.wake = 30 * time.Second
			return nil
		}
		return r.dropPending(ctx, k, req, is, io, io.failReason(k), fmt.Sprintf("the new key %s did not verify (%v)", keyid.Mask(creds.APIKey), res.Err), false)
	}
	perms := permissionpolicy.Status(res.Permissions)
	reason, msg := evaluatePolicy(k.Spec.Permissions, perms)
	if reason == keyopsv1.ReasonCompliant {
		// The cluster's policy floor applies to issued keys as to any key.
		policies, nsLabels, err := r.observePolicies(ctx, k.Namespace)
		if err != nil {
			return err
		}
		if vs := clusterpolicy.Evaluate(policies, nsLabels, k, perms); len(vs) > 0 {
			reason, msg = keyopsv1.ReasonPolicyViolation, clusterpolicy.Message(vs)
		}
	}
	switch reason {
	case keyopsv1.ReasonCompliant:
	case keyopsv1.ReasonForbiddenPermission, keyopsv1.ReasonPolicyViolation:
		// More than allowed: the same request would get the same key.
		return r.dropPending(ctx, k, req, is, io, keyopsv1.ReasonIssuedKeyTooPowerful, "the exchange gave the new key "+keyid.Mask(creds.APIKey)+" more than allowed: "+msg, true)
	default:
		// Missing a permission, or not IP-restricted as required.
		return r.dropPending(ctx, k, req, is, io, io.failReason(k), "the new key "+keyid.Mask(creds.APIKey)+" does not comply: "+msg, false)
	}
	promote := map[string]string{
		issuedAPIKey: creds.APIKey, issuedAPISecret: creds.APISecret, issuedPassphrase: creds.Passphrase,
		issuedLabel: label, issuedGeneration: is.get(pendingGeneration), issuedCreatedAt: r.now().UTC().Format(time.RFC3339),
		// The request this rotation answers, and any made meanwhile.
		issuedRotateRequest: k.Annotations[keyopsv1.AnnotationRotate],
		issuedExchangeID:    is.get(pendingExchangeID),
	}
	if cur := is.current().APIKey; cur != "" {
		promote[issuedPrevious], promote[issuedPrevLabel] = cur, is.get(issuedLabel)
		promote[previousExchangeID] = is.get(issuedExchangeID)
	}
	if err := r.save(ctx, is, promote, pendingLabel, pendingGeneration, pendingAPIKey, pendingAPISecret, pendingPassphrase, failedAttempts, failedRetryAt, failedRequest, pendingExchangeID, refusedCreate, refusedCreateMsg); err != nil {
		return err
	}
	io.events = append(io.events, event{Reason: keyopsv1.EventKeyIssued, Message: fmt.Sprintf("key %s verified with %s; it goes to the bots now", keyid.Mask(creds.APIKey), permissionpolicy.Status(res.Permissions).Summary)})
	return nil
}

// dropPending deletes a key that must not be used and forgets it.
func (r *Reconciler) dropPending(ctx context.Context, k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, is issuance, io *issueObservation, reason, msg string, final bool) error {
	apiKey := is.get(pendingAPIKey)
	if err := r.SubAccounts.DeleteSubAccountKey(ctx, req, apiKey); err != nil {
		io.failed(k, "deleting the refused key "+keyid.Mask(apiKey), err)
		return nil
	}
	r.countDeleted(k)
	set := map[string]string{}
	wait := time.Duration(0)
	if final {
		// No retry in a loop: the same request would get the same key.
		set[issuedRefusedGen] = strconv.FormatInt(k.Generation, 10)
	} else {
		wait = r.failure(k, is, set, 0)
	}
	if err := r.save(ctx, is, set, pendingLabel, pendingAPIKey, pendingAPISecret, pendingPassphrase, pendingExchangeID); err != nil {
		return err
	}
	r.countFailure(k, reason)
	io.status, io.reason, io.message = metav1.ConditionFalse, reason, msg+"; it was deleted at the exchange, and the bots keep the key they have"
	if is.current().APIKey == "" {
		io.message = msg + "; it was deleted at the exchange, and no key was handed to the bots"
	}
	if !final {
		io.message += fmt.Sprintf("; retrying at %s", r.now().Add(wait).UTC().Format(time.RFC3339))
	}
	io.events = append(io.events, event{Warning: true, Reason: reason, Message: io.message})
	io.wake = wait
	return nil
}

// countFailure counts a failed or refused issue (metrics).
func (r *Reconciler) countFailure(k *keyopsv1.ExchangeAPIKey, reason string) {
	if r.IssueFailed != nil {
		r.IssueFailed(string(k.Spec.Exchange), reason)
	}
}

// stepRetire deletes the previous key once the bots have run on the new one
// for spec.rotation.overlap.
func (r *Reconciler) stepRetire(ctx context.Context, k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, is issuance, io *issueObservation, now time.Time) error {
	prev := is.get(issuedPrevious)
	start := overlapStart(k, is.current())
	if start == nil {
		io.reason, io.message = keyopsv1.ReasonIssuing, fmt.Sprintf("key %s is being handed to the bots; key %s is deleted %s after they run on it", keyid.Mask(is.current().APIKey), keyid.Mask(prev), k.Spec.Rotation.OverlapOrDefault())
		// Status writes (the handover, the restart) do not trigger a
		// reconcile: look again soon, less often the longer it takes.
		io.wake = time.Second
		if t, err := time.Parse(time.RFC3339, is.get(issuedCreatedAt)); err == nil {
			io.wake = min(max(now.Sub(t)/4, time.Second), time.Minute)
		}
		return nil
	}
	if left := start.Add(k.Spec.Rotation.OverlapOrDefault()).Sub(now); left > 0 {
		io.wake = left
		return nil
	}
	if err := r.SubAccounts.DeleteSubAccountKey(ctx, req, prev); err != nil {
		io.failed(k, "deleting the previous key "+keyid.Mask(prev), err)
		return nil
	}
	r.countDeleted(k)
	if err := r.save(ctx, is, nil, issuedPrevious, issuedPrevLabel, previousExchangeID); err != nil {
		return err
	}
	io.events = append(io.events, event{Reason: keyopsv1.EventPreviousKeyDeleted, Message: fmt.Sprintf("deleted the previous key %s at the exchange after the overlap", keyid.Mask(prev))})
	return nil
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

// deleteLeftovers deletes the operator's own keys on the sub-account that
// neither the issuance Secret nor status references (never a key it did not
// create: those lack its label prefix).
func (r *Reconciler) deleteLeftovers(ctx context.Context, k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, is issuance, io *issueObservation) error {
	keys, err := r.SubAccounts.ListSubAccountKeys(ctx, req)
	if err != nil {
		return err
	}
	keep := map[string]bool{is.current().APIKey: true, is.get(issuedPrevious): true}
	for _, sk := range keys {
		if keep[sk.APIKey] || !ownLabel(k, sk.Label) {
			continue
		}
		if err := r.SubAccounts.DeleteSubAccountKey(ctx, req, sk.APIKey); err != nil {
			return err
		}
		r.countDeleted(k)
		io.events = append(io.events, event{Warning: true, Reason: keyopsv1.EventLeftoverKeyDeleted, Message: fmt.Sprintf("deleted leftover key %s (label %s) that no status or Secret references", keyid.Mask(sk.APIKey), sk.Label)})
	}
	return nil
}

// deleteIssuedKeys deletes every key the issuance Secret knows (deletion of
// the ExchangeAPIKey with deletionPolicy Delete). A missing account does not
// hold the deletion up: the keys it could not delete are named in an Event.
func (r *Reconciler) deleteIssuedKeys(ctx context.Context, k *keyopsv1.ExchangeAPIKey) error {
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: issuedSecretName(k)}, &s); err != nil {
		return client.IgnoreNotFound(err)
	}
	is := issuance{secret: &s}
	var keys []string
	for _, kk := range []string{issuedAPIKey, issuedPrevious, pendingAPIKey} {
		if v := is.get(kk); v != "" {
			keys = append(keys, v)
		}
	}
	if len(keys) == 0 && is.get(pendingLabel) == "" {
		return nil
	}
	_, req, why := r.issueAccount(ctx, k)
	if why == nil {
		// A key created but not recorded (a crash before the record) is
		// found by its label; so are older leftovers.
		listed, err := r.SubAccounts.ListSubAccountKeys(ctx, req)
		if err != nil && exchange.KindOf(err).Transient() {
			return err
		}
		for _, sk := range listed {
			if ownLabel(k, sk.Label) && !slices.Contains(keys, sk.APIKey) {
				keys = append(keys, sk.APIKey)
			}
		}
	}
	var left []string
	for _, apiKey := range keys {
		if why != nil {
			left = append(left, keyid.Mask(apiKey))
			continue
		}
		if err := r.SubAccounts.DeleteSubAccountKey(ctx, req, apiKey); err != nil {
			if exchange.KindOf(err).Transient() {
				return err
			}
			left = append(left, keyid.Mask(apiKey))
			continue
		}
		r.countDeleted(k)
	}
	if why != nil && is.get(pendingLabel) != "" && is.get(pendingAPIKey) == "" {
		left = append(left, "a key labelled "+is.get(pendingLabel)+" that may have been created")
	}
	if len(left) > 0 {
		cause := "the exchange refused"
		if why != nil {
			cause = why.message
		}
		r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, keyopsv1.EventIssuedKeyNotDeleted, keyopsv1.EventActionDelete, "could not delete key(s) %s on sub-account %s (%s): delete them on the exchange", strings.Join(left, ", "), k.Spec.Issue.SubAccount, cause)
	}
	return nil
}

func (r *Reconciler) countDeleted(k *keyopsv1.ExchangeAPIKey) {
	if r.KeyDeleted != nil {
		r.KeyDeleted(string(k.Spec.Exchange))
	}
}

// failReason is IssueFailed for the first key, RotationFailed once the
// bots have one.
func (io *issueObservation) failReason(k *keyopsv1.ExchangeAPIKey) string {
	if io.issued != nil || k.Status.Issued != nil {
		return keyopsv1.ReasonRotationFailed
	}
	return keyopsv1.ReasonIssueFailed
}

// waitRetry reports a failed attempt whose backoff has not passed: the
// condition it left, and when the next attempt is.
func (io *issueObservation) waitRetry(k *keyopsv1.ExchangeAPIKey, is issuance, wait time.Duration) {
	io.status, io.reason = metav1.ConditionFalse, io.failReason(k)
	io.message = fmt.Sprintf("the last attempt failed; retrying at %s", is.retryAt().UTC().Format(time.RFC3339))
	if c := meta.FindStatusCondition(k.Status.Conditions, conditionKeyIssued); c != nil && c.Status == metav1.ConditionFalse {
		io.reason, io.message = c.Reason, c.Message
	}
	io.wake = wait
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

// newPassphrase makes an OKX API passphrase: 24 characters with the upper-
// and lower-case letters, digits and special character OKX requires.
func newPassphrase() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := []byte("Ek7!")
	for len(b) < 24 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b = append(b, alphabet[n.Int64()])
	}
	return string(b)
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

// refuseCreate ends an attempt the exchange refused for good (see
// exchange.PermanentRefusal): the condition quotes the exchange, and no
// attempt follows until the spec, the account or the rotate annotation
// changes (no requeue, no backoff loop).
func (r *Reconciler) refuseCreate(ctx context.Context, k *keyopsv1.ExchangeAPIKey, req exchange.SubAccountRequest, is issuance, io *issueObservation, err error) error {
	msg := refusalMessage(k, req, err)
	if is.current().APIKey != "" {
		msg += "; the bots keep the key they have"
	}
	io.status, io.reason, io.message = metav1.ConditionFalse, io.failReason(k), msg
	io.wake = 0
	io.events = append(io.events, event{Warning: true, Reason: io.reason, Message: msg})
	r.countFailure(k, io.reason)
	set := map[string]string{refusedCreate: refusalKey(k, io.acctGen), refusedCreateMsg: msg}
	return r.save(ctx, is, set, pendingLabel, pendingPassphrase, pendingAPISecret, failedAttempts, failedRetryAt, failedRequest)
}

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
