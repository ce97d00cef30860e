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

// Bybit v5. The probe is GET /v5/user/query-api, which "any permission can
// access" (bybit-exchange/docs docs/v5/user/apikey-info.mdx), and which
// reports the key's scopes, readOnly flag, bound IPs and expiry in one answer.
//
// A least-privilege key for a bot: "Read-Write" with only the categories the
// bot trades (Spot, or Contract for perpetuals), bound to the cluster's
// egress IPs: a key without bound IPs expires after 90 days
// (create-subuid-apikey.mdx). The operator sees every category and value,
// the IP list and the expiry. Bybit also issues RSA keys (rsaPublicKey);
// this client signs HMAC only.
const (
	bybitKeyInfoPath = "/v5/user/query-api"
	bybitTimePath    = "/v5/market/time"
	// bybitRecvWindow is Bybit's default; the simulator and the exchange
	// accept a request while serverTime-recvWindow <= timestamp < serverTime+1s.
	bybitRecvWindow = "5000"
	// bybitIPBanWait: Bybit answers HTTP 403 "access too frequent" once the
	// egress IP broke 600 requests per 5 seconds, and asks clients to stop
	// for at least ten minutes (docs/v5/rate-limit/rate-limit.mdx).
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
func bybitSign(secret, timestamp, apiKey, recvWindow, payload string) string { //nolint:unparam // recvWindow is part of the signed string by Bybit's formula, not a constant of it
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
	if e, ok := AsError(perr); ok && e.Kind == RateLimited && e.Scope == ScopeKey {
		// The per-UID window ends at X-Bapi-Limit-Reset-Timestamp.
		if d := bybitLimitReset(resp.Header, c.Now()); d > 0 {
			e.RetryAfter = d
		}
	}
	return perms, perr
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

// bybitErrorKinds maps v5 retCodes (docs/v5/error.mdx, "UTA").
var bybitErrorKinds = map[int64]Kind{
	10000: Unavailable,      // "Server Timeout"
	10002: ClockSkew,        // "The request time exceeds the time window range."
	10003: InvalidKey,       // "API key is invalid. Check whether the key and domain are matched" (mainnet, testnet, demo)
	10004: InvalidSignature, // "Error sign, please check your signature generation algorithm."
	10005: PermissionDenied, // "Permission denied, please check your API key permissions."
	10006: RateLimited,      // "Too many visits. Exceeded the API Rate Limit." (per UID)
	// 10007 "User authentication failed." (error.mdx) says nothing of
	// which part failed, and ccxt's older text for it is "api_key not
	// found in your request parameters": unverified, so it is no verdict
	// (UnexpectedResponse, Bybit's words in the message).
	10007: UnexpectedResponse,
	10008: Inactive, // "Common banned, please check your account mode" (error.mdx; ccxt: "User had been banned", AccountSuspended)
	// 10009 "Service Restricted: Access is currently unavailable for your
	// region": the egress IP's region is refused, whatever the key. No
	// verdict on the key; retried.
	10009: Unavailable,
	10010: IPNotAllowed, // "Unmatched IP, please check your API key's bound IP addresses."
	10016: Unavailable,  // "Server error." (also "Service is restarting")
	10018: RateLimited,  // "Exceeded the IP Rate Limit." (struck out in the docs; kept for old answers)
	33004: Inactive,     // "(Derivatives) Your api key has expired"
	-2015: Inactive,     // "(Spot) Your api key has expired"
	// 10001 (parameter error) and 10017 (route not found) mean our request
	// is wrong: left unmapped, they surface as UnexpectedResponse.
}

// parseBybitKeyInfo maps the answer to GET /v5/user/query-api.
func parseBybitKeyInfo(status int, body []byte) (*Permissions, error) {
	if status >= 500 {
		return nil, fallback(Bybit, status, "server error", body)
	}
	if status == http.StatusForbidden {
		// error.mdx: "403 Forbidden request. Possible causes: 1. IP rate
		// limit breached; ... 3. You are using U.S IP". Either way it is
		// the egress IP: every key of this base URL waits (the excerpt
		// lets an operator tell a ban from a blocked region).
		e := newError(Bybit, RateLimited, status, "", "HTTP 403: egress IP banned or blocked by Bybit")
		e.Scope = ScopeEndpoint
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
	return bybitKeyPermissions(info, readOnly), nil
}

func bybitError(status int, code int64, msg string, body []byte) *Error {
	c := strconv.FormatInt(code, 10)
	kind, ok := bybitErrorKinds[code]
	if !ok || kind == UnexpectedResponse {
		e := unexpected(Bybit, status, "Bybit error "+c+": "+sanitize(msg, 160), body)
		e.Code = c
		return e
	}
	e := newError(Bybit, kind, status, c, msg)
	switch code {
	case 10006:
		// "The API rate limit is based on the rolling time window per
		// second and UID" (rate-limit.mdx): other accounts' keys go on.
		e.Scope, e.RetryAfter = ScopeKey, bybitUIDLimitWait
	case 10018:
		e.Scope, e.RetryAfter = ScopeEndpoint, bybitIPBanWait
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

const (
	bybitKeyInfoDoc = "bybit-exchange/docs docs/v5/user/apikey-info.mdx"
	bybitUpdateDoc  = "bybit-exchange/docs docs/v5/user/modify-master-apikey.mdx"
)

// bybitPermissions maps query-api's "Category:Value" pairs of a read-write
// key. "Category:*" rows cover values the docs do not list yet, so that a
// new value in a trading category is not taken for nothing. Categories
// outside the canonical model (P2P, Bybit Pay, card, posts, affiliate) grant
// nothing; they stay visible in Native.
var bybitPermissions = permissionTable{
	{"readOnly", []string{PermRead}, bybitKeyInfoDoc + ": readOnly 1 = Read only; categories then say what the key may read"},
	{"ContractTrade:Order", []string{PermFutures}, bybitKeyInfoDoc + ": Permission of contract trade"},
	{"ContractTrade:Position", []string{PermFutures}, bybitKeyInfoDoc + ": Permission of contract trade"},
	{"ContractTrade:*", []string{PermFutures}, bybitKeyInfoDoc},
	{"Spot:SpotTrade", []string{PermTrade, PermMargin},
		bybitKeyInfoDoc + "; spot orders with isLeverage=1 are margin trading (docs/v5/order/create-order.mdx)"},
	{"Spot:*", []string{PermTrade, PermMargin}, bybitKeyInfoDoc},
	{"Options:OptionsTrade", []string{PermOptions, PermFutures},
		bybitKeyInfoDoc + `: "Permission of USDC Contract. It supports trade option and USDC perpetual"`},
	{"Options:*", []string{PermOptions, PermFutures}, bybitKeyInfoDoc},
	{"Derivatives:DerivativesTrade", []string{PermFutures, PermOptions},
		"docs/v5/user/create-subuid-apikey.mdx: \"Permission of Unified account\", whose derivatives are futures and options"},
	{"Derivatives:*", []string{PermFutures, PermOptions}, bybitKeyInfoDoc},
	{"Wallet:AccountTransfer", []string{PermTransfer}, bybitKeyInfoDoc + ": Permission of wallet"},
	{"Wallet:SubMemberTransfer", []string{PermTransfer}, bybitKeyInfoDoc + ": master account, transfers to sub accounts"},
	{"Wallet:SubMemberTransferList", []string{PermTransfer}, bybitKeyInfoDoc + ": sub account"},
	{"Wallet:Withdraw", []string{PermWithdraw}, bybitKeyInfoDoc + ": master account"},
	{"Exchange:ExchangeHistory", []string{PermTrade}, bybitKeyInfoDoc + ": Permission of convert (swaps one coin for another)"},
	{"Exchange:*", []string{PermTrade}, bybitKeyInfoDoc},
	{"Earn:Earn", []string{PermEarn}, bybitKeyInfoDoc + ": Permission of earn product"},
	{"Earn:*", []string{PermEarn}, bybitKeyInfoDoc},
	{"BlockTrade:BlockTrade", []string{PermTrade, PermFutures, PermOptions},
		bybitUpdateDoc + "; block trades (RFQ) cover spot, linear and option (docs/v5/rfq/trade/create-rfq.mdx)"},
	{"BlockTrade:*", []string{PermTrade, PermFutures, PermOptions}, bybitKeyInfoDoc},
	{"CopyTrading:*", []string{PermFutures}, bybitKeyInfoDoc + ": deprecated, always []; copy trading placed contract orders"},
	{"FiatConvertBroker:FiatConvertBrokerOrder", []string{PermTrade}, bybitKeyInfoDoc + ": Permission of fiat convert"},
	{"FiatP2P:FiatP2POrder", nil, bybitKeyInfoDoc + ": Permission of P2P; no canonical counterpart"},
	{"FiatP2P:Advertising", nil, bybitKeyInfoDoc + ": Permission of P2P; no canonical counterpart"},
	{"FiatBitPay:FaitPayOrder", nil, bybitKeyInfoDoc + ": Permission of Bybit Pay; no canonical counterpart"},
	{"BitCard:BitCard", nil, bybitKeyInfoDoc + ": Bybit card permission; no canonical counterpart"},
	{"ByXPost:ByXPost", nil, bybitKeyInfoDoc + ": Community post permission"},
	{"Affiliate:Affiliate", nil, bybitUpdateDoc + ": affiliate data only"},
}

// bybitGrant maps a read-write key's natives through bybitPermissions,
// falling back to a category's "*" row for a value the table lacks.
func bybitGrant(natives []string) ([]string, []Grant) {
	table := append(permissionTable{}, bybitPermissions...)
	for _, n := range natives {
		if _, ok := table.lookup(n); ok {
			continue
		}
		cat, _, _ := strings.Cut(n, ":")
		if r, ok := bybitPermissions.lookup(cat + ":*"); ok {
			table = append(table, permissionRow{Native: n, Grants: r.Grants, Source: r.Source})
		}
	}
	return table.grant(natives)
}

func bybitKeyPermissions(info bybitKeyInfo, readOnly bool) *Permissions {
	native := []string{}
	for cat, vals := range info.Permissions {
		for _, v := range vals {
			if v == "" {
				continue
			}
			native = append(native, sanitize(cat, 40)+":"+sanitize(v, 40))
		}
	}
	var canonical []string
	var grants []Grant
	if readOnly {
		// Categories on a read-only key say what it may read (the docs'
		// own example lists SpotTrade on a readOnly 1 key), so only the
		// flag grants anything; it stays visible in Native.
		native = append(native, "readOnly")
		canonical, grants = bybitPermissions.grant([]string{"readOnly"})
	} else {
		canonical, grants = bybitGrant(native)
	}
	// Any key that can call query-api can read.
	canonical = canonicalSet(toSet(append(canonical, PermRead)))
	p := &Permissions{Canonical: canonical, Native: sortedCopy(native), Grants: grants}
	for _, entry := range info.IPs {
		// The list is documented as strings, "*" meaning no bound IP
		// (create-subuid-apikey.mdx); split defensively in case one
		// element holds a comma-separated list, as the create form does.
		for _, ip := range strings.Split(entry, ",") {
			if ip = strings.TrimSpace(ip); ip != "" && ip != "*" {
				p.AllowedIPs = append(p.AllowedIPs, sanitize(ip, 64))
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
