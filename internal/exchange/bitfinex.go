package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bitfinex (v2) probe: POST /v2/auth/r/permissions ("Retrieve current api
// key/token permissions", docs.bitfinex.com/reference/key-permissions),
// which answers one row [scope, read, write] per API scope (account,
// history, orders, positions, funding, settings, wallets, withdraw,
// ui_withdraw, bfxpay, and newer ones such as eaas_*).
//
// Native names are "<scope>:read" and "<scope>:write" for every flag that is
// set, so that status shows exactly what Bitfinex granted; bitfinexPermissions
// says what each implies.
//
// Least-privilege key for a trading bot (docs.bitfinex.com/docs/api-access:
// Account Info, Account History, Orders, Margin Trading, Margin Funding,
// Wallets, Withdraw, each read and/or write): read on account, history,
// orders and wallets, write on orders only. Orders write also places margin
// and derivative orders (there is no spot-only order permission), so a
// policy that forbids margin or futures refuses any key that can trade.
//
// What the operator sees: every scope flag. What it cannot see: the key's
// IP allowlist (Bitfinex keys can be restricted to IPs, but the answer has
// no such field), so IPRestriction is Unknown, never False; nor creation or
// expiry.
//
// Nonces: bfx-nonce must grow per key and stay at or under 2^53-1
// (docs.bitfinex.com/docs/rest-auth). The probe sends nonces in the
// declared unit (spec.validation.nonceUnit; milliseconds by default, as ccxt
// does; Microseconds for bots on Bitfinex's own SDKs), never above that
// unit's clock, and never switches unit by itself (nonce.go).
//
// Errors come as HTTP 500 with ["error", code, "message"] (ccxt's bitfinex.js
// exceptions table maps the same codes):
//
//	10100 "apikey: digest invalid"     -> InvalidSignature
//	10100 "apikey: invalid"            -> InvalidKey
//	10100 "... ip ..."                 -> IPNotAllowed (unverified shape; the
//	                                      simulator says "apikey: ip not allowed")
//	10100 "... inactive|disabled|expired ..." -> Inactive (unverified shape; the
//	                                      simulator says "apikey: inactive")
//	10114 "nonce: small"               -> NonceConflict (another client of the key
//	                                      used a larger nonce; bounded retry,
//	                                      see nonce.go)
//	10001 "... permission ..."         -> PermissionDenied (ccxt: "api_key:
//	                                      permission invalid (#10001)")
//	11010 "ratelimit: error", HTTP 429 -> RateLimited, whole base URL, 60 s
//	                                      (limits are per IP, "Ratelimit: 90
//	                                      req/min" for this endpoint; an IP over
//	                                      it "will be blocked for 10-60 seconds",
//	                                      docs.bitfinex.com/v1 introduction)
//	20060 maintenance                  -> Unavailable
//	any other code with HTTP 5xx       -> Unavailable
//	{"error":"ERR_RATE_LIMIT"} (v1 style, returned by the per-IP DDoS guard)
//	                                   -> RateLimited, whole base URL
type bitfinexDriver struct{}

const (
	bitfinexPermissionsPath = "/v2/auth/r/permissions"
	// An IP over an endpoint's per-minute limit "will be blocked for 10-60
	// seconds on that endpoint" (docs.bitfinex.com/v1, introduction): wait
	// the longest.
	bitfinexRateLimitWait = time.Minute
)

func init() { register(Bitfinex, bitfinexDriver{}) }

// bitfinexKeys is Bitfinex's page that names the permission groups a key is
// created with; the scopes are r/permissions' names for them.
const bitfinexKeys = "docs.bitfinex.com/docs/api-access"

// bitfinexPermissions maps r/permissions' flags. Every scope read is a read
// (bitfinexTable adds unlisted ones); writes not listed grant nothing and
// stay visible in Native.
var bitfinexPermissions = permissionTable{
	{"account:read", []string{PermRead}, bitfinexKeys + ": Account Info, read"},
	{"history:read", []string{PermRead}, bitfinexKeys + ": Account History, read"},
	{"orders:read", []string{PermRead}, bitfinexKeys + ": Orders, read"},
	{"positions:read", []string{PermRead}, bitfinexKeys + ": Margin Trading, read"},
	{"funding:read", []string{PermRead}, bitfinexKeys + ": Margin Funding, read"},
	{"settings:read", []string{PermRead}, "docs.bitfinex.com/reference/key-permissions: settings scope, read"},
	{"wallets:read", []string{PermRead}, bitfinexKeys + ": Wallets, read"},
	{"withdraw:read", []string{PermRead}, bitfinexKeys + ": Withdraw, read"},
	// One endpoint places exchange (spot), margin and derivative orders:
	// "can be used to create margin, exchange, and derivative orders"
	// (docs.bitfinex.com/reference/ws-auth-input-order-new); types LIMIT,
	// MARKET, ... are margin orders and EXCHANGE LIMIT, EXCHANGE MARKET, ...
	// spot ones (reference/rest-auth-submit-order). Derivatives are
	// perpetual contracts (tBTCF0:USTF0), which this operator counts as
	// futures.
	{"orders:write", []string{PermTrade, PermMargin, PermFutures}, "docs.bitfinex.com/reference/ws-auth-input-order-new: new orders can be margin, exchange and derivative orders"},
	{"positions:write", []string{PermMargin}, bitfinexKeys + ": Margin Trading, write (claim, increase, close positions)"},
	// Margin Funding write submits and cancels funding offers: lending.
	{"funding:write", []string{PermEarn}, bitfinexKeys + ": Margin Funding, write (funding offers)"},
	{"wallets:write", []string{PermTransfer}, bitfinexKeys + ": Wallets, write (transfers between wallets, deposit addresses)"},
	{"withdraw:write", []string{PermWithdraw}, bitfinexKeys + ": Withdraw, write"},
	{"ui_withdraw:write", []string{PermWithdraw}, "docs.bitfinex.com/reference/key-permissions: ui_withdraw scope, write"},
	{"account:write", nil, bitfinexKeys + ": Account Info, write (account settings, no funds)"},
	{"history:write", nil, bitfinexKeys + ": Account History (read-only data)"},
	{"settings:write", nil, "docs.bitfinex.com/reference/key-permissions: settings scope, write (user settings)"},
	{"bfxpay:write", nil, "docs.bitfinex.com/reference/key-permissions: bfxpay scope (merchant invoices)"},
}

// bitfinexTable is bitfinexPermissions plus rows for scopes it does not list
// yet: any read is a read, and any "*_withdraw" write withdraws (missing a
// withdrawal scope is worse than over-reporting one).
func bitfinexTable(natives []string) permissionTable {
	t := bitfinexPermissions
	for _, n := range natives {
		if _, known := t.lookup(n); known {
			continue
		}
		scope, flag, _ := strings.Cut(n, ":")
		switch {
		case flag == "read":
			t = append(t[:len(t):len(t)], permissionRow{n, []string{PermRead}, "every scope read is a read"})
		case flag == "write" && strings.HasSuffix(scope, "_withdraw"):
			t = append(t[:len(t):len(t)], permissionRow{n, []string{PermWithdraw}, "newer withdrawal scopes (eaas_withdraw) move funds out"})
		}
	}
	return t
}

func (bitfinexDriver) defaultBase() string { return "https://api.bitfinex.com" }

// bitfinexSign computes bfx-signature: hex HMAC-SHA384(secret,
// "/api" + path + nonce + body), path being "/v2/...".
func bitfinexSign(secret, path, nonce, body string) string {
	mac := hmac.New(sha512.New384, []byte(secret))
	mac.Write([]byte("/api" + path + nonce + body))
	return hex.EncodeToString(mac.Sum(nil))
}

// bitfinexAuthHeaders takes the key's next nonce and signs a v2
// authenticated POST of body to path: the headers every such request
// carries (docs.bitfinex.com/docs/rest-auth).
func bitfinexAuthHeaders(ctx context.Context, c *call, path string, body []byte) (http.Header, error) {
	n, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	nonce := strconv.FormatUint(n, 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("bfx-apikey", c.creds.APIKey)
	h.Set("bfx-nonce", nonce)
	h.Set("bfx-signature", bitfinexSign(c.creds.APISecret, path, nonce, string(body)))
	return h, nil
}

func (bitfinexDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	body := []byte("{}")
	h, err := bitfinexAuthHeaders(ctx, c, bitfinexPermissionsPath, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, bitfinexPermissionsPath, "", body, h)
	if err != nil {
		return nil, err
	}
	// Bitfinex limits per IP: a RateLimited answer keeps ScopeEndpoint, so
	// the prober holds every key behind this egress back.
	return parseBitfinexPermissions(resp.Status, resp.Body)
}

// parseBitfinexPermissions maps an auth/r/permissions answer. It is pure so
// that it can be fuzzed.
func parseBitfinexPermissions(status int, body []byte) (*Permissions, error) {
	rows, err := bitfinexAnswer(status, body)
	if err != nil {
		return nil, err
	}
	if len(rows) > 0 {
		var tag string
		if json.Unmarshal(rows[0], &tag) == nil {
			return nil, fallback(Bitfinex, status, "array starts with an unexpected string", body)
		}
	}
	native := []string{}
	seen := map[string]bool{}
	for _, raw := range rows {
		scope, read, write, ok := bitfinexRow(raw)
		if !ok {
			return nil, unexpected(Bitfinex, status, "permission row is not [scope, read, write]", body)
		}
		for flag, set := range map[string]bool{"read": read, "write": write} {
			if n := scope + ":" + flag; set && !seen[n] {
				seen[n] = true
				native = append(native, n)
			}
		}
	}
	native = sortedCopy(native)
	canonical, grants := bitfinexTable(native).grant(native)
	// Bitfinex keys can be bound to IPs, but this answer does not say.
	return &Permissions{Canonical: canonical, Native: native, Grants: grants, IPRestriction: IPUnknown}, nil
}

// bitfinexAnswer is the top-level array of a successful Bitfinex v2 answer,
// or the error the answer says: ["error", code, "message"], the v1-style
// {"error":"ERR_RATE_LIMIT"} of the per-IP guard, or a body that is not a
// 2xx JSON array. Only error answers are quoted: a successful one may carry
// a token.
func bitfinexAnswer(status int, body []byte) ([]json.RawMessage, error) {
	var top json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fallback(Bitfinex, status, "response is not JSON", body)
	}
	var obj struct {
		Error   *string `json:"error"`
		Message string  `json:"message"`
	}
	if json.Unmarshal(top, &obj) == nil && obj.Error != nil {
		if strings.EqualFold(*obj.Error, "ERR_RATE_LIMIT") {
			e := newError(Bitfinex, RateLimited, status, *obj.Error, "rate limited by the exchange")
			e.RetryAfter = bitfinexRateLimitWait
			return nil, e
		}
		return nil, fallback(Bitfinex, status, "unknown Bitfinex error "+sanitize(*obj.Error, 80), body)
	}
	var rows []json.RawMessage
	// null decodes into a nil slice without error; only a real array counts.
	if err := json.Unmarshal(top, &rows); err != nil || rows == nil {
		return nil, fallback(Bitfinex, status, "response is not a JSON array", body)
	}
	if len(rows) > 0 {
		var tag string
		if json.Unmarshal(rows[0], &tag) == nil && tag == "error" {
			return nil, bitfinexError(status, rows, body)
		}
	}
	if status < 200 || status > 299 {
		return nil, fallback(Bitfinex, status, fmt.Sprintf("HTTP %d without a Bitfinex error", status), body)
	}
	return rows, nil
}

// bitfinexRow decodes [scope, read, write, ...]; flags are 0/1 numbers as
// documented, booleans are accepted too.
func bitfinexRow(raw json.RawMessage) (scope string, read, write, ok bool) {
	var cells []json.RawMessage
	if json.Unmarshal(raw, &cells) != nil || len(cells) < 3 {
		return "", false, false, false
	}
	if json.Unmarshal(cells[0], &scope) != nil || scope == "" {
		return "", false, false, false
	}
	var okR, okW bool
	read, okR = bitfinexFlag(cells[1])
	write, okW = bitfinexFlag(cells[2])
	return scope, read, write, okR && okW
}

func bitfinexFlag(raw json.RawMessage) (bool, bool) {
	var n float64
	if json.Unmarshal(raw, &n) == nil {
		switch n {
		case 0:
			return false, true
		case 1:
			return true, true
		}
		return false, false
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	return false, false
}

var bitfinexIPWord = regexp.MustCompile(`(?i)\bip\b`)

// bitfinexError maps ["error", code, "message"].
func bitfinexError(status int, rows []json.RawMessage, body []byte) *Error {
	var code float64
	var msg string
	if len(rows) < 2 || json.Unmarshal(rows[1], &code) != nil {
		return fallback(Bitfinex, status, "error array without a numeric code", body)
	}
	if len(rows) > 2 {
		_ = json.Unmarshal(rows[2], &msg)
	}
	codeStr := strconv.FormatFloat(code, 'f', -1, 64)
	lower := strings.ToLower(msg)
	var kind Kind
	var wait time.Duration
	switch codeStr {
	case "10100":
		switch {
		case strings.Contains(lower, "digest"):
			kind = InvalidSignature
		case bitfinexIPWord.MatchString(lower):
			kind = IPNotAllowed
		case strings.Contains(lower, "inactive"), strings.Contains(lower, "disabled"), strings.Contains(lower, "expired"), strings.Contains(lower, "not active"):
			kind = Inactive
		default:
			kind = InvalidKey
		}
	case "10114":
		kind = NonceConflict
		if msg == "" {
			msg = "nonce rejected"
		}
		msg += " (another client of this key may have sent a larger nonce)"
	case "10001":
		if !strings.Contains(lower, "permission") {
			return fallback(Bitfinex, status, "Bitfinex error 10001: "+sanitize(msg, 80), body)
		}
		kind = PermissionDenied
	case "11010":
		kind, wait = RateLimited, bitfinexRateLimitWait
	case "20060":
		kind = Unavailable
	default:
		return fallback(Bitfinex, status, "unknown Bitfinex error "+codeStr+": "+sanitize(msg, 80), body)
	}
	e := newError(Bitfinex, kind, status, codeStr, msg)
	e.RetryAfter = wait
	return e
}
