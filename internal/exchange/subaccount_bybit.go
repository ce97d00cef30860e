package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bybit v5 sub-account keys (bybit-exchange/docs, commit 072c197d, July 2026):
//
// | Call   | Endpoint                       | Parameters                                               | Limit (per UID, rate-limit.mdx) | Source |
// |--------|--------------------------------|----------------------------------------------------------|---------------------------------|--------|
// | create | POST /v5/user/create-sub-api   | subuid (int), note, readOnly 0/1, ips "a,b" ("*"/absent = unbound), permissions{Category:[values]} | 1/s  | docs/v5/user/create-subuid-apikey.mdx |
// | list   | GET /v5/user/sub-apikeys       | subMemberId, limit 1..20, cursor (nextPageCursor)        | 10/s | docs/v5/user/list-sub-apikeys.mdx |
// | delete | POST /v5/user/delete-sub-api   | apikey (required when the master calls)                  | 5/s  | docs/v5/user/rm-sub-apikey.mdx |
// | master | GET /v5/user/query-api         | none; isMaster, parentUid ("0" for the main account)     | 10/s | docs/v5/user/apikey-info.mdx |
//
// update-sub-api (modify-sub-apikey.mdx) is not used: rotation creates a
// successor and deletes the old key, it never edits a live one.
//
// Master key: "Use master user's api key only", holding one of "Account
// Transfer", "Subaccount Transfer", "Withdrawal" (create-subuid-apikey.mdx,
// rm-sub-apikey.mdx), i.e. a read-write key with Wallet AccountTransfer,
// SubMemberTransfer or Withdraw (apikey-info.mdx). HMAC keys only here.
//
// Canonical -> native (create-subuid-apikey.mdx lists what a sub-account key
// can hold; what each grants follows apikey-info.mdx as the probe reads it):
//
// | canonical | native                           | also grants         |
// |-----------|----------------------------------|---------------------|
// | read      | every key; alone: readOnly 1 with Spot, ContractTrade and Wallet read scope | - |
// | trade     | Spot:SpotTrade                   | margin (spot orders with isLeverage=1) |
// | margin    | Spot:SpotTrade                   | trade               |
// | futures   | ContractTrade:Order,Position     | -                   |
// | options   | Options:OptionsTrade             | futures (USDC perpetuals) |
// | transfer  | Wallet:AccountTransfer           | -                   |
// | earn      | Earn:Earn                        | -                   |
// | withdraw  | none: sub-account keys offer no Withdraw | -           |
//
// Keys without bound IPs expire after 90 days (create-subuid-apikey.mdx, ips).
//
// Errors (docs/v5/error.mdx): the probe's retCodes (bybitErrorKinds) plus
// 500010 "The subaccount specified does not belong to the parent account" ->
// SubAccountNotFound; section "User": 81007 "Bybit Europe is not supported
// create API Key" and 20096 "need KYC authentication" -> AccountCannotIssue
// (the account cannot create keys: no retry loop); 10005 on these endpoints -> PermissionDenied with the
// master-key rule; 10001 -> InvalidRequest. Bybit documents no code for
// deleting an unknown key: DeleteSubAccountKey then asks the list.
const (
	bybitCreateSubPath = "/v5/user/create-sub-api"
	bybitListSubPath   = "/v5/user/sub-apikeys"
	bybitDeleteSubPath = "/v5/user/delete-sub-api"
	bybitSubDoc        = "bybit-exchange/docs docs/v5/user/create-subuid-apikey.mdx"
)

type bybitSubDriver struct{}

func init() { registerSub(Bybit, bybitSubDriver{}) }

func (bybitSubDriver) natives() []subNative {
	return []subNative{
		{[]string{"Spot:SpotTrade"}, []string{PermTrade, PermMargin}, bybitSubDoc + " (Spot); margin: docs/v5/order/create-order.mdx isLeverage"},
		{[]string{"ContractTrade:Order", "ContractTrade:Position"}, []string{PermFutures}, bybitSubDoc + " (ContractTrade)"},
		{[]string{"Options:OptionsTrade"}, []string{PermOptions, PermFutures}, bybitSubDoc + " (USDC Contract: options and USDC perpetual)"},
		{[]string{"Wallet:AccountTransfer"}, []string{PermTransfer}, bybitSubDoc + " (Wallet)"},
		{[]string{"Earn:Earn"}, []string{PermEarn}, bybitSubDoc + " (Earn)"},
	}
}

func (bybitSubDriver) readOnly() []string {
	return []string{"ContractTrade:Order", "ContractTrade:Position", "Spot:SpotTrade", "Wallet:AccountTransfer", "readOnly"}
}

func (bybitSubDriver) validate(r SubAccountRequest, k NewSubAccountKey) error {
	if _, err := strconv.ParseInt(r.SubAccount, 10, 64); err != nil {
		return fmt.Errorf("a Bybit sub-account is its numeric UID (subuid is an integer, %s)", bybitSubDoc)
	}
	return nil
}

// bybitPost signs a JSON body: hex HMAC-SHA256 of timestamp + key +
// recvWindow + body (the v5 scheme, as for GET with the query).
func bybitSubDo(ctx context.Context, c *call, method, path, query string, body []byte) (*response, error) {
	ts := strconv.FormatInt(c.Now().UnixMilli(), 10)
	payload := query
	if method == http.MethodPost {
		payload = string(body)
	}
	h := http.Header{}
	h.Set("X-BAPI-API-KEY", c.creds.APIKey)
	h.Set("X-BAPI-TIMESTAMP", ts)
	h.Set("X-BAPI-RECV-WINDOW", bybitRecvWindow)
	h.Set("X-BAPI-SIGN", bybitSign(c.creds.APISecret, ts, c.creds.APIKey, bybitRecvWindow, payload))
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	return c.do(ctx, method, path, query, body, h)
}

func (bybitSubDriver) checkMaster(ctx context.Context, c *call, perms *Permissions, sub string) (*MasterCheck, error) {
	if err := c.waitEndpoint(ctx, bybitKeyInfoPath, 10); err != nil {
		return nil, err
	}
	resp, err := bybitSubDo(ctx, c, http.MethodGet, bybitKeyInfoPath, "", nil)
	if err != nil {
		return nil, err
	}
	var info struct {
		IsMaster  *bool  `json:"isMaster"`
		ParentUID string `json:"parentUid"`
	}
	if err := bybitSubResult(c, resp, &info, false); err != nil {
		return nil, err
	}
	if (info.IsMaster != nil && !*info.IsMaster) || (info.ParentUID != "" && info.ParentUID != "0") {
		return nil, &Error{Kind: NotMasterKey, Exchange: Bybit, Message: "the key belongs to a sub-account (query-api: isMaster false, parentUid set); Bybit lets only the master account's key create sub-account keys (" + bybitSubDoc + ")"}
	}
	return bybitMasterRule(perms), nil
}

// bybitMasterRule: a read-write key with one of Account Transfer,
// Subaccount Transfer or Withdrawal.
func bybitMasterRule(perms *Permissions) *MasterCheck {
	readOnly := false
	for _, n := range perms.Native {
		if n == "readOnly" {
			readOnly = true
		}
	}
	if !readOnly {
		for _, n := range perms.Native {
			switch n {
			case "Wallet:AccountTransfer", "Wallet:SubMemberTransfer", "Wallet:Withdraw":
				return &MasterCheck{CanManage: true}
			}
		}
	}
	return &MasterCheck{Missing: "the master key must be read-write and hold one of \"Account Transfer\", \"Subaccount Transfer\" or \"Withdrawal\" to manage sub-account keys (" + bybitSubDoc + ")"}
}

type bybitSubKey struct {
	ID          json.RawMessage     `json:"id"`
	APIKey      string              `json:"apiKey"`
	Note        string              `json:"note"`
	Secret      string              `json:"secret"`
	ReadOnly    json.RawMessage     `json:"readOnly"`
	Permissions map[string][]string `json:"permissions"`
	IPs         []string            `json:"ips"`
	ExpiredAt   string              `json:"expiredAt"`
	CreatedAt   string              `json:"createdAt"`
}

func (k bybitSubKey) toKey(withSecret bool) (SubAccountKey, bool) {
	readOnly, ok := bybitFlag(k.ReadOnly)
	if !ok || k.APIKey == "" {
		return SubAccountKey{}, false
	}
	out := SubAccountKey{ID: bybitID(k.ID), APIKey: sanitize(k.APIKey, 100), Label: sanitize(k.Note, 100), CreatedAt: bybitTime(k.CreatedAt), ExpiresAt: bybitTime(k.ExpiredAt)}
	if withSecret {
		out.Secret = k.Secret
	}
	for cat, vals := range k.Permissions {
		for _, v := range vals {
			if v != "" {
				out.Native = append(out.Native, sanitize(cat, 40)+":"+sanitize(v, 40))
			}
		}
	}
	if readOnly {
		out.Native = append(out.Native, "readOnly")
	}
	out.Native = sortedCopy(out.Native)
	for _, ip := range k.IPs {
		out.IPs = append(out.IPs, splitList(ip)...)
	}
	return out, true
}

// bybitID reads the key's "id" ("Unique id. Internal used",
// create-subuid-apikey.mdx and list-sub-apikeys.mdx: a string, written as a
// number by some answers).
func bybitID(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return sanitize(s, 40)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return sanitize(n.String(), 40)
	}
	return ""
}

func (bybitSubDriver) create(ctx context.Context, c *call, sub string, native []string, k NewSubAccountKey) (*SubAccountKey, error) {
	uid, _ := strconv.ParseInt(sub, 10, 64)
	perms := map[string][]string{}
	readOnly := 0
	for _, n := range native {
		if n == "readOnly" {
			readOnly = 1
			continue
		}
		cat, val, _ := strings.Cut(n, ":")
		perms[cat] = append(perms[cat], val)
	}
	req := map[string]any{"subuid": uid, "note": k.Label, "readOnly": readOnly, "permissions": perms}
	if len(k.IPs) > 0 {
		req["ips"] = strings.Join(k.IPs, ",")
	}
	body, _ := json.Marshal(req)
	if err := c.waitEndpoint(ctx, bybitCreateSubPath, 1); err != nil {
		return nil, err
	}
	resp, err := bybitSubDo(ctx, c, http.MethodPost, bybitCreateSubPath, "", body)
	if err != nil {
		return nil, err
	}
	var r bybitSubKey
	if err := bybitSubResult(c, resp, &r, true); err != nil {
		return nil, err
	}
	key, ok := r.toKey(true)
	if !ok || key.Secret == "" {
		return nil, unexpected(Bybit, resp.Status, "create-sub-api: result without apiKey, secret or readOnly", nil)
	}
	// The create answer carries neither IPs nor dates: what was asked is
	// what Bybit binds, and an unbound key dies 90 days from now.
	key.IPs = append([]string{}, k.IPs...)
	now := c.Now().UTC()
	key.CreatedAt = &now
	if len(k.IPs) == 0 {
		exp := now.Add(90 * 24 * time.Hour)
		key.ExpiresAt = &exp
	}
	return &key, nil
}

func (bybitSubDriver) list(ctx context.Context, c *call, sub string) ([]SubAccountKey, error) {
	var out []SubAccountKey
	cursor := ""
	for page := 0; page < 100; page++ {
		q := url.Values{"subMemberId": {sub}, "limit": {"20"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := c.waitEndpoint(ctx, bybitListSubPath, 10); err != nil {
			return nil, err
		}
		resp, err := bybitSubDo(ctx, c, http.MethodGet, bybitListSubPath, q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var r struct {
			Result         []bybitSubKey `json:"result"`
			NextPageCursor string        `json:"nextPageCursor"`
		}
		if err := bybitSubResult(c, resp, &r, false); err != nil {
			return nil, err
		}
		for _, k := range r.Result {
			if key, ok := k.toKey(false); ok {
				out = append(out, key)
			}
		}
		if r.NextPageCursor == "" || r.NextPageCursor == cursor {
			return out, nil
		}
		cursor = r.NextPageCursor
	}
	return out, nil
}

func (bybitSubDriver) delete(ctx context.Context, c *call, sub, apiKey, _ string) error {
	body, _ := json.Marshal(map[string]string{"apikey": apiKey})
	if err := c.waitEndpoint(ctx, bybitDeleteSubPath, 5); err != nil {
		return err
	}
	resp, err := bybitSubDo(ctx, c, http.MethodPost, bybitDeleteSubPath, "", body)
	if err != nil {
		return err
	}
	return bybitSubResult(c, resp, nil, false)
}

// bybitSubResult maps a management answer: the error, or the result decoded
// into v.
func bybitSubResult(c *call, resp *response, v any, secret bool) error {
	status, body := resp.Status, resp.Body
	excerpt := body
	if secret {
		// The create answer holds the new secret: no excerpt of it may
		// reach an error.
		excerpt = nil
	}
	if status >= 500 {
		return fallback(Bybit, status, "server error", excerpt)
	}
	var env bybitEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.RetCode == nil {
		if status == http.StatusForbidden {
			return &Error{Kind: RateLimited, Exchange: Bybit, HTTPStatus: status, RetryAfter: bybitIPBanWait, Message: "HTTP 403: egress IP banned or blocked by Bybit"}
		}
		if status == http.StatusUnauthorized {
			return newError(Bybit, InvalidKey, status, "", "HTTP 401: the master key is not valid on this host")
		}
		return unexpected(Bybit, status, "not a Bybit v5 answer", excerpt)
	}
	switch code := *env.RetCode; code {
	case 0:
	case 500010:
		return newError(Bybit, SubAccountNotFound, status, "500010", env.RetMsg)
	case 81007, 20096:
		return newError(Bybit, AccountCannotIssue, status, strconv.FormatInt(code, 10), env.RetMsg)
	case 10005:
		return newError(Bybit, PermissionDenied, status, "10005", env.RetMsg+" (Bybit lets only the master account's key with Account Transfer, Subaccount Transfer or Withdrawal manage sub-account keys, "+bybitSubDoc+")")
	case 10001:
		return newError(Bybit, InvalidRequest, status, "10001", env.RetMsg)
	default:
		e := bybitError(status, code, env.RetMsg, excerpt)
		if e.Kind == RateLimited {
			if d := bybitLimitReset(resp.Header, c.Now()); d > 0 {
				e.RetryAfter = d
			}
		}
		return e
	}
	if v == nil {
		return nil
	}
	if len(bytes.TrimSpace(env.Result)) == 0 || json.Unmarshal(env.Result, v) != nil {
		return unexpected(Bybit, status, "result of the wrong shape", excerpt)
	}
	return nil
}
