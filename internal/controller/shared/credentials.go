package shared

import (
	"fmt"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// Source is what a Secret holding key material yielded: credentials, or the
// reason it could not (a SecretSynced reason and a message naming Secret and
// key, never a value).
type Source struct {
	Creds       exchange.Credentials
	Fingerprint string
	// Material fingerprints key, secret and passphrase together.
	Material string
	Reason   string
	Message  string
}

// OK says whether the Secret yielded usable credentials.
func (s Source) OK() bool { return s.Reason == "" }

// ReadCredentials extracts and checks the key material ref names in secret
// (an ExchangeAPIKey's source, or an ExchangeAccount's master key), by the
// exchange's rules. secret is nil when the Secret does not exist.
func ReadCredentials(namespace string, ex keyopsv1.Exchange, ref keyopsv1.CredentialsSecretRef, secret *corev1.Secret) Source {
	if secret == nil {
		return Source{Reason: keyopsv1.ReasonSourceSecretMissing,
			Message: fmt.Sprintf("source Secret %s/%s not found", namespace, ref.Name)}
	}
	keyKey, secretKey, passKey := ref.Keys()
	needPass := exchange.CapabilitiesOf(exchange.Name(ex)).NeedsPassphrase
	wanted := []string{keyKey, secretKey}
	if needPass {
		wanted = append(wanted, passKey)
	}
	for _, name := range wanted {
		if _, ok := secret.Data[name]; !ok {
			return Source{Reason: keyopsv1.ReasonSourceKeyMissing,
				Message: fmt.Sprintf("source Secret %s/%s has no key %q", namespace, ref.Name, name)}
		}
		if len(secret.Data[name]) == 0 {
			return Source{Reason: keyopsv1.ReasonMalformedCredentials,
				Message: fmt.Sprintf("source Secret %s/%s key %q is empty", namespace, ref.Name, name)}
		}
		if !utf8.Valid(secret.Data[name]) {
			return Source{Reason: keyopsv1.ReasonMalformedCredentials,
				Message: fmt.Sprintf("source Secret %s/%s key %q is not text", namespace, ref.Name, name)}
		}
	}
	c := exchange.Credentials{APIKey: string(secret.Data[keyKey]), APISecret: string(secret.Data[secretKey])}
	if needPass {
		c.Passphrase = string(secret.Data[passKey])
	}
	// CheckCredentials bounds every part by the exchange's size limits,
	// which are within secretformat.MaxFieldBytes (TestLimitsBoundTemplates):
	// what a target template can render is bounded by the spec alone.
	if err := exchange.CheckCredentials(exchange.Name(ex), c); err != nil {
		return Source{Reason: keyopsv1.ReasonMalformedCredentials,
			Message: fmt.Sprintf("source Secret %s/%s: %s: %v", namespace, ref.Name, ex, err)}
	}
	return Source{Creds: c, Fingerprint: keyid.Fingerprint(c.APIKey), Material: keyid.CredentialsHash(c.APIKey, c.APISecret, c.Passphrase)}
}
