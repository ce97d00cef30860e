package exchange

import (
	"bytes"
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

// KuCoin (https://www.kucoin.com/docs-new/).
//
// Signing: KC-API-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD +
// endpoint + body)), and for v2/v3 keys KC-API-PASSPHRASE = base64(HMAC-SHA256(
// secret, passphrase)) (docs-new/authentication).
//
// The probe is GET /api/v1/user/api-key ("Get Apikey Info", api-permission
// General, Management pool, weight 20; docs-new/api-3470130), callable with
// the General permission every key has. It reports the key's permission
// list, its IP whitelist (masked, "203.**.154") and its creation time; no
// expiry (keys made through the sub-account API may carry one, not shown).
//
// Least-privilege key for a spot bot: General + Spot, bound to the bots' and
// the operator's egress IPs; no Transfer (KuCoin's name for withdrawal) and
// no InnerTransfer. Spot and Futures also open KuCoin's older
// internal-transfer endpoints (kucoinPermissions), so such keys report
// transfer too.
//
// Rate limit: private endpoints are limited per user (UID) in resource pools
// refilled every 30 s; public ones per IP (docs-new/rate-limit;
// docs/basic-info/request-rate-limit/rest-api: "private endpoints will
// restrict account by userid"). A 429000 on this private probe holds back
// this key, not every key of the endpoint.
const (
	kucoinKeyInfoPath = "/api/v1/user/api-key"
	kucoinTimePath    = "/api/v1/timestamp"
	// kucoinKeyVersion: keys created since 2024 are "v3", older ones "v2";
	// both send the passphrase as base64(HMAC-SHA256(secret, passphrase)).
	// KuCoin's universal SDK sends "3" (sdk/golang/internal/infra/
	// default_signer.go); "2" is kept here for either, as before.
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
	if e, ok := AsError(perr); ok && e.Kind == RateLimited {
		if d := kucoinLimitReset(resp.Header); d > 0 {
			e.RetryAfter = d
		}
	}
	return perms, perr
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

// kucoinErrorKinds maps KuCoin's system error codes (docs.kucoin.com
// "Request / Errors" system error codes; docs-new lists the same).
var kucoinErrorKinds = map[string]Kind{
	// 400001 "Any of KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP,
	// KC-API-PASSPHRASE is missing": we always send them, so seeing it means
	// something on the way stripped them; not a verdict on the key.
	"400001": UnexpectedResponse,
	"400002": ClockSkew,        // timestamp more than 5 s from the server's
	"400003": InvalidKey,       // "KC-API-KEY not exists"
	"400004": WrongPassphrase,  // "KC-API-PASSPHRASE error"
	"400005": InvalidSignature, // "Signature error"
	"400006": IPNotAllowed,     // "The requested ip address is not in the api whitelist"
	"400007": PermissionDenied, // "Access Denied -- Your api key does not have sufficient permissions"
	// 400500 "Your located country/region is currently not supported for
	// the trading of this token": a regional restriction on trading one
	// token, which neither the key nor its allowlist causes. A read-only
	// probe has no token; if KuCoin ever answers it, no verdict.
	"400500": UnexpectedResponse,
	"411100": Inactive,    // "User are frozen"
	"429000": RateLimited, // resource pool used up (per UID for private endpoints)
	"500000": Unavailable, // internal server error
}

// kucoinNotes explains the codes that are no verdict, in the status message.
var kucoinNotes = map[string]string{
	"400001": "an authentication header did not reach KuCoin (stripped by a proxy?)",
	"400500": "KuCoin restricts trading a token from this country or region; this is not the key's IP whitelist and says nothing about the key",
}

// kucoinClientIP finds the caller address in 400006's message ("Invalid
// request ip, the current clientIp is:1.2.3.4").
var kucoinClientIP = regexp.MustCompile(`(?i)clientIp is:\s*([0-9A-Fa-f:.]+[0-9A-Fa-f])`)

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
	return kucoinKeyPermissions(info), nil
}

func kucoinError(status int, code, msg string, body []byte) *Error {
	kind, ok := kucoinErrorKinds[code]
	if !ok || kind == UnexpectedResponse {
		why := "KuCoin error " + sanitize(code, 16) + ": " + sanitize(msg, 160)
		if note, ok := kucoinNotes[code]; ok {
			why += " (" + note + ")"
		}
		e := unexpected(KuCoin, status, why, body)
		e.Code = sanitize(code, 16)
		return e
	}
	e := newError(KuCoin, kind, status, code, msg)
	switch kind {
	case RateLimited:
		// Private endpoints count per user: other accounts' keys go on.
		e.RetryAfter, e.Scope = kucoinLimitWait, ScopeKey
	case IPNotAllowed:
		if m := kucoinClientIP.FindStringSubmatch(msg); m != nil && net.ParseIP(m[1]) != nil {
			e.IP = m[1]
		}
	}
	return e
}

// kucoinPermissions maps the names GET /api/v1/user/api-key lists. The API
// spells two of them unlike the website: "Transfer" is the withdrawal right
// (website "Withdrawal") and "InnerTransfer" is Flex Transfer (website
// "FlexTransfers"); both spellings are rows. Sources: the api-permission list
// of https://www.kucoin.com/docs-new/ (Introduction), the permission of
// each endpoint in the official SDK's spec (Kucoin/kucoin-universal-sdk
// spec/rest/api/*.json, x-api-permission), and the response example of
// Get Apikey Info ("General,Futures,Spot,Earn,InnerTransfer,Transfer,Margin").
var kucoinPermissions = permissionTable{
	{Native: "General", Grants: []string{PermRead},
		Source: "docs-new Introduction: General is limited to read-only operations (account information, statements, orders)"},
	// Spot orders; and KuCoin's older Internal Transfer and Sub-account
	// Transfer endpoints (deprecated, not removed) require Spot too.
	{Native: "Spot", Grants: []string{PermTrade, PermTransfer},
		Source: "docs-new Introduction: Spot places and cancels spot orders; kucoin-universal-sdk spec/rest/api/openapi-account-transfer.json: POST /api/v2/accounts/inner-transfer and /api/v2/accounts/sub-transfer x-api-permission Spot"},
	// Margin orders, borrow and repay, lending; no spot orders (those need
	// Spot), so Margin does not imply trade, nor Spot margin.
	{Native: "Margin", Grants: []string{PermMargin},
		Source: "docs-new Introduction: Margin places and cancels margin orders; kucoin-universal-sdk spec openapi-margin-*.json: orders, borrow, repay x-api-permission Margin"},
	// Futures orders and positions; and the older Futures Account Transfer
	// In/Out endpoints (deprecated, not removed) require Futures.
	{Native: "Futures", Grants: []string{PermFutures, PermTransfer},
		Source: "docs-new Introduction: Futures places and cancels futures orders; kucoin-universal-sdk spec openapi-account-transfer.json: POST /api/v1/transfer-in and /api/v3/transfer-out x-api-permission Futures"},
	{Native: "Earn", Grants: []string{PermEarn},
		Source: "docs-new Introduction: Earn subscribes to and redeems KuCoin Earn products"},
	{Native: "InnerTransfer", Grants: []string{PermTransfer},
		Source: "docs-new Introduction: FlexTransfers enables transfers across the supported transfer types (master and sub-accounts); Get Apikey Info lists it as InnerTransfer; spec: POST /api/v3/accounts/universal-transfer x-api-permission FlexTransfers"},
	{Native: "FlexTransfers", Grants: []string{PermTransfer},
		Source: "docs-new Introduction: FlexTransfers (the website's name of InnerTransfer)"},
	{Native: "Transfer", Grants: []string{PermWithdraw},
		Source: "docs-new Introduction: Withdrawal withdraws assets without email or Google verification (\"the Transfer permission\"); Get Apikey Info lists it as Transfer; spec: POST /api/v3/withdrawals x-api-permission Withdrawal"},
	{Native: "Withdrawal", Grants: []string{PermWithdraw},
		Source: "docs-new Introduction: Withdrawal (the website's name of Transfer)"},
	{Native: "LeadtradeFutures", Grants: []string{PermFutures},
		Source: "docs-new Introduction: LeadtradeFutures uses Futures CopyTrading as lead trader; spec openapi-copytrading-futures.json: orders and isolated margin x-api-permission LeadtradeFutures"},
	// Decision where the docs are silent: the Unified Trading Account trades
	// spot, margin and futures from one account and KuCoin names no narrower
	// right, so Unified grants all three.
	{Native: "Unified", Grants: []string{PermTrade, PermMargin, PermFutures},
		Source: "docs-new rate-limit: Unified Account pool; docs-new Pro REST (UTA) trades SPOT, FUTURES, CROSS and ISOLATED; no narrower documented right"},
	// Keys made before 2021 (v1) carried General, Trade and Transfer;
	// Trade "allows a key to creating orders", of any kind.
	{Native: "Trade", Grants: []string{PermTrade, PermMargin, PermFutures},
		Source: "https://www.kucoin.com/support/900006465403 (API key upgrade guide): Trade allows a key to create orders"},
}

// kucoinNative returns the documented spelling of a reported name: the
// broker API lowercases names, so they are matched without regard to case.
// Unknown names are kept as reported.
func kucoinNative(name string) string {
	for _, r := range kucoinPermissions {
		if strings.EqualFold(r.Native, name) {
			return r.Native
		}
	}
	return name
}

func kucoinKeyPermissions(info kucoinKeyInfo) *Permissions {
	native := []string{}
	for _, name := range strings.Split(info.Permission, ",") {
		if name = strings.TrimSpace(name); name != "" {
			native = append(native, kucoinNative(name))
		}
	}
	canonical, grants := kucoinPermissions.grant(native)
	// General is mandatory on KuCoin and this endpoint needs it, so an
	// answer at all proves read even if the list were to omit it.
	set := toSet(canonical)
	set[PermRead] = true
	p := &Permissions{Canonical: canonicalSet(set), Grants: grants, Native: sortedCopy(native)}
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
