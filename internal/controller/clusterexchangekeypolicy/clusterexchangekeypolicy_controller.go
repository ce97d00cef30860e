// Package clusterexchangekeypolicy holds the ClusterExchangeKeyPolicy
// controller, which counts the keys each policy selects and those that
// violate it. The keys themselves are held to the policies by the
// ExchangeAPIKey controller.
package clusterexchangekeypolicy

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crevent "sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
)

// Reconciler keeps each ClusterExchangeKeyPolicy's status: how many
// ExchangeAPIKeys it selects and how many of them violate it. It reports
// only; the ExchangeAPIKey controller reports violations on the keys and
// decides what is synced. Both evaluate with internal/policy, so the
// counts and the keys' conditions agree.
type Reconciler struct {
	// Client reads from the manager's cache (policies, keys, namespaces).
	client.Client
}

// +kubebuilder:rbac:groups=exchange.keyops.io,resources=clusterexchangekeypolicies,verbs=list;watch
// +kubebuilder:rbac:groups=exchange.keyops.io,resources=clusterexchangekeypolicies/status,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch

// Reconcile recounts one policy from the cache and writes its status only
// when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p keyopsv1.ClusterExchangeKeyPolicy
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	nsLabels, err := shared.NamespaceLabels(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	var keys keyopsv1.ExchangeAPIKeyList
	// Read only: the cache's objects, not a copy of every key per recount.
	if err := r.List(ctx, &keys, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	sel, selErr := clusterpolicy.Selector(&p)
	one := []keyopsv1.ClusterExchangeKeyPolicy{p}
	var selected, violating int32
	for i := range keys.Items {
		k := &keys.Items[i]
		ls := nsLabels[k.Namespace]
		if !sel.Matches(labels.Set(ls)) {
			continue
		}
		selected++
		if len(clusterpolicy.Evaluate(one, ls, k, clusterpolicy.KnownPermissions(k))) > 0 {
			violating++
		}
	}

	st := p.Status.DeepCopy()
	st.ObservedGeneration = p.Generation
	st.SelectedKeys, st.ViolatingKeys = selected, violating
	c := metav1.Condition{
		Type: keyopsv1.ConditionReady, Status: metav1.ConditionTrue, Reason: keyopsv1.ReasonPolicyActive, ObservedGeneration: p.Generation,
		Message: fmt.Sprintf("selects %d ExchangeAPIKey(s); %d violate it", selected, violating),
	}
	if selErr != nil {
		c.Status, c.Reason = metav1.ConditionFalse, keyopsv1.ReasonInvalidSelector
		c.Message = selErr.Error() + ": the policy applies to every namespace until it is fixed; " + c.Message
	}
	meta.SetStatusCondition(&st.Conditions, c)
	if equality.Semantic.DeepEqual(*st, p.Status) {
		return ctrl.Result{}, nil
	}
	p.Status = *st
	// A conflict means a newer policy is on its way to the cache: recount.
	return shared.RequeueOnConflict(r.Status().Update(ctx, &p))
}

// SetupWithManager recounts a policy when it changes, when a key's spec or
// known permissions change, and when a namespace is created, deleted or
// relabelled.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	allPolicies := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return policyRequests(ctx, r.Client)
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusterexchangekeypolicy").
		For(&keyopsv1.ClusterExchangeKeyPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&keyopsv1.ExchangeAPIKey{}, allPolicies, builder.WithPredicates(keyVerdictChanged())).
		Watches(&corev1.Namespace{}, allPolicies, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

// keyVerdictChanged passes key creations and deletions, and updates that
// can change a policy's verdict: the spec (generation) or the permissions
// known for the current key. Other status writes (validation times,
// conditions) do not recount every policy.
func keyVerdictChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e crevent.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*keyopsv1.ExchangeAPIKey)
			n, ok2 := e.ObjectNew.(*keyopsv1.ExchangeAPIKey)
			if !ok1 || !ok2 {
				return true
			}
			return o.Generation != n.Generation ||
				!equality.Semantic.DeepEqual(clusterpolicy.KnownPermissions(o), clusterpolicy.KnownPermissions(n))
		},
	}
}

func policyRequests(ctx context.Context, c client.Reader) []reconcile.Request {
	return shared.ListRequests(ctx, c, &keyopsv1.ClusterExchangeKeyPolicyList{})
}
