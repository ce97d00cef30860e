package exchangeapikey

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/clusterpolicy"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
	"github.com/keyops-io/exchange-key-operator/internal/permissionpolicy"
)

// Short-lived tokens (spec.token, Bitfinex): the target Secret holds a
// token minted from the source key, never the key. The source key is
// validated as without spec.token; once it is approved, phaseToken decides
// when a token is due (none yet, minted from other material or with other
// caps, or renewalPercent of its TTL passed), act mints it (MintToken) and
// decides again with the outcome, and the target is written with the token
// and its expiry. A failed mint leaves the target as it is: the last good
// token stays until it expires, and the next attempt comes after a backoff
// bounded by the time the token has left.

// TokenMinter mints auth tokens (*exchange.Prober).
type TokenMinter interface {
	MintToken(ctx context.Context, r exchange.TokenRequest) (*exchange.Token, error)
}

// Data keys of the target Secret in token mode, per target.format.
const (
	tokenKeyPlain   = "token"
	expiresKeyPlain = "expiresAt"
	tokenKeyEnv     = "BITFINEX_API_TOKEN"
	expiresKeyEnv   = "BITFINEX_API_TOKEN_EXPIRES_AT"
)

// Retries of a failed mint: from tokenMinRetry, doubling up to
// tokenMaxRetry, and never later than a quarter of the time the current
// token has left, so that several attempts fit before it expires.
const (
	tokenMinRetry = 5 * time.Second
	tokenMaxRetry = 5 * time.Minute
)

// tokenDataKeys are the target's data keys for the token and its expiry.
func tokenDataKeys(k *keyopsv1.ExchangeAPIKey) (token, expires string) {
	if k.Spec.Target.FormatOrDefault() == keyopsv1.FormatEnv {
		return tokenKeyEnv, expiresKeyEnv
	}
	return tokenKeyPlain, expiresKeyPlain
}

// heldToken is a token and what it was minted from: the one the target
// Secret holds, or one minted in this reconcile.
type heldToken struct {
	value               string
	issuedAt, expiresAt time.Time
	// spec is tokenSpecHash of the spec.token it was minted with.
	spec string
	// keyFingerprint and material name the source key it was minted from.
	keyFingerprint, material string
}

func (h heldToken) ok() bool { return h.value != "" && !h.expiresAt.IsZero() }

// hash identifies the token (restart bookkeeping); fingerprint is its short
// form for status and messages. Neither reveals the token.
func (h heldToken) hash() string        { return keyid.Fingerprint("bitfinex-token\x00" + h.value) }
func (h heldToken) fingerprint() string { return keyid.Short(h.hash()) }

// renewAt is when the token is due for renewal: issuedAt plus percent of its
// TTL.
func (h heldToken) renewAt(percent int32) time.Time {
	return h.issuedAt.Add(h.expiresAt.Sub(h.issuedAt) * time.Duration(percent) / 100)
}

// tokenSpecHash identifies what a token is minted with, so that a change of
// ttl, caps or writePermission mints a new one at once.
func tokenSpecHash(t *keyopsv1.TokenSpec) string {
	caps := make([]string, len(t.Caps))
	for i, c := range t.Caps {
		caps[i] = string(c)
	}
	slices.Sort(caps)
	return keyid.Short(keyid.Fingerprint(fmt.Sprintf("ttl=%d;caps=%s;write=%t", int64(t.TTLOrDefault()/time.Second), strings.Join(caps, ","), t.WritePermission)))
}

// readHeldToken reads the token a target Secret the operator owns holds.
func readHeldToken(k *keyopsv1.ExchangeAPIKey, s *corev1.Secret) heldToken {
	tk, _ := tokenDataKeys(k)
	h := heldToken{
		value: string(s.Data[tk]), spec: s.Annotations[keyopsv1.AnnotationTokenSpec],
		keyFingerprint: s.Annotations[keyopsv1.AnnotationKeyFingerprint], material: s.Annotations[keyopsv1.AnnotationCredentialsHash],
	}
	h.issuedAt, _ = time.Parse(time.RFC3339, s.Annotations[keyopsv1.AnnotationTokenIssuedAt])
	h.expiresAt, _ = time.Parse(time.RFC3339, s.Annotations[keyopsv1.AnnotationTokenExpiresAt])
	if h.value != "" && s.Annotations[keyopsv1.AnnotationTokenFingerprint] != h.fingerprint() {
		// Not the token the operator wrote (edited by hand): unknown
		// expiry, so it is replaced.
		h.expiresAt = time.Time{}
	}
	return h
}

// tokenTargetData renders the target Secret's data and annotations for a
// token: the token and its expiry, nothing of the key.
func tokenTargetData(k *keyopsv1.ExchangeAPIKey, h heldToken) (map[string][]byte, map[string]string) {
	if !h.ok() {
		// No token yet: nothing, and no key either.
		return map[string][]byte{}, map[string]string{keyopsv1.AnnotationKeyFingerprint: "", keyopsv1.AnnotationCredentialsHash: ""}
	}
	tk, ek := tokenDataKeys(k)
	exp := h.expiresAt.UTC().Format(time.RFC3339)
	return map[string][]byte{tk: []byte(h.value), ek: []byte(exp)}, map[string]string{
		keyopsv1.AnnotationKeyFingerprint:   h.keyFingerprint,
		keyopsv1.AnnotationCredentialsHash:  h.material,
		keyopsv1.AnnotationTokenSpec:        h.spec,
		keyopsv1.AnnotationTokenFingerprint: h.fingerprint(),
		keyopsv1.AnnotationTokenIssuedAt:    h.issuedAt.UTC().Format(time.RFC3339),
		keyopsv1.AnnotationTokenExpiresAt:   exp,
	}
}

// mintToken asks the exchange for a token of the current source key.
func (r *Reconciler) mintToken(ctx context.Context, k *keyopsv1.ExchangeAPIKey, obs observation) (*exchange.Token, error) {
	if r.Tokens == nil {
		return nil, &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: exchange.Name(k.Spec.Exchange), Message: "this manager mints no tokens"}
	}
	t := k.Spec.Token
	caps := make([]string, len(t.Caps))
	for i, c := range t.Caps {
		caps[i] = string(c)
	}
	slices.Sort(caps)
	return r.Tokens.MintToken(ctx, exchange.TokenRequest{
		Request: exchange.Request{
			Exchange: exchange.Name(k.Spec.Exchange), Endpoint: k.Spec.Endpoint, Credentials: obs.source.Creds,
			NonceUnit: exchange.NonceUnit(k.Spec.Validation.NonceUnitOrDefault()),
		},
		TTL: t.TTLOrDefault(), Caps: caps, WritePermission: t.WritePermission,
	})
}

// tokenPolicy checks what spec.token's caps grant against the key's own
// spec.permissions.forbidden and the forbidden permissions of every
// ClusterExchangeKeyPolicy selecting the namespace: the floor applies to a
// token's caps as to a key's permissions. It returns the PermissionsCompliant
// reason of a violation and a message that says what to change, or "".
func tokenPolicy(k *keyopsv1.ExchangeAPIKey, policies []keyopsv1.ClusterExchangeKeyPolicy, nsLabels map[string]string) (string, string) {
	t := k.Spec.Token
	caps := make([]string, len(t.Caps))
	for i, c := range t.Caps {
		caps[i] = string(c)
	}
	perms := permissionpolicy.Status(exchange.TokenPermissions(caps, t.WritePermission))
	grants := func(p string) string { return grantedBy(perms, p) }
	var forbidden []string
	for _, f := range k.Spec.Permissions.ForbiddenOrDefault() {
		if slices.Contains(perms.Canonical, string(f)) {
			forbidden = append(forbidden, string(f)+grants(string(f)))
		}
	}
	if len(forbidden) > 0 {
		return keyopsv1.ReasonForbiddenPermission, fmt.Sprintf("spec.token.caps grant forbidden permission(s) %s: remove those caps or change spec.permissions.forbidden; no token is minted", strings.Join(forbidden, ", "))
	}
	var vs []string
	for _, p := range clusterpolicy.Selecting(policies, nsLabels) {
		for _, f := range p.Spec.Forbidden {
			if slices.Contains(perms.Canonical, string(f)) {
				vs = append(vs, fmt.Sprintf("policy %q forbids %s; spec.token.caps grant it%s: remove those caps", p.Name, f, grants(string(f))))
			}
		}
	}
	if len(vs) > 0 {
		return keyopsv1.ReasonPolicyViolation, strings.Join(vs, ". ") + "; no token is minted"
	}
	return "", ""
}

// grantedBy names the caps' scopes that grant a canonical permission.
func grantedBy(perms *keyopsv1.PermissionsStatus, canonical string) string {
	var natives []string
	for _, g := range perms.Grants {
		if slices.Contains(g.Canonical, canonical) {
			natives = append(natives, g.Native)
		}
	}
	if len(natives) == 0 {
		return ""
	}
	return " (scope " + strings.Join(natives, ", ") + ")"
}

// tokenRetry is the wait before the next attempt after failures failed
// mints, when the current token has left before it expires (0 or less:
// none, or expired).
func tokenRetry(failures int32, left time.Duration, retryAfter time.Duration) time.Duration {
	d := tokenMinRetry
	for i := int32(1); i < failures && d < tokenMaxRetry; i++ {
		d *= 2
	}
	d = min(d, tokenMaxRetry)
	if left > 0 {
		d = min(d, max(left/4, time.Second))
	}
	return max(d, retryAfter)
}

// tokenFailureReason is the TokenIssued reason of a failed mint.
func tokenFailureReason(e *exchange.Error) string {
	switch e.Kind {
	case exchange.RateLimited:
		return keyopsv1.ReasonRateLimited
	case exchange.Unavailable:
		return keyopsv1.ReasonExchangeUnavailable
	case exchange.NonceConflict:
		return keyopsv1.ReasonNonceConflict
	case exchange.UnexpectedResponse:
		return keyopsv1.ReasonUnexpectedResponse
	}
	return keyopsv1.ReasonTokenRefused
}

// phaseToken replaces phaseTarget for spec.token: it decides whether a
// token is due, records a mint's outcome, and what the target Secret holds.
func phaseToken(s *phaseState) bool {
	k, st, obs, now := s.k, s.st, s.obs, s.obs.now
	target := obs.target
	if target.conflict != "" {
		s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonSecretConflict, target.conflict)
		st.TargetKeyFingerprint, st.TargetCredentialsHash = "", ""
		return true
	}
	spec := tokenSpecHash(k.Spec.Token)
	percent := k.Spec.Token.RenewalPercentOrDefault()
	cur := target.token
	prevFailures := int32(0)
	if st.Token != nil {
		prevFailures = st.Token.Failures
	}
	matches := cur.ok() && cur.material == obs.source.Material && cur.spec == spec
	policyReason, policyMsg := tokenPolicy(k, obs.policies, obs.nsLabels)

	switch {
	case policyReason != "":
		s.set(keyopsv1.ConditionTokenIssued, metav1.ConditionFalse, policyReason, policyMsg)
		s.set(keyopsv1.ConditionPermissionsCompliant, metav1.ConditionFalse, policyReason, policyMsg)
	case !s.approved:
		why := blockingReason(st.Conditions)
		if rejected(why) {
			st.History = recordDecision(st.History, s.fp, keyopsv1.HistoryRejected, why, s.now)
		}
		s.set(keyopsv1.ConditionTokenIssued, metav1.ConditionUnknown, keyopsv1.ReasonTokenPending,
			fmt.Sprintf("no token is minted from key %s until it verifies and complies (%s)", st.KeyID, why))
	case obs.minted != nil:
		cur = heldToken{value: obs.minted.Value, issuedAt: obs.minted.IssuedAt, expiresAt: obs.minted.ExpiresAt, spec: spec, keyFingerprint: s.fp, material: obs.source.Material}
		renew := metav1.NewTime(cur.renewAt(percent))
		st.Token = &keyopsv1.TokenStatus{Fingerprint: cur.fingerprint(), IssuedAt: timePtr(&cur.issuedAt), ExpiresAt: timePtr(&cur.expiresAt), RenewAt: &renew}
		s.set(keyopsv1.ConditionTokenIssued, metav1.ConditionTrue, keyopsv1.ReasonTokenIssued,
			fmt.Sprintf("token %s of key %s is valid until %s; the next is minted at %s", cur.fingerprint(), st.KeyID, cur.expiresAt.UTC().Format(time.RFC3339), renew.UTC().Format(time.RFC3339)))
		if prevFailures > 0 {
			s.event(false, keyopsv1.EventTokenRenewed, fmt.Sprintf("token %s minted after %d failed attempt(s); Secret %s holds it until %s", cur.fingerprint(), prevFailures, k.TargetName(), cur.expiresAt.UTC().Format(time.RFC3339)))
		}
	case obs.mintErr != nil:
		tokenMintFailed(s, cur, prevFailures)
	default:
		due := !matches || !now.Before(cur.renewAt(percent))
		if st.Token != nil && st.Token.Failures > 0 && st.Token.RenewAt != nil && now.Before(st.Token.RenewAt.Time) {
			due = false // backing off after a failed mint
		}
		if due {
			s.d.mintToken = true
		} else if matches && (st.Token == nil || st.Token.Failures == 0) {
			// Status follows the target (after an upgrade, or a lost
			// status write).
			renew := metav1.NewTime(cur.renewAt(percent))
			st.Token = &keyopsv1.TokenStatus{Fingerprint: cur.fingerprint(), IssuedAt: timePtr(&cur.issuedAt), ExpiresAt: timePtr(&cur.expiresAt), RenewAt: &renew}
			s.set(keyopsv1.ConditionTokenIssued, metav1.ConditionTrue, keyopsv1.ReasonTokenIssued,
				fmt.Sprintf("token %s of key %s is valid until %s; the next is minted at %s", cur.fingerprint(), st.KeyID, cur.expiresAt.UTC().Format(time.RFC3339), renew.UTC().Format(time.RFC3339)))
		}
	}

	// What the target holds: the token just minted, or the one it had.
	tokenTarget(s, cur, percent)
	if st.Token != nil && st.Token.Failures > 0 && st.Token.RenewAt != nil {
		s.wake(max(st.Token.RenewAt.Sub(now), time.Second))
	}
	return true
}

// tokenMintFailed records a failed mint: the retry (backed off, never past
// the held token's expiry), and what the target keeps meanwhile.
func tokenMintFailed(s *phaseState, cur heldToken, prevFailures int32) {
	k, st, obs, now := s.k, s.st, s.obs, s.obs.now
	e, ok := exchange.AsError(obs.mintErr)
	if !ok {
		e = &exchange.Error{Kind: exchange.UnexpectedResponse, Exchange: exchange.Name(k.Spec.Exchange), Message: "unclassified error"}
	}
	failures := prevFailures + 1
	left := time.Duration(0)
	if cur.ok() {
		left = cur.expiresAt.Sub(now)
	}
	wait := tokenRetry(failures, left, e.RetryAfter)
	retry := metav1.NewTime(now.Add(wait))
	if st.Token == nil {
		st.Token = &keyopsv1.TokenStatus{}
	}
	st.Token.Failures, st.Token.RenewAt = failures, &retry
	kept := "the target Secret holds no token yet"
	switch {
	case cur.ok() && left > 0:
		kept = fmt.Sprintf("Secret %s keeps token %s until it expires at %s", k.TargetName(), cur.fingerprint(), cur.expiresAt.UTC().Format(time.RFC3339))
	case cur.ok():
		kept = fmt.Sprintf("the token in Secret %s expired at %s", k.TargetName(), cur.expiresAt.UTC().Format(time.RFC3339))
	}
	reason := tokenFailureReason(e)
	msg := fmt.Sprintf("minting a token with key %s failed (%s); %s; retrying in %s", st.KeyID, e.Error(), kept, wait.Round(time.Second))
	if prev := meta.FindStatusCondition(s.prev.Conditions, keyopsv1.ConditionTokenIssued); prev == nil || prev.Reason != reason {
		s.event(true, reason, msg)
	}
	s.set(keyopsv1.ConditionTokenIssued, metav1.ConditionFalse, reason, msg)
}

// tokenTarget decides what the target Secret holds: the token just minted,
// or the one it had (never the key), and when to wake for it.
func tokenTarget(s *phaseState, cur heldToken, percent int32) {
	k, st, obs, now := s.k, s.st, s.obs, s.obs.now
	target := obs.target
	if cur.ok() {
		s.d.token = &cur
		s.d.syncTarget = true
		if cur.material != s.prev.TargetCredentialsHash && cur.material == obs.source.Material {
			// A token of a key the bots did not have a token of before: a
			// first key, or a rotation of the source key.
			s.recordHandoverOf(cur.keyFingerprint, st.KeyID, cur.material)
		}
		st.TargetKeyFingerprint, st.TargetCredentialsHash = cur.keyFingerprint, cur.material
		// Env variables only change with a restart: restart targets, when
		// declared, roll for every new token (mounted files follow the
		// Secret by themselves).
		pending := s.restartTargets(cur.hash())
		if !now.Before(cur.expiresAt) {
			s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonTokenExpired,
				fmt.Sprintf("the token in Secret %s expired at %s and no new one could be minted", k.TargetName(), cur.expiresAt.UTC().Format(time.RFC3339)))
		} else {
			msg := fmt.Sprintf("Secret %s holds token %s (of key %s), valid until %s", k.TargetName(), cur.fingerprint(), maskedFor(st.History, cur.keyFingerprint), cur.expiresAt.UTC().Format(time.RFC3339))
			if len(pending) > 0 {
				msg += fmt.Sprintf("; restart targets not restarted yet: %s", strings.Join(pending, ", "))
			}
			s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionTrue, keyopsv1.ReasonSynced, msg)
		}
		// Wake at the renewal, or at the expiry to report it.
		if at := cur.renewAt(percent); now.Before(at) {
			s.wake(at.Sub(now))
		} else if now.Before(cur.expiresAt) {
			s.wake(cur.expiresAt.Sub(now))
		}
	} else {
		st.TargetKeyFingerprint, st.TargetCredentialsHash = "", ""
		if target.exists {
			// A target written before spec.token was set holds the key
			// itself: emptied now, whether or not a token can be minted.
			s.d.token, s.d.syncTarget = &heldToken{}, true
		}
		s.set(keyopsv1.ConditionSecretSynced, metav1.ConditionFalse, keyopsv1.ReasonAwaitingValidation,
			fmt.Sprintf("Secret %s is written once a token is minted from key %s", k.TargetName(), st.KeyID))
	}
}
