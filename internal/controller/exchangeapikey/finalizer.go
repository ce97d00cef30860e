package exchangeapikey

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

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
