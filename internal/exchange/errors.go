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
	// and "caller outside the allowlist" (Binance -2015; Coinbase's bare 401
	// also covers a wrong private key), so the answer cannot say which.
	// KeyOrIPCauses lists the causes per exchange. IP, when set, is the
	// address the exchange says it saw.
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
	// Ambiguous marks an answer the exchange also gives to a valid key in
	// good standing (see ambiguousAnswers): Coinbase's bare 401, Binance
	// -2015. One such answer is no verdict; the controller confirms it with
	// a second probe a few seconds later. Only drivers set it, through
	// markAmbiguous, for the answers listed in ambiguousAnswers.
	Ambiguous bool
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

// IsAmbiguous reports whether err is an answer the exchange also gives to
// valid keys, which needs a second probe before it is a verdict.
func IsAmbiguous(err error) bool {
	e, ok := AsError(err)
	return ok && e.Ambiguous
}

// ambiguousAnswer is one answer an exchange gives to keys that do not work
// and, now and then or from some callers, to keys that do. docs/exchanges.md
// ("Ambiguous answers and their confirmation") lists exactly these.
type ambiguousAnswer struct {
	Exchange Name
	// Answer is how the answer looks on the wire, as the docs show it.
	Answer string
	// Kind is what the driver classifies it as.
	Kind Kind
	// Why says which valid keys get it, and Source where that is stated.
	Why    string
	Source string
}

// ambiguousAnswers is the table the drivers' markAmbiguous calls follow.
// An answer belongs here when the exchange is known to give it to a valid,
// correctly signed request: spuriously (Coinbase), or because it covers
// the caller's IP as well as the key (the key is valid, the caller is not
// on its allowlist: the operator's egress may change between nodes). An
// answer that names its cause (IPNotAllowed with the IP, KEY_NOT_FOUND,
// INVALID_SIGNATURE) is a verdict at once.
var ambiguousAnswers = []ambiguousAnswer{
	{
		Exchange: Coinbase, Answer: "HTTP 401 without a reason (bare `Unauthorized`, or `UNAUTHENTICATED` with no known `error_details`)", Kind: KeyOrIPRejected,
		Why:    "Coinbase's answer to every authentication failure (unknown or deleted key, wrong private key, caller outside the key's IP allowlist), and now and then to a correctly signed token that is accepted on the next attempt",
		Source: "https://github.com/coinbase/coinbase-advanced-py/issues/132; https://docs.cdp.coinbase.com/api-reference/authentication (IP allowlist)",
	},
	{
		Exchange: Binance, Answer: "`-2015` REJECTED_MBX_KEY", Kind: KeyOrIPRejected,
		Why:    "\"Invalid API-key, IP, or permissions for action\": also the answer to a valid key called from an IP outside its allowlist",
		Source: "https://github.com/binance/binance-spot-api-docs/blob/master/errors.md",
	},
}

// markAmbiguous marks e as one of the ambiguousAnswers.
func markAmbiguous(e *Error) *Error {
	e.Ambiguous = true
	return e
}

// KeyOrIPCauses lists what a KeyOrIPRejected answer of exchange ex may
// mean, for messages that must name every cause.
func KeyOrIPCauses(ex Name) []string {
	unknown := "the key is unknown (deleted, revoked, mistyped, or from another environment)"
	ip := "the caller's IP is not on the key's IP allowlist"
	if ex == Coinbase {
		return []string{unknown, "the private key is not this key's", ip}
	}
	return []string{unknown, ip}
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
