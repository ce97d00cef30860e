package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// OKX v5 signs timestamp + method + requestPath + body with HMAC-SHA256 and
// sends the passphrase in clear; demo-trading keys work on the same host
// when the request carries x-simulated-trading: 1.
const (
	okxConfigPath = "/api/v5/account/config"
	okxTimePath   = "/api/v5/public/time"
	// okxTimestampLayout is ISO 8601 UTC with exactly three fractional digits.
	okxTimestampLayout = "2006-01-02T15:04:05.000Z"
	// okxRateWindow is account/config's limit window (5 requests per 2 s per
	// user): a rate-limit code in the body asks for a pause this long.
	okxRateWindow = 2 * time.Second
)

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
		wait := retryAfter(resp.Header, c.Now())
		if wait == 0 {
			wait = okxRateWindow
		}
		return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, wait)
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

// okxCodeKinds maps OKX's error codes. 50101 is "APIKey does not match
// current environment": a demo key on the live environment or the reverse.
// The key exists, but not where we asked, so it is InvalidKey for this
// request; the message says so, since the fix is the demo setting.
var okxCodeKinds = map[string]Kind{
	"50100": Inactive,         // API frozen
	"50101": InvalidKey,       // key does not match the environment (demo vs live)
	"50102": ClockSkew,        // timestamp request expired
	"50105": WrongPassphrase,  // OK-ACCESS-PASSPHRASE incorrect
	"50110": IPNotAllowed,     // IP not in the key's allowlist
	"50111": InvalidKey,       // invalid OK-ACCESS-KEY
	"50113": InvalidSignature, // invalid sign
	"50119": InvalidKey,       // API key does not exist
	"50011": RateLimited,      // rate limit reached
	"50001": Unavailable,      // service temporarily unavailable
	"50004": Unavailable,      // endpoint request timeout
	"50013": Unavailable,      // systems are busy
	"50026": Unavailable,      // system error
}

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
	set := map[string]bool{}
	native := []string{}
	for _, p := range strings.Split(*cfg.Perm, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		native = append(native, p)
		switch p {
		case "read_only":
			set[PermRead] = true
		case "trade":
			set[PermTrade] = true
		case "withdraw":
			set[PermWithdraw] = true
		}
	}
	out := &Permissions{Canonical: canonicalSet(set), Native: sortedCopy(native)}
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
		e := fallback(OKX, status, "unknown OKX error code: "+env.Msg, body)
		e.Code = sanitize(env.Code, 16)
		return nil, e
	}
	msg := env.Msg
	if env.Code == "50101" {
		msg += " (a demo-trading key probed as live, or the reverse)"
	}
	return nil, newError(OKX, kind, status, env.Code, msg)
}
