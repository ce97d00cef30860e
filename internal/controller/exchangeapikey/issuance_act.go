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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/permissionpolicy"
)

// SubAccountManager creates, lists and deletes sub-account keys
// (*exchange.Prober).
type SubAccountManager interface {
	CreateSubAccountKey(ctx context.Context, r exchange.SubAccountRequest, k exchange.NewSubAccountKey) (*exchange.SubAccountKey, error)
	ListSubAccountKeys(ctx context.Context, r exchange.SubAccountRequest) ([]exchange.SubAccountKey, error)
	DeleteSubAccountKey(ctx context.Context, r exchange.SubAccountRequest, apiKey string) error
}

// clusterPolicies are the ClusterExchangeKeyPolicies and the labels of the
// key's namespace, read once per reconcile (observePolicies).
type clusterPolicies struct {
	items    []keyopsv1.ClusterExchangeKeyPolicy
	nsLabels map[string]string
}

// issueRun is what the actions of one issuance step work with, all read
// once at the start of the reconcile.
type issueRun struct {
	k        *keyopsv1.ExchangeAPIKey
	req      exchange.SubAccountRequest
	is       issuance
	io       *issueObservation
	now      time.Time
	policies clusterPolicies
	// dead is the verdict on the current key when the exchange no longer
	// accepts it (issuanceStep.dead).
	dead string
}

// reconcileIssue runs one step of issuing or rotating k's key: it reads the
// issuance Secret and the account, decides (decideIssuance) and carries the
// step out. Errors are API-server errors (retried); the exchange's answers
// end in the condition.
func (r *Reconciler) reconcileIssue(ctx context.Context, k *keyopsv1.ExchangeAPIKey, now time.Time, policies clusterPolicies) (issueObservation, error) {
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

	in := issuanceInput{key: k, record: is, account: why, acctGen: io.acctGen, now: now, backoff: r.ReplaceBackoff}
	if why == nil {
		in.unlisted = r.currentUnlisted(ctx, k, is, req, now)
	}
	step := decideIssuance(in)
	if step.recordRequest != "" {
		if err := r.save(ctx, is, map[string]string{issuedRotateRequest: step.recordRequest}); err != nil {
			return io, err
		}
	}
	run := &issueRun{k: k, req: req, is: is, io: &io, now: now, policies: policies, dead: step.dead}
	switch step.action {
	case issueCreate:
		err = r.issueCreate(ctx, run, step.why)
	case issueFinishPending:
		err = r.issuePending(ctx, run)
	case issueRetire:
		err = r.issueRetire(ctx, run)
	default:
		step.report.applyTo(&io)
	}
	io.fill(k, is)
	return io, err
}

// currentUnlisted reads the sub-account's key list when the verdict on the
// current key names the key and the IP alike (deadVerdict): the exchange's
// own list, read with the master key, is the definite answer whether the
// key still exists. A list that fails says nothing (false).
func (r *Reconciler) currentUnlisted(ctx context.Context, k *keyopsv1.ExchangeAPIKey, is issuance, req exchange.SubAccountRequest, now time.Time) bool {
	cur := is.current()
	if cur.APIKey == "" || is.get(pendingLabel) != "" {
		return false
	}
	if _, needList := deadVerdict(&k.Status, keyid.Fingerprint(cur.APIKey), keyid.CredentialsHash(cur.APIKey, cur.APISecret, cur.Passphrase), now); !needList {
		return false
	}
	keys, err := r.SubAccounts.ListSubAccountKeys(ctx, req)
	if err != nil {
		logf.FromContext(ctx).Info("listing the sub-account's keys to confirm a rejected key is gone", "error", sanitizeMessage(err))
		return false
	}
	return !slices.ContainsFunc(keys, func(sk exchange.SubAccountKey) bool { return sk.APIKey == cur.APIKey })
}

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

// issueCreate records the intent, creates the key and records the answer.
func (r *Reconciler) issueCreate(ctx context.Context, run *issueRun, due string) error {
	k, req, is, io := run.k, run.req, run.is, run.io
	if err := r.deleteLeftovers(ctx, run); err != nil {
		io.failed(k, "listing the keys of sub-account "+req.SubAccount, err)
		return nil
	}
	gen := max(is.int(issuedGeneration), is.int(pendingGeneration)) + 1
	intent := map[string]string{pendingLabel: issueLabel(k, gen), pendingGeneration: strconv.FormatInt(gen, 10)}
	if run.dead != "" {
		// The promotion of this key, in whichever reconcile, records the
		// replacement (promotion).
		intent[replacingKey], intent[replacingReason] = keyid.Fingerprint(is.current().APIKey), run.dead
	}
	nk := exchange.NewSubAccountKey{Label: intent[pendingLabel], IPs: k.Spec.Issue.IPAllowlist, Lifetime: issueLifetime(k)}
	for _, p := range k.Spec.Permissions.RequiredOrDefault() {
		nk.Permissions = append(nk.Permissions, string(p))
	}
	switch k.Spec.Exchange {
	case keyopsv1.ExchangeOKX:
		nk.Passphrase = newPassphrase()
		intent[pendingPassphrase] = nk.Passphrase
	case keyopsv1.ExchangeKucoin:
		// Saved before the call: the bots need it, and so does the delete
		// of a key created but not recorded.
		nk.Passphrase = newKuCoinPassphrase()
		intent[pendingPassphrase] = nk.Passphrase
	case keyopsv1.ExchangeBinance:
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
		return r.refuseCreate(ctx, run, err)
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
		retryAfter := time.Duration(0)
		if e, ok := exchange.AsError(err); ok {
			retryAfter = e.RetryAfter
		}
		set, wait := failure(k, is, run.now, retryAfter)
		io.wake = wait
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
	if created.ExpiresAt != nil {
		rec[pendingExpiresAt] = created.ExpiresAt.UTC().Format(time.RFC3339)
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
	return r.issuePending(ctx, run)
}

// issuePending finishes a key being issued: finds it when its creation was
// not recorded, verifies it, and promotes or deletes it.
func (r *Reconciler) issuePending(ctx context.Context, run *issueRun) error {
	k, req, is, io := run.k, run.req, run.is, run.io
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
			if k.Spec.Exchange == keyopsv1.ExchangeBinance && is.get(pendingAPISecret) != "" {
				// The private key was saved before the call: adopt it.
				if err := r.save(ctx, is, map[string]string{pendingAPIKey: sk.APIKey}); err != nil {
					return err
				}
				return r.issuePending(ctx, run)
			}
			// Its secret was shown once and lost: delete it.
			if err := r.SubAccounts.DeleteSubAccountKey(ctx, forKey(req, is, sk.APIKey, sk.Label), sk.APIKey); err != nil {
				io.failed(k, "deleting an unrecorded key", err)
				return nil
			}
			r.countDeleted(k)
			io.events = append(io.events, event{Warning: true, Reason: keyopsv1.EventLeftoverKeyDeleted, Message: fmt.Sprintf("deleted key %s (label %s): it was created but its secret was not recorded", keyid.Mask(sk.APIKey), label)})
		}
		// Nothing to adopt: start over with the next generation.
		if err := r.save(ctx, is, nil, pendingLabel, pendingPassphrase, pendingAPISecret, pendingExpiresAt); err != nil {
			return err
		}
		if is.int(failedAttempts) > 0 {
			// The attempt failed (a create that timed out or kept
			// failing): that stays the condition until one succeeds.
			waitRetry(k, is, max(is.retryAt().Sub(run.now), time.Second)).applyTo(io)
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
		return r.dropPending(ctx, run, io.failReason(k), fmt.Sprintf("the new key %s did not verify (%v)", keyid.Mask(creds.APIKey), res.Err), false)
	}
	perms := permissionpolicy.Status(res.Permissions)
	switch reason, msg := issuedKeyVerdict(k, perms, run.policies.items, run.policies.nsLabels); reason {
	case keyopsv1.ReasonCompliant:
	case keyopsv1.ReasonForbiddenPermission, keyopsv1.ReasonPolicyViolation:
		// More than allowed: the same request would get the same key.
		return r.dropPending(ctx, run, keyopsv1.ReasonIssuedKeyTooPowerful, "the exchange gave the new key "+keyid.Mask(creds.APIKey)+" more than allowed: "+msg, true)
	default:
		// Missing a permission, or not IP-restricted as required.
		return r.dropPending(ctx, run, io.failReason(k), "the new key "+keyid.Mask(creds.APIKey)+" does not comply: "+msg, false)
	}
	replaced, dead := is.current().APIKey, is.get(replacingReason)
	if !replacing(is) {
		replaced = ""
	}
	if err := r.save(ctx, is, promotion(k, is, run.now), promotionDrops...); err != nil {
		return err
	}
	io.events = append(io.events, event{Reason: keyopsv1.EventKeyIssued, Message: fmt.Sprintf("key %s verified with %s; it goes to the bots now", keyid.Mask(creds.APIKey), perms.Summary)})
	if replaced != "" {
		io.events = append(io.events, event{Reason: keyopsv1.EventIssuedKeyReplaced, Message: fmt.Sprintf("key %s replaces key %s: %s; the bots get the new key now, and key %s is deleted at the exchange if it still exists", keyid.Mask(creds.APIKey), keyid.Mask(replaced), deadWords(dead), keyid.Mask(replaced))})
	}
	return nil
}

// dropPending deletes a key that must not be used and forgets it.
func (r *Reconciler) dropPending(ctx context.Context, run *issueRun, reason, msg string, final bool) error {
	k, req, is, io := run.k, run.req, run.is, run.io
	apiKey := is.get(pendingAPIKey)
	if err := r.SubAccounts.DeleteSubAccountKey(ctx, forKey(req, is, apiKey, ""), apiKey); err != nil {
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
		set, wait = failure(k, is, run.now, 0)
	}
	if err := r.save(ctx, is, set, pendingLabel, pendingAPIKey, pendingAPISecret, pendingPassphrase, pendingExchangeID, pendingExpiresAt); err != nil {
		return err
	}
	r.countFailure(k, reason)
	io.status, io.reason, io.message = metav1.ConditionFalse, reason, msg+"; it was deleted at the exchange, and the bots keep the key they have"
	if is.current().APIKey == "" {
		io.message = msg + "; it was deleted at the exchange, and no key was handed to the bots"
	}
	if !final {
		io.message += fmt.Sprintf("; retrying at %s", run.now.Add(wait).UTC().Format(time.RFC3339))
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

// issueRetire deletes the previous key; decideRetire said its overlap has
// passed.
func (r *Reconciler) issueRetire(ctx context.Context, run *issueRun) error {
	k, req, is, io := run.k, run.req, run.is, run.io
	prev, dead := is.get(issuedPrevious), is.get(previousDead)
	// A key the exchange already deleted counts as deleted
	// (DeleteSubAccountKey).
	if err := r.SubAccounts.DeleteSubAccountKey(ctx, forKey(req, is, prev, ""), prev); err != nil {
		io.failed(k, "deleting the previous key "+keyid.Mask(prev), err)
		return nil
	}
	r.countDeleted(k)
	if err := r.save(ctx, is, nil, issuedPrevious, issuedPrevLabel, previousExchangeID, previousDead, previousPassphrase); err != nil {
		return err
	}
	msg := fmt.Sprintf("deleted the previous key %s at the exchange after the overlap", keyid.Mask(prev))
	switch {
	case dead != "":
		msg = fmt.Sprintf("deleted the replaced key %s at the exchange, or found it already gone (%s)", keyid.Mask(prev), deadWords(dead))
	case run.dead != "":
		msg = fmt.Sprintf("deleted the previous key %s at the exchange: the bots run on key %s, which the exchange no longer accepts, and its replacement takes the previous key's place", keyid.Mask(prev), keyid.Mask(is.current().APIKey))
	}
	io.events = append(io.events, event{Reason: keyopsv1.EventPreviousKeyDeleted, Message: msg})
	return nil
}

// deleteLeftovers deletes the operator's own keys on the sub-account that
// neither the issuance Secret nor status references (never a key it did not
// create: those lack its label prefix).
func (r *Reconciler) deleteLeftovers(ctx context.Context, run *issueRun) error {
	k, req, is, io := run.k, run.req, run.is, run.io
	keys, err := r.SubAccounts.ListSubAccountKeys(ctx, req)
	if err != nil {
		return err
	}
	keep := map[string]bool{is.current().APIKey: true, is.get(issuedPrevious): true}
	for _, sk := range keys {
		if keep[sk.APIKey] || !ownLabel(k, sk.Label) {
			continue
		}
		del := forKey(req, is, sk.APIKey, sk.Label)
		if exchange.DeleteNeedsPassphrase(req.Exchange) && del.KeyPassphrase == "" {
			// KuCoin deletes a key only with its passphrase, which the
			// operator never lost for a key it made (saved before the
			// create); a key left from a Secret restored or edited by hand
			// is left alone rather than blocking every new key.
			io.events = append(io.events, event{Warning: true, Reason: keyopsv1.EventIssuedKeyNotDeleted, Message: fmt.Sprintf("leftover key %s (label %s) on sub-account %s cannot be deleted: %s deletes a key only with its passphrase, which the issuance Secret does not hold; delete it on the exchange", keyid.Mask(sk.APIKey), sk.Label, req.SubAccount, req.Exchange)})
			continue
		}
		if err := r.SubAccounts.DeleteSubAccountKey(ctx, del, sk.APIKey); err != nil {
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
	labels := map[string]string{}
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
				labels[sk.APIKey] = sk.Label
			}
		}
	}
	var left []string
	for _, apiKey := range keys {
		if why != nil {
			left = append(left, keyid.Mask(apiKey))
			continue
		}
		if err := r.SubAccounts.DeleteSubAccountKey(ctx, forKey(req, is, apiKey, labels[apiKey]), apiKey); err != nil {
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

// refuseCreate ends an attempt the exchange refused for good (see
// exchange.PermanentRefusal): the condition quotes the exchange, and no
// attempt follows until the spec, the account or the rotate annotation
// changes (no requeue, no backoff loop).
func (r *Reconciler) refuseCreate(ctx context.Context, run *issueRun, err error) error {
	k, is, io := run.k, run.is, run.io
	msg := refusalMessage(k, run.req, err)
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
