package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// SourceSecretIndex indexes ExchangeAPIKeys by the name of their source Secret.
const SourceSecretIndex = "spec.credentialsSecretRef.name"

// SetupWithManager wires the controller. Source Secrets are watched through
// a metadata-only cache of their own that keeps nothing but identity: the
// operator must react to any Secret it is pointed at without holding the
// data (or the annotations, which may carry a last-applied copy of the data)
// of every Secret in the cluster.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &keyopsv1.ExchangeAPIKey{}, SourceSecretIndex, func(o client.Object) []string {
		return []string{o.(*keyopsv1.ExchangeAPIKey).Spec.CredentialsSecretRef.Name}
	}); err != nil {
		return err
	}
	var namespaces map[string]cache.Config
	for _, ns := range r.WatchNamespaces {
		if namespaces == nil {
			namespaces = map[string]cache.Config{}
		}
		namespaces[ns] = cache.Config{}
	}
	metaCache, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:        mgr.GetHTTPClient(),
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: namespaces,
		DefaultTransform:  identityOnly,
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(metaCache); err != nil {
		return err
	}
	r.sourceMeta = metaCache
	secretMeta := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("exchangeapikey").
		// Status writes do not trigger reconciles; spec and annotation
		// changes (the revalidate request) do.
		For(&keyopsv1.ExchangeAPIKey{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		WatchesRawSource(source.Kind(metaCache, secretMeta,
			handler.TypedEnqueueRequestsFromMapFunc(r.keysForSource),
			predicate.TypedResourceVersionChangedPredicate[*metav1.PartialObjectMetadata]{})).
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

// keysForSource maps a source Secret to the ExchangeAPIKeys that read it.
func (r *Reconciler) keysForSource(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
	var list keyopsv1.ExchangeAPIKeyList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingFields{SourceSecretIndex: s.Name}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, k := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
	}
	return out
}

// identityOnly keeps a metadata object's identity and version, nothing else.
func identityOnly(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}}, nil
}

// keysForAccount maps an ExchangeAccount to the ExchangeAPIKeys issued
// through it (spec.issue.accountRef, same namespace).
func (r *Reconciler) keysForAccount(ctx context.Context, o client.Object) []reconcile.Request {
	var list keyopsv1.ExchangeAPIKeyList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, k := range list.Items {
		if k.Spec.Issue != nil && k.Spec.Issue.AccountRef.Name == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
		}
	}
	return out
}
