package exchangeapikey

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// URLChecker is implemented by notifiers that can tell, without sending
// anything, that they refuse a URL (notify.Webhook).
type URLChecker interface {
	CheckURL(url string) error
}

// reminderRefused is a reminder that no retry can deliver until the user
// changes something: the webhook Secret or its key is missing, or the
// notifier refuses the URL by a rule. It is reported on the key as a
// Warning Event naming the rule, once per reminder and cause, and not
// retried with backoff: the next reconcile (the key's next wake, or any
// change to it) tries again.
type reminderRefused struct{ why string }

func (e reminderRefused) Error() string { return e.why }

// reminderURL reads the webhook URL from the Secret the key names, and
// checks it against the notifier's rules before anything is claimed or sent.
func (r *Reconciler) reminderURL(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (string, error) {
	ref := k.Spec.Rotation.Notify.WebhookSecretRef
	key := ref.Key
	if key == "" {
		key = keyopsv1.DefaultWebhookKey
	}
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", reminderRefused{fmt.Sprintf("webhook Secret %s/%s (spec.rotation.notify.webhookSecretRef) not found", k.Namespace, ref.Name)}
		}
		return "", fmt.Errorf("webhook Secret %s/%s: %s", k.Namespace, ref.Name, reasonOf(err))
	}
	url := strings.TrimSpace(string(s.Data[key]))
	if url == "" {
		return "", reminderRefused{fmt.Sprintf("webhook Secret %s/%s has no key %q", k.Namespace, ref.Name, key)}
	}
	if c, ok := r.Notifier.(URLChecker); ok {
		if err := c.CheckURL(url); err != nil {
			return "", reminderRefused{fmt.Sprintf("the operator refuses the URL in webhook Secret %s/%s key %q: %s", k.Namespace, ref.Name, key, strings.TrimPrefix(err.Error(), "webhook refused: "))}
		}
	}
	return url, nil
}

// reportRefusedReminder emits a Warning Event for a reminder that cannot
// be delivered, once per key, reminder and cause (the manager's memory: a
// restart reports it once more).
func (r *Reconciler) reportRefusedReminder(k *keyopsv1.ExchangeAPIKey, token string, why reminderRefused) {
	mark := string(k.UID) + "\x00" + token + "\x00" + why.why
	key := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	r.refusedMu.Lock()
	if r.refused == nil {
		r.refused = map[types.NamespacedName]string{}
	}
	seen := r.refused[key] == mark
	r.refused[key] = mark
	r.refusedMu.Unlock()
	if seen {
		return
	}
	reason, _, _ := strings.Cut(token, "/")
	r.Recorder.Eventf(k, nil, corev1.EventTypeWarning, keyopsv1.EventReminderFailed, keyopsv1.EventActionNotify,
		"%s reminder not delivered: %s; fix it and the reminder goes out at the key's next reconcile (no retries meanwhile)", reason, why.why)
}

// forgetRefusedReminder drops the memory of a refused reminder once one
// was delivered, or the key is gone.
func (r *Reconciler) forgetRefusedReminder(key types.NamespacedName) {
	r.refusedMu.Lock()
	delete(r.refused, key)
	r.refusedMu.Unlock()
}

// notify sends the reminder the decision says is owed. A reminder that
// cannot be delivered until the user acts returns a reminderRefused.
func (r *Reconciler) notify(ctx context.Context, k *keyopsv1.ExchangeAPIKey, d decision) error {
	url, err := r.reminderURL(ctx, k)
	if err != nil {
		return err
	}
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
	reason, _, _ := strings.Cut(d.notify, "/")
	rotateBy := d.status.Rotation.RotateBy.Time
	verb := "must be rotated by"
	if reason == keyopsv1.ReasonRotationOverdue {
		verb = "was due for rotation on"
	}
	err = r.Notifier.Notify(ctx, url, notify.Message{
		ID:     keyid.Short(keyid.Fingerprint(string(k.UID) + "/" + d.notify)),
		Text:   reminderText(k, d.status.KeyID, verb, rotateBy),
		Reason: reason, Namespace: k.Namespace, Name: k.Name, Exchange: string(k.Spec.Exchange),
		KeyID: d.status.KeyID, RotateBy: rotateBy.UTC(),
	})
	if err != nil {
		// Not delivered: release the claim so that the retry sends it.
		release, _ := json.Marshal(map[string]any{"status": map[string]any{"rotation": map[string]any{"notifyingReason": nil}}})
		if perr := r.Status().Patch(ctx, k, client.RawPatch(types.MergePatchType, release)); perr != nil {
			logf.FromContext(ctx).Info("reminder not delivered and its claim not released", "error", perr.Error())
		}
		if notify.IsRefused(err) {
			// A rule on the address the URL resolved to, or a redirect:
			// waiting does not change it.
			return reminderRefused{fmt.Sprintf("the operator refuses the webhook URL in Secret %s/%s: %s", k.Namespace, k.Spec.Rotation.Notify.WebhookSecretRef.Name, strings.TrimPrefix(err.Error(), "webhook refused: "))}
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

// reminderText is a webhook reminder's text: the key, its deadline and how
// it gets its successor (newKeyAdvice names the right Secret).
func reminderText(k *keyopsv1.ExchangeAPIKey, keyID, verb string, rotateBy time.Time) string {
	advice := newKeyAdvice(k)
	return fmt.Sprintf(":key: %s API key %s (ExchangeAPIKey %s/%s) %s %s. %s.",
		k.Spec.Exchange, keyID, k.Namespace, k.Name, verb, rotateBy.UTC().Format("2006-01-02 15:04 MST"), strings.ToUpper(advice[:1])+advice[1:])
}
