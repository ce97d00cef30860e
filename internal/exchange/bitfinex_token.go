package exchange

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Bitfinex auth tokens: POST /v2/auth/w/token ("Generate Token",
// docs.bitfinex.com/reference/generate-token) mints a token from an API key.
// The request is an authenticated v2 request like r/permissions (bfx-apikey,
// bfx-nonce, bfx-signature over "/api" + path + nonce + body; the same
// signing in bfx-api-node-rest lib/rest2.js _makeAuthRequest and ccxt's
// bitfinex.js sign(), which exposes it as privatePostAuthWToken), with the
// JSON body
//
//	{"scope":"api","ttl":<seconds>,"caps":[...],"writePermission":<bool>}
//
// scope is required and "api"; ttl is an int32 number of seconds, 120 when
// omitted (no maximum is documented); caps are a (account), o (orders),
// f (funding), s (settings), w (wallets), wd (withdraw, "writePermission:
// true is required for wd permission") and bp (bfxpay); writePermission
// gives the caps write access. The answer is [TOKEN]. A client then sends
// bfx-token: TOKEN instead of bfx-apikey and bfx-signature
// (bfx-api-node-rest lib/rest2.js: the authToken option), still
// with bfx-nonce. Bitfinex reports no expiry: the operator counts it from
// the moment it asked, so the real expiry is that or a moment later.
//
// Errors are Bitfinex's usual ["error", code, "message"] (bitfinexError).

const bitfinexTokenPath = "/v2/auth/w/token"

// TokenCaps are the caps Bitfinex documents for tokens, each with the
// r/permissions scope it opens.
var TokenCaps = map[string]string{
	"a":  "account",
	"o":  "orders",
	"f":  "funding",
	"s":  "settings",
	"w":  "wallets",
	"wd": "withdraw",
	"bp": "bfxpay",
}

// TokenRequest asks an exchange for an auth token made from Request's key.
type TokenRequest struct {
	Request
	// TTL is the token's lifetime; whole seconds are sent.
	TTL time.Duration
	// Caps are the token's capabilities (TokenCaps' keys).
	Caps []string
	// WritePermission gives the caps write access.
	WritePermission bool
}

// Token is a minted auth token. Value is a credential: it must never be
// logged or copied into an error, an Event or a status field.
type Token struct {
	Value string
	// IssuedAt is when the operator sent the request; ExpiresAt is IssuedAt
	// plus the TTL, at or before the exchange's own expiry.
	IssuedAt, ExpiresAt time.Time
}

// TokenPermissions is what a token with caps (and writePermission) may do, in
// canonical terms: each cap's scope read, and with writePermission its write,
// through the same table as a key's r/permissions flags.
func TokenPermissions(caps []string, write bool) *Permissions {
	var native []string
	for _, c := range caps {
		scope, ok := TokenCaps[c]
		if !ok {
			continue
		}
		native = append(native, scope+":read")
		if write {
			native = append(native, scope+":write")
		}
	}
	native = sortedCopy(native)
	canonical, grants := bitfinexTable(native).grant(native)
	return &Permissions{Canonical: canonical, Native: native, Grants: grants, IPRestriction: IPUnknown}
}

// SupportsTokens reports whether exchange n mints auth tokens.
func SupportsTokens(n Name) bool { return n == Bitfinex }

// MintToken asks the exchange for a token. The nonce follows the key's
// counter like a probe's (nonce.go): the declared unit, never above its
// clock, one request of the key at a time, a refused nonce retried briefly.
func (p *Prober) MintToken(ctx context.Context, r TokenRequest) (*Token, error) {
	if !SupportsTokens(r.Exchange) {
		return nil, &Error{Kind: UnexpectedResponse, Exchange: r.Exchange, Message: "this exchange mints no auth tokens"}
	}
	if err := CheckCredentials(r.Exchange, r.Credentials); err != nil {
		return nil, &Error{Kind: InvalidKey, Exchange: r.Exchange, Message: err.Error()}
	}
	body, err := json.Marshal(struct {
		Scope           string   `json:"scope"`
		TTL             int64    `json:"ttl"`
		Caps            []string `json:"caps"`
		WritePermission bool     `json:"writePermission"`
	}{"api", int64(r.TTL / time.Second), r.Caps, r.WritePermission})
	if err != nil {
		return nil, &Error{Kind: UnexpectedResponse, Exchange: r.Exchange, Message: "cannot encode the token request"}
	}
	base := strings.TrimRight(r.Endpoint, "/")
	if base == "" {
		base = drivers[r.Exchange].defaultBase()
	}
	c := &call{p: p, ex: r.Exchange, base: base, creds: r.Credentials, nonce: nonceIDOf(r.Exchange, r.Credentials.APIKey)}
	release, err := p.nonces.acquire(ctx, c.nonce, r.NonceUnit, p.opts.Now())
	if err != nil {
		return nil, &Error{Kind: Unavailable, Exchange: r.Exchange, Message: "gave up waiting for another request of this key: " + transportMessage(err)}
	}
	defer release()
	var tok *Token
	mint := func() (e error) { tok, e = bitfinexMint(ctx, c, body, r.TTL); return e }
	err = p.retryNonce(ctx, unitOrDefault(r.NonceUnit), mint(), mint)
	p.escalate(base, err)
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// bitfinexMint sends one signed token request.
func bitfinexMint(ctx context.Context, c *call, body []byte, ttl time.Duration) (*Token, error) {
	h, err := bitfinexAuthHeaders(ctx, c, bitfinexTokenPath, body)
	if err != nil {
		return nil, err
	}
	// Counted from before the request: the token cannot expire earlier.
	issued := c.p.opts.Now()
	resp, err := c.do(ctx, http.MethodPost, bitfinexTokenPath, "", body, h)
	if err != nil {
		return nil, err
	}
	value, err := parseBitfinexToken(resp.Status, resp.Body)
	if err != nil {
		return nil, err
	}
	return &Token{Value: value, IssuedAt: issued, ExpiresAt: issued.Add(ttl)}, nil
}

// maxTokenBytes bounds a token the operator writes into a Secret (Bitfinex's
// are JWT-like strings of a few hundred bytes).
const maxTokenBytes = 4 << 10

// parseBitfinexToken maps an auth/w/token answer: [TOKEN]. A successful
// answer is never quoted in an error: it may be a token.
func parseBitfinexToken(status int, body []byte) (string, error) {
	rows, err := bitfinexAnswer(status, body)
	if e, ok := AsError(err); ok && status >= 200 && status <= 299 && e.Excerpt != "" {
		// A 2xx body of an unknown shape may still hold the token.
		e.Excerpt = ""
		e.Message += " (not quoted: it may hold a token)"
	}
	if err != nil {
		return "", err
	}
	var token string
	if len(rows) == 0 || json.Unmarshal(rows[0], &token) != nil {
		return "", &Error{Kind: UnexpectedResponse, Exchange: Bitfinex, HTTPStatus: status, Message: "token answer is not [TOKEN] (not quoted: it may hold a token)"}
	}
	if token == "" || len(token) > maxTokenBytes || strings.ContainsAny(token, " \t\r\n") {
		return "", &Error{Kind: UnexpectedResponse, Exchange: Bitfinex, HTTPStatus: status, Message: "token answer holds no usable token (empty, longer than 4 KiB or with whitespace; not quoted)"}
	}
	return token, nil
}
