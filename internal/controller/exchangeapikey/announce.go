package exchangeapikey

import (
	"context"
	"encoding/json"
	"os"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// announce creates the KeyRotated Event of a recorded rotation exactly once.
// The recorder's Events are buffered and lost when the manager dies, which
// is fine for most Events but not for the one that says the bots' key
// changed: it is created here, synchronously, under a name derived from the
// rotation (an AlreadyExists answer means an earlier attempt created it),
// and the announcement is then recorded in status with a patch that cannot
// conflict. A manager that dies in between announces it at the next
// reconcile, under the same name.
func (r *Reconciler) announce(ctx context.Context, k *keyopsv1.ExchangeAPIKey, a *announcement) error {
	now := metav1.NewMicroTime(r.now())
	host, _ := os.Hostname()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name + ".keyrotated." + a.id},
		EventTime:  now,
		Regarding: corev1.ObjectReference{
			APIVersion: keyopsv1.GroupVersion.String(), Kind: "ExchangeAPIKey",
			Namespace: k.Namespace, Name: k.Name, UID: k.UID, ResourceVersion: k.ResourceVersion,
		},
		Reason: keyopsv1.EventKeyRotated, Note: a.message, Type: corev1.EventTypeNormal, Action: keyopsv1.EventActionRotate,
		ReportingController: keyopsv1.EventReporter, ReportingInstance: keyopsv1.EventReporter + "-" + host,
	}
	if err := r.Create(ctx, ev); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"rotation": map[string]any{"announced": a.id}}})
	return r.Status().Patch(ctx, k, client.RawPatch(types.MergePatchType, patch))
}
