package v1alpha1

import "time"

// Short-lived tokens (spec.token): the condition minting reports, its
// reasons and the target Secret's token annotations.
const (
	// ConditionTokenIssued says whether the last token mint succeeded and
	// the target Secret holds its token.
	ConditionTokenIssued = "TokenIssued"
	// ReasonTokenIssued: the target Secret holds a token minted by the last
	// attempt.
	ReasonTokenIssued = "TokenIssued"
	// ReasonTokenPending: no token is minted until the source key verifies
	// and complies.
	ReasonTokenPending = "TokenPending"
	// ReasonTokenRefused: Bitfinex refused to mint a token with the source
	// key (unknown or revoked key, bad signature, a permission it lacks);
	// the message carries Bitfinex's answer. Rate limits, outages, refused
	// nonces and garbage answers keep their KeyValid reasons (RateLimited,
	// ExchangeUnavailable, NonceConflict, UnexpectedResponse).
	ReasonTokenRefused = "TokenRefused"
	// ReasonTokenExpired (SecretSynced, and so Ready): the target Secret's
	// token has expired and no new one could be minted.
	ReasonTokenExpired = "TokenExpired"

	// EventTokenRenewed is not emitted on every mint (one per renewal would
	// flood the Events of a fleet); only a mint after failures is announced.
	EventTokenRenewed = "TokenRenewed"

	// AnnotationTokenExpiresAt is set on the target Secret: when its token
	// expires (RFC 3339).
	AnnotationTokenExpiresAt = "exchange.keyops.io/token-expires-at"
	// AnnotationTokenIssuedAt is set on the target Secret: when its token
	// was asked for (RFC 3339).
	AnnotationTokenIssuedAt = "exchange.keyops.io/token-issued-at"
	// AnnotationTokenFingerprint is set on the target Secret: a short hash
	// of the token it holds, so that a token edited or replaced by hand is
	// noticed and a new one minted.
	AnnotationTokenFingerprint = "exchange.keyops.io/token-fingerprint"
	// AnnotationTokenSpec is set on the target Secret: a hash of the
	// spec.token (ttl, caps, writePermission) its token was minted with, so
	// that a change of caps mints a new token at once.
	AnnotationTokenSpec = "exchange.keyops.io/token-spec"
)

// DefaultTokenTTL is a token's lifetime when spec.token.ttl is not set.
const DefaultTokenTTL = time.Hour

// DefaultRenewalPercent is when, in percent of its TTL, a token is renewed
// (as Vault Secrets Operator's renewalPercent).
const DefaultRenewalPercent = 67

// TTLOrDefault is the token TTL.
func (t *TokenSpec) TTLOrDefault() time.Duration {
	if t.TTL == nil || t.TTL.Duration <= 0 {
		return DefaultTokenTTL
	}
	return t.TTL.Duration
}

// RenewalPercentOrDefault is the renewal point in percent of the TTL,
// within [10, 90] whatever the stored spec says.
func (t *TokenSpec) RenewalPercentOrDefault() int32 {
	if t.RenewalPercent == nil {
		return DefaultRenewalPercent
	}
	return min(max(*t.RenewalPercent, 10), 90)
}
