package exchangeapikey

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/notify"
)

// Notifier delivers a rotation reminder to a webhook URL.
type Notifier interface {
	Notify(ctx context.Context, url string, m notify.Message) error
}

// notify sends the reminder the decision says is owed.
func (r *Reconciler) notify(ctx context.Context, k *keyopsv1.ExchangeAPIKey, d decision) error {
	// The cache may be behind our own last status write: ask the API server
	// whether this reminder went out already, so that it goes out once.
	var fresh keyopsv1.ExchangeAPIKey
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, &fresh); err != nil {
		return err
	}
	if rot := fresh.Status.Rotation; rot != nil {
		switch {
		case rot.NotifiedReason == d.notify:
			return nil
		case rot.NotifyingReason == d.notify:
			// An earlier attempt claimed this reminder and its outcome was
			// lost (the manager died, or the API server went away, between
			// the call and its record). A lost reminder is worse than a
			// duplicate: send it again, under the same ID, which the
			// receiver may use to drop the duplicate.
		}
	}
	// Claim the reminder before the call, with the resourceVersion as a
	// precondition, so that two reconciles (or two managers during a
	// failover) cannot both send it.
	claimed := fresh.DeepCopy()
	if claimed.Status.Rotation == nil {
		claimed.Status.Rotation = &keyopsv1.RotationStatus{}
	}
	claimed.Status.Rotation.NotifyingReason = d.notify
	if err := r.Status().Patch(ctx, claimed, client.MergeFromWithOptions(&fresh, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	ref := k.Spec.Rotation.Notify.WebhookSecretRef
	key := ref.Key
	if key == "" {
		key = keyopsv1.DefaultWebhookKey
	}
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: ref.Name}, &s); err != nil {
		return fmt.Errorf("webhook Secret %s/%s: %s", k.Namespace, ref.Name, reasonOf(err))
	}
	url := strings.TrimSpace(string(s.Data[key]))
	if url == "" {
		return fmt.Errorf("webhook Secret %s/%s has no key %q", k.Namespace, ref.Name, key)
	}
	reason, _, _ := strings.Cut(d.notify, "/")
	rotateBy := d.status.Rotation.RotateBy.Time
	verb := "must be rotated by"
	if reason == keyopsv1.ReasonRotationOverdue {
		verb = "was due for rotation on"
	}
	err := r.Notifier.Notify(ctx, url, notify.Message{
		ID: keyid.Short(keyid.Fingerprint(string(k.UID) + "/" + d.notify)),
		Text: fmt.Sprintf(":key: %s API key %s (ExchangeAPIKey %s/%s) %s %s. Put a new key in Secret %s.",
			k.Spec.Exchange, d.status.KeyID, k.Namespace, k.Name, verb, rotateBy.UTC().Format("2006-01-02 15:04 MST"), k.Spec.CredentialsSecretRef.Name),
		Reason: reason, Namespace: k.Namespace, Name: k.Name, Exchange: string(k.Spec.Exchange),
		KeyID: d.status.KeyID, RotateBy: rotateBy.UTC(),
	})
	if err != nil {
		// Not delivered: release the claim so that the retry sends it.
		release, _ := json.Marshal(map[string]any{"status": map[string]any{"rotation": map[string]any{"notifyingReason": nil}}})
		if perr := r.Status().Patch(ctx, k, client.RawPatch(types.MergePatchType, release)); perr != nil {
			logf.FromContext(ctx).Info("reminder not delivered and its claim not released", "error", perr.Error())
		}
		return err
	}
	if err := r.recordNotified(ctx, k, d.notify); err != nil {
		// The claim stays: a retry sends it again under the same ID.
		logf.FromContext(ctx).Info("reminder delivered but not yet recorded", "error", err.Error())
	}
	return nil
}

// recordNotified records a delivered reminder with a patch that cannot
// conflict: the reconcile's own status update may still fail.
func (r *Reconciler) recordNotified(ctx context.Context, k *keyopsv1.ExchangeAPIKey, token string) error {
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"rotation": map[string]any{"notifiedReason": token, "notifyingReason": nil}}})
	return r.Status().Patch(ctx, k, client.RawPatch(types.MergePatchType, patch))
}
