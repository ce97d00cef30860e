package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
)

// SourceSecretIndex indexes ExchangeAPIKeys by the name of their source Secret.
const SourceSecretIndex = "spec.credentialsSecretRef.name"

// TargetSecretIndex indexes ExchangeAPIKeys by the name of their target
// Secret: a Secret of that name that the operator does not own (a
// conflict) is watched like a source, so that deleting or relabelling it
// is noticed at once.
const TargetSecretIndex = "spec.target.name"

// SetupWithManager wires the controller. Source Secrets are watched by
// metadata through a refwatch.Watcher, which remembers the resourceVersions
// of the Secrets some key refers to and nothing of the others: the operator
// must react to any Secret it is pointed at without holding the data, or
// even an entry, of every Secret in the cluster.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAPIKey{}, SourceSecretIndex, func(o client.Object) []string {
		return []string{sourceName(o.(*keyopsv1.ExchangeAPIKey))}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAPIKey{}, TargetSecretIndex, func(o client.Object) []string {
		return []string{o.(*keyopsv1.ExchangeAPIKey).TargetName()}
	}); err != nil {
		return err
	}
	w, err := NewSecretWatcher(mgr, r.WatchNamespaces)
	if err != nil {
		return err
	}
	r.sourceVersions = w
	b := ctrl.NewControllerManagedBy(mgr).
		Named("exchangeapikey").
		// Status writes do not trigger reconciles; spec and annotation
		// changes (the revalidate request) do.
		For(&keyopsv1.ExchangeAPIKey{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		WatchesRawSource(w.Source(r.keysForSource)).
		// An ExchangeAccount turning Ready lets its issued keys go on at once.
		Watches(&keyopsv1.ExchangeAccount{}, handler.EnqueueRequestsFromMapFunc(r.keysForAccount)).
		WithOptions(opts)
	if len(r.WatchNamespaces) == 0 {
		// The cluster's policy floor: a policy change, or a namespace's new
		// labels, re-evaluates the keys it selects at once. A namespace-
		// scoped manager has no cluster-wide reads, and no floor.
		b = b.Watches(&keyopsv1.ClusterExchangeKeyPolicy{}, handler.EnqueueRequestsFromMapFunc(MapPolicyToKeys(mgr.GetClient()))).
			Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(MapNamespaceToKeys(mgr.GetClient())), builder.WithPredicates(predicate.LabelChangedPredicate{}))
	}
	return b.Complete(r)
}

// NewSecretWatcher builds the manager's watch of Secrets by metadata (in
// namespaces, none: all) and adds it to the manager. Controllers subscribe
// with Source before the manager starts.
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

// keysForSource maps a Secret to the ExchangeAPIKeys that read it (their
// source) or name it as their target: a target the operator does not own
// is a conflict that the user clears by deleting or relabelling it.
func (r *Reconciler) keysForSource(ctx context.Context, namespace, name string) []reconcile.Request {
	var out []reconcile.Request
	for _, index := range []string{SourceSecretIndex, TargetSecretIndex} {
		var list keyopsv1.ExchangeAPIKeyList
		if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{index: name}); err != nil {
			continue
		}
		for _, k := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
		}
	}
	return out
}

// keysForAccount maps an ExchangeAccount to the ExchangeAPIKeys issued
// through it (spec.issue.accountRef, same namespace), and to those whose
// source Secret is its master key (refused with SourceIsMasterKey while it
// is; an update maps the old and the new object, so a key is released when
// the account stops naming its Secret).
func (r *Reconciler) keysForAccount(ctx context.Context, o client.Object) []reconcile.Request {
	var list keyopsv1.ExchangeAPIKeyList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	master := ""
	if a, ok := o.(*keyopsv1.ExchangeAccount); ok {
		master = a.Spec.CredentialsSecretRef.Name
	}
	var out []reconcile.Request
	for _, k := range list.Items {
		if (k.Spec.Issue != nil && k.Spec.Issue.AccountRef.Name == o.GetName()) || (master != "" && sourceName(&k) == master) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
		}
	}
	return out
}
