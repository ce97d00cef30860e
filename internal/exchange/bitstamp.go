package exchange

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bitstamp has no endpoint that reports a key's permissions. The probe is
// POST /api/v2/account_balances/, which needs the "Account balance" right:
// success proves read, API0003 proves its absence, and every other canonical
// permission is reported as unchecked rather than guessed.
//
// Least-privilege key for a bot: under Security > API access, tick only the
// rights the bot uses (for a reader, "Account balance"), leave every
// withdrawal right off, set the key's IP allowlist, and activate the key
// through the e-mail link. What the probe cannot see: the other rights, the
// allowlist (Bitstamp answers API0002 to a caller outside it, but reports it
// nowhere, so IPRestriction is Unknown) and whether the key expires.
//
// Bitstamp publishes no server-time endpoint either. For the clock-skew
// resync the client reads the Date header of a public GET (the BTC/USD
// ticker): one-second resolution is ample for a 150-second window.
//
// Error codes are from Bitstamp's API documentation, "Possible
// authentication errors" and "Response codes" (www.bitstamp.net/api/, the
// bitstamp.json OpenAPI spec).

const (
	bitstampBalancesPath = "/api/v2/account_balances/"
	bitstampTimePath     = "/api/v2/ticker/btcusd/"
	bitstampAuthPrefix   = "BITSTAMP "
	bitstampAuthVersion  = "v2"
	// bitstampRateLimitWait applies when a rate-limit answer names no wait.
	bitstampRateLimitWait = time.Minute
)

// bitstampBalanceRight is the key right the probe proves. Bitstamp never
// names it in an answer; a successful balance call is the proof.
const bitstampBalanceRight = "Account balance"

// bitstampPermissions is the one thing a balance call can establish.
var bitstampPermissions = permissionTable{
	{Native: bitstampBalanceRight, Grants: []string{PermRead},
		Source: "www.bitstamp.net/api/ POST /api/v2/account_balances/ needs the key's balance right; API0003 \"No permission found\" otherwise"},
}

type bitstampDriver struct{}

func init() { register(Bitstamp, bitstampDriver{}) }

func (bitstampDriver) defaultBase() string { return "https://www.bitstamp.net" }

// bitstampMessage is the v2 string to sign. contentType is empty when the
// request has no body: Bitstamp rejects a Content-Type without a body
// (API0020), and then it is not part of the message either.
func bitstampMessage(apiKey, method, host, path, query, contentType, nonce, timestamp, body string) string {
	return bitstampAuthPrefix + apiKey + method + host + path + query + contentType + nonce + timestamp + bitstampAuthVersion + body
}

// bitstampSign is the lowercase hex HMAC-SHA256 of message keyed with the secret.
func bitstampSign(secret, message string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(message))
	return hex.EncodeToString(m.Sum(nil))
}

func (bitstampDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	// UUID nonces are single use, so every attempt (the retry after a
	// resync included) needs a fresh one.
	nonce, err := bitstampNonce(c)
	if err != nil {
		return nil, newError(Bitstamp, UnexpectedResponse, 0, "", "cannot read randomness for the nonce")
	}
	ts := strconv.FormatInt(c.Now().UnixMilli(), 10)
	msg := bitstampMessage(c.creds.APIKey, http.MethodPost, c.Host(), bitstampBalancesPath, "", "", nonce, ts, "")
	h := http.Header{}
	h.Set("X-Auth", bitstampAuthPrefix+c.creds.APIKey)
	h.Set("X-Auth-Signature", bitstampSign(c.creds.APISecret, msg))
	h.Set("X-Auth-Nonce", nonce)
	h.Set("X-Auth-Timestamp", ts)
	h.Set("X-Auth-Version", bitstampAuthVersion)
	resp, err := c.do(ctx, http.MethodPost, bitstampBalancesPath, "", nil, h)
	if err != nil {
		return nil, err
	}
	p, err := parseBitstampBalances(resp.Status, resp.Body)
	if e, ok := AsError(err); ok && e.Kind == RateLimited {
		// 400.002 and 400.067 arrive as a 400, not a 429; the prober
		// pauses what the Scope says for RetryAfter.
		e.RetryAfter = retryAfter(resp.Header, c.p.opts.Now())
		if e.RetryAfter <= 0 {
			e.RetryAfter = bitstampRateLimitWait
		}
	}
	return p, err
}

// bitstampNonce is the documented X-Auth-Nonce, a UUID v4 (the docs' own
// examples use uuid.uuid4() and UUID.randomUUID()), lowercase as
// RFC 9562 prints it, from the prober's source of randomness.
func bitstampNonce(c *call) (string, error) {
	var b [16]byte
	if err := c.random(b[:]); err != nil {
		return "", err
	}
	return bitstampUUIDv4(b), nil
}

// bitstampUUIDv4 sets the version (4) and variant (10) bits of 16 random
// bytes and formats them 8-4-4-4-12 in lowercase hex.
func bitstampUUIDv4(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (bitstampDriver) serverTime(ctx context.Context, c *call) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, bitstampTimePath, "", nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return parseBitstampDate(resp.Status, resp.Header.Get("Date"))
}

// parseBitstampDate reads the server's clock from a response's Date header.
// Any answer the exchange itself produced carries it; a 5xx may come from a
// proxy with its own clock, so those are refused.
func parseBitstampDate(status int, date string) (time.Time, error) {
	if status >= 500 {
		return time.Time{}, &Error{Kind: Unavailable, Exchange: Bitstamp, HTTPStatus: status, Message: "server time: server error"}
	}
	t, err := http.ParseTime(date)
	if err != nil || t.Year() < 2000 {
		return time.Time{}, &Error{Kind: UnexpectedResponse, Exchange: Bitstamp, HTTPStatus: status, Message: "server time: no usable Date header", Excerpt: sanitize(date, 60)}
	}
	return t.UTC(), nil
}

// bitstampUnchecked: a balance call says nothing about these permissions.
var bitstampUnchecked = []string{PermTrade, PermWithdraw, PermTransfer, PermMargin, PermFutures, PermOptions, PermEarn}

// parseBitstampBalances maps POST /api/v2/account_balances/, whose success
// is a JSON array of {"currency", "total", "available", "reserved"}.
func parseBitstampBalances(status int, body []byte) (*Permissions, error) {
	trimmed := bytes.TrimSpace(body)
	if status == http.StatusOK && len(trimmed) > 0 && trimmed[0] == '[' {
		var rows []struct {
			Currency *string `json:"currency"`
		}
		if err := json.Unmarshal(trimmed, &rows); err != nil {
			return nil, unexpected(Bitstamp, status, "account_balances: want an array of balances", body)
		}
		for _, r := range rows {
			if r.Currency == nil {
				return nil, unexpected(Bitstamp, status, "account_balances: balance without a currency", body)
			}
		}
		canonical, grants := bitstampPermissions.grant([]string{bitstampBalanceRight})
		return &Permissions{
			Canonical: canonical,
			// Bitstamp reports no permission names; the grant says which
			// right the successful call proved.
			Native:        []string{},
			Grants:        grants,
			Unchecked:     append([]string{}, bitstampUnchecked...),
			IPRestriction: IPUnknown,
		}, nil
	}
	return nil, bitstampError(status, body)
}

// bitstampError maps {"status": "error", "reason": ..., "code": "API00xx"}
// and the newer {"response_code": "400.002", ...} shape. reason is a string
// for authentication errors but an object of field errors elsewhere.
func bitstampError(status int, body []byte) *Error {
	var e struct {
		Status              string          `json:"status"`
		Reason              json.RawMessage `json:"reason"`
		Code                string          `json:"code"`
		ResponseCode        string          `json:"response_code"`
		ResponseExplanation string          `json:"response_explanation"`
	}
	if err := json.Unmarshal(body, &e); err != nil || (e.Code == "" && e.ResponseCode == "") {
		if status >= 500 {
			return fallback(Bitstamp, status, "server error", body)
		}
		return unexpected(Bitstamp, status, "not a Bitstamp balance list or error object", body)
	}
	code := e.Code
	if code == "" {
		code = e.ResponseCode
	}
	msg := e.ResponseExplanation
	var reason string
	if json.Unmarshal(e.Reason, &reason) == nil && reason != "" {
		msg = reason
	} else if msg == "" && len(e.Reason) > 0 {
		msg = string(e.Reason)
	}
	kind, scope := UnexpectedResponse, ScopeEndpoint
	switch code {
	case "API0001", "API0008", "API0011":
		// "API key not found"; "Authentication failed: Can't find customer
		// with selected API key"; "Wrong API key format".
		kind = InvalidKey
	case "API0002":
		// "IP address not allowed: This IP address has no permission to
		// use this API key."
		kind = IPNotAllowed
	case "API0003":
		// "No permission found": the key lacks "Account balance", i.e. read.
		kind = PermissionDenied
	case "API0004", "API0017":
		// "Invalid nonce" (a nonce reused within 300 seconds, or the
		// older docs' 150); "X-Auth-Timestamp header is out of
		// boundaries" (150 seconds). Our nonces are fresh random UUIDs, so
		// a nonce complaint is treated as a timing problem too: resync and
		// retry once with a new nonce.
		kind = ClockSkew
	case "API0005":
		// "Invalid signature: Posted signature doesn't match with ours."
		kind = InvalidSignature
	case "API0006":
		// "Your account is frozen". Also the simulator's answer for a key
		// not yet activated through the e-mail link, whose real error is
		// unverified.
		kind = Inactive
	case "API0009":
		// "Please update your profile with your FATCA information, before
		// using API": the key is right, the account is blocked until its
		// owner acts.
		kind = Inactive
	case "400.002":
		// "Request rejected due to exceeded rate limit."
		kind = RateLimited
	case "400.067":
		// "Request rejected due to exceeded client rate limit": this
		// customer's requests only, other keys on our IP may go on.
		kind, scope = RateLimited, ScopeKey
	default:
		// API0010, API0012-API0016, API0018-API0021 are malformed
		// requests (a bug here, not a property of the key); 500.xxx are
		// Bitstamp's own failures.
		if status >= 500 || strings.HasPrefix(code, "500.") {
			kind = Unavailable
		}
	}
	err := newError(Bitstamp, kind, status, code, msg)
	err.Scope = scope
	return err
}
