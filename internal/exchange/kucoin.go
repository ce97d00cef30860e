package exchange

import (
	"bytes"
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

// KuCoin. The probe is GET /api/v1/user/api-key ("Get API Key Info"),
// callable with the General permission that every key has; it reports the
// key's permission list, IP whitelist and creation time.
const (
	kucoinKeyInfoPath = "/api/v1/user/api-key"
	kucoinTimePath    = "/api/v1/timestamp"
	// kucoinKeyVersion: keys created since 2024 are "v3", older ones "v2";
	// both send the passphrase as base64(HMAC-SHA256(secret, passphrase)),
	// and KuCoin's own examples (and most clients) send "2" for either.
	kucoinKeyVersion = "2"
	// kucoinLimitWait is the pause after a 429000 in a body when the
	// gw-ratelimit-reset header does not say better; KuCoin's resource
	// pools reset every 30 seconds.
	kucoinLimitWait = 30 * time.Second
)

type kucoinDriver struct{}

func init() { register(KuCoin, kucoinDriver{}) }

func (kucoinDriver) defaultBase() string { return "https://api.kucoin.com" }

// kucoinSign is base64(HMAC-SHA256(secret, msg)); KuCoin uses it both for
// the request signature and for the passphrase of v2/v3 keys.
func kucoinSign(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// kucoinPrehash is timestamp + METHOD + endpoint (with "?query") + body.
func kucoinPrehash(timestamp, method, endpoint, body string) string {
	return timestamp + strings.ToUpper(method) + endpoint + body
}

func (kucoinDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	ts := strconv.FormatInt(c.Now().UnixMilli(), 10)
	h := http.Header{}
	h.Set("KC-API-KEY", c.creds.APIKey)
	h.Set("KC-API-SIGN", kucoinSign(c.creds.APISecret, kucoinPrehash(ts, http.MethodGet, kucoinKeyInfoPath, "")))
	h.Set("KC-API-TIMESTAMP", ts)
	h.Set("KC-API-PASSPHRASE", kucoinSign(c.creds.APISecret, c.creds.Passphrase))
	h.Set("KC-API-KEY-VERSION", kucoinKeyVersion)
	resp, err := c.do(ctx, http.MethodGet, kucoinKeyInfoPath, "", nil, h)
	if err != nil {
		return nil, err
	}
	perms, perr := parseKuCoinKeyInfo(resp.Status, resp.Body)
	if perr != nil {
		if e, ok := perr.(*Error); ok && e.Kind == RateLimited {
			wait := e.RetryAfter
			if d := kucoinLimitReset(resp.Header); d > 0 {
				wait = d
			}
			return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, wait)
		}
		return nil, perr
	}
	return perms, nil
}

// kucoinLimitReset reads gw-ratelimit-reset: milliseconds until the
// exceeded resource pool refills.
func kucoinLimitReset(h http.Header) time.Duration {
	ms, err := strconv.ParseInt(h.Get("gw-ratelimit-reset"), 10, 64)
	if err != nil || ms <= 0 || ms > 10*60*1000 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func (kucoinDriver) serverTime(ctx context.Context, c *call) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, kucoinTimePath, "", nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return parseKuCoinTimestamp(resp.Status, resp.Body)
}

type kucoinEnvelope struct {
	// Code is a string in every documented answer; a number is tolerated.
	Code json.RawMessage `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

func (e kucoinEnvelope) code() (string, bool) {
	raw := bytes.TrimSpace(e.Code)
	if len(raw) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

type kucoinKeyInfo struct {
	APIKey      string `json:"apiKey"`
	Permission  string `json:"permission"`
	IPWhitelist string `json:"ipWhitelist"`
	CreatedAt   int64  `json:"createdAt"`
}

// kucoinErrorKinds maps KuCoin's system error codes.
var kucoinErrorKinds = map[string]Kind{
	// 400001 "Any of KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP,
	// KC-API-PASSPHRASE is missing": we always send them, so seeing it means
	// something on the way stripped them; not a verdict on the key.
	"400001": UnexpectedResponse,
	"400002": ClockSkew,        // timestamp more than 5 s from the server's
	"400003": InvalidKey,       // "KC-API-KEY not exists"
	"400004": WrongPassphrase,  // "Invalid KC-API-PASSPHRASE"
	"400005": InvalidSignature, // "Invalid KC-API-SIGN"
	"400006": IPNotAllowed,     // caller IP not in the key's whitelist
	"400007": PermissionDenied, // key lacks the permission
	// 400500: "Your located country/region is currently not supported" is a
	// refusal of the egress IP, like a whitelist miss.
	"400500": IPNotAllowed,
	"411100": Inactive,    // "User is frozen"
	"429000": RateLimited, // too many requests (also sent with HTTP 429)
	"500000": Unavailable, // internal server error
}

// parseKuCoinKeyInfo maps the answer to GET /api/v1/user/api-key.
func parseKuCoinKeyInfo(status int, body []byte) (*Permissions, error) {
	if status >= 500 {
		return nil, fallback(KuCoin, status, "server error", body)
	}
	var env kucoinEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, unexpected(KuCoin, status, "not a KuCoin answer", body)
	}
	code, ok := env.code()
	if !ok {
		return nil, unexpected(KuCoin, status, "answer without a code", body)
	}
	if code != "200000" {
		return nil, kucoinError(status, code, env.Msg, body)
	}
	if status != http.StatusOK {
		return nil, unexpected(KuCoin, status, "code 200000 with a non-200 status", body)
	}
	var info kucoinKeyInfo
	if len(bytes.TrimSpace(env.Data)) == 0 || json.Unmarshal(env.Data, &info) != nil || strings.TrimSpace(info.Permission) == "" {
		return nil, unexpected(KuCoin, status, "data without a permission list", body)
	}
	return kucoinPermissions(info), nil
}

func kucoinError(status int, code, msg string, body []byte) *Error {
	kind, ok := kucoinErrorKinds[code]
	if !ok || kind == UnexpectedResponse {
		e := unexpected(KuCoin, status, "KuCoin error "+sanitize(code, 16)+": "+sanitize(msg, 160), body)
		e.Code = sanitize(code, 16)
		return e
	}
	e := newError(KuCoin, kind, status, code, msg)
	if kind == RateLimited {
		e.RetryAfter = kucoinLimitWait
	}
	return e
}

// kucoinScopes maps KuCoin's permission names. The names mislead: Transfer
// is the withdrawal right, InnerTransfer ("Flex Transfer") moves funds
// between the user's own accounts. LeadtradeFutures (copy-trading lead
// account) trades futures. Unknown names stay in Native only.
var kucoinScopes = map[string]string{
	"General":          PermRead,
	"Spot":             PermTrade,
	"Margin":           PermMargin,
	"Futures":          PermFutures,
	"LeadtradeFutures": PermFutures,
	"InnerTransfer":    PermTransfer,
	"Transfer":         PermWithdraw,
	"Earn":             PermEarn,
}

func kucoinPermissions(info kucoinKeyInfo) *Permissions {
	// General is mandatory on KuCoin and this endpoint needs it, so an
	// answer at all proves read even if the list were to omit it.
	set := map[string]bool{PermRead: true}
	native := []string{}
	for _, name := range strings.Split(info.Permission, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		native = append(native, name)
		for k, p := range kucoinScopes {
			// Documented names are capitalised; the broker API lowercases
			// them, so match without regard to case.
			if strings.EqualFold(k, name) {
				set[p] = true
			}
		}
	}
	p := &Permissions{Canonical: canonicalSet(set), Native: sortedCopy(native)}
	for _, ip := range strings.Split(info.IPWhitelist, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			p.AllowedIPs = append(p.AllowedIPs, ip)
		}
	}
	p.IPRestriction = restrictedIf(len(p.AllowedIPs) > 0)
	if info.CreatedAt > 0 && info.CreatedAt < 1<<50 {
		t := time.UnixMilli(info.CreatedAt).UTC()
		p.CreatedAt = &t
	}
	return p
}

// parseKuCoinTimestamp maps GET /api/v1/timestamp: {"code":"200000","data":<ms>}.
func parseKuCoinTimestamp(status int, body []byte) (time.Time, error) {
	if status >= 500 {
		return time.Time{}, fallback(KuCoin, status, "server error", body)
	}
	var env kucoinEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return time.Time{}, unexpected(KuCoin, status, "server time: not a KuCoin answer", body)
	}
	code, ok := env.code()
	if !ok {
		return time.Time{}, unexpected(KuCoin, status, "server time: answer without a code", body)
	}
	if code != "200000" {
		return time.Time{}, kucoinError(status, code, env.Msg, body)
	}
	var ms int64
	if json.Unmarshal(env.Data, &ms) != nil || ms <= 0 || ms >= 1<<50 {
		return time.Time{}, unexpected(KuCoin, status, "server time: data is not a millisecond timestamp", body)
	}
	return time.UnixMilli(ms).UTC(), nil
}
