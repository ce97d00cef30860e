package exchange

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind classifies a failed probe so that callers can switch on it.
type Kind string

const (
	// InvalidKey: the key is unknown to the exchange (never existed, deleted, revoked).
	InvalidKey Kind = "InvalidKey"
	// InvalidSignature: the exchange rejected the signature (wrong secret).
	InvalidSignature Kind = "InvalidSignature"
	// WrongPassphrase: OKX and KuCoin keys carry a passphrase; it was wrong.
	WrongPassphrase Kind = "WrongPassphrase"
	// Inactive: the key exists but is not activated, frozen or expired.
	Inactive Kind = "Inactive"
	// IPNotAllowed: the caller's IP is not on the key's allowlist.
	IPNotAllowed Kind = "IPNotAllowed"
	// PermissionDenied: the probe needs a permission the key lacks. For
	// exchanges without a permissions endpoint this is the answer itself.
	PermissionDenied Kind = "PermissionDenied"
	// ClockSkew: the request's timestamp or nonce was outside the window.
	ClockSkew Kind = "ClockSkew"
	// RateLimited: the exchange (or our own client-side limiter) refused for now.
	RateLimited Kind = "RateLimited"
	// Unavailable: 5xx, maintenance, timeout, connection refused.
	Unavailable Kind = "Unavailable"
	// UnexpectedResponse: HTML, truncated JSON, an unknown error code.
	UnexpectedResponse Kind = "UnexpectedResponse"
	// KeyOrIPRejected: the exchange answered with one code for "unknown key"
	// and "caller outside the allowlist" (Binance -2015), so the answer is
	// definite but cannot say which. IP, when set, is the address the
	// exchange says it saw.
	KeyOrIPRejected Kind = "KeyOrIPRejected"
	// NonceConflict: the exchange refused every nonce we may send for this key
	// (Kraken, Bitfinex), because another client of the same key already
	// uses a larger nonce scale. No verdict on the key; retried with backoff.
	NonceConflict Kind = "NonceConflict"
)

// Transient reports whether a retry later may give another answer without
// anyone changing the key.
func (k Kind) Transient() bool {
	return k == RateLimited || k == Unavailable || k == UnexpectedResponse || k == NonceConflict
}

// Scope says what an exchange's rate limit applies to.
type Scope string

const (
	// ScopeEndpoint (the zero value): the exchange limits the egress IP, so
	// every key on the same base URL must wait.
	ScopeEndpoint Scope = ""
	// ScopeKey: the limit counts this key's requests only (Kraken's per-key
	// counters); other keys go on.
	ScopeKey Scope = "Key"
)

// Error is the only error type a probe returns. Its text never holds key
// material, signatures or header dumps: Code and Message are the exchange's
// own error code and message, and Excerpt is a short sanitised piece of an
// unexpected body.
type Error struct {
	Kind       Kind
	Exchange   Name
	HTTPStatus int
	// Code is the exchange's native error code when it gave one.
	Code string
	// Message is the exchange's error message or our description.
	Message string
	// RetryAfter is how long the exchange asked us to wait (RateLimited).
	RetryAfter time.Duration
	// Excerpt is a sanitised start of the body for UnexpectedResponse.
	Excerpt string
	// Scope of a RateLimited error. The prober pauses the whole base URL
	// for RetryAfter unless it is ScopeKey; drivers only classify.
	Scope Scope
	// IP is the caller address an exchange quoted in its answer
	// (KeyOrIPRejected, IPNotAllowed), when it quoted one.
	IP string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Exchange, e.Kind)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " code %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", capBytes(e.Message, MaxQuoteBytes))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.Excerpt != "" {
		// The body is whatever the endpoint sent (an admitted custom
		// endpoint may be anyone's): quoted, capped, and marked as its
		// words, not the operator's.
		fmt.Fprintf(&b, ": the endpoint's response, quoted and cut to %d bytes: %q", MaxQuoteBytes, capBytes(e.Excerpt, MaxQuoteBytes))
	}
	return b.String()
}

// KindOf returns the Kind of err, or "" when err is nil or not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// AsError unwraps err into an *Error.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func newError(ex Name, kind Kind, status int, code, msg string) *Error {
	return &Error{Kind: kind, Exchange: ex, HTTPStatus: status, Code: code, Message: sanitize(msg, 200)}
}

// unexpected builds an UnexpectedResponse with a sanitised excerpt of body.
func unexpected(ex Name, status int, why string, body []byte) *Error {
	return &Error{Kind: UnexpectedResponse, Exchange: ex, HTTPStatus: status, Message: why, Excerpt: sanitize(string(body), 120)}
}

// fallback maps an answer a parser could not interpret: a 5xx (maintenance
// page, proxy error) is Unavailable, anything else UnexpectedResponse.
func fallback(ex Name, status int, why string, body []byte) *Error {
	e := unexpected(ex, status, why, body)
	if status >= 500 {
		e.Kind = Unavailable
	}
	return e
}

// MaxQuoteBytes caps each piece of an exchange's answer (its message, an
// excerpt of its body) that a status message quotes.
const MaxQuoteBytes = 256

// capBytes cuts s to at most n bytes, on a rune boundary, marking the cut.
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// sanitize keeps printable characters only and cuts to max runes, so that a
// hostile or broken body cannot fill logs or status.
func sanitize(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n >= max {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteRune(' ')
		}
		n++
	}
	return strings.TrimSpace(b.String())
}
