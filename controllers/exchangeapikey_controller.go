// Package controllers holds the ExchangeAPIKey controller.
package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
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
	// Now is the clock; tests inject a fake one.
	Now func() time.Time
	// Jitter returns a value in [-1, 1]; tests make it deterministic.
	Jitter func() float64
	// AllowInsecureEndpoints permits http:// endpoints (simulators).
	AllowInsecureEndpoints bool
	// WatchNamespaces restricts the source-Secret metadata cache to these
	// namespaces, like the manager's cache (empty: all namespaces).
	WatchNamespaces []string

	// sourceMeta is the metadata-only cache of Secrets (set up by
	// SetupWithManager); sources remembers the last source read per Secret
	// and its resourceVersion, so an unchanged source is not fetched again.
	sourceMeta client.Reader
	sourcesMu  sync.Mutex
	sources    map[types.NamespacedName]cachedSource
}

type cachedSource struct {
	resourceVersion string
	secret          *corev1.Secret
}

// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=exchangeapikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;patch

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile observes, decides (decide, a pure function) and acts.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var k keyopsv1.ExchangeAPIKey
	if err := r.Get(ctx, req.NamespacedName, &k); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !k.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &k)
	}
	if err := r.ensureFinalizer(ctx, &k); err != nil {
		return requeueOnConflict(err)
	}

	now := r.now()
	obs := observation{now: now}
	if r.Jitter != nil {
		obs.jitter = r.Jitter()
	} else {
		obs.jitter = rand.Float64()*2 - 1
	}
	if !k.Spec.Suspend {
		src, err := r.readSource(ctx, &k)
		if err != nil {
			return ctrl.Result{}, err
		}
		if src.ok() {
			// A template that cannot render is a spec error: report it
			// like unusable source material, before anything is written.
			if _, err := desiredTarget(&k, src); err != nil {
				src = sourceResult{reason: keyopsv1.ReasonInvalidTemplate, message: err.Error()}
			}
		}
		obs.source = src
		tgt, err := r.observeTarget(ctx, &k)
		if err != nil {
			return ctrl.Result{}, err
		}
		obs.target = tgt
		obs.insecureEndpoint = r.insecure(k.Spec.Endpoint)
		if due, force := probeDue(&k, src, obs.insecureEndpoint, now); due {
			res := r.Probes.Probe(ctx, exchange.Request{
				Exchange: exchange.Name(k.Spec.Exchange), Endpoint: k.Spec.Endpoint,
				Credentials: src.creds, Demo: k.Spec.DemoTrading,
				NonceUnit: exchange.NonceUnit(k.Status.NonceUnit),
			}, freshAfter(&k, now), force)
			obs.probe = &res
			log.V(1).Info("probed exchange", "exchange", k.Spec.Exchange, "key", k.Status.KeyID, "shared", res.Shared, "outcome", outcome(res.Err))
		}
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
			d = decide(&k, obs)
		default:
			if wrote && !hasEvent(d.events, "SecretSynced", "KeyRotated") {
				d.events = append(d.events, event{reason: "SecretSynced", message: fmt.Sprintf("Secret %s restored to the key %s", k.TargetName(), d.status.KeyID)})
			}
			if msg := r.restartWorkloads(ctx, &k, obs.source, d.status.KeyID, now); msg != "" {
				c := meta.FindStatusCondition(d.status.Conditions, keyopsv1.ConditionSecretSynced)
				c.Message += "; " + msg
			}
		}
	}
	if d.notify != "" && r.Notifier != nil {
		if err := r.notify(ctx, &k, d); err != nil {
			log.Info("rotation reminder not delivered; retrying with backoff", "error", err.Error())
			actErr = err
		} else {
			d.status.Rotation.NotifiedReason = d.notify
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
	if actErr != nil {
		return ctrl.Result{}, actErr
	}
	return ctrl.Result{RequeueAfter: d.requeueAfter}, nil
}

// freshAfter is how recent a shared probe result must be for k: within one
// interval, and newer than k's own last validation. Status times are kept
// to the second, so a second is added to be sure k's own previous answer
// never passes for a new one.
func freshAfter(k *keyopsv1.ExchangeAPIKey, now time.Time) time.Time {
	t := now.Add(-k.Spec.Validation.IntervalOrDefault())
	if lv := k.Status.LastValidationTime; lv != nil && lv.Add(time.Second).After(t) {
		t = lv.Add(time.Second)
	}
	return t
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(exchange.KindOf(err))
}

func hasEvent(evs []event, reasons ...string) bool {
	for _, e := range evs {
		for _, r := range reasons {
			if e.reason == r {
				return true
			}
		}
	}
	return false
}

func (r *Reconciler) insecure(endpoint string) bool {
	if endpoint == "" || r.AllowInsecureEndpoints {
		return false
	}
	u, err := url.Parse(endpoint)
	return err != nil || u.Scheme != "https"
}

// readSource reads the source Secret: from memory when the metadata cache
// shows the same resourceVersion as the last read, else with an uncached GET.
// Most reconciles (the echo of our own writes, revalidations, drift repair)
// then cost no read of the source at all.
func (r *Reconciler) readSource(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (sourceResult, error) {
	key := types.NamespacedName{Namespace: k.Namespace, Name: k.Spec.CredentialsSecretRef.Name}
	if r.sourceMeta != nil {
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
		if err := r.sourceMeta.Get(ctx, key, m); err == nil {
			r.sourcesMu.Lock()
			c, ok := r.sources[key]
			r.sourcesMu.Unlock()
			if ok && c.resourceVersion == m.ResourceVersion {
				return readSource(k, c.secret), nil
			}
		}
	}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, key, &s)
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	if apierrors.IsNotFound(err) {
		delete(r.sources, key)
		return readSource(k, nil), nil
	}
	if err != nil {
		return sourceResult{}, err
	}
	if r.sources == nil {
		r.sources = map[types.NamespacedName]cachedSource{}
	}
	r.sources[key] = cachedSource{resourceVersion: s.ResourceVersion, secret: &corev1.Secret{Data: s.Data}}
	return readSource(k, &s), nil
}

// observeTarget finds the target Secret in the cache, which holds the
// Secrets this operator manages (by label). A foreign Secret of the same
// name is not in it: syncTarget finds it when its create is refused, and
// reports the conflict then.
func (r *Reconciler) observeTarget(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (targetObservation, error) {
	key := types.NamespacedName{Namespace: k.Namespace, Name: k.TargetName()}
	var s corev1.Secret
	err := r.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		return targetObservation{}, nil
	}
	if err != nil {
		return targetObservation{}, err
	}
	if !metav1.IsControlledBy(&s, k) {
		return targetObservation{conflict: conflictMessage(k, &s)}, nil
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

// desiredTarget renders the target Secret for the current key.
func desiredTarget(k *keyopsv1.ExchangeAPIKey, src sourceResult) (*corev1.Secret, error) {
	data, err := secretformat.Render(string(k.Spec.Target.FormatOrDefault()), k.Spec.Target.Template, secretformat.Material{
		APIKey: src.creds.APIKey, APISecret: src.creds.APISecret, Passphrase: src.creds.Passphrase,
		Exchange: string(k.Spec.Exchange), Endpoint: k.Spec.Endpoint,
	})
	if err != nil {
		return nil, err
	}
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
		// Only a template can fail; its error names the data key, never a value.
		return false, "", reconcileError{reason: keyopsv1.ReasonInvalidTemplate, err: err}
	}
	if err := controllerutil.SetControllerReference(k, want, r.Scheme); err != nil {
		return false, "", err
	}
	var have corev1.Secret
	err = r.Get(ctx, client.ObjectKeyFromObject(want), &have)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, want); err != nil {
			if apierrors.IsAlreadyExists(err) {
				var other corev1.Secret
				if gerr := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), &other); gerr == nil && !metav1.IsControlledBy(&other, k) {
					return false, conflictMessage(k, &other), nil
				}
			}
			return false, "", err
		}
		return true, "", nil
	}
	if err != nil {
		return false, "", err
	}
	if !metav1.IsControlledBy(&have, k) {
		return false, conflictMessage(k, &have), nil
	}
	if targetUpToDate(&have, want) {
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

// ensureFinalizer keeps the Retain finalizer in step with the policy. The
// update refreshes k, so the reconcile carries on with it.
func (r *Reconciler) ensureFinalizer(ctx context.Context, k *keyopsv1.ExchangeAPIKey) error {
	want := k.Spec.Target.DeletionPolicyOrDefault() == keyopsv1.DeletionPolicyRetain
	has := controllerutil.ContainsFinalizer(k, keyopsv1.FinalizerRetain)
	if want == has {
		return nil
	}
	if want {
		controllerutil.AddFinalizer(k, keyopsv1.FinalizerRetain)
	} else {
		controllerutil.RemoveFinalizer(k, keyopsv1.FinalizerRetain)
	}
	return r.Update(ctx, k)
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
	if !controllerutil.ContainsFinalizer(k, keyopsv1.FinalizerRetain) {
		return nil
	}
	var s corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.TargetName()}, &s)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && metav1.IsControlledBy(&s, k) {
		upd := s.DeepCopy()
		var refs []metav1.OwnerReference
		for _, ref := range upd.OwnerReferences {
			if ref.UID != k.UID {
				refs = append(refs, ref)
			}
		}
		upd.OwnerReferences = refs
		if err := r.Patch(ctx, upd, client.MergeFrom(&s)); err != nil {
			return err
		}
	}
	controllerutil.RemoveFinalizer(k, keyopsv1.FinalizerRetain)
	return r.Update(ctx, k)
}

// restartWorkloads annotates each restart target's pod template with the
// key fingerprint the target Secret now holds. The annotation makes it
// idempotent: a workload rolls once per key, whatever restarts or no-op
// reconciles happen in between. It returns a message for missing targets.
func (r *Reconciler) restartWorkloads(ctx context.Context, k *keyopsv1.ExchangeAPIKey, src sourceResult, masked string, now time.Time) string {
	var missing []string
	for _, t := range k.Spec.RestartTargets {
		var obj client.Object
		switch t.Kind {
		case keyopsv1.KindDeployment:
			obj = &appsv1.Deployment{}
		case keyopsv1.KindStatefulSet:
			obj = &appsv1.StatefulSet{}
		case keyopsv1.KindDaemonSet:
			obj = &appsv1.DaemonSet{}
		default:
			continue
		}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: t.Name}, obj); err != nil {
			missing = append(missing, fmt.Sprintf("%s/%s (%s)", t.Kind, t.Name, reasonOf(err)))
			continue
		}
		tmpl := podTemplate(obj)
		if tmpl.Annotations[keyopsv1.AnnotationCredentialsHash] == keyid.Short(src.material) {
			continue
		}
		before := obj.DeepCopyObject().(client.Object)
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[keyopsv1.AnnotationKeyFingerprint] = src.fingerprint
		tmpl.Annotations[keyopsv1.AnnotationCredentialsHash] = keyid.Short(src.material)
		tmpl.Annotations[keyopsv1.AnnotationRestartedAt] = now.UTC().Format(time.RFC3339)
		if err := r.Patch(ctx, obj, client.MergeFrom(before)); err != nil {
			missing = append(missing, fmt.Sprintf("%s/%s (%s)", t.Kind, t.Name, reasonOf(err)))
			continue
		}
		r.Recorder.Eventf(k, obj, corev1.EventTypeNormal, "WorkloadRestarted", "Restart", "%s %s restarted to pick up key %s", t.Kind, t.Name, masked)
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("restart targets not restarted: %v", missing)
}

func reasonOf(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return string(apierrors.ReasonForError(err))
}

func podTemplate(obj client.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	}
	return nil
}
