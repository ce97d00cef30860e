package exchange

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// KuCoin sub-account keys. Every fact here is from KuCoin's docs-new pages
// and the official SDK's OpenAPI spec, which the docs are generated from
// (Kucoin/kucoin-universal-sdk spec/rest/api/openapi-account-subaccount.json
// and openapi-account-account.json; the Go SDK's generated types in
// sdk/golang/pkg/generate/account/subaccount say the same):
//
// | Call   | Endpoint                          | Parameters                                              | Pool, weight     | Permission | Doc |
// |--------|-----------------------------------|---------------------------------------------------------|------------------|------------|-----|
// | create | POST   /api/v1/sub/api-key        | subName, passphrase, remark, permission, ipWhitelist, expire (JSON body) | Management, 20 | General | docs-new/api-3470138 |
// | list   | GET    /api/v1/sub/api-key        | subName, apiKey (optional) (query)                      | Management, 20   | General    | docs-new/api-3470136 |
// | delete | DELETE /api/v1/sub/api-key        | apiKey, subName, passphrase (query)                     | Management, 30   | General    | docs-new/api-3470137 |
// | master | GET    /api/v1/user/api-key       | -: isMaster, subName ("no such param for the master account") | Management, 20 | General | docs-new/api-3470130 |
//
// POST /api/v1/sub/api-key/update (docs-new/api-3470139) is not used:
// rotation never edits a live key.
//
// Create: passphrase "Must contain 7–32 characters. Cannot contain any
// spaces."; remark "1–24 characters"; permission "Only General, Spot,
// Futures, Margin, InnerTransfer (Flex Transfer) permissions can be set"
// (comma list, default General); ipWhitelist "You may add up to 20 IPs. Use
// a halfwidth comma to each IP"; expire "-1" (never, the default), "30",
// "90", "180" or "360" days. The answer carries apiKey, apiSecret,
// apiVersion, passphrase, permission, ipWhitelist and createdAt: the secret
// and the passphrase are in it, so no excerpt of it is ever kept. The list
// shows no secret, masks the whitelist ("10.**.1") and shows no expiry.
// Delete needs the key's own passphrase ("Password (password of the API
// key)"): the caller keeps it (SubAccountRequest.KeyPassphrase).
//
// Master key: the sub-account endpoints need only General, which every key
// has; a sub-account's own key may call only the private endpoints KuCoin
// lists for sub-accounts (kucoin.com/docs/rest/account/sub-account/
// introduction), and sub-account key management is not among them. Get
// Apikey Info says which a key is: isMaster, and subName for a sub-account
// key.
//
// Canonical -> native: read -> General (every key); trade -> Spot; margin ->
// Margin; futures -> Futures; transfer -> InnerTransfer (Spot and Futures
// also open KuCoin's older transfer endpoints: kucoinPermissions in
// kucoin.go). withdraw -> none: KuCoin's withdrawal right ("Transfer" in the
// API, "Withdrawal" on the website) is not among the settable permissions,
// and sub-accounts cannot withdraw at all ("the funds cannot be withdrawn
// directly from the sub-account", sub-account introduction); options and
// earn -> none (not settable).
//
// Rate limit: the Management pool is counted per user (UID) and refilled
// every 30 s (docs-new/rate-limit); these calls weigh 20-30. The client
// allows one call per second per endpoint and master key, far below any
// VIP level's quota.
//
// Errors: the probe's codes (kucoinErrorKinds) plus those of subCodes in
// codes.go: 400100 "Parameter Error" -> InvalidRequest (a delete refused so
// still ends idempotently: DeleteSubAccountKey asks the list); 400301
// (restricted by local laws) and 400303 (identity verification required) ->
// AccountCannotIssue. KuCoin documents no code for an unknown sub-account:
// a 400100 whose message says the sub-account does not exist is
// SubAccountNotFound (unverified, by KuCoin's own words only).
const (
	kucoinSubKeyPath = "/api/v1/sub/api-key"
	kucoinSubDoc     = "kucoin.com/docs-new/api-3470138"
	kucoinSubDelDoc  = "kucoin.com/docs-new/api-3470137"
)

// kucoinExpireDays are the finite values of expire, smallest first.
var kucoinExpireDays = []int{30, 90, 180, 360}

// kucoinExpire is the expire value for a key that must live at least
// lifetime: the smallest finite value that covers it, or -1 (never) when
// none does, or when no lifetime is given. A key that expired before its
// planned rotation would leave the bots without a working key; -1 is then
// the only value that cannot, and the operator's rotation deletes the key
// anyway.
func kucoinExpire(lifetime time.Duration) int {
	if lifetime <= 0 {
		return -1
	}
	for _, d := range kucoinExpireDays {
		if time.Duration(d)*24*time.Hour >= lifetime {
			return d
		}
	}
	return -1
}

var kucoinSubCodeKinds = map[string]Kind{
	"400100": InvalidRequest,
	"400301": AccountCannotIssue,
	"400303": AccountCannotIssue,
}

type kucoinSubDriver struct{}

func init() { registerSub(KuCoin, kucoinSubDriver{}) }

func (kucoinSubDriver) natives() []subNative {
	return []subNative{
		{[]string{"General", "Spot"}, []string{PermTrade, PermTransfer}, kucoinSubDoc + " (permission Spot); what Spot allows: kucoinPermissions in kucoin.go"},
		{[]string{"General", "Margin"}, []string{PermMargin}, kucoinSubDoc + " (permission Margin)"},
		{[]string{"General", "Futures"}, []string{PermFutures, PermTransfer}, kucoinSubDoc + " (permission Futures); what Futures allows: kucoinPermissions in kucoin.go"},
		{[]string{"General", "InnerTransfer"}, []string{PermTransfer}, kucoinSubDoc + " (permission InnerTransfer, Flex Transfer)"},
	}
}

func (kucoinSubDriver) readOnly() []string { return []string{"General"} }

// validate applies KuCoin's documented limits, so that a bad request is
// refused before a key is half-made.
func (kucoinSubDriver) validate(_ SubAccountRequest, k NewSubAccountKey) error {
	if n := len([]rune(k.Passphrase)); n < 7 || n > 32 || strings.ContainsAny(k.Passphrase, " \t\r\n") {
		return fmt.Errorf("the KuCoin passphrase must have 7 to 32 characters and no spaces (%s)", kucoinSubDoc)
	}
	if n := len([]rune(k.Label)); n < 1 || n > 24 {
		return fmt.Errorf("the KuCoin remark must have 1 to 24 characters (%s)", kucoinSubDoc)
	}
	if len(k.IPs) > 20 {
		return fmt.Errorf("KuCoin binds at most 20 IP addresses to a key (%s)", kucoinSubDoc)
	}
	for _, ip := range k.IPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("KuCoin's ipWhitelist takes IP addresses (%s)", kucoinSubDoc)
		}
	}
	return nil
}

// kucoinSubDo signs a management call like the probe: KC-API-SIGN over
// timestamp + METHOD + path?query + body, the passphrase HMAC'd.
func kucoinSubDo(ctx context.Context, c *call, method, path, query string, body []byte) (*response, error) {
	ts := strconv.FormatInt(c.Now().UnixMilli(), 10)
	endpoint := path
	if query != "" {
		endpoint += "?" + query
	}
	h := http.Header{}
	h.Set("KC-API-KEY", c.creds.APIKey)
	h.Set("KC-API-SIGN", kucoinSign(c.creds.APISecret, kucoinPrehash(ts, method, endpoint, string(body))))
	h.Set("KC-API-TIMESTAMP", ts)
	h.Set("KC-API-PASSPHRASE", kucoinSign(c.creds.APISecret, c.creds.Passphrase))
	h.Set("KC-API-KEY-VERSION", kucoinKeyVersion)
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return c.do(ctx, method, path, query, body, h)
}

func (kucoinSubDriver) checkMaster(ctx context.Context, c *call, perms *Permissions, _ string) (*MasterCheck, error) {
	resp, err := kucoinSubDo(ctx, c, http.MethodGet, kucoinKeyInfoPath, "", nil)
	if err != nil {
		return nil, err
	}
	var info struct {
		IsMaster *bool  `json:"isMaster"`
		SubName  string `json:"subName"`
	}
	if err := kucoinSubResult(resp, &info, false); err != nil {
		return nil, err
	}
	if info.IsMaster == nil {
		return nil, unexpected(KuCoin, resp.Status, "Get Apikey Info without isMaster", resp.Body)
	}
	if !*info.IsMaster {
		return nil, &Error{Kind: NotMasterKey, Exchange: KuCoin, Message: "the key belongs to sub-account " + sanitize(info.SubName, 64) + " (Get Apikey Info: isMaster false); KuCoin's sub-account key endpoints take the master account's key (" + kucoinSubDoc + ")"}
	}
	// General, the only permission these endpoints need, is on every key.
	return &MasterCheck{CanManage: true}, nil
}

type kucoinSubKey struct {
	SubName     string `json:"subName"`
	Remark      string `json:"remark"`
	APIKey      string `json:"apiKey"`
	APISecret   string `json:"apiSecret"`
	Permission  string `json:"permission"`
	IPWhitelist string `json:"ipWhitelist"`
	CreatedAt   int64  `json:"createdAt"`
}

func (k kucoinSubKey) toKey(withSecret bool) SubAccountKey {
	perms := splitList(k.Permission)
	native := make([]string, 0, len(perms))
	for _, n := range perms {
		native = append(native, kucoinNative(n))
	}
	out := SubAccountKey{APIKey: sanitize(k.APIKey, 100), Label: sanitize(k.Remark, 100), Native: sortedCopy(native), IPs: splitList(k.IPWhitelist), CreatedAt: subTime(k.CreatedAt)}
	if withSecret {
		out.Secret = k.APISecret
	}
	return out
}

func (kucoinSubDriver) create(ctx context.Context, c *call, sub string, native []string, k NewSubAccountKey) (*SubAccountKey, error) {
	days := kucoinExpire(k.Lifetime)
	req := map[string]string{"subName": sub, "passphrase": k.Passphrase, "remark": k.Label, "permission": strings.Join(native, ","), "expire": strconv.Itoa(days)}
	if len(k.IPs) > 0 {
		req["ipWhitelist"] = strings.Join(k.IPs, ",")
	}
	body, _ := json.Marshal(req)
	if err := c.waitEndpoint(ctx, kucoinSubKeyPath+" POST", 1); err != nil {
		return nil, err
	}
	resp, err := kucoinSubDo(ctx, c, http.MethodPost, kucoinSubKeyPath, "", body)
	if err != nil {
		return nil, err
	}
	var data kucoinSubKey
	if err := kucoinSubResult(resp, &data, true); err != nil {
		return nil, err
	}
	if data.APIKey == "" || data.APISecret == "" {
		return nil, unexpected(KuCoin, resp.Status, "create: data without apiKey or apiSecret", nil)
	}
	key := data.toKey(true)
	if key.CreatedAt == nil {
		now := c.Now().UTC()
		key.CreatedAt = &now
	}
	if days > 0 {
		// KuCoin reports no expiry: it is the creation plus the days asked.
		exp := key.CreatedAt.Add(time.Duration(days) * 24 * time.Hour)
		key.ExpiresAt = &exp
	}
	return &key, nil
}

func (kucoinSubDriver) list(ctx context.Context, c *call, sub string) ([]SubAccountKey, error) {
	if err := c.waitEndpoint(ctx, kucoinSubKeyPath+" GET", 1); err != nil {
		return nil, err
	}
	resp, err := kucoinSubDo(ctx, c, http.MethodGet, kucoinSubKeyPath, url.Values{"subName": {sub}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var data []kucoinSubKey
	if err := kucoinSubResult(resp, &data, false); err != nil {
		return nil, err
	}
	out := make([]SubAccountKey, 0, len(data))
	for _, k := range data {
		if k.APIKey != "" {
			out = append(out, k.toKey(false))
		}
	}
	return out, nil
}

func (kucoinSubDriver) delete(ctx context.Context, c *call, sub, apiKey, passphrase string) error {
	if passphrase == "" {
		return &Error{Kind: InvalidRequest, Exchange: KuCoin, Message: "KuCoin deletes a sub-account key only with that key's passphrase, and it is not known (" + kucoinSubDelDoc + ")"}
	}
	if err := c.waitEndpoint(ctx, kucoinSubKeyPath+" DELETE", 1); err != nil {
		return err
	}
	// The documented parameters, in the documented order.
	q := "apiKey=" + url.QueryEscape(apiKey) + "&subName=" + url.QueryEscape(sub) + "&passphrase=" + url.QueryEscape(passphrase)
	resp, err := kucoinSubDo(ctx, c, http.MethodDelete, kucoinSubKeyPath, q, nil)
	if err != nil {
		return err
	}
	return kucoinSubResult(resp, nil, false)
}

// kucoinSubNotFound: KuCoin documents no code for an unknown sub-account;
// a parameter error whose message says so is taken at its word.
func kucoinSubNotFound(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "sub") && (strings.Contains(m, "not exist") || strings.Contains(m, "not found"))
}

// kucoinSubResult maps a management answer: the error, or data decoded
// into v. secret: the answer holds key material, so no excerpt is kept.
func kucoinSubResult(resp *response, v any, secret bool) error {
	excerpt := resp.Body
	if secret {
		excerpt = nil
	}
	if resp.Status >= 500 {
		return fallback(KuCoin, resp.Status, "server error", excerpt)
	}
	var env kucoinEnvelope
	if err := json.Unmarshal(resp.Body, &env); err != nil {
		return unexpected(KuCoin, resp.Status, "not a KuCoin answer", excerpt)
	}
	code, ok := env.code()
	if !ok {
		return unexpected(KuCoin, resp.Status, "answer without a code", excerpt)
	}
	if code != "200000" {
		if kind, ok := kucoinSubCodeKinds[code]; ok {
			if kind == InvalidRequest && kucoinSubNotFound(env.Msg) {
				kind = SubAccountNotFound
			}
			return newError(KuCoin, kind, resp.Status, code, env.Msg)
		}
		e := kucoinError(resp.Status, code, env.Msg, excerpt)
		if secret {
			e.Excerpt = ""
		}
		return e
	}
	if resp.Status != http.StatusOK {
		return unexpected(KuCoin, resp.Status, "code 200000 with a non-200 status", excerpt)
	}
	if v == nil {
		return nil
	}
	if json.Unmarshal(env.Data, v) != nil {
		return unexpected(KuCoin, resp.Status, "data of the wrong shape", excerpt)
	}
	return nil
}
