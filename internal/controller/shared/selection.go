package shared

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
)

// NamespaceLabels maps each namespace to its labels.
func NamespaceLabels(ctx context.Context, c client.Reader) (map[string]map[string]string, error) {
	var nss corev1.NamespaceList
	if err := c.List(ctx, &nss); err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(nss.Items))
	for _, ns := range nss.Items {
		out[ns.Name] = ns.Labels
	}
	return out, nil
}

// MapPolicyToKeys maps a ClusterExchangeKeyPolicy to the ExchangeAPIKeys of
// the namespaces it selects, so that a policy change re-evaluates them at
// once. For the ExchangeAPIKey controller:
//
//	Watches(&keyopsv1.ClusterExchangeKeyPolicy{}, handler.EnqueueRequestsFromMapFunc(MapPolicyToKeys(mgr.GetClient())))
//
// On an update the handler maps the old and the new policy, so keys that
// a selector change leaves are re-evaluated too; on a deletion, the keys
// the policy selected.
func MapPolicyToKeys(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		p, ok := obj.(*keyopsv1.ClusterExchangeKeyPolicy)
		if !ok {
			return nil
		}
		nsLabels, err := NamespaceLabels(ctx, c)
		if err != nil {
			return nil
		}
		sel, _ := clusterpolicy.Selector(p)
		var out []reconcile.Request
		for ns, ls := range nsLabels {
			if !sel.Matches(labels.Set(ls)) {
				continue
			}
			out = append(out, keyRequests(ctx, c, ns)...)
		}
		return out
	}
}

// MapNamespaceToKeys maps a Namespace to its ExchangeAPIKeys when at least
// one ClusterExchangeKeyPolicy exists, so that relabelling a namespace
// re-evaluates its keys against the policies that now (or no longer)
// select it. For the ExchangeAPIKey controller:
//
//	Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(MapNamespaceToKeys(mgr.GetClient())),
//		builder.WithPredicates(predicate.LabelChangedPredicate{}))
func MapNamespaceToKeys(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var pols keyopsv1.ClusterExchangeKeyPolicyList
		if err := c.List(ctx, &pols, client.Limit(1)); err != nil || len(pols.Items) == 0 {
			return nil
		}
		return keyRequests(ctx, c, obj.GetName())
	}
}

func keyRequests(ctx context.Context, c client.Reader, ns string) []reconcile.Request {
	return ListRequests(ctx, c, &keyopsv1.ExchangeAPIKeyList{}, client.InNamespace(ns))
}

// ListRequests lists into list with opts and maps every item to a
// reconcile request; a failed list maps to none (the handler has no way to
// report it, and the next event or resync brings the objects back).
func ListRequests(ctx context.Context, c client.Reader, list client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	// Only names are read: the cache's objects, not copies of them.
	if err := c.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(items))
	for _, o := range items {
		if m, err := meta.Accessor(o); err == nil {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}})
		}
	}
	return out
}
