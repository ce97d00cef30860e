package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// OKX v5 (https://www.okx.com/docs-v5/en/).
//
// Signing: base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath +
// body)), the passphrase in clear (#overview-rest-authentication). Demo-trading
// keys work on the same host when the request carries x-simulated-trading: 1.
//
// The probe is GET /api/v5/account/config ("Permission: Read"), which reports
// the calling key's `perm` (read_only, trade, withdraw), its `ip` allowlist
// ("" when none is bound) and `label` (#trading-account-rest-api-get-account-configuration).
//
// Least-privilege key for a bot: Read + Trade, no Withdraw, bound to the
// bots' and the operator's egress IPs. OKX has no narrower trading right: a
// Trade key places orders on every instrument type and moves funds between
// the user's accounts and sub-accounts (okxPermissions), so a policy that
// forbids futures, options, margin or transfer refuses every Trade key; use
// a sub-account holding only the funds the bot may risk.
//
// What the operator cannot see: expiry. OKX deletes keys with Trade or
// Withdraw and no bound IP after 14 days unused, and reports no date for it.
//
// Rate limit: account/config allows 5 requests per 2 s per User ID; private
// REST limits count per User ID, sub-accounts separately (#overview-rate-limits),
// so a rate-limit answer holds back this key, not every key of the endpoint.
const (
	okxConfigPath = "/api/v5/account/config"
	okxTimePath   = "/api/v5/public/time"
	// okxTimestampLayout is ISO 8601 UTC with exactly three fractional digits.
	okxTimestampLayout = "2006-01-02T15:04:05.000Z"
	// okxRateWindow is account/config's limit window (5 requests per 2 s per
	// user): a rate-limit code in the body asks for a pause this long.
	okxRateWindow = 2 * time.Second
)

// okxPermissions maps the three `perm` values of account/config. OKX has no
// finer rights than these; each row grants what the endpoints marked with
// that permission can do.
var okxPermissions = permissionTable{
	{Native: "read_only", Grants: []string{PermRead},
		Source: "https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-account-configuration (perm read_only: Read; Read endpoints only query)"},
	// Place order is "Permission: Trade" for every instType (SPOT, MARGIN,
	// SWAP, FUTURES, OPTION); funds transfer between funding, trading and
	// sub-accounts is "Permission: Trade" as well; Simple Earn purchase and
	// redemption need Trade too (okx/agent-trade-kit docs/modules/earn.md).
	{Native: "trade", Grants: []string{PermTrade, PermMargin, PermFutures, PermOptions, PermTransfer, PermEarn},
		Source: "https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order (Permission: Trade, instType SPOT/MARGIN/SWAP/FUTURES/OPTION); https://www.okx.com/docs-v5/en/#funding-account-rest-api-funds-transfer (Permission: Trade); okx/agent-trade-kit docs/modules/earn.md"},
	// Withdrawal is "Permission: Withdraw". It does not add transfer: funds
	// transfer is a Trade endpoint, not a Withdraw one.
	{Native: "withdraw", Grants: []string{PermWithdraw},
		Source: "https://www.okx.com/docs-v5/en/#funding-account-rest-api-withdrawal (Permission: Withdraw); #funding-account-rest-api-funds-transfer needs Trade, not Withdraw"},
}

type okxDriver struct{}

func init() { register(OKX, okxDriver{}) }

func (okxDriver) defaultBase() string { return "https://www.okx.com" }

func (okxDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	ts := c.Now().UTC().Format(okxTimestampLayout)
	h := http.Header{}
	h.Set("OK-ACCESS-KEY", c.creds.APIKey)
	h.Set("OK-ACCESS-SIGN", okxSign(c.creds.APISecret, ts, http.MethodGet, okxConfigPath, ""))
	h.Set("OK-ACCESS-TIMESTAMP", ts)
	h.Set("OK-ACCESS-PASSPHRASE", c.creds.Passphrase)
	if c.demo {
		h.Set("x-simulated-trading", "1")
	}
	resp, err := c.do(ctx, http.MethodGet, okxConfigPath, "", nil, h)
	if err != nil {
		return nil, err
	}
	perms, perr := parseOKXAccountConfig(resp.Status, resp.Body)
	if e, ok := AsError(perr); ok && e.Kind == RateLimited {
		if wait := retryAfter(resp.Header, c.Now()); wait > 0 {
			e.RetryAfter = wait
		}
	}
	return perms, perr
}

// serverTime reads OKX's public clock for the skew resync.
func (okxDriver) serverTime(ctx context.Context, c *call) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, okxTimePath, "", nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return parseOKXTime(resp.Status, resp.Body)
}

// okxSign is base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath +
// body)). The secret is used as the text it is, not decoded.
func okxSign(secret, timestamp, method, requestPath, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + method + requestPath + body))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// okxCodeKinds maps OKX's error codes, from the REST error table
// (https://www.okx.com/docs-v5/en/#error-code-rest-api-public; HTTP status in
// brackets). Codes not listed are UnexpectedResponse: 50103/50104/50106/50107
// (a header we always send is empty: something on the way stripped it),
// 50112 (timestamp format, which we fix), 50114 "Invalid authorization"
// (undocumented cause), and the order-only codes.
var okxCodeKinds = map[string]Kind{
	"50100": Inactive,         // [400] API frozen, please contact customer service
	"50101": InvalidKey,       // [401] APIKey does not match current environment (demo vs live)
	"50102": ClockSkew,        // [401] timestamp request expired
	"50105": WrongPassphrase,  // [401] OK-ACCESS-PASSPHRASE incorrect
	"50110": IPNotAllowed,     // [401] Your IP {ip} is not included in your API key's IP whitelist
	"50111": InvalidKey,       // [401] invalid OK-ACCESS-KEY
	"50113": InvalidSignature, // [401] invalid signature
	"50119": InvalidKey,       // [200] API key doesn't exist
	"50120": PermissionDenied, // [200] this API key doesn't have permission to use this function
	"50030": PermissionDenied, // [200] you don't have permission to use this API endpoint
	"50007": Inactive,         // [200] user blocked
	"50011": RateLimited,      // [200/429] rate limit reached (per User ID)
	"50001": Unavailable,      // [503] service temporarily unavailable (maintenance)
	"50004": Unavailable,      // [400] endpoint request timeout
	"50013": Unavailable,      // [429] systems are busy
	"50026": Unavailable,      // [500] system error
}

// okxRegionRefused is 50121 "You can't access our services through the IP
// address ({ip})": OKX refuses the operator's egress IP as a place (region),
// whatever the key. That says nothing about the key and is not its
// allowlist, so it is no verdict: UnexpectedResponse, with a message that
// names the cause.
const okxRegionRefused = "50121"

// okxQuotedIP finds the caller address OKX quotes in 50110 and 50121.
var okxQuotedIP = regexp.MustCompile(`(?i)\bIP(?: address)? \(?([0-9A-Fa-f:.]+[0-9A-Fa-f])\)?`)

type okxEnvelope struct {
	Code string          `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

type okxAccountConfig struct {
	Perm  *string `json:"perm"`
	IP    string  `json:"ip"`
	Label string  `json:"label"`
}

// parseOKXAccountConfig maps a GET /api/v5/account/config answer.
func parseOKXAccountConfig(status int, body []byte) (*Permissions, error) {
	env, err := okxParseEnvelope(status, body)
	if err != nil {
		return nil, err
	}
	var data []okxAccountConfig
	if err := json.Unmarshal(env.Data, &data); err != nil || len(data) == 0 || data[0].Perm == nil {
		return nil, fallback(OKX, status, "account/config has no data[0].perm", body)
	}
	cfg := data[0]
	native := []string{}
	for _, p := range strings.Split(*cfg.Perm, ",") {
		if p = strings.TrimSpace(p); p != "" {
			native = append(native, p)
		}
	}
	// A value OKX may add later stays in Native and grants nothing.
	canonical, grants := okxPermissions.grant(native)
	out := &Permissions{Canonical: canonical, Grants: grants, Native: sortedCopy(native)}
	for _, ip := range strings.Split(cfg.IP, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			out.AllowedIPs = append(out.AllowedIPs, ip)
		}
	}
	out.IPRestriction = restrictedIf(len(out.AllowedIPs) > 0)
	return out, nil
}

// parseOKXTime reads GET /api/v5/public/time: {"code":"0","data":[{"ts":"<ms>"}]}.
func parseOKXTime(status int, body []byte) (time.Time, error) {
	env, err := okxParseEnvelope(status, body)
	if err != nil {
		return time.Time{}, err
	}
	var data []struct {
		TS string `json:"ts"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || len(data) == 0 {
		return time.Time{}, fallback(OKX, status, "public/time has no data[0].ts", body)
	}
	ms, err := strconv.ParseInt(data[0].TS, 10, 64)
	// Bounds keep a garbage value from turning into an absurd clock offset.
	if err != nil || ms < 946684800000 || ms > 32503680000000 {
		return time.Time{}, fallback(OKX, status, "public/time ts is not a plausible epoch in milliseconds", body)
	}
	return time.UnixMilli(ms), nil
}

// okxParseEnvelope returns the envelope of a successful answer, or the
// error an OKX code or an uninterpretable body stands for.
func okxParseEnvelope(status int, body []byte) (*okxEnvelope, error) {
	var env okxEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Code == "" {
		return nil, fallback(OKX, status, "not OKX's JSON envelope", body)
	}
	if env.Code == "0" {
		if status != http.StatusOK {
			return nil, fallback(OKX, status, "success code with a non-200 status", body)
		}
		return &env, nil
	}
	kind, known := okxCodeKinds[env.Code]
	if !known {
		why := "unknown OKX error code: " + env.Msg
		if env.Code == okxRegionRefused {
			why = "OKX refuses the operator's egress IP as a place to serve (region), which says nothing about the key: " + env.Msg
		}
		e := fallback(OKX, status, why, body)
		e.Code = sanitize(env.Code, 16)
		e.IP = okxIP(env.Msg)
		return nil, e
	}
	msg := env.Msg
	if env.Code == "50101" {
		msg += " (a demo-trading key probed as live, or the reverse)"
	}
	e := newError(OKX, kind, status, env.Code, msg)
	switch kind {
	case IPNotAllowed:
		e.IP = okxIP(env.Msg)
	case RateLimited:
		// Private REST limits count per User ID: other accounts' keys go on.
		e.Scope, e.RetryAfter = ScopeKey, okxRateWindow
	}
	return nil, e
}

// okxIP returns the address an OKX message quotes, if it is one.
func okxIP(msg string) string {
	m := okxQuotedIP.FindStringSubmatch(msg)
	if m == nil || net.ParseIP(m[1]) == nil {
		return ""
	}
	return m[1]
}
