package shared

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// Event is an Event a decision asks for; the reconciler records it after
// the status write, so that a failed write does not leave an Event behind
// that status contradicts.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// Record records evs on obj as action (an Event action constant of
// api/v1alpha1).
func Record(rec events.EventRecorder, obj runtime.Object, action string, evs []Event) {
	for _, e := range evs {
		typ := corev1.EventTypeNormal
		if e.Warning {
			typ = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, typ, e.Reason, action, "%s", e.Message)
	}
}
