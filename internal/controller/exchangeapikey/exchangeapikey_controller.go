// Package exchangeapikey holds the ExchangeAPIKey controller.
package exchangeapikey

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
)

// Reconciler reconciles ExchangeAPIKeys into target Secrets.
type Reconciler struct {
	// Client reads from the manager's cache, which holds ExchangeAPIKeys and
	// only the Secrets this operator manages (by label).
	client.Client
	// APIReader reads uncached: source Secrets, which are not in the cache
	// so that the manager does not hold every Secret of the cluster.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Probes calls the exchanges, sharing results among duplicate keys.
	Probes *probecache.Cache
	// Notifier delivers rotation reminders; nil disables them.
	Notifier Notifier
	// Clock is the one clock of the controller; tests inject a fake one.
	Clock clock.PassiveClock
	// Jitter returns a value in [-1, 1]; tests make it deterministic.
	Jitter func() float64
	// Endpoints decides which spec.endpoint values may receive keys; nil
	// allows the exchanges' default hosts and https endpoints only.
	Endpoints shared.EndpointChecker
	// Restarts, when set, counts each workload restart (metrics).
	Restarts func(namespace, kind, name string)
	// SubAccounts creates and deletes sub-account keys (spec.issue).
	SubAccounts SubAccountManager
	// Issued, KeyDeleted and IssueFailed, when set, count issued keys,
	// keys deleted at the exchange and failed issues (metrics).
	Issued      func(exchange string)
	KeyDeleted  func(exchange string)
	IssueFailed func(exchange, reason string)
	// ReplaceBackoff is the backoff of replacing issued keys the exchange
	// no longer accepts (nil: DefaultReplaceBackoff); tests shorten it.
	ReplaceBackoff []time.Duration
	// Tokens mints auth tokens (spec.token); TokenMinted, when set, counts
	// each mint by outcome (metrics).
	Tokens      TokenMinter
	TokenMinted func(exchange, outcome string)
	// WatchNamespaces restricts the source-Secret metadata cache to these
	// namespaces, like the manager's cache (empty: all namespaces).
	WatchNamespaces []string
	// Secrets is the manager's one Secret watch (shared.NewSecretWatcher),
	// built by the composition root and shared with the ExchangeAccount
	// controller: it knows the resourceVersions of the Secrets keys read.
	Secrets *refwatch.Watcher

	// sources remembers, per ExchangeAPIKey, the last source Secret read
	// and its resourceVersion, so an unchanged source is not fetched again.
	// Keyed by the ExchangeAPIKey, so that the copy goes when the key is
	// deleted or pointed at another Secret.
	sourcesMu sync.Mutex
	sources   map[types.NamespacedName]cachedSource
	// refused remembers, per key, the last reminder refusal reported, so
	// that its Warning Event is emitted once per reminder and cause.
	refusedMu sync.Mutex
	refused   map[types.NamespacedName]string
}

// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys/status,verbs=update;patch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func (r *Reconciler) now() time.Time { return shared.Now(r.Clock) }

// Reconcile observes, decides (decide, a pure function) and acts. The
// outcomes of the actions go back into decide as observations, and the
// decision's status is written once at the end; bookkeeping that must
// survive a failed status write (a reminder delivered) is saved with a
// patch that cannot conflict right after the action.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var k keyopsv1.ExchangeAPIKey
	if err := r.Get(ctx, req.NamespacedName, &k); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetSource(req.NamespacedName)
			r.forgetRefusedReminder(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !k.DeletionTimestamp.IsZero() {
		r.forgetSource(req.NamespacedName)
		return ctrl.Result{}, r.finalize(ctx, &k)
	}
	if err := r.ensureFinalizer(ctx, &k); err != nil {
		return shared.RequeueOnConflict(err)
	}

	// The reconcile's one reading of the clock (actions that record when
	// they happened, a restart, an announcement, read their own), and its
	// one reading of the cluster's policies: issuance and observe share
	// both.
	now := r.now()
	var policies clusterPolicies
	if !k.Spec.Suspend {
		var err error
		if policies.items, policies.nsLabels, err = r.observePolicies(ctx, k.Namespace); err != nil {
			return ctrl.Result{}, err
		}
	}
	var issued *issueObservation
	if k.Spec.Issue != nil && !k.Spec.Suspend {
		io, err := r.reconcileIssue(ctx, &k, now, policies)
		// What issuance did at the exchange (a key created, deleted) is
		// done and recorded in the issuance Secret, whatever becomes of
		// this reconcile's status write: tell the user now, or a conflict
		// on that write would leave it unannounced.
		shared.Record(r.Recorder, &k, keyopsv1.EventActionReconcile, io.events)
		if err != nil {
			return shared.RequeueOnConflict(err)
		}
		issued = &io
	}
	obs, err := r.observe(ctx, &k, issued, policies, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	d, actErr, err := r.act(ctx, &k, obs, decide(&k, obs))
	if err != nil {
		return shared.RequeueOnConflict(err)
	}

	if !equality.Semantic.DeepEqual(k.Status, d.status) {
		k.Status = d.status
		if err := r.Status().Update(ctx, &k); err != nil {
			return shared.RequeueOnConflict(err)
		}
	}
	shared.Record(r.Recorder, &k, keyopsv1.EventActionReconcile, d.events)
	if d.announce != nil {
		if err := r.announce(ctx, &k, d.announce); err != nil {
			return ctrl.Result{}, err
		}
	}
	if actErr != nil {
		return ctrl.Result{}, actErr
	}
	return ctrl.Result{RequeueAfter: d.requeueAfter}, nil
}

// act carries out what the decision says (the target write, the restarts,
// the reminder) and decides again with each outcome, so that the status
// written says what happened. err is an API-server error of the target
// write: nothing is recorded or announced for a write that did not happen,
// and the retry observes afresh. actErr is a reminder not delivered: the
// status is still written, and the reconcile is retried with backoff.
func (r *Reconciler) act(ctx context.Context, k *keyopsv1.ExchangeAPIKey, obs observation, d decision) (_ decision, actErr, err error) {
	if d.mintToken {
		obs.minted, obs.mintErr = r.mintToken(ctx, k, obs)
		logf.FromContext(ctx).V(1).Info("minted token", "exchange", k.Spec.Exchange, "key", keyid.Mask(obs.source.Creds.APIKey), "outcome", shared.Outcome(obs.mintErr))
		if r.TokenMinted != nil {
			r.TokenMinted(string(k.Spec.Exchange), shared.Outcome(obs.mintErr))
		}
		d = decide(k, obs)
	}
	if d.syncTarget {
		if obs, err = r.actTarget(ctx, k, obs, d); err != nil {
			return d, nil, err
		}
		d = decide(k, obs)
	}
	if d.notify != "" && r.Notifier != nil {
		var notified bool
		if notified, actErr = r.actReminder(ctx, k, d); notified {
			obs.notified = d.notify
			d = decide(k, obs)
		}
	}
	return d, actErr, nil
}

// actTarget writes the target Secret and restarts the workloads when the
// decision asks; the observation says what happened.
func (r *Reconciler) actTarget(ctx context.Context, k *keyopsv1.ExchangeAPIKey, obs observation, d decision) (observation, error) {
	wrote, conflict, err := r.syncTarget(ctx, k, obs.source, d.token)
	switch {
	case err != nil:
		return obs, err
	case conflict != "":
		obs.target = targetObservation{conflict: conflict}
	default:
		obs.targetWritten = wrote
		if d.restart {
			src := obs.source
			if d.token != nil {
				// Restart targets roll for each token (spec.token).
				src.Material = d.token.hash()
			}
			out := r.restartWorkloads(ctx, k, src, d.status.KeyID)
			obs.restarts = &out
		}
	}
	return obs, nil
}

// actReminder sends the reminder the decision owes. A reminder refused
// until the user acts gets a Warning Event naming the rule, and no retry
// loop; one not delivered otherwise is returned to be retried with backoff.
func (r *Reconciler) actReminder(ctx context.Context, k *keyopsv1.ExchangeAPIKey, d decision) (notified bool, err error) {
	key := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	var refused reminderRefused
	if err := r.notify(ctx, k, d); errors.As(err, &refused) {
		r.reportRefusedReminder(k, d.notify, refused)
		return false, nil
	} else if err != nil {
		logf.FromContext(ctx).Info("rotation reminder not delivered; retrying with backoff", "error", err.Error())
		return false, err
	}
	r.forgetRefusedReminder(key)
	return true, nil
}

// observe reads everything decide needs: the source, the target, and the
// exchange's answer when a probe is due.
func (r *Reconciler) observe(ctx context.Context, k *keyopsv1.ExchangeAPIKey, issued *issueObservation, policies clusterPolicies, now time.Time) (observation, error) {
	obs := observation{now: now, issue: issued}
	if r.Jitter != nil {
		obs.jitter = r.Jitter()
	} else {
		obs.jitter = rand.Float64()*2 - 1
	}
	if k.Spec.Suspend {
		return obs, nil
	}
	src, err := r.readSource(ctx, k)
	if err != nil {
		return obs, err
	}
	endpoint, demo := k.Spec.Endpoint, k.Spec.DemoTrading
	if issued != nil {
		endpoint, demo = issued.endpoint, issued.demo
		if !src.OK() {
			// No key issued yet: say why rather than "Secret missing".
			src = shared.Source{Reason: issued.reason, Message: issued.message}
			if issued.status == metav1.ConditionTrue || src.Message == "" {
				src = shared.Source{Reason: keyopsv1.ReasonIssuing, Message: "the first key is being created on sub-account " + k.Spec.Issue.SubAccount}
			}
		}
	}
	if src.OK() {
		// A template the operator refuses is a spec error: report it like
		// unusable source material, before anything is written. The verdict
		// is the spec's alone (secretformat.Compile sees no key material),
		// and a compiled template cannot fail to render: whether the key
		// ends InvalidTemplate or Synced says nothing about the material.
		if _, err := compileTarget(k); err != nil {
			src = shared.Source{Reason: keyopsv1.ReasonInvalidTemplate, Message: err.Error()}
		}
	}
	obs.source = src
	if obs.target, err = r.observeTarget(ctx, k); err != nil {
		return obs, err
	}
	obs.endpointErr = shared.CheckEndpoint(r.Endpoints, k.Spec.Exchange, endpoint)
	obs.policies, obs.nsLabels = policies.items, policies.nsLabels
	if due, force := probeDue(k, src, obs.endpointErr, effectiveMode(k, obs.policies, obs.nsLabels), now); due {
		req := exchange.Request{
			Exchange: exchange.Name(k.Spec.Exchange), Endpoint: endpoint,
			Credentials: src.Creds, Demo: demo,
		}
		if exchange.CapabilitiesOf(req.Exchange).CounterNonce {
			// The declared unit, never status: the operator does not choose it.
			req.NonceUnit = exchange.NonceUnit(k.Spec.Validation.NonceUnitOrDefault())
		}
		res := r.Probes.Probe(ctx, req, freshAfter(k, clusterpolicy.ValidationInterval(obs.policies, obs.nsLabels, k), now), force)
		obs.probe = &res
		logf.FromContext(ctx).V(1).Info("probed exchange", "exchange", k.Spec.Exchange, "key", keyid.Mask(src.Creds.APIKey), "shared", res.Shared, "outcome", shared.Outcome(res.Err))
	}
	return obs, nil
}

// freshAfter is how recent a shared probe result must be for k: within one
// interval, and newer than k's own last validation and than an unconfirmed
// answer it waits to confirm (the confirming probe must be a new request,
// or another key's answer received after it, never the answer itself).
// Status times are kept to the second, so a second is added to be sure k's
// own previous answer never passes for a new one.
func freshAfter(k *keyopsv1.ExchangeAPIKey, interval time.Duration, now time.Time) time.Time {
	t := now.Add(-interval)
	for _, mt := range []*metav1.Time{k.Status.LastValidationTime, unconfirmedAt(k)} {
		if mt != nil && mt.Add(time.Second).After(t) {
			t = mt.Add(time.Second)
		}
	}
	return t
}

func unconfirmedAt(k *keyopsv1.ExchangeAPIKey) *metav1.Time {
	if u := k.Status.UnconfirmedAnswer; u != nil {
		return &u.ReceivedAt
	}
	return nil
}

// observePolicies reads the cluster's ClusterExchangeKeyPolicies and the
// labels of the namespace they select by (both cached).
func (r *Reconciler) observePolicies(ctx context.Context, namespace string) ([]keyopsv1.ClusterExchangeKeyPolicy, map[string]string, error) {
	if len(r.WatchNamespaces) > 0 {
		return nil, nil, nil
	}
	var list keyopsv1.ClusterExchangeKeyPolicyList
	if err := r.List(ctx, &list); err != nil {
		return nil, nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil, nil
	}
	var ns corev1.Namespace
	if err := r.Get(ctx, types.NamespacedName{Name: namespace}, &ns); err != nil {
		return nil, nil, client.IgnoreNotFound(err)
	}
	return list.Items, ns.Labels, nil
}

// SourceSecretIndex indexes ExchangeAPIKeys by the name of their source Secret.
const SourceSecretIndex = "spec.credentialsSecretRef.name"

// RestartsIndex holds the ExchangeAPIKeys that have restart targets, the
// peers a restart looks at: a namespace of thousands of keys is not listed
// (let alone deep-copied) for the tenth of them that restart something.
const (
	RestartsIndex      = "spec.restartTargets"
	restartsIndexValue = "set"
)

// TargetSecretIndex indexes ExchangeAPIKeys by the name of their target
// Secret: a Secret of that name that the operator does not own (a
// conflict) is watched like a source, so that deleting or relabelling it
// is noticed at once.
const TargetSecretIndex = "spec.target.name"

// SetupWithManager wires the controller. Source Secrets are watched by
// metadata through a refwatch.Watcher, which remembers the resourceVersions
// of the Secrets some key refers to and nothing of the others: the operator
// must react to any Secret it is pointed at without holding the data, or
// even an entry, of every Secret in the cluster.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAPIKey{}, SourceSecretIndex, func(o client.Object) []string {
		return []string{sourceName(o.(*keyopsv1.ExchangeAPIKey))}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAPIKey{}, TargetSecretIndex, func(o client.Object) []string {
		return []string{o.(*keyopsv1.ExchangeAPIKey).TargetName()}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAPIKey{}, RestartsIndex, func(o client.Object) []string {
		if len(o.(*keyopsv1.ExchangeAPIKey).Spec.RestartTargets) == 0 {
			return nil
		}
		return []string{restartsIndexValue}
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("exchangeapikey").
		// Status writes do not trigger reconciles; spec and annotation
		// changes (the revalidate request) do.
		For(&keyopsv1.ExchangeAPIKey{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		WatchesRawSource(r.Secrets.Source(r.keysForSource)).
		// An ExchangeAccount turning Ready lets its issued keys go on at once.
		Watches(&keyopsv1.ExchangeAccount{}, handler.EnqueueRequestsFromMapFunc(r.keysForAccount)).
		WithOptions(opts)
	if len(r.WatchNamespaces) == 0 {
		// The cluster's policy floor: a policy change, or a namespace's new
		// labels, re-evaluates the keys it selects at once. A namespace-
		// scoped manager has no cluster-wide reads, and no floor.
		b = b.Watches(&keyopsv1.ClusterExchangeKeyPolicy{}, handler.EnqueueRequestsFromMapFunc(shared.MapPolicyToKeys(mgr.GetClient()))).
			Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(shared.MapNamespaceToKeys(mgr.GetClient())), builder.WithPredicates(predicate.LabelChangedPredicate{}))
	}
	return b.Complete(r)
}

// keysForSource maps a Secret to the ExchangeAPIKeys that read it (their
// source) or name it as their target: a target the operator does not own
// is a conflict that the user clears by deleting or relabelling it.
func (r *Reconciler) keysForSource(ctx context.Context, namespace, name string) []reconcile.Request {
	var out []reconcile.Request //nolint:prealloc // each index adds an unknown number of requests
	for _, index := range []string{SourceSecretIndex, TargetSecretIndex} {
		out = append(out, shared.ListRequests(ctx, r, &keyopsv1.ExchangeAPIKeyList{}, client.InNamespace(namespace), client.MatchingFields{index: name})...)
	}
	return out
}

// keysForAccount maps an ExchangeAccount to the ExchangeAPIKeys issued
// through it (spec.issue.accountRef, same namespace), and to those whose
// source Secret is its master key (refused with SourceIsMasterKey while it
// is; an update maps the old and the new object, so a key is released when
// the account stops naming its Secret).
func (r *Reconciler) keysForAccount(ctx context.Context, o client.Object) []reconcile.Request {
	var list keyopsv1.ExchangeAPIKeyList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	master := ""
	if a, ok := o.(*keyopsv1.ExchangeAccount); ok {
		master = a.Spec.CredentialsSecretRef.Name
	}
	var out []reconcile.Request
	for _, k := range list.Items {
		if (k.Spec.Issue != nil && k.Spec.Issue.AccountRef.Name == o.GetName()) || (master != "" && sourceName(&k) == master) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
		}
	}
	return out
}
