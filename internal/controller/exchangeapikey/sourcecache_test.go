package exchangeapikey

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// Defect: the in-memory copy of source Secrets was dropped only when a read
// answered NotFound, so key material of deleted or repointed keys stayed in
// the process for its lifetime. It is now kept per ExchangeAPIKey.
func TestSourceCopiesGoWithTheirKey(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = keyopsv1.AddToScheme(scheme)
	secret := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Data: map[string][]byte{"apiKey": []byte("AAAAkey-" + name + "-ZZZZ"), "apiSecret": []byte("s")}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(secret("one"), secret("two")).Build()
	r := &Reconciler{Client: c, APIReader: c, Scheme: scheme}
	k := &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot"},
		Spec: keyopsv1.ExchangeAPIKeySpec{Exchange: "binance", CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "one"}}}
	owner := types.NamespacedName{Namespace: "ns", Name: "bot"}
	ctx := context.Background()

	if _, err := r.readSource(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got := r.sources[owner].secretName; got != "one" {
		t.Fatalf("cached %q, want one", got)
	}
	// Repointed: the copy of the first Secret is replaced, not kept beside.
	k.Spec.CredentialsSecretRef.Name = "two"
	if _, err := r.readSource(ctx, k); err != nil {
		t.Fatal(err)
	}
	if len(r.sources) != 1 || r.sources[owner].secretName != "two" {
		t.Fatalf("sources after repointing: %+v", r.sources)
	}
	// Deleted: the next reconcile finds no ExchangeAPIKey and drops it.
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: owner}); err != nil {
		t.Fatal(err)
	}
	if len(r.sources) != 0 {
		t.Fatalf("key material outlives its ExchangeAPIKey: %d copies", len(r.sources))
	}
}
