package exchangeapikey

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Zero-touch rotation (spec.issue). The operator creates the key on a
// sub-account with the ExchangeAccount's master key and keeps everything it
// must not lose in one Secret it owns, the issuance Secret, which is also
// the ExchangeAPIKey's source: the rest of the reconcile validates and hands
// over its current key exactly as it does a key a person put in a Secret.
//
// The issuance is split like the rest of the reconcile: this file is the
// issuance Secret's schema (its keys, load and save), issuance_decide.go
// the pure decision of the next step (decideIssuance), issuance_act.go
// the actions that carry one step out.
//
// The exchange shows a secret once, so every step writes what it needs
// before and right after the exchange call:
//
//	intent   pending label, generation, OKX/KuCoin passphrase or Binance private key
//	         (the private key never crosses the network) -> Secret
//	create   the exchange's answer (API key, secret)      -> Secret
//	verify   probe + policy; promote pending to current, current to previous
//	hand     the normal path writes the target and restarts the workloads
//	retire   after the overlap, delete previous at the exchange -> Secret
//
// A manager killed between any two steps finds the state in the Secret; a
// key created but not recorded is found by its label at the next step and
// deleted (or, for Binance, whose private key was recorded first, adopted).
//
// The issuance Secret is read from the API server, never from the cache:
// every step calls the exchange before it writes, so a stale copy (a
// pending intent already promoted) would delete a live key before the
// write's conflict could stop it.
//
// A failed attempt (create refused, new key refused) is recorded with a
// retry time (exponential backoff): each attempt writes the Secret, whose
// watch would otherwise start the next attempt at once. A rotate request
// is recorded as handled only when its key is promoted, so a failed one is
// retried; a new value of the annotation retries at once. A refusal the
// same request always gets (exchange.PermanentRefusal: the account cannot
// create keys, or a parameter is refused) gets no retry time: no attempt
// follows until the spec, the account or the annotation changes.

// Keys of the issuance Secret.
const (
	issuedAPIKey        = "apiKey"
	issuedAPISecret     = "apiSecret"
	issuedPassphrase    = "passphrase"
	issuedLabel         = "label"
	issuedGeneration    = "generation"
	issuedCreatedAt     = "createdAt"
	issuedPrevious      = "previousApiKey"
	issuedPrevLabel     = "previousLabel"
	pendingLabel        = "pendingLabel"
	pendingGeneration   = "pendingGeneration"
	pendingAPIKey       = "pendingApiKey"
	pendingAPISecret    = "pendingApiSecret"
	pendingPassphrase   = "pendingPassphrase"
	issuedRotateRequest = "rotateRequest"
	issuedRefusedGen    = "refusedSpecGeneration"
	// The last failed attempt: how many in a row, when to try again, and
	// the rotate annotation's value then (a new value does not wait).
	failedAttempts = "failedAttempts"
	failedRetryAt  = "retryAt"
	failedRequest  = "failedRotateRequest"
	// The exchange's own identifier of a key where it has one besides the
	// API key (Bybit's id): status.issued.exchangeKeyID.
	issuedExchangeID   = "exchangeKeyId"
	pendingExchangeID  = "pendingExchangeKeyId"
	previousExchangeID = "previousExchangeKeyId"
	// The exchange-side expiry of a key, where one was set at creation
	// (KuCoin expire, Bybit's unbound keys): status.issued.expiresAt.
	issuedExpiresAt  = "expiresAt"
	pendingExpiresAt = "pendingExpiresAt"
	// The previous key's passphrase, kept until it is deleted where the
	// exchange asks for it to delete the key (KuCoin).
	previousPassphrase = "previousPassphrase"
	// A create the exchange refused for good (the account cannot issue
	// keys, or a parameter is refused): what it was refused for (spec
	// generation, account generation, rotate annotation) and the message.
	// No attempt is made while all three are unchanged.
	refusedCreate    = "refusedCreate"
	refusedCreateMsg = "refusedCreateMessage"
	// Self-healing (deadVerdict): replacingKey is the fingerprint of the
	// current key a create replaces because the exchange no longer accepts
	// it, and replacingReason the verdict; both are saved with the intent,
	// so that the promotion answering them, in whichever reconcile, records
	// the replacement. They are about that key only: a promotion of
	// another key ignores them.
	replacingKey    = "replacingKey"
	replacingReason = "replacingReason"
	// previousDead is the verdict on the previous key when it was replaced
	// for it: it is deleted at once, not after the overlap.
	previousDead = "previousDeadReason"
	// replacedAt are the times of the replacements (RFC 3339, space
	// separated, oldest first, the last maxReplacementsKept) made for
	// replacedFor, the spec generation and rotate annotation then: the
	// replacement backoff counts them, and a new spec or annotation starts
	// the count again.
	replacedAt  = "replacedAt"
	replacedFor = "replacedFor"
)

// replacements are the recorded replacement times (see replacedAt), when
// they were made for k's spec generation and rotate annotation as they are.
func (is issuance) replacements(k *keyopsv1.ExchangeAPIKey) []time.Time {
	if is.get(replacedFor) != replacementScope(k) {
		return nil
	}
	var out []time.Time
	for _, f := range strings.Fields(is.get(replacedAt)) {
		if t, err := time.Parse(time.RFC3339, f); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// replacementScope is what the replacement count is kept for: the spec
// generation and the rotate annotation.
func replacementScope(k *keyopsv1.ExchangeAPIKey) string {
	return fmt.Sprintf("%d/%s", k.Generation, k.Annotations[keyopsv1.AnnotationRotate])
}

// issuedSecretName is the issuance Secret of k.
func issuedSecretName(k *keyopsv1.ExchangeAPIKey) string { return k.Name + "-issued-key" }

// issuance is the issuance Secret, parsed.
type issuance struct {
	secret *corev1.Secret
}

func (is issuance) get(key string) string { return string(is.secret.Data[key]) }

func (is issuance) current() exchange.Credentials {
	return exchange.Credentials{APIKey: is.get(issuedAPIKey), APISecret: is.get(issuedAPISecret), Passphrase: is.get(issuedPassphrase)}
}

func (is issuance) pending() exchange.Credentials {
	return exchange.Credentials{APIKey: is.get(pendingAPIKey), APISecret: is.get(pendingAPISecret), Passphrase: is.get(pendingPassphrase)}
}

func (is issuance) int(key string) int64 {
	n, _ := strconv.ParseInt(is.get(key), 10, 64)
	return n
}

// retryAt is when a failed attempt may be repeated (zero: now).
func (is issuance) retryAt() time.Time {
	t, _ := time.Parse(time.RFC3339, is.get(failedRetryAt))
	return t
}

// loadIssuance reads the issuance Secret from the API server (see the
// header: never a cached copy), creating it (empty, owned by k, labelled so
// that the manager watches it) when it does not exist.
func (r *Reconciler) loadIssuance(ctx context.Context, k *keyopsv1.ExchangeAPIKey) (issuance, error) {
	key := types.NamespacedName{Namespace: k.Namespace, Name: issuedSecretName(k)}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: key.Name, Labels: map[string]string{
				keyopsv1.LabelManaged: keyopsv1.LabelManagedValue, keyopsv1.LabelManagedBy: keyopsv1.ManagedByValue,
			}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{},
		}
		if err := controllerutil.SetControllerReference(k, &s, r.Scheme); err != nil {
			return issuance{}, err
		}
		if err := r.Create(ctx, &s); err != nil {
			return issuance{}, err
		}
		if s.Data == nil { // the answer to an empty Secret's create has none
			s.Data = map[string][]byte{}
		}
		return issuance{secret: &s}, nil
	}
	if err != nil {
		return issuance{}, err
	}
	if !metav1.IsControlledBy(&s, k) {
		return issuance{}, fmt.Errorf("Secret %s exists and is not this ExchangeAPIKey's: delete or rename it", key.Name) //nolint:staticcheck // ST1005: starts with a proper noun
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	return issuance{secret: &s}, nil
}

// save writes the issuance Secret; the resourceVersion makes a concurrent
// writer a conflict (retried from a fresh read), never a lost step.
func (r *Reconciler) save(ctx context.Context, is issuance, set map[string]string, drop ...string) error {
	for kk, v := range set {
		is.secret.Data[kk] = []byte(v)
	}
	for _, kk := range drop {
		delete(is.secret.Data, kk)
	}
	return r.Update(ctx, is.secret)
}
