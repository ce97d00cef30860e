package exchangeapikey

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/secretformat"
)

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
	obs := targetObservation{exists: true, fingerprint: s.Annotations[keyopsv1.AnnotationKeyFingerprint], material: s.Annotations[keyopsv1.AnnotationCredentialsHash]}
	if k.Spec.Token != nil {
		obs.token = readHeldToken(k, s)
	}
	return obs, nil
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

// desiredTarget renders the target Secret for the current key, or for tok
// (spec.token), which replaces the key entirely. Its only error is
// compileTarget's, which does not depend on the material.
func desiredTarget(k *keyopsv1.ExchangeAPIKey, src shared.Source, tok *heldToken) (*corev1.Secret, error) {
	r, err := compileTarget(k)
	if err != nil {
		return nil, err
	}
	var data map[string][]byte
	var tokenAnn map[string]string
	if tok != nil {
		data, tokenAnn = tokenTargetData(k, *tok)
	} else {
		data = r.Render(secretformat.Material{
			APIKey: src.Creds.APIKey, APISecret: src.Creds.APISecret, Passphrase: src.Creds.Passphrase,
			Exchange: string(k.Spec.Exchange), Endpoint: k.Spec.Endpoint,
		})
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
	s.Labels[keyopsv1.LabelManaged] = keyopsv1.LabelManagedValue
	s.Labels[keyopsv1.LabelManagedBy] = keyopsv1.ManagedByValue
	s.Annotations[keyopsv1.AnnotationKeyFingerprint] = src.Fingerprint
	s.Annotations[keyopsv1.AnnotationCredentialsHash] = src.Material
	for kk, v := range tokenAnn {
		s.Annotations[kk] = v
	}
	return s, nil
}

// syncTarget creates or repairs the target Secret. It reports whether it
// wrote, or a conflict message when the name turned out to be taken.
func (r *Reconciler) syncTarget(ctx context.Context, k *keyopsv1.ExchangeAPIKey, src shared.Source, tok *heldToken) (bool, string, error) {
	want, err := desiredTarget(k, src, tok)
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

func reasonOf(err error) string {
	if apierrors.IsNotFound(err) {
		return "not found"
	}
	return string(apierrors.ReasonForError(err))
}
