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

// Bybit v5. The probe is GET /v5/user/query-api, which any key may call
// whatever its permissions, and which reports the key's scopes, IP binding
// and expiry in one answer.
const (
	bybitKeyInfoPath = "/v5/user/query-api"
	bybitTimePath    = "/v5/market/time"
	// bybitRecvWindow is Bybit's default; the simulator and the exchange
	// accept a request while serverTime-recvWindow <= timestamp < serverTime+1s.
	bybitRecvWindow = "5000"
	// bybitIPBanWait: Bybit answers HTTP 403 once the egress IP broke the
	// 600-requests-per-5-seconds limit, and asks clients to stop for at
	// least ten minutes (older docs say "usually 30 minutes").
	bybitIPBanWait = 10 * time.Minute
	// bybitUIDLimitWait is the default pause after retCode 10006, whose
	// per-UID window is one second; the reset header refines it.
	bybitUIDLimitWait = 5 * time.Second
)

type bybitDriver struct{}

func init() { register(Bybit, bybitDriver{}) }

func (bybitDriver) defaultBase() string { return "https://api.bybit.com" }

// bybitSign is the v5 HMAC scheme for a GET: hex HMAC-SHA256 over
// timestamp + apiKey + recvWindow + queryString.
func bybitSign(secret, timestamp, apiKey, recvWindow, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + apiKey + recvWindow + payload))
	return hex.EncodeToString(m.Sum(nil))
}

func (bybitDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	ts := strconv.FormatInt(c.Now().UnixMilli(), 10)
	h := http.Header{}
	h.Set("X-BAPI-API-KEY", c.creds.APIKey)
	h.Set("X-BAPI-TIMESTAMP", ts)
	h.Set("X-BAPI-RECV-WINDOW", bybitRecvWindow)
	h.Set("X-BAPI-SIGN", bybitSign(c.creds.APISecret, ts, c.creds.APIKey, bybitRecvWindow, ""))
	resp, err := c.do(ctx, http.MethodGet, bybitKeyInfoPath, "", nil, h)
	if err != nil {
		return nil, err
	}
	perms, perr := parseBybitKeyInfo(resp.Status, resp.Body)
	if perr != nil {
		if e, ok := perr.(*Error); ok && e.Kind == RateLimited {
			// Pause every key behind this egress IP, not just this probe.
			wait := e.RetryAfter
			if e.HTTPStatus != http.StatusForbidden {
				if d := bybitLimitReset(resp.Header, c.Now()); d > 0 {
					wait = d
				}
			}
			return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, wait)
		}
		return nil, perr
	}
	return perms, nil
}

// bybitLimitReset reads X-Bapi-Limit-Reset-Timestamp (ms), which Bybit sets
// to the end of the exceeded per-UID window.
func bybitLimitReset(h http.Header, now time.Time) time.Duration {
	ms, err := strconv.ParseInt(h.Get("X-Bapi-Limit-Reset-Timestamp"), 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	d := time.UnixMilli(ms).Sub(now)
	if d <= 0 || d > bybitIPBanWait {
		return 0
	}
	return d
}

func (bybitDriver) serverTime(ctx context.Context, c *call) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, bybitTimePath, "", nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return parseBybitServerTime(resp.Status, resp.Body)
}

// bybitEnvelope is the shape of every v5 answer, success or failure.
type bybitEnvelope struct {
	RetCode *int64          `json:"retCode"`
	RetMsg  string          `json:"retMsg"`
	Result  json.RawMessage `json:"result"`
}

type bybitKeyInfo struct {
	APIKey string `json:"apiKey"`
	// ReadOnly is documented as 0|1 here; the sub-key listing uses a
	// boolean for the same field, so both are accepted.
	ReadOnly    json.RawMessage     `json:"readOnly"`
	Permissions map[string][]string `json:"permissions"`
	IPs         []string            `json:"ips"`
	ExpiredAt   string              `json:"expiredAt"`
	CreatedAt   string              `json:"createdAt"`
}

// bybitErrorKinds maps v5 retCodes (https://bybit-exchange.github.io/docs/v5/error).
var bybitErrorKinds = map[int64]Kind{
	10000: Unavailable,      // server timeout
	10002: ClockSkew,        // timestamp outside recv_window
	10003: InvalidKey,       // unknown key, or a key of another environment
	10004: InvalidSignature, // "Error sign"
	10005: PermissionDenied, // the key lacks the permission
	10006: RateLimited,      // per-UID limit ("Too many visits")
	10007: Inactive,         // "User authentication failed": key known, user cannot log in (unverified)
	10008: Inactive,         // "Common banned" (unverified)
	10009: RateLimited,      // "IP has been banned"
	10010: IPNotAllowed,     // "Unmatched IP"
	10016: Unavailable,      // server error / restarting
	10018: RateLimited,      // per-IP limit
	33004: Inactive,         // "(Derivatives) Your api key has expired"
	-2015: Inactive,         // "(Spot) Your api key has expired"
	// 10001 (parameter error) and 10017 (route not found) mean our request
	// is wrong: left unmapped, they surface as UnexpectedResponse.
}

// parseBybitKeyInfo maps the answer to GET /v5/user/query-api.
func parseBybitKeyInfo(status int, body []byte) (*Permissions, error) {
	if status >= 500 {
		return nil, fallback(Bybit, status, "server error", body)
	}
	if status == http.StatusForbidden {
		// Bybit's IP rate ban (also what a US or mainland-China egress IP
		// gets; the excerpt lets an operator tell them apart).
		e := newError(Bybit, RateLimited, status, "", "HTTP 403: egress IP banned or blocked by Bybit")
		e.RetryAfter = bybitIPBanWait
		e.Excerpt = sanitize(string(body), 120)
		return nil, e
	}
	var env bybitEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.RetCode == nil {
		if status == http.StatusUnauthorized {
			// Bybit documents a bare 401 as "use the correct key": the key
			// is unknown on this host (mainnet, testnet and demo differ).
			return nil, newError(Bybit, InvalidKey, status, "", "HTTP 401: the key is not valid on this host")
		}
		return nil, unexpected(Bybit, status, "not a Bybit v5 answer", body)
	}
	if code := *env.RetCode; code != 0 {
		return nil, bybitError(status, code, env.RetMsg, body)
	}
	if status != http.StatusOK {
		return nil, unexpected(Bybit, status, "retCode 0 with a non-200 status", body)
	}
	var info bybitKeyInfo
	if len(bytes.TrimSpace(env.Result)) == 0 || json.Unmarshal(env.Result, &info) != nil || info.Permissions == nil {
		return nil, unexpected(Bybit, status, "result without a permissions object", body)
	}
	readOnly, ok := bybitFlag(info.ReadOnly)
	if !ok {
		return nil, unexpected(Bybit, status, "readOnly is neither 0/1 nor a boolean", body)
	}
	return bybitPermissions(info, readOnly), nil
}

func bybitError(status int, code int64, msg string, body []byte) *Error {
	c := strconv.FormatInt(code, 10)
	kind, ok := bybitErrorKinds[code]
	if !ok {
		e := unexpected(Bybit, status, "Bybit error "+c+": "+sanitize(msg, 160), body)
		e.Code = c
		return e
	}
	e := newError(Bybit, kind, status, c, msg)
	if kind == RateLimited {
		e.RetryAfter = bybitUIDLimitWait
		if code == 10009 {
			e.RetryAfter = bybitIPBanWait
		}
	}
	return e
}

// bybitFlag reads readOnly as 0/1 or a boolean; absent means read-write,
// the documented default of a key's creation form.
func bybitFlag(raw json.RawMessage) (bool, bool) {
	s := string(bytes.TrimSpace(raw))
	switch s {
	case "", "null", "0", "false":
		return false, true
	case "1", "true":
		return true, true
	}
	return false, false
}

// bybitScopes maps "Category:Value" to a canonical permission when the key
// is read-write; "Category:*" covers every value of that category.
//
//   - Spot:SpotTrade -> trade. Exchange (convert, "ExchangeHistory") also
//     swaps one asset for another, so it counts as trade. BlockTrade -> trade.
//   - ContractTrade (Order, Position), Derivatives (DerivativesTrade) and
//     CopyTrading -> futures.
//   - Options:OptionsTrade (USDC options and perpetuals) -> options.
//   - Wallet:AccountTransfer, SubMemberTransfer, SubMemberTransferList -> transfer;
//     Wallet:Withdraw -> withdraw.
//   - Earn -> earn.
//
// NFT, Affiliate, FiatP2P, FiatBybitPay and FiatConvertBroker have no
// canonical counterpart; they stay in Native only.
var bybitScopes = map[string]string{
	"Spot:*":                       PermTrade,
	"Exchange:*":                   PermTrade,
	"BlockTrade:*":                 PermTrade,
	"ContractTrade:*":              PermFutures,
	"Derivatives:*":                PermFutures,
	"CopyTrading:*":                PermFutures,
	"Options:*":                    PermOptions,
	"Wallet:AccountTransfer":       PermTransfer,
	"Wallet:SubMemberTransfer":     PermTransfer,
	"Wallet:SubMemberTransferList": PermTransfer,
	"Wallet:Withdraw":              PermWithdraw,
	"Earn:*":                       PermEarn,
}

func bybitPermissions(info bybitKeyInfo, readOnly bool) *Permissions {
	set := map[string]bool{PermRead: true}
	native := []string{}
	if readOnly {
		// Categories on a read-only key say what it may read, so only the
		// flag itself is evidence; keep it visible in Native.
		native = append(native, "readOnly")
	}
	for cat, vals := range info.Permissions {
		for _, v := range vals {
			if v == "" {
				continue
			}
			native = append(native, cat+":"+v)
			if readOnly {
				continue
			}
			if p, ok := bybitScopes[cat+":"+v]; ok {
				set[p] = true
			} else if p, ok := bybitScopes[cat+":*"]; ok {
				set[p] = true
			}
		}
	}
	p := &Permissions{Canonical: canonicalSet(set), Native: sortedCopy(native)}
	for _, entry := range info.IPs {
		// The list is documented as strings; split defensively in case
		// one element holds a comma-separated list.
		for _, ip := range strings.Split(entry, ",") {
			if ip = strings.TrimSpace(ip); ip != "" && ip != "*" {
				p.AllowedIPs = append(p.AllowedIPs, ip)
			}
		}
	}
	p.IPRestriction = restrictedIf(len(p.AllowedIPs) > 0)
	p.CreatedAt = bybitTime(info.CreatedAt)
	p.ExpiresAt = bybitTime(info.ExpiredAt)
	return p
}

// bybitTime parses the ISO-8601 dates of query-api; an empty, zero or
// unparsable date is simply not reported.
func bybitTime(s string) *time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1970 {
		return nil
	}
	t = t.UTC()
	return &t
}

// parseBybitServerTime maps GET /v5/market/time:
// {"retCode":0,"result":{"timeSecond":"..","timeNano":".."},"time":<ms>}.
func parseBybitServerTime(status int, body []byte) (time.Time, error) {
	if status >= 500 {
		return time.Time{}, fallback(Bybit, status, "server error", body)
	}
	var env bybitEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.RetCode == nil {
		return time.Time{}, unexpected(Bybit, status, "server time: not a Bybit v5 answer", body)
	}
	if *env.RetCode != 0 {
		return time.Time{}, bybitError(status, *env.RetCode, env.RetMsg, body)
	}
	var r struct {
		TimeSecond string `json:"timeSecond"`
		TimeNano   string `json:"timeNano"`
	}
	if json.Unmarshal(env.Result, &r) != nil {
		return time.Time{}, unexpected(Bybit, status, "server time: result of the wrong shape", body)
	}
	if n, err := strconv.ParseInt(r.TimeNano, 10, 64); err == nil && n > 0 {
		return time.Unix(0, n).UTC(), nil
	}
	if s, err := strconv.ParseInt(r.TimeSecond, 10, 64); err == nil && s > 0 && s < 1<<40 {
		return time.Unix(s, 0).UTC(), nil
	}
	return time.Time{}, unexpected(Bybit, status, "server time: no timeNano or timeSecond", body)
}
