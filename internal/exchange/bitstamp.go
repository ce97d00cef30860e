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
	"time"

	"github.com/google/uuid"
)

// Bitstamp has no endpoint that reports a key's permissions. The probe is
// POST /api/v2/account_balances/, which needs the "Account balance" right:
// success proves read, API0003 proves its absence, and every other canonical
// permission is reported as unchecked rather than guessed.
//
// Bitstamp publishes no server-time endpoint either. For the clock-skew
// resync the client reads the Date header of a public GET (the BTC/USD
// ticker): one-second resolution is ample for a 150-second window.

const (
	bitstampBalancesPath = "/api/v2/account_balances/"
	bitstampTimePath     = "/api/v2/ticker/btcusd/"
	bitstampAuthPrefix   = "BITSTAMP "
	bitstampAuthVersion  = "v2"
)

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
	// resync included) needs a fresh one; uuid.NewString is lowercase v4.
	nonce := uuid.NewString()
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
		// 400.002 arrives as a 400, not a 429: pause the base URL the same
		// way the transport does for 429.
		return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, retryAfter(resp.Header, c.p.opts.Now()))
	}
	return p, err
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
		return &Permissions{
			Canonical: []string{PermRead},
			Native:    []string{},
			Unchecked: append([]string{}, bitstampUnchecked...),
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
	kind := UnexpectedResponse
	switch code {
	case "API0001", "API0011":
		// Key not found; wrong key format.
		kind = InvalidKey
	case "API0002":
		kind = IPNotAllowed
	case "API0003":
		// No permission found: the key lacks "Account balance", i.e. read.
		kind = PermissionDenied
	case "API0004", "API0017", "API0018":
		// Invalid nonce; X-Auth-Timestamp out of bounds or invalid. Our
		// nonces are fresh random UUIDs, so a nonce complaint is treated as
		// a timing problem too: resync and retry once with a new nonce.
		kind = ClockSkew
	case "API0005":
		kind = InvalidSignature
	case "API0008":
		// "Authentication failed" is Bitstamp's catch-all once the key is
		// known; unverified, we read it as the proof (signature) failing.
		kind = InvalidSignature
	case "API0006":
		// Account frozen. Also the simulator's answer for a key not yet
		// activated through the e-mail link, whose real error is unverified.
		kind = Inactive
	case "400.002":
		kind = RateLimited
	default:
		if status >= 500 {
			kind = Unavailable
		}
	}
	return newError(Bitstamp, kind, status, code, msg)
}
