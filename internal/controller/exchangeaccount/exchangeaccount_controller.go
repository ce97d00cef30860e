// Package exchangeaccount holds the ExchangeAccount controller: it checks
// that the master key an account names can manage sub-account keys, and
// reports the result for the keys issued through it.
package exchangeaccount

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/permissionpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
)

// MasterChecker checks a master key: does the exchange accept it, and may it
// manage its sub-accounts' API keys.
type MasterChecker interface {
	CheckMaster(ctx context.Context, r exchange.SubAccountRequest) (*exchange.MasterCheck, error)
}

// accountCheckInterval is how often a master key is checked again (±10%).
const accountCheckInterval = time.Hour

// AccountSourceSecretIndex indexes ExchangeAccounts by their master key's Secret.
const AccountSourceSecretIndex = "spec.credentialsSecretRef.name"

// accountExchanges are the exchanges whose API lets a master key create,
// list and delete its sub-accounts' keys, and which the operator supports.
// The CRD refuses the others; this is the same rule for objects admitted
// before it (or by an API server without the CEL rule).
var accountExchanges = map[keyopsv1.Exchange]string{
	// POST /v5/user/create-sub-api, master key only
	// (bybit-exchange/docs docs/v5/user/create-subuid-apikey.mdx).
	"bybit": "POST /v5/user/create-sub-api",
	// POST /api/v5/users/subaccount/apikey, master account only, master
	// key bound to IPs (OKX API v5, "Create an API Key for a sub-account").
	"okx": "POST /api/v5/users/subaccount/apikey",
	// POST /sapi/v1/sub-account/subAccountApi, for master accounts
	// (developers.binance.com, sub_account/api-management/Create-Sub-account-API-Key).
	"binance": "POST /sapi/v1/sub-account/subAccountApi",
	// POST /api/v1/sub/api-key, the master account's key, permission
	// General (kucoin.com/docs-new/api-3470138).
	"kucoin": "POST /api/v1/sub/api-key",
}

// Reconciler checks the master key of each ExchangeAccount.
type Reconciler struct {
	client.Client
	// APIReader reads the master key's Secret uncached: source Secrets are
	// not in the manager's cache.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Master checks master keys; nil reports that sub-account key
	// management is not available.
	Master MasterChecker
	// Clock is the one clock of the controller; tests inject a fake one.
	Clock clock.PassiveClock
	// Jitter returns a value in [-1, 1]; tests make it deterministic.
	Jitter func() float64
	// Endpoints is the endpoint policy, as for ExchangeAPIKeys; nil allows
	// the exchanges' default hosts and https endpoints only.
	Endpoints shared.EndpointChecker
	// Secrets is the Secret watch master key Secrets are watched through
	// (the ExchangeAPIKey controller's, shared); nil makes SetupWithManager
	// build one of its own.
	Secrets *refwatch.Watcher
}

// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeaccounts,verbs=list;watch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeaccounts/status,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func (r *Reconciler) now() time.Time { return shared.Now(r.Clock) }

// Reconcile observes (the Secret, and the exchange when a check is due),
// decides (decideAccount, pure) and writes status only when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a keyopsv1.ExchangeAccount
	if err := r.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !a.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	obs, err := r.observe(ctx, &a)
	if err != nil {
		return ctrl.Result{}, err
	}
	d := decideAccount(&a, obs)
	if !equality.Semantic.DeepEqual(a.Status, d.status) {
		a.Status = d.status
		if err := r.Status().Update(ctx, &a); err != nil {
			return shared.RequeueOnConflict(err)
		}
	}
	shared.Record(r.Recorder, &a, keyopsv1.EventActionCheck, d.events)
	return ctrl.Result{RequeueAfter: d.requeueAfter}, nil
}

// accountObservation is what one reconcile of an ExchangeAccount read.
type accountObservation struct {
	now    time.Time
	jitter float64
	source shared.Source
	// endpointErr: the manager refuses spec.endpoint; no request is made.
	endpointErr error
	// check is the exchange's answer when a check was due, else nil.
	check *masterCheckResult
}

type masterCheckResult struct {
	at     time.Time
	result *exchange.MasterCheck
	err    error
}

// accountDecision is the status to write, the Events and the next reconcile.
type accountDecision struct {
	status       keyopsv1.ExchangeAccountStatus
	events       []shared.Event
	requeueAfter time.Duration
}

func (r *Reconciler) observe(ctx context.Context, a *keyopsv1.ExchangeAccount) (accountObservation, error) {
	obs := accountObservation{now: r.now()}
	if r.Jitter != nil {
		obs.jitter = r.Jitter()
	} else {
		obs.jitter = rand.Float64()*2 - 1
	}
	if _, ok := accountExchanges[a.Spec.Exchange]; !ok {
		return obs, nil
	}
	src, err := r.readSource(ctx, a)
	if err != nil {
		return obs, err
	}
	obs.source = src
	obs.endpointErr = shared.CheckEndpoint(r.Endpoints, a.Spec.Exchange, a.Spec.Endpoint)
	if accountCheckDue(a, src, obs.endpointErr, obs.now) {
		req := exchange.SubAccountRequest{
			Exchange: exchange.Name(a.Spec.Exchange), Endpoint: a.Spec.Endpoint, Demo: a.Spec.DemoTrading, Master: src.Creds,
		}
		var res *exchange.MasterCheck
		if r.Master != nil {
			res, err = r.Master.CheckMaster(ctx, req)
		} else {
			err = &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: req.Exchange, Message: "sub-account key management is not available yet"}
		}
		obs.check = &masterCheckResult{at: r.now(), result: res, err: err}
		logf.FromContext(ctx).V(1).Info("checked master key", "exchange", a.Spec.Exchange, "key", keyid.Mask(src.Creds.APIKey), "outcome", shared.Outcome(err))
	}
	return obs, nil
}

// readSource reads the master key's Secret with an uncached GET (accounts
// are few and reconciled rarely) and checks its material the way an
// ExchangeAPIKey's source is checked.
func (r *Reconciler) readSource(ctx context.Context, a *keyopsv1.ExchangeAccount) (shared.Source, error) {
	ref := a.Spec.CredentialsSecretRef
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: ref.Name}, &s)
	if apierrors.IsNotFound(err) {
		return shared.ReadCredentials(a.Namespace, a.Spec.Exchange, ref, nil), nil
	}
	if err != nil {
		return shared.Source{}, err
	}
	return shared.ReadCredentials(a.Namespace, a.Spec.Exchange, ref, &s), nil
}

// accountCheckDue says whether this reconcile must ask the exchange: on a
// new spec, new key material, an explicit revalidate request, or when the
// schedule says so.
func accountCheckDue(a *keyopsv1.ExchangeAccount, src shared.Source, endpointErr error, now time.Time) bool {
	st := &a.Status
	if _, ok := accountExchanges[a.Spec.Exchange]; !ok || !src.OK() || endpointErr != nil {
		return false
	}
	if v := a.Annotations[keyopsv1.AnnotationRevalidate]; v != "" && v != st.RevalidateRequest {
		return true
	}
	return st.ObservedGeneration != a.Generation || st.CredentialsHash != src.Material ||
		st.NextCheckTime == nil || !now.Before(st.NextCheckTime.Time)
}

// decideAccount turns an observation into the status, the Events and the
// next reconcile. It is pure.
func decideAccount(a *keyopsv1.ExchangeAccount, obs accountObservation) accountDecision {
	st := a.Status.DeepCopy()
	st.ObservedGeneration = a.Generation
	set := func(status metav1.ConditionStatus, reason, msg string) {
		// The observed time, not the wall clock, dates a transition.
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: keyopsv1.ConditionReady, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: a.Generation, LastTransitionTime: metav1.NewTime(obs.now)})
	}
	src := obs.source
	switch _, supported := accountExchanges[a.Spec.Exchange]; {
	case !supported:
		set(metav1.ConditionFalse, keyopsv1.ReasonUnsupportedExchange, fmt.Sprintf("%s has no sub-account key API the operator supports: use bybit, okx, binance or kucoin", a.Spec.Exchange))
		st.NextCheckTime = nil
	case !src.OK():
		// Nothing can be checked until the Secret changes, and its watch
		// brings the account back then.
		set(metav1.ConditionFalse, src.Reason, src.Message)
		st.NextCheckTime = nil
	case obs.endpointErr != nil:
		set(metav1.ConditionFalse, keyopsv1.ReasonEndpointNotAllowed, obs.endpointErr.Error())
		st.NextCheckTime = nil
	default:
		st.KeyID = keyid.Mask(src.Creds.APIKey)
		if obs.check != nil {
			applyMasterCheck(a, st, obs, set)
			if v := a.Annotations[keyopsv1.AnnotationRevalidate]; v != "" {
				st.RevalidateRequest = v
			}
		}
	}
	d := accountDecision{status: *st, events: accountEvents(a.Status.Conditions, st.Conditions)}
	if st.NextCheckTime != nil {
		d.requeueAfter = max(st.NextCheckTime.Sub(obs.now), time.Second)
	}
	return d
}

// applyMasterCheck records the exchange's answer about the master key.
func applyMasterCheck(a *keyopsv1.ExchangeAccount, st *keyopsv1.ExchangeAccountStatus, obs accountObservation, set func(metav1.ConditionStatus, string, string)) {
	c := obs.check
	ex := a.Spec.Exchange
	st.CredentialsHash = obs.source.Material
	next := func(d time.Duration) *metav1.Time {
		t := metav1.NewTime(obs.now.Add(d))
		return &t
	}
	regular := shared.Jittered(accountCheckInterval, obs.jitter)
	at := metav1.NewTime(c.at)
	if c.err == nil && c.result != nil {
		st.LastCheckTime, st.NextCheckTime, st.TransientFailures = &at, next(regular), 0
		st.Permissions = nil
		if c.result.Permissions != nil {
			st.Permissions = permissionpolicy.Status(c.result.Permissions)
		}
		if c.result.CanManage {
			set(metav1.ConditionTrue, keyopsv1.ReasonAccountVerified, fmt.Sprintf("master key %s verified on %s and may manage sub-account keys", st.KeyID, ex))
			return
		}
		missing := c.result.Missing
		if missing == "" {
			missing = "the exchange did not say what is missing"
		}
		set(metav1.ConditionFalse, keyopsv1.ReasonMasterKeyCannotManage, fmt.Sprintf("master key %s verified on %s but cannot manage sub-account keys: %s", st.KeyID, ex, missing))
		return
	}
	e, _ := exchange.AsError(c.err)
	if e == nil {
		msg := "no answer"
		if c.err != nil {
			msg = c.err.Error()
		}
		e = &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: exchange.Name(ex), Message: msg}
	}
	if e.Kind.Transient() {
		st.TransientFailures++
		wait := shared.Backoff(st.TransientFailures, accountCheckInterval)
		if e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		st.NextCheckTime = next(wait)
		reason := map[exchange.Kind]string{exchange.RateLimited: keyopsv1.ReasonRateLimited, exchange.Unavailable: keyopsv1.ReasonExchangeUnavailable}[e.Kind]
		if reason == "" {
			reason = keyopsv1.ReasonUnexpectedResponse
		}
		set(metav1.ConditionFalse, reason, fmt.Sprintf("%s; retrying in %s", e.Error(), wait.Round(time.Second)))
		return
	}
	// A definite answer: the key, or what it may do, is wrong.
	st.LastCheckTime, st.NextCheckTime, st.TransientFailures = &at, next(regular), 0
	st.Permissions = nil
	reason, msg := masterKeyReason(a, st.KeyID, e)
	set(metav1.ConditionFalse, reason, msg)
}

// masterKeyReason maps a definite refusal to a Ready reason (the KeyValid
// reasons of ExchangeAPIKeys) and a message that says how to fix it.
func masterKeyReason(a *keyopsv1.ExchangeAccount, masked string, e *exchange.Error) (string, string) {
	ex, secret := a.Spec.Exchange, a.Spec.CredentialsSecretRef.Name
	switch e.Kind {
	case exchange.PermissionDenied:
		return keyopsv1.ReasonMasterKeyCannotManage, fmt.Sprintf("%s refused master key %s a sub-account key request (%s): give it the permissions the exchange requires to manage sub-account keys", ex, masked, e.Error())
	case exchange.InvalidKey:
		return keyopsv1.ReasonInvalidKey, fmt.Sprintf("%s does not know master key %s (%s): check Secret %s", ex, masked, e.Error(), secret)
	case exchange.InvalidSignature:
		return keyopsv1.ReasonInvalidSignature, fmt.Sprintf("%s rejected the signature made with master key %s's secret: the secret in Secret %s does not belong to this key", ex, masked, secret)
	case exchange.WrongPassphrase:
		return keyopsv1.ReasonWrongPassphrase, fmt.Sprintf("%s rejected the passphrase of master key %s: check Secret %s", ex, masked, secret)
	case exchange.Inactive:
		return keyopsv1.ReasonInactive, fmt.Sprintf("master key %s exists on %s but is not active: %s", masked, ex, e.Error())
	case exchange.IPNotAllowed:
		return keyopsv1.ReasonIPNotAllowed, fmt.Sprintf("the operator's egress IP is not on master key %s's allowlist on %s: add it, or route the operator through an allowlisted static IP (HTTPS_PROXY)", masked, ex)
	case exchange.KeyOrIPRejected:
		return keyopsv1.ReasonKeyOrIPRejected, fmt.Sprintf("%s rejected master key %s with one answer for several causes: %s (%s)", ex, masked, strings.Join(exchange.KeyOrIPCauses(exchange.Name(ex)), "; or "), e.Error())
	case exchange.ClockSkew:
		return keyopsv1.ReasonClockSkew, fmt.Sprintf("%s rejected the request's timestamp: check the node's time (NTP)", ex)
	}
	return keyopsv1.ReasonUnexpectedResponse, e.Error()
}

// accountEvents announces a change of Ready's status or reason, once.
func accountEvents(before, after []metav1.Condition) []shared.Event {
	a := meta.FindStatusCondition(after, keyopsv1.ConditionReady)
	b := meta.FindStatusCondition(before, keyopsv1.ConditionReady)
	if a == nil || b != nil && b.Status == a.Status && b.Reason == a.Reason {
		return nil
	}
	return []shared.Event{{Warning: a.Status != metav1.ConditionTrue, Reason: a.Reason, Message: a.Message}}
}

// SetupWithManager wires the ExchangeAccount controller. Master key Secrets
// are watched through the Secret watch (shared with the ExchangeAPIKey
// controller when given), which asks accountsForSecret whether an account
// refers to a Secret.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAccount{}, AccountSourceSecretIndex, func(o client.Object) []string {
		return []string{o.(*keyopsv1.ExchangeAccount).Spec.CredentialsSecretRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("exchangeaccount").
		For(&keyopsv1.ExchangeAccount{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesRawSource(r.Secrets.Source(r.accountsForSecret)).
		WithOptions(opts).
		Complete(r)
}

// accountsForSecret maps a Secret to the ExchangeAccounts whose master key it holds.
func (r *Reconciler) accountsForSecret(ctx context.Context, namespace, name string) []reconcile.Request {
	return shared.ListRequests(ctx, r, &keyopsv1.ExchangeAccountList{}, client.InNamespace(namespace), client.MatchingFields{AccountSourceSecretIndex: name})
}
