package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/secretformat"
)

// sourceResult is what the source Secret yielded: credentials, or the reason
// it could not (a SecretSynced reason and a message naming Secret and key,
// never a value).
type sourceResult struct {
	creds       exchange.Credentials
	fingerprint string
	// material fingerprints key, secret and passphrase together.
	material string
	reason   string
	message  string
}

func (s sourceResult) ok() bool { return s.reason == "" }

// readSource extracts and checks an ExchangeAPIKey's key material. secret
// is nil when the Secret does not exist.
func readSource(k *keyopsv1.ExchangeAPIKey, secret *corev1.Secret) sourceResult {
	ref := k.Spec.CredentialsSecretRef
	if k.Spec.Issue != nil {
		// The issuance Secret, with the default keys.
		ref = keyopsv1.CredentialsSecretRef{Name: issuedSecretName(k)}
	}
	return readCredentials(k.Namespace, k.Spec.Exchange, ref, secret)
}

// readCredentials extracts and checks the key material ref names in secret
// (an ExchangeAPIKey's source, or an ExchangeAccount's master key), by the
// exchange's rules. secret is nil when the Secret does not exist.
func readCredentials(namespace string, ex keyopsv1.Exchange, ref keyopsv1.CredentialsSecretRef, secret *corev1.Secret) sourceResult {
	if secret == nil {
		return sourceResult{reason: keyopsv1.ReasonSourceSecretMissing,
			message: fmt.Sprintf("source Secret %s/%s not found", namespace, ref.Name)}
	}
	keyKey, secretKey, passKey := ref.Keys()
	needPass := exchange.CapabilitiesOf(exchange.Name(ex)).NeedsPassphrase
	wanted := []string{keyKey, secretKey}
	if needPass {
		wanted = append(wanted, passKey)
	}
	for _, name := range wanted {
		if _, ok := secret.Data[name]; !ok {
			return sourceResult{reason: keyopsv1.ReasonSourceKeyMissing,
				message: fmt.Sprintf("source Secret %s/%s has no key %q", namespace, ref.Name, name)}
		}
		if len(secret.Data[name]) == 0 {
			return sourceResult{reason: keyopsv1.ReasonMalformedCredentials,
				message: fmt.Sprintf("source Secret %s/%s key %q is empty", namespace, ref.Name, name)}
		}
		if len(secret.Data[name]) > secretformat.MaxFieldBytes {
			// Bounds what a target template can render (secretformat).
			return sourceResult{reason: keyopsv1.ReasonMalformedCredentials,
				message: fmt.Sprintf("source Secret %s/%s key %q is longer than %d bytes", namespace, ref.Name, name, secretformat.MaxFieldBytes)}
		}
		if !utf8.Valid(secret.Data[name]) {
			return sourceResult{reason: keyopsv1.ReasonMalformedCredentials,
				message: fmt.Sprintf("source Secret %s/%s key %q is not text", namespace, ref.Name, name)}
		}
	}
	c := exchange.Credentials{APIKey: string(secret.Data[keyKey]), APISecret: string(secret.Data[secretKey])}
	if needPass {
		c.Passphrase = string(secret.Data[passKey])
	}
	if err := exchange.CheckCredentials(exchange.Name(ex), c); err != nil {
		return sourceResult{reason: keyopsv1.ReasonMalformedCredentials,
			message: fmt.Sprintf("source Secret %s/%s: %s: %v", namespace, ref.Name, ex, err)}
	}
	return sourceResult{creds: c, fingerprint: keyid.Fingerprint(c.APIKey), material: keyid.CredentialsHash(c.APIKey, c.APISecret, c.Passphrase)}
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
		return fmt.Sprintf("set the annotation %s to a new value and the operator issues a new key into Secret %s", keyopsv1.AnnotationRotate, issuedSecretName(k))
	}
	return "create a new key and update Secret " + k.Spec.CredentialsSecretRef.Name
}

// sourceName is the Secret k's key material comes from: the user's source
// Secret, or the issuance Secret of an issued key.
func sourceName(k *keyopsv1.ExchangeAPIKey) string {
	if k.Spec.Issue != nil {
		return issuedSecretName(k)
	}
	return k.Spec.CredentialsSecretRef.Name
}

// masterKeyUse says whether the Secret k reads its key material from is an
// ExchangeAccount's master key, with the refusal to report if so. The master
// key is never a bot's key: the operator uses it only to manage sub-account
// keys and never copies it into a target Secret. The check reads the
// ExchangeAccounts of k's namespace (cached) before the Secret is read.
func masterKeyUse(ctx context.Context, c client.Reader, k *keyopsv1.ExchangeAPIKey) (sourceResult, bool, error) {
	var list keyopsv1.ExchangeAccountList
	if err := c.List(ctx, &list, client.InNamespace(k.Namespace)); err != nil {
		return sourceResult{}, false, err
	}
	name := sourceName(k)
	var accounts []string
	for _, a := range list.Items {
		if a.Spec.CredentialsSecretRef.Name == name {
			accounts = append(accounts, a.Name)
		}
	}
	if len(accounts) == 0 {
		return sourceResult{}, false, nil
	}
	sort.Strings(accounts)
	return sourceResult{reason: keyopsv1.ReasonSourceIsMasterKey,
		message: fmt.Sprintf("source Secret %s/%s holds the master key of ExchangeAccount %s; a master key is never a bot's key and is not copied into a target Secret: put a key made for the bot in another Secret, or let the operator issue one (spec.issue)",
			k.Namespace, name, strings.Join(accounts, ", "))}, true, nil
}
