// Package controllers holds the ExchangeAPIKey controller.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/policy"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
	"github.com/keyops-io/exchange-key-operator/internal/secretformat"
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
	Endpoints EndpointChecker
	// Restarts, when set, counts each workload restart (metrics).
	Restarts func(namespace, kind, name string)
	// SubAccounts creates and deletes sub-account keys (spec.issue).
	SubAccounts SubAccountManager
	// Issued, KeyDeleted and IssueFailed, when set, count issued keys,
	// keys deleted at the exchange and failed issues (metrics).
	Issued      func(exchange string)
	KeyDeleted  func(exchange string)
	IssueFailed func(exchange, reason string)
	// WatchNamespaces restricts the source-Secret metadata cache to these
	// namespaces, like the manager's cache (empty: all namespaces).
	WatchNamespaces []string

	// sourceVersions knows the resourceVersions of the Secrets keys read
	// (set up by SetupWithManager); sources remembers, per ExchangeAPIKey,
	// the last source Secret read and its resourceVersion, so an unchanged
	// source is not fetched again. Keyed by the ExchangeAPIKey, so that the
	// copy goes when the key is deleted or pointed at another Secret.
	sourceVersions *refwatch.Watcher
	sourcesMu      sync.Mutex
	sources        map[types.NamespacedName]cachedSource
	// refused remembers, per key, the last reminder refusal reported, so
	// that its Warning Event is emitted once per reminder and cause.
	refusedMu sync.Mutex
	refused   map[types.NamespacedName]string
}

// EndpointChecker refuses exchange endpoints the keys must not be sent to.
type EndpointChecker interface {
	Check(exchange, endpoint string) error
}

type cachedSource struct {
	secretName      string
	resourceVersion string
	secret          *corev1.Secret
}

// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys/status,verbs=update;patch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

func (r *Reconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock.Now()
	}
	return time.Now()
}

// Reconcile observes, decides (decide, a pure function) and acts. The
// outcomes of the actions go back into decide as observations, and the
// decision's status is written once at the end; bookkeeping that must
// survive a failed status write (a reminder delivered) is saved with a
// patch that cannot conflict right after the action.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
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
		return requeueOnConflict(err)
	}

	var issued *issueObservation
	if k.Spec.Issue != nil && !k.Spec.Suspend {
		io, err := r.reconcileIssue(ctx, &k)
		if err != nil {
			return requeueOnConflict(err)
		}
		issued = &io
	}
	obs, err := r.observe(ctx, &k, issued)
	if err != nil {
		return ctrl.Result{}, err
	}
	d := decide(&k, obs)
	var actErr error
	if d.syncTarget {
		wrote, conflict, err := r.syncTarget(ctx, &k, obs.source)
		switch {
		case err != nil:
			// Nothing is recorded or announced for a write that did not
			// happen; the retry observes afresh.
			return requeueOnConflict(err)
		case conflict != "":
			obs.target = targetObservation{conflict: conflict}
		default:
			obs.targetWritten = wrote
			if d.restart {
				out := r.restartWorkloads(ctx, &k, obs.source, d.status.KeyID)
				obs.restarts = &out
			}
		}
		d = decide(&k, obs)
	}
	if d.notify != "" && r.Notifier != nil {
		var refused reminderRefused
		if err := r.notify(ctx, &k, d); errors.As(err, &refused) {
			// Permanent until the user acts: a Warning Event on the key
			// names the rule; no retry loop.
			r.reportRefusedReminder(&k, d.notify, refused)
		} else if err != nil {
			log.Info("rotation reminder not delivered; retrying with backoff", "error", err.Error())
			actErr = err
		} else {
			r.forgetRefusedReminder(req.NamespacedName)
			obs.notified = d.notify
			d = decide(&k, obs)
		}
	}

	if !equality.Semantic.DeepEqual(k.Status, d.status) {
		k.Status = d.status
		if err := r.Status().Update(ctx, &k); err != nil {
			return requeueOnConflict(err)
		}
	}
	for _, e := range d.events {
		typ := corev1.EventTypeNormal
		if e.warning {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(&k, nil, typ, e.reason, "Reconcile", "%s", e.message)
	}
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

// observe reads everything decide needs: the source, the target, and the
// exchange's answer when a probe is due.
func (r *Reconciler) observe(ctx context.Context, k *keyopsv1.ExchangeAPIKey, issued *issueObservation) (observation, error) {
	now := r.now()
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
		if !src.ok() {
			// No key issued yet: say why rather than "Secret missing".
			src = sourceResult{reason: issued.reason, message: issued.message}
			if issued.status == metav1.ConditionTrue || src.message == "" {
				src = sourceResult{reason: keyopsv1.ReasonIssuing, message: "the first key is being created on sub-account " + k.Spec.Issue.SubAccount}
			}
		}
	}
	if src.ok() {
		// A template the operator refuses is a spec error: report it like
		// unusable source material, before anything is written. The verdict
		// is the spec's alone (secretformat.Compile sees no key material),
		// and a compiled template cannot fail to render: whether the key
		// ends InvalidTemplate or Synced says nothing about the material.
		if _, err := compileTarget(k); err != nil {
			src = sourceResult{reason: keyopsv1.ReasonInvalidTemplate, message: err.Error()}
		}
	}
	obs.source = src
	if obs.target, err = r.observeTarget(ctx, k); err != nil {
		return obs, err
	}
	obs.endpointErr = checkEndpoint(r.Endpoints, k.Spec.Exchange, endpoint)
	if obs.policies, obs.nsLabels, err = r.observePolicies(ctx, k.Namespace); err != nil {
		return obs, err
	}
	if due, force := probeDue(k, src, obs.endpointErr, effectiveMode(k, obs.policies, obs.nsLabels), now); due {
		req := exchange.Request{
			Exchange: exchange.Name(k.Spec.Exchange), Endpoint: endpoint,
			Credentials: src.creds, Demo: demo,
		}
		if exchange.CapabilitiesOf(req.Exchange).CounterNonce {
			// The declared unit, never status: the operator does not choose it.
			req.NonceUnit = exchange.NonceUnit(k.Spec.Validation.NonceUnitOrDefault())
		}
		res := r.Probes.Probe(ctx, req, freshAfter(k, policy.ValidationInterval(obs.policies, obs.nsLabels, k), now), force)
		obs.probe = &res
		logf.FromContext(ctx).V(1).Info("probed exchange", "exchange", k.Spec.Exchange, "key", keyid.Mask(src.creds.APIKey), "shared", res.Shared, "outcome", outcome(res.Err))
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

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(exchange.KindOf(err))
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

// checkEndpoint applies the manager's endpoint policy p to an endpoint of
// exchange ex (an ExchangeAPIKey's, or an ExchangeAccount's: a master key
// must not go anywhere a key may not). A nil policy allows the exchange's
// default host and https endpoints only.
func checkEndpoint(p EndpointChecker, ex keyopsv1.Exchange, endpoint string) error {
	if p != nil {
		return p.Check(string(ex), endpoint)
	}
	if endpoint == "" {
		return nil
	}
	if u, err := url.Parse(endpoint); err != nil || u.Scheme != "https" {
		return fmt.Errorf("endpoint %s is not https; the manager refuses plain-HTTP exchange endpoints unless started with --allow-insecure-endpoints", endpoint)
	}
	return nil
}

// readSource reads the source Secret: from memory when the Secret watch
// shows the same resourceVersion as the last read, else with an uncached GET
// whose version the watch then remembers. Most reconciles (the echo of our
// own writes, revalidations, drift repair) then cost no read of the source.
func (r *Reconciler) readSource(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (sourceResult, error) {
	owner := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	if res, master, err := masterKeyUse(ctx, r.Client, k); err != nil || master {
		r.forgetSource(owner)
		return res, err
	}
	key := types.NamespacedName{Namespace: k.Namespace, Name: sourceName(k)}
	if r.sourceVersions != nil {
		if rv, ok := r.sourceVersions.ResourceVersion(key.Namespace, key.Name); ok {
			r.sourcesMu.Lock()
			c, ok := r.sources[owner]
			r.sourcesMu.Unlock()
			if ok && c.secretName == key.Name && c.resourceVersion == rv {
				return readSource(k, c.secret), nil
			}
		}
	}
	s, err := r.getSource(ctx, key)
	if apierrors.IsNotFound(err) {
		r.forgetSource(owner)
		return readSource(k, nil), nil
	}
	if err != nil {
		return sourceResult{}, err
	}
	if r.sourceVersions != nil {
		r.sourceVersions.Observed(key.Namespace, key.Name, s.ResourceVersion)
	}
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]cachedSource{}
	}
	r.sources[owner] = cachedSource{secretName: key.Name, resourceVersion: s.ResourceVersion, secret: &corev1.Secret{Data: s.Data}}
	return readSource(k, s), nil
}

// getSource reads a source Secret from the API server's watch cache
// (resourceVersion "0": no round trip to etcd), and again with a consistent
// read when that answer may be older than what the Secret watch has seen,
// or says the Secret does not exist (it may just have been created). A
// cached answer the watch knows nothing newer of is safe: a newer version
// reaches the watch later, with a different resourceVersion, and enqueues
// the key again.
func (r *Reconciler) getSource(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	err := r.APIReader.Get(ctx, key, &s, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}})
	again := apierrors.IsNotFound(err)
	if err == nil && r.sourceVersions != nil {
		if rv, ok := r.sourceVersions.ResourceVersion(key.Namespace, key.Name); ok && rv != s.ResourceVersion {
			again = true
		}
	}
	if again {
		s = corev1.Secret{}
		err = r.APIReader.Get(ctx, key, &s)
	}
	return &s, err
}

// forgetSource drops the in-memory copy of an ExchangeAPIKey's source, so
// that key material does not outlive the object that needed it.
func (r *Reconciler) forgetSource(owner types.NamespacedName) {
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	delete(r.sources, owner)
}

// getTarget finds the target Secret: in the cache, which holds the Secrets
// carrying the operator's label, or, when status says the operator wrote it
// before, with an uncached GET: someone may have removed the label, which
// hides the Secret from the cache but does not make it anyone else's.
func (r *Reconciler) getTarget(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: k.Namespace, Name: k.TargetName()}
	var s corev1.Secret
	err := r.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) && (k.Status.TargetKeyFingerprint != "" || controllerutil.ContainsFinalizer(k, keyopsv1.FinalizerRetain)) {
		err = r.APIReader.Get(ctx, key, &s)
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// observeTarget finds the target Secret. A foreign Secret of the same name
// is not in the cache: syncTarget finds it when its create is refused, and
// reports the conflict then.
func (r *Reconciler) observeTarget(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (targetObservation, error) {
	s, err := r.getTarget(ctx, k)
	if apierrors.IsNotFound(err) {
		return targetObservation{}, nil
	}
	if err != nil {
		return targetObservation{}, err
	}
	if !metav1.IsControlledBy(s, k) {
		return targetObservation{conflict: conflictMessage(k, s)}, nil
	}
	return targetObservation{exists: true, fingerprint: s.Annotations[keyopsv1.AnnotationKeyFingerprint], material: s.Annotations[keyopsv1.AnnotationCredentialsHash]}, nil
}

func conflictMessage(k *keyopsv1.ExchangeAPIKey, s *corev1.Secret) string {
	owner := "no ExchangeAPIKey"
	if ref := metav1.GetControllerOf(s); ref != nil {
		owner = ref.Kind + " " + ref.Name
	}
	return fmt.Sprintf("Secret %s/%s already exists and is controlled by %s; it is left untouched: choose another spec.target.name or delete that Secret", k.Namespace, s.Name, owner)
}

// compileTarget checks k's target format or template, from the spec alone.
func compileTarget(k *keyopsv1.ExchangeAPIKey) (*secretformat.Renderer, error) {
	return secretformat.Compile(string(k.Spec.Target.FormatOrDefault()), k.Spec.Target.Template)
}

// desiredTarget renders the target Secret for the current key. Its only
// error is compileTarget's, which does not depend on the material.
func desiredTarget(k *keyopsv1.ExchangeAPIKey, src sourceResult) (*corev1.Secret, error) {
	r, err := compileTarget(k)
	if err != nil {
		return nil, err
	}
	data := r.Render(secretformat.Material{
		APIKey: src.creds.APIKey, APISecret: src.creds.APISecret, Passphrase: src.creds.Passphrase,
		Exchange: string(k.Spec.Exchange), Endpoint: k.Spec.Endpoint,
	})
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.TargetName(), Labels: map[string]string{}, Annotations: map[string]string{}},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	for kk, v := range k.Spec.Target.Labels {
		s.Labels[kk] = v
	}
	for kk, v := range k.Spec.Target.Annotations {
		s.Annotations[kk] = v
	}
	s.Labels[keyopsv1.LabelManaged] = keyopsv1.LabelManagedValue
	s.Labels[keyopsv1.LabelManagedBy] = keyopsv1.ManagedByValue
	s.Annotations[keyopsv1.AnnotationKeyFingerprint] = src.fingerprint
	s.Annotations[keyopsv1.AnnotationCredentialsHash] = src.material
	return s, nil
}

// syncTarget creates or repairs the target Secret. It reports whether it
// wrote, or a conflict message when the name turned out to be taken.
func (r *Reconciler) syncTarget(ctx context.Context, k *keyopsv1.ExchangeAPIKey, src sourceResult) (bool, string, error) {
	want, err := desiredTarget(k, src)
	if err != nil {
		// Only the spec can be refused (observe reported it already); the
		// error names the data key, never a value.
		return false, "", reconcileError{reason: keyopsv1.ReasonInvalidTemplate, err: err}
	}
	if err := controllerutil.SetControllerReference(k, want, r.Scheme); err != nil {
		return false, "", err
	}
	have, err := r.getTarget(ctx, k)
	if apierrors.IsNotFound(err) {
		err = r.Create(ctx, want)
		if err == nil {
			return true, "", nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return false, "", err
		}
		// Not in the cache, yet there: a foreign Secret, or ours with its
		// label removed (repaired below, label included).
		have = &corev1.Secret{}
		err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), have)
	}
	if err != nil {
		return false, "", err
	}
	if !metav1.IsControlledBy(have, k) {
		return false, conflictMessage(k, have), nil
	}
	if targetUpToDate(have, want) {
		return false, "", nil
	}
	upd := have.DeepCopy()
	upd.Data = want.Data
	upd.StringData = nil
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	for kk, v := range want.Labels {
		upd.Labels[kk] = v
	}
	for kk, v := range want.Annotations {
		upd.Annotations[kk] = v
	}
	upd.OwnerReferences = want.OwnerReferences
	return true, "", r.Update(ctx, upd)
}

// targetUpToDate: data equal, our labels and annotations present, owned.
func targetUpToDate(have, want *corev1.Secret) bool {
	if !equality.Semantic.DeepEqual(have.Data, want.Data) || len(have.StringData) > 0 {
		return false
	}
	for kk, v := range want.Labels {
		if have.Labels[kk] != v {
			return false
		}
	}
	for kk, v := range want.Annotations {
		if have.Annotations[kk] != v {
			return false
		}
	}
	return equality.Semantic.DeepEqual(have.OwnerReferences, want.OwnerReferences)
}

type reconcileError struct {
	reason string
	err    error
}

func (e reconcileError) Error() string { return e.err.Error() }

// ensureFinalizer keeps the Retain finalizer in step with the policy. It
// patches metadata.finalizers only (with the resourceVersion as a
// precondition, so that other controllers' finalizers are not lost): an
// Update would send the whole object, and a spec that went through our Go
// types would lose what they cannot express (an explicit empty list).
func (r *Reconciler) ensureFinalizer(ctx context.Context, k *keyopsv1.ExchangeAPIKey) error {
	retain := k.Spec.Target.DeletionPolicyOrDefault() == keyopsv1.DeletionPolicyRetain
	want := map[string]bool{
		keyopsv1.FinalizerRetain: retain,
		// Issued keys are deleted at the exchange with the object, unless
		// Retain; the finalizer stays while any key may exist.
		keyopsv1.FinalizerIssuedKeys: !retain && (k.Spec.Issue != nil || controllerutil.ContainsFinalizer(k, keyopsv1.FinalizerIssuedKeys) && k.Status.Issued != nil),
	}
	changed := false
	for f, w := range want {
		changed = changed || w != controllerutil.ContainsFinalizer(k, f)
	}
	if !changed {
		return nil
	}
	return r.patchFinalizers(ctx, k, func() {
		for f, w := range want {
			if w {
				controllerutil.AddFinalizer(k, f)
			} else {
				controllerutil.RemoveFinalizer(k, f)
			}
		}
	})
}

// patchFinalizers applies change to k's finalizers and sends only them.
func (r *Reconciler) patchFinalizers(ctx context.Context, k *keyopsv1.ExchangeAPIKey, change func()) error {
	before := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ResourceVersion: k.ResourceVersion, Finalizers: append([]string(nil), k.Finalizers...)}}
	change()
	after := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ResourceVersion: k.ResourceVersion, Finalizers: k.Finalizers}}
	patch, err := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}).Data(after)
	if err != nil {
		return err
	}
	return r.Patch(ctx, k, client.RawPatch(types.MergePatchType, patch))
}

// requeueOnConflict retries at once when the cache was behind the API
// server: a conflict is expected under load, not an error worth logging.
func requeueOnConflict(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{Requeue: true}, nil
	}
	return ctrl.Result{}, err
}

// finalize detaches a Retain target Secret from its owner so that garbage
// collection leaves it, then lets the ExchangeAPIKey go.
func (r *Reconciler) finalize(ctx context.Context, k *keyopsv1.ExchangeAPIKey) error {
	if controllerutil.ContainsFinalizer(k, keyopsv1.FinalizerIssuedKeys) {
		if k.Spec.Issue != nil {
			if err := r.deleteIssuedKeys(ctx, k); err != nil {
				return err
			}
		}
		if err := r.patchFinalizers(ctx, k, func() { controllerutil.RemoveFinalizer(k, keyopsv1.FinalizerIssuedKeys) }); err != nil {
			return err
		}
	}
	if !controllerutil.ContainsFinalizer(k, keyopsv1.FinalizerRetain) {
		return nil
	}
	s, err := r.getTarget(ctx, k)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && metav1.IsControlledBy(s, k) {
		upd := s.DeepCopy()
		var refs []metav1.OwnerReference
		for _, ref := range upd.OwnerReferences {
			if ref.UID != k.UID {
				refs = append(refs, ref)
			}
		}
		upd.OwnerReferences = refs
		if err := r.Patch(ctx, upd, client.MergeFrom(s)); err != nil {
			return err
		}
	}
	return r.patchFinalizers(ctx, k, func() { controllerutil.RemoveFinalizer(k, keyopsv1.FinalizerRetain) })
}

func reasonOf(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return string(apierrors.ReasonForError(err))
}
