package exchangeapikey

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// rolloutGVK is Argo Rollouts' workload, restarted through spec.restartAt
// (argoproj.github.io/argo-rollouts/features/restart).
var rolloutGVK = schema.GroupVersionKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout"}

// maxBatchWait bounds how long a restart waits for the other keys of a
// shared workload that are still being validated.
const maxBatchWait = time.Minute

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;patch
// +kubebuilder:rbac:groups=argoproj.io,resources=rollouts,verbs=get;list;patch

// restartWorkloads rolls each restart target that has not been rolled for
// this ExchangeAPIKey's current material. The bookkeeping is an annotation
// per ExchangeAPIKey on the workload's own metadata (writing it does not
// roll pods), set in the same patch as the restart: a workload shared by
// several keys rolls once per change, never because another key was
// reconciled. A restart records every key of the workload whose target
// already holds its current material, so that keys changed together (one
// commit) roll it once; while another key of the workload is still being
// validated, the restart waits (up to maxBatchWait), reported as deferred.
func (r *Reconciler) restartWorkloads(ctx context.Context, k *keyopsv1.ExchangeAPIKey, src shared.Source, masked string) restartOutcome {
	var out restartOutcome
	hash := keyid.Short(src.Material)
	// The peers are listed only once a workload needs a roll: most calls
	// find every target already rolled for this material.
	var peers []*keyopsv1.ExchangeAPIKey
	listed := false
	for _, t := range k.Spec.RestartTargets {
		objs, err := r.resolveTarget(ctx, k.Namespace, t)
		if err != nil {
			out.failed = append(out.failed, fmt.Sprintf("%s/%s (%s)", t.Kind, targetLabel(t), reasonOf(err)))
			continue
		}
		for _, obj := range objs {
			if obj.GetAnnotations()[restartAnnotation(k.Name)] == hash {
				continue
			}
			if !listed {
				var err error
				if peers, err = r.workloadPeers(ctx, k); err != nil {
					out.failed = append(out.failed, fmt.Sprintf("listing ExchangeAPIKeys (%s)", reasonOf(err)))
					return out
				}
				listed = true
			}
			sharing := peersOf(peers, t.Kind, obj)
			if waiting := inFlight(sharing); len(waiting) > 0 && r.now().Before(pendingSince(k).Add(maxBatchWait)) {
				out.deferred = append(out.deferred, fmt.Sprintf("%s/%s waits for %s", t.Kind, obj.GetName(), strings.Join(waiting, ",")))
				continue
			}
			if err := r.roll(ctx, k, t.Kind, obj, hash, sharing, masked); err != nil {
				out.failed = append(out.failed, fmt.Sprintf("%s/%s (%s)", t.Kind, obj.GetName(), reasonOf(err)))
			}
		}
	}
	return out
}

// roll restarts one workload and records the material of this key and of
// every peer whose target already holds its current material.
func (r *Reconciler) roll(ctx context.Context, k *keyopsv1.ExchangeAPIKey, kind keyopsv1.WorkloadKind, obj client.Object, hash string, peers []*keyopsv1.ExchangeAPIKey, masked string) error {
	before := obj.DeepCopyObject().(client.Object)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[restartAnnotation(k.Name)] = hash
	for _, p := range peers {
		// A token peer (spec.token) rolls for each of its tokens, whose
		// hash only it knows: it is left to record its own.
		if p.Status.TargetCredentialsHash != "" && p.Spec.Token == nil {
			ann[restartAnnotation(p.Name)] = keyid.Short(p.Status.TargetCredentialsHash)
		}
	}
	obj.SetAnnotations(ann)
	// A workload rolled by an earlier version for this very material (its
	// pod template carries the old shared hash) gets the bookkeeping only.
	rolled := false
	if legacyHash(obj) != hash {
		if err := setRestartedAt(obj, r.now()); err != nil {
			return err
		}
		rolled = true
	}
	// The resourceVersion precondition makes a concurrent restart by another
	// key of the same workload a conflict, retried afresh.
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	if rolled {
		if r.Restarts != nil {
			r.Restarts(k.Namespace, string(kind), obj.GetName())
		}
		r.Recorder.Eventf(obj, k, corev1.EventTypeNormal, keyopsv1.EventWorkloadRestarted, keyopsv1.EventActionRestart, "%s %s restarted to pick up key %s of ExchangeAPIKey %s", kind, obj.GetName(), masked, k.Name)
	}
	return nil
}

// resolveTarget reads the workloads a restart target names or selects.
func (r *Reconciler) resolveTarget(ctx context.Context, ns string, t keyopsv1.RestartTarget) ([]client.Object, error) {
	if t.Selector == nil {
		obj := newWorkload(t.Kind)
		if obj == nil {
			return nil, fmt.Errorf("unknown kind %s", t.Kind)
		}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Name}, obj); err != nil {
			return nil, err
		}
		return []client.Object{obj}, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(t.Selector)
	if err != nil {
		return nil, err
	}
	opts := []client.ListOption{client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}}
	var out []client.Object
	switch t.Kind {
	case keyopsv1.KindDeployment:
		var l appsv1.DeploymentList
		err = r.APIReader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case keyopsv1.KindStatefulSet:
		var l appsv1.StatefulSetList
		err = r.APIReader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case keyopsv1.KindDaemonSet:
		var l appsv1.DaemonSetList
		err = r.APIReader.List(ctx, &l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case keyopsv1.KindRollout:
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(rolloutGVK.GroupVersion().WithKind("RolloutList"))
		err = r.APIReader.List(ctx, l, opts...)
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, err
}

func newWorkload(kind keyopsv1.WorkloadKind) client.Object {
	switch kind {
	case keyopsv1.KindDeployment:
		return &appsv1.Deployment{}
	case keyopsv1.KindStatefulSet:
		return &appsv1.StatefulSet{}
	case keyopsv1.KindDaemonSet:
		return &appsv1.DaemonSet{}
	case keyopsv1.KindRollout:
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(rolloutGVK)
		return u
	}
	return nil
}

// setRestartedAt makes the workload roll its pods: an annotation on the pod
// template for the built-in kinds, spec.restartAt for an Argo Rollout.
func setRestartedAt(obj client.Object, now time.Time) error {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return unstructured.SetNestedField(u.Object, now.UTC().Format(time.RFC3339), "spec", "restartAt")
	}
	tmpl := podTemplate(obj)
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[keyopsv1.AnnotationRestartedAt] = now.UTC().Format(time.RFC3339Nano)
	return nil
}

// legacyHash is the shared credentials hash earlier versions wrote on the
// pod template.
func legacyHash(obj client.Object) string {
	if tmpl := podTemplate(obj); tmpl != nil {
		return tmpl.Annotations[keyopsv1.AnnotationCredentialsHash]
	}
	return ""
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

// workloadPeers lists the other ExchangeAPIKeys of the namespace (from the
// cache) that have restart targets. They are the cache's own objects, not
// copies (a restart of a key in a namespace of thousands deep-copied them
// all, history included: issue #22's profiles); they are only read.
func (r *Reconciler) workloadPeers(ctx context.Context, k *keyopsv1.ExchangeAPIKey) ([]*keyopsv1.ExchangeAPIKey, error) {
	var list keyopsv1.ExchangeAPIKeyList
	if err := r.List(ctx, &list, client.InNamespace(k.Namespace), client.MatchingFields{RestartsIndex: restartsIndexValue}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var out []*keyopsv1.ExchangeAPIKey
	for i := range list.Items {
		if p := &list.Items[i]; p.Name != k.Name && len(p.Spec.RestartTargets) > 0 && p.DeletionTimestamp.IsZero() {
			out = append(out, p)
		}
	}
	return out, nil
}

// peersOf keeps the peers that restart obj.
func peersOf(peers []*keyopsv1.ExchangeAPIKey, kind keyopsv1.WorkloadKind, obj client.Object) []*keyopsv1.ExchangeAPIKey {
	var out []*keyopsv1.ExchangeAPIKey
	for _, p := range peers {
		for _, t := range p.Spec.RestartTargets {
			if t.Kind == kind && targets(t, obj) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func targets(t keyopsv1.RestartTarget, obj client.Object) bool {
	if t.Selector == nil {
		return t.Name == obj.GetName()
	}
	sel, err := metav1.LabelSelectorAsSelector(t.Selector)
	return err == nil && sel.Matches(labels.Set(obj.GetLabels()))
}

// inFlight names the peers whose new material is being validated: their
// source changed and no verdict has been given yet, so a restart now would
// be followed by another when they are handed over.
func inFlight(peers []*keyopsv1.ExchangeAPIKey) []string {
	var out []string
	for _, p := range peers {
		st := p.Status
		if st.KeyFingerprint == "" || (st.KeyFingerprint == st.TargetKeyFingerprint && st.CredentialsHash == st.TargetCredentialsHash) {
			continue
		}
		if c := meta.FindStatusCondition(st.Conditions, keyopsv1.ConditionKeyValid); c != nil && c.Reason == keyopsv1.ReasonValidationPending {
			out = append(out, p.Name)
		}
	}
	return out
}

func pendingSince(k *keyopsv1.ExchangeAPIKey) time.Time {
	if t := k.Status.RestartPendingSince; t != nil {
		return t.Time
	}
	return time.Time{}
}

func targetLabel(t keyopsv1.RestartTarget) string {
	if t.Selector != nil {
		return metav1.FormatLabelSelector(t.Selector)
	}
	return t.Name
}

// restartAnnotation is the per-key bookkeeping annotation's name. The name
// part of an annotation key is at most 63 characters; longer ExchangeAPIKey
// names are cut and made unique with a hash.
func restartAnnotation(name string) string {
	if len(name) > 63 {
		sum := keyid.Short(keyid.Fingerprint(name))
		name = strings.TrimRight(name[:62-len(sum)], ".-_") + "-" + sum
	}
	return keyopsv1.RestartAnnotationPrefix + name
}
