package exchangeapikey

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
)

// readSource extracts and checks an ExchangeAPIKey's key material. secret
// is nil when the Secret does not exist.
func readSource(k *keyopsv1.ExchangeAPIKey, secret *corev1.Secret) shared.Source {
	ref := k.Spec.CredentialsSecretRef
	if k.Spec.Issue != nil {
		// The issuance Secret, with the default keys.
		ref = keyopsv1.CredentialsSecretRef{Name: issuedSecretName(k)}
	}
	return shared.ReadCredentials(k.Namespace, k.Spec.Exchange, ref, secret)
}

// sourceName is the Secret k's key material comes from: the user's source
// Secret, or the issuance Secret of an issued key.
func sourceName(k *keyopsv1.ExchangeAPIKey) string {
	if k.Spec.Issue != nil {
		return issuedSecretName(k)
	}
	return k.Spec.CredentialsSecretRef.Name
}

// cachedSource is a source Secret's data at a resourceVersion: the data
// only, not a Secret (whose ObjectMeta alone is larger than most keys'
// data), because it is kept for every key.
type cachedSource struct {
	secretName      string
	resourceVersion string
	data            map[string][]byte
}

// readSource reads the source Secret: from memory when the Secret watch
// shows the same resourceVersion as the last read, else with an uncached GET
// whose version the watch then remembers. Most reconciles (the echo of our
// own writes, revalidations, drift repair) then cost no read of the source.
func (r *Reconciler) readSource(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (shared.Source, error) {
	owner := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	if res, master, err := masterKeyUse(ctx, r.Client, k); err != nil || master {
		r.forgetSource(owner)
		return res, err
	}
	key := types.NamespacedName{Namespace: k.Namespace, Name: sourceName(k)}
	if r.Secrets != nil {
		if rv, ok := r.Secrets.ResourceVersion(key.Namespace, key.Name); ok {
			r.sourcesMu.Lock()
			c, ok := r.sources[owner]
			r.sourcesMu.Unlock()
			if ok && c.secretName == key.Name && c.resourceVersion == rv {
				return readSource(k, &corev1.Secret{Data: c.data}), nil
			}
		}
	}
	s, err := r.getSource(ctx, key)
	if apierrors.IsNotFound(err) {
		r.forgetSource(owner)
		return readSource(k, nil), nil
	}
	if err != nil {
		return shared.Source{}, err
	}
	if r.Secrets != nil {
		r.Secrets.Observed(key.Namespace, key.Name, s.ResourceVersion)
	}
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	if r.sources == nil {
		r.sources = map[types.NamespacedName]cachedSource{}
	}
	r.sources[owner] = cachedSource{secretName: key.Name, resourceVersion: s.ResourceVersion, data: s.Data}
	return readSource(k, s), nil
}

// getSource reads a source Secret from the API server's watch cache
// (resourceVersion "0": no round trip to etcd), and again with a consistent
// read when that answer may be older than what the Secret watch has seen,
// or says the Secret does not exist (it may just have been created). A
// cached answer the watch knows nothing newer of is safe: a newer version
// reaches the watch later, with a different resourceVersion, and enqueues
// the key again.
func (r *Reconciler) getSource(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	err := r.APIReader.Get(ctx, key, &s, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}})
	again := apierrors.IsNotFound(err)
	if err == nil && r.Secrets != nil {
		if rv, ok := r.Secrets.ResourceVersion(key.Namespace, key.Name); ok && rv != s.ResourceVersion {
			again = true
		}
	}
	if again {
		s = corev1.Secret{}
		err = r.APIReader.Get(ctx, key, &s)
	}
	return &s, err
}

// forgetSource drops the in-memory copy of an ExchangeAPIKey's source, so
// that key material does not outlive the object that needed it.
func (r *Reconciler) forgetSource(owner types.NamespacedName) {
	r.sourcesMu.Lock()
	defer r.sourcesMu.Unlock()
	delete(r.sources, owner)
}

// newKeyAdvice says how k gets its next key, naming the Secret it goes
// into: a person puts it in the source Secret, or, for an issued key (whose
// spec.credentialsSecretRef is empty), the operator issues it into the
// issuance Secret.
func newKeyAdvice(k *keyopsv1.ExchangeAPIKey) string {
	if k.Spec.Issue != nil {
		return fmt.Sprintf("the operator issues its successor into Secret %s (condition KeyIssued says how that goes); to have it issued now, set the annotation %s to a new value", issuedSecretName(k), keyopsv1.AnnotationRotate)
	}
	return "put a new key in Secret " + k.Spec.CredentialsSecretRef.Name
}

// replaceKeyAdvice says how a key that no longer works is replaced.
func replaceKeyAdvice(k *keyopsv1.ExchangeAPIKey) string {
	if k.Spec.Issue != nil {
		return fmt.Sprintf("the operator issues a replacement into Secret %s (condition KeyIssued says when)", issuedSecretName(k))
	}
	return "create a new key and update Secret " + k.Spec.CredentialsSecretRef.Name
}

// masterKeyUse says whether the Secret k reads its key material from is an
// ExchangeAccount's master key, with the refusal to report if so. The master
// key is never a bot's key: the operator uses it only to manage sub-account
// keys and never copies it into a target Secret. The check reads the
// ExchangeAccounts of k's namespace (cached) before the Secret is read.
func masterKeyUse(ctx context.Context, c client.Reader, k *keyopsv1.ExchangeAPIKey) (shared.Source, bool, error) {
	var list keyopsv1.ExchangeAccountList
	if err := c.List(ctx, &list, client.InNamespace(k.Namespace)); err != nil {
		return shared.Source{}, false, err
	}
	name := sourceName(k)
	var accounts []string
	for _, a := range list.Items {
		if a.Spec.CredentialsSecretRef.Name == name {
			accounts = append(accounts, a.Name)
		}
	}
	if len(accounts) == 0 {
		return shared.Source{}, false, nil
	}
	sort.Strings(accounts)
	return shared.Source{Reason: keyopsv1.ReasonSourceIsMasterKey,
		Message: fmt.Sprintf("source Secret %s/%s holds the master key of ExchangeAccount %s; a master key is never a bot's key and is not copied into a target Secret: put a key made for the bot in another Secret, or let the operator issue one (spec.issue)",
			k.Namespace, name, strings.Join(accounts, ", "))}, true, nil
}
