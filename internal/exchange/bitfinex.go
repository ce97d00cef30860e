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

// Bitfinex (v2) probe: POST /v2/auth/r/permissions, which answers one row
// [scope, read, write] per API scope (account, history, orders, positions,
// funding, settings, wallets, withdraw, ui_withdraw, bfxpay, and newer ones
// such as eaas_*).
//
// Native names are "<scope>:read" and "<scope>:write" for every flag that is
// set, so that status shows exactly what Bitfinex granted.
//
// Native -> canonical mapping:
//
//	any scope with read=1                      -> read
//	orders write                               -> trade
//	withdraw write, ui_withdraw write,
//	any other "*_withdraw" write               -> withdraw
//	wallets write (transfers between wallets)  -> transfer
//	positions write (claim/increase positions) -> margin
//	funding write (funding offers, lending)    -> earn
//	account, settings, history, bfxpay writes  -> none (kept in Native)
//
// Bitfinex has no futures/options scope (derivatives are traded through
// orders), so those canonical permissions are never reported. The endpoint
// does not report the key's IP allowlist, so IPRestricted is always false.
//
// Errors come as HTTP 500 with ["error", code, "message"]:
//
//	10100 "apikey: digest invalid"     -> InvalidSignature
//	10100 "apikey: invalid"            -> InvalidKey
//	10100 "... ip ..."                 -> IPNotAllowed (unverified shape; the
//	                                      simulator says "apikey: ip not allowed")
//	10100 "... inactive|disabled|expired ..." -> Inactive (unverified shape; the
//	                                      simulator says "apikey: inactive")
//	10114 "nonce: small"               -> ClockSkew (a nonce, not a timestamp:
//	                                      usually another client used the key
//	                                      with a larger nonce; no time resync)
//	11010 "ratelimit: error", HTTP 429 -> RateLimited (per IP: pauses the base)
//	20060 maintenance                  -> Unavailable
//	any other code with HTTP 5xx       -> Unavailable
//	{"error":"ERR_RATE_LIMIT"} (v1 style, returned by the per-IP DDoS guard)
//	                                   -> RateLimited
type bitfinexDriver struct{}

const (
	bitfinexPermissionsPath = "/v2/auth/r/permissions"
	// Bitfinex blocks an IP for 60 seconds once it exceeds an endpoint's limit.
	bitfinexRateLimitWait = time.Minute
)

func init() { register(Bitfinex, bitfinexDriver{}) }

func (bitfinexDriver) defaultBase() string { return "https://api.bitfinex.com" }

// bitfinexSign computes bfx-signature: hex HMAC-SHA384(secret,
// "/api" + path + nonce + body), path being "/v2/...".
func bitfinexSign(secret, path, nonce, body string) string {
	mac := hmac.New(sha512.New384, []byte(secret))
	mac.Write([]byte("/api" + path + nonce + body))
	return hex.EncodeToString(mac.Sum(nil))
}

func (bitfinexDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	const body = "{}"
	nonce := strconv.FormatUint(c.Nonce(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("bfx-apikey", c.creds.APIKey)
	h.Set("bfx-nonce", nonce)
	h.Set("bfx-signature", bitfinexSign(c.creds.APISecret, bitfinexPermissionsPath, nonce, body))
	resp, err := c.do(ctx, http.MethodPost, bitfinexPermissionsPath, "", []byte(body), h)
	if err != nil {
		return nil, err
	}
	perms, err := parseBitfinexPermissions(resp.Status, resp.Body)
	if e, ok := AsError(err); ok && e.Kind == RateLimited {
		// Bitfinex limits per IP: every key behind this egress must wait.
		return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, e.RetryAfter)
	}
	return perms, err
}

// parseBitfinexPermissions maps an auth/r/permissions answer. It is pure so
// that it can be fuzzed.
func parseBitfinexPermissions(status int, body []byte) (*Permissions, error) {
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
		if json.Unmarshal(rows[0], &tag) == nil {
			if tag != "error" {
				return nil, fallback(Bitfinex, status, "array starts with an unexpected string", body)
			}
			return nil, bitfinexError(status, rows, body)
		}
	}
	if status < 200 || status > 299 {
		return nil, fallback(Bitfinex, status, fmt.Sprintf("HTTP %d without a Bitfinex error", status), body)
	}
	set := map[string]bool{}
	native := []string{}
	seen := map[string]bool{}
	for _, raw := range rows {
		scope, read, write, ok := bitfinexRow(raw)
		if !ok {
			return nil, unexpected(Bitfinex, status, "permission row is not [scope, read, write]", body)
		}
		if read && !seen[scope+":read"] {
			seen[scope+":read"] = true
			native = append(native, scope+":read")
			set[PermRead] = true
		}
		if write && !seen[scope+":write"] {
			seen[scope+":write"] = true
			native = append(native, scope+":write")
			if c := bitfinexWriteCanonical(scope); c != "" {
				set[c] = true
			}
		}
	}
	return &Permissions{Canonical: canonicalSet(set), Native: sortedCopy(native)}, nil
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

func bitfinexWriteCanonical(scope string) string {
	switch {
	case scope == "orders":
		return PermTrade
	// Any withdrawal scope that can write moves funds out; missing one is
	// worse than over-reporting, so newer "*_withdraw" scopes count too.
	case scope == "withdraw", strings.HasSuffix(scope, "_withdraw"):
		return PermWithdraw
	case scope == "wallets":
		return PermTransfer
	case scope == "positions":
		return PermMargin
	case scope == "funding":
		return PermEarn
	}
	return ""
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
		kind = ClockSkew
		if msg == "" {
			msg = "nonce rejected"
		}
		msg += " (another client may be using this key with larger nonces)"
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
