package shared

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
)

// NewSecretWatcher builds the manager's one watch of Secrets by metadata
// (in namespaces; none: all) and adds it to the manager. The composition
// root builds it once and hands it to every controller that refers to
// Secrets; they subscribe with Source before the manager starts.
func NewSecretWatcher(mgr ctrl.Manager, namespaces []string) (*refwatch.Watcher, error) {
	mc, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	w := refwatch.New(mc, corev1.SchemeGroupVersion.WithResource("secrets"), namespaces,
		mgr.GetCache().WaitForCacheSync, mgr.GetLogger().WithName("secret-watch"))
	if err := mgr.Add(w); err != nil {
		return nil, err
	}
	return w, nil
}
