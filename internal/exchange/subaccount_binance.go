package exchange

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Binance sub-account keys (developers.binance.com, "Sub Account" > "API
// Management", For Master Account; request and answer shapes also in
// binance/binance-connector-go clients/subaccount, api_management_api.go and
// its tests):
//
// | Call   | Endpoint                                   | Parameters                                  | Weight (UID) | Source |
// |--------|--------------------------------------------|---------------------------------------------|--------------|--------|
// | create | POST /sapi/v1/sub-account/subAccountApi     | email, apiName, status (1 unrestricted, 2 trusted IPs, 3 third party), canTrade, canMarginLoanRepay, canFuturesTrade, canUniversalTransfer, canVanillaOptions, ipAddress (status 2, <= 500 chars), publicKey (Ed25519), timestamp | 3000 | legacy-docs/sub_account/api-management/Create-Sub-account-API-Key |
// | list   | GET  /sapi/v1/sub-account/subAccountApi     | email, subAccountApiKey (optional), page, size (<= 100) | 3000 | connector: QuerySubAccountApiKey; answer {"total","list":[{email, apiName, apikey, can*, timestamp}]} |
// | delete | DELETE /sapi/v1/sub-account/subAccountApi   | email, subAccountApiKey                     | 3000 | legacy-docs/sub_account/api-management/Delete-Sub-account-API-Key |
// | master | GET  /sapi/v1/sub-account/list              | email, page, limit (For Master Account)     | 1 (IP)       | Query Sub-account List |
//
// The 2026 docs also list POST /sapi/v2/sub-account/subAccountApi (same
// form plus canFixApiTrading/Reading, publicKey "RSA or Ed25519" and "must
// be in the request body"). This client keeps the v1 path the issue names
// and sends every parameter in the form body, which both versions accept
// (the signature covers query string + body). IP allowlists are edited with
// /sapi/v2/sub-account/subAccountApi/ipRestriction; the list answer carries
// none, so ListSubAccountKeys reports no IPs for Binance.
//
// Master key: a main account's key ("For Master Account"; asset-management
// sub-accounts are not supported; "the caller must pass the KYC IP
// restriction check"), and the create and delete calls are TRADE endpoints,
// so the key needs "Enable Spot & Margin Trading" (enableSpotAndMarginTrading),
// which Binance keeps only on IP-restricted keys.
//
// Rate limit: UID weight 3000 of 180000 per minute, i.e. one call a second.
//
// Canonical -> native (create flags; the probe's apiRestrictions flag):
//
// | canonical | create flag          | apiRestrictions flag        | also grants |
// |-----------|----------------------|-----------------------------|-------------|
// | read      | every key            | enableReading               | -           |
// | trade     | canTrade             | enableSpotAndMarginTrading  | margin ("Spot & Margin trading") |
// | margin    | canMarginLoanRepay   | enableMargin                | -           |
// | futures   | canFuturesTrade      | enableFutures               | -           |
// | options   | canVanillaOptions    | enableVanillaOptions        | -           |
// | transfer  | canUniversalTransfer | permitsUniversalTransfer    | -           |
// | withdraw, earn | none            | -                           | -           |
//
// Keys are Ed25519: the caller sends its public key as a PKIX PEM (the form
// of binance-spot-api-docs faqs/api_key_types.md) and keeps the private key;
// the create answer's secretKey is then not a secret to keep.
//
// Errors: binanceError's codes, plus -1002 UNAUTHORIZED "You are not
// authorized to execute this request" (binance-spot-api-docs errors.md; the
// same meaning as in binanceError: Binance does not authorize this key for
// this request). These endpoints are For Master Account and TRADE, so the
// key may not manage sub-account keys -> NotMasterKey, with a message that
// names both documented requirements and claims neither; -1130 "Data sent
// for parameter 'email' is not valid" -> SubAccountNotFound (the email is
// not one of this master's sub-accounts); other -1102/-1130 (bad parameter)
// -> InvalidRequest. No code for "no such key" is documented:
// DeleteSubAccountKey asks the list.
const (
	binanceSubKeyPath  = "/sapi/v1/sub-account/subAccountApi"
	binanceSubListPath = "/sapi/v1/sub-account/list"
	binanceSubDoc      = "developers.binance.com/docs/sub_account/api-management (Create Sub-account API Key, For Master Account)"
)

type binanceSubDriver struct{}

func init() { registerSub(Binance, binanceSubDriver{}) }

func (binanceSubDriver) natives() []subNative {
	return []subNative{
		{[]string{"canTrade"}, []string{PermTrade, PermMargin}, binanceSubDoc + ": \"Spot & Margin trading permission\""},
		{[]string{"canMarginLoanRepay"}, []string{PermMargin}, binanceSubDoc + ": \"Margin borrow/repay permission\""},
		{[]string{"canFuturesTrade"}, []string{PermFutures}, binanceSubDoc + ": \"Futures trading permission\""},
		{[]string{"canVanillaOptions"}, []string{PermOptions}, binanceSubDoc + ": \"Vanilla options permission\""},
		{[]string{"canUniversalTransfer"}, []string{PermTransfer}, binanceSubDoc + ": \"Universal transfer permission\""},
	}
}

// readOnly: every Binance key reads; no flag is needed.
func (binanceSubDriver) readOnly() []string { return []string{} }

// binanceSubFlags are the create form's flags, in its order.
var binanceSubFlags = []string{"canTrade", "canMarginLoanRepay", "canFuturesTrade", "canUniversalTransfer", "canVanillaOptions"}

func (binanceSubDriver) validate(r SubAccountRequest, k NewSubAccountKey) error {
	if len(k.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("Binance sub-account keys are created from the caller's Ed25519 public key, and none (or one of the wrong size) was given") //nolint:staticcheck // ST1005: starts with a proper noun
	}
	if !strings.Contains(r.SubAccount, "@") {
		return fmt.Errorf("a Binance sub-account is named by its email")
	}
	if len(strings.Join(k.IPs, ",")) > 500 {
		return fmt.Errorf("Binance takes at most 500 characters of IP addresses (%s)", binanceSubDoc) //nolint:staticcheck // ST1005: starts with a proper noun
	}
	if k.Label == "" {
		return fmt.Errorf("Binance requires an apiName") //nolint:staticcheck // ST1005: starts with a proper noun
	}
	return nil
}

// binanceSubSign signs payload with the master key: HMAC for a plain
// secret, Ed25519 for a PKCS#8 PEM (binance-spot-api-docs rest-api.md,
// "SIGNED Endpoint Examples"). The returned value is ready for the form.
func binanceSubSign(secret, payload string) (string, error) {
	if !strings.Contains(secret, "-----BEGIN") {
		return binanceSign(secret, payload), nil
	}
	block, _ := pem.Decode([]byte(strings.TrimSpace(secret)))
	if block == nil || block.Type != "PRIVATE KEY" {
		return "", fmt.Errorf("master secret: not a PKCS#8 PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("master secret: PKCS#8 PEM does not parse")
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return "", fmt.Errorf("master secret: only HMAC and Ed25519 master keys can manage sub-account keys here")
	}
	return url.QueryEscape(base64.StdEncoding.EncodeToString(ed25519.Sign(ed, []byte(payload)))), nil
}

// binanceSubDo sends a signed management call: for POST every parameter in
// the form body, otherwise in the query string; signature last.
func binanceSubDo(ctx context.Context, c *call, method, path string, params [][2]string) (*response, error) {
	params = append(params, [2]string{"timestamp", strconv.FormatInt(c.Now().UnixMilli(), 10)}, [2]string{"recvWindow", binanceRecvWindow})
	payload := binanceQuery(params)
	sig, err := binanceSubSign(c.creds.APISecret, payload)
	if err != nil {
		return nil, &Error{Kind: InvalidKey, Exchange: Binance, Message: err.Error()}
	}
	payload += "&signature=" + sig
	h := http.Header{}
	h.Set("X-MBX-APIKEY", c.creds.APIKey)
	if method == http.MethodPost {
		h.Set("Content-Type", "application/x-www-form-urlencoded")
		return c.do(ctx, method, path, "", []byte(payload), h)
	}
	return c.do(ctx, method, path, payload, nil, h)
}

func (binanceSubDriver) checkMaster(ctx context.Context, c *call, perms *Permissions, sub string) (*MasterCheck, error) {
	params := [][2]string{{"page", "1"}, {"limit", "1"}}
	if sub != "" {
		params = append([][2]string{{"email", sub}}, params...)
	}
	resp, err := binanceSubDo(ctx, c, http.MethodGet, binanceSubListPath, params)
	if err != nil {
		return nil, err
	}
	var r struct {
		SubAccounts []struct {
			Email                       string `json:"email"`
			IsAssetManagementSubAccount bool   `json:"isAssetManagementSubAccount"`
		} `json:"subAccounts"`
	}
	if err := binanceSubResult(c, resp, &r, false); err != nil {
		return nil, err
	}
	if sub != "" {
		if len(r.SubAccounts) == 0 {
			return nil, &Error{Kind: SubAccountNotFound, Exchange: Binance, Message: "the master account has no sub-account with this email"}
		}
		if r.SubAccounts[0].IsAssetManagementSubAccount {
			return &MasterCheck{Missing: "Binance does not manage the keys of asset-management sub-accounts (" + binanceSubDoc + ")"}, nil
		}
	}
	if !toSet(perms.Native)["enableSpotAndMarginTrading"] {
		return &MasterCheck{Missing: "the master key needs \"Enable Spot & Margin Trading\": creating and deleting sub-account keys are TRADE endpoints (" + binanceSubDoc + ")"}, nil
	}
	return &MasterCheck{CanManage: true}, nil
}

type binanceSubKey struct {
	APIName              string   `json:"apiName"`
	APIKey               string   `json:"apiKey"`
	APIKeyLower          string   `json:"apikey"`
	CanTrade             bool     `json:"canTrade"`
	CanMarginLoanRepay   bool     `json:"canMarginLoanRepay"`
	CanFuturesTrade      bool     `json:"canFuturesTrade"`
	CanUniversalTransfer bool     `json:"canUniversalTransfer"`
	CanVanillaOptions    bool     `json:"canVanillaOptions"`
	IPList               []string `json:"ipList"`
	Timestamp            int64    `json:"timestamp"`
}

func (k binanceSubKey) toKey() SubAccountKey {
	id := k.APIKey
	if id == "" {
		id = k.APIKeyLower
	}
	out := SubAccountKey{APIKey: sanitize(id, 100), Label: sanitize(k.APIName, 100), Native: []string{}, CreatedAt: subTime(k.Timestamp)}
	for flag, on := range map[string]bool{"canTrade": k.CanTrade, "canMarginLoanRepay": k.CanMarginLoanRepay, "canFuturesTrade": k.CanFuturesTrade, "canUniversalTransfer": k.CanUniversalTransfer, "canVanillaOptions": k.CanVanillaOptions} {
		if on {
			out.Native = append(out.Native, flag)
		}
	}
	out.Native = sortedCopy(out.Native)
	for _, ip := range k.IPList {
		out.IPs = append(out.IPs, splitList(ip)...)
	}
	return out
}

func (binanceSubDriver) create(ctx context.Context, c *call, sub string, native []string, k NewSubAccountKey) (*SubAccountKey, error) {
	der, err := x509.MarshalPKIXPublicKey(k.PublicKey)
	if err != nil {
		return nil, &Error{Kind: InvalidRequest, Exchange: Binance, Message: "the Ed25519 public key does not encode"}
	}
	status := "1"
	if len(k.IPs) > 0 {
		status = "2"
	}
	params := [][2]string{{"email", sub}, {"apiName", k.Label}, {"status", status}}
	on := toSet(native)
	for _, f := range binanceSubFlags {
		params = append(params, [2]string{f, strconv.FormatBool(on[f])})
	}
	if len(k.IPs) > 0 {
		params = append(params, [2]string{"ipAddress", strings.Join(k.IPs, ",")})
	}
	params = append(params, [2]string{"publicKey", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
	if err := c.waitEndpoint(ctx, binanceSubKeyPath+" POST", 1); err != nil {
		return nil, err
	}
	resp, err := binanceSubDo(ctx, c, http.MethodPost, binanceSubKeyPath, params)
	if err != nil {
		return nil, err
	}
	var r binanceSubKey
	if err := binanceSubResult(c, resp, &r, true); err != nil {
		return nil, err
	}
	key := r.toKey()
	if key.APIKey == "" {
		return nil, unexpected(Binance, resp.Status, "create: answer without apiKey", nil)
	}
	// Binance answers with a secretKey field for HMAC keys; for an Ed25519
	// key the caller's private key is the secret, so nothing is kept.
	if len(key.IPs) == 0 {
		key.IPs = append([]string{}, k.IPs...)
	}
	if key.CreatedAt == nil {
		now := c.Now().UTC()
		key.CreatedAt = &now
	}
	return &key, nil
}

func (binanceSubDriver) list(ctx context.Context, c *call, sub string) ([]SubAccountKey, error) {
	var out []SubAccountKey
	for page := 1; page <= 100; page++ {
		if err := c.waitEndpoint(ctx, binanceSubKeyPath+" GET", 1); err != nil {
			return nil, err
		}
		resp, err := binanceSubDo(ctx, c, http.MethodGet, binanceSubKeyPath, [][2]string{{"email", sub}, {"page", strconv.Itoa(page)}, {"size", "100"}})
		if err != nil {
			return nil, err
		}
		var r struct {
			Total int             `json:"total"`
			List  []binanceSubKey `json:"list"`
			Rows  []binanceSubKey `json:"rows"`
		}
		if err := binanceSubResult(c, resp, &r, false); err != nil {
			return nil, err
		}
		rows := append(r.List, r.Rows...)
		for _, k := range rows {
			if key := k.toKey(); key.APIKey != "" {
				out = append(out, key)
			}
		}
		if len(rows) == 0 || len(out) >= r.Total {
			return out, nil
		}
	}
	return out, nil
}

func (binanceSubDriver) delete(ctx context.Context, c *call, sub, apiKey, _ string) error {
	if err := c.waitEndpoint(ctx, binanceSubKeyPath+" DELETE", 1); err != nil {
		return err
	}
	resp, err := binanceSubDo(ctx, c, http.MethodDelete, binanceSubKeyPath, [][2]string{{"email", sub}, {"subAccountApiKey", apiKey}})
	if err != nil {
		return err
	}
	return binanceSubResult(c, resp, nil, false)
}

// binanceSubResult maps a management answer: the error, or the body
// decoded into v.
func binanceSubResult(c *call, resp *response, v any, secret bool) error {
	excerpt := resp.Body
	if secret {
		excerpt = nil
	}
	if resp.Status != http.StatusOK {
		var e struct {
			Code *int   `json:"code"`
			Msg  string `json:"msg"`
		}
		if json.Unmarshal(resp.Body, &e) == nil && e.Code != nil {
			switch *e.Code {
			case -1002:
				return newError(Binance, NotMasterKey, resp.Status, "-1002", e.Msg+" (Binance does not authorize this key to manage sub-account keys: these endpoints are For Master Account and need Enable Spot & Margin Trading, "+binanceSubDoc+")")
			case -1130:
				if strings.Contains(e.Msg, "'email'") {
					// The parameter that names the sub-account is refused:
					// no sub-account of this master has that email.
					// Binance documents no sharper code (errors.md: -1130
					// INVALID_PARAMETER "Data sent for parameter '%s' is
					// not valid.").
					return newError(Binance, SubAccountNotFound, resp.Status, "-1130", e.Msg+" (the master account has no sub-account with this email)")
				}
				return newError(Binance, InvalidRequest, resp.Status, "-1130", e.Msg)
			case -1102, -1100, -1106:
				return newError(Binance, InvalidRequest, resp.Status, strconv.Itoa(*e.Code), e.Msg)
			}
		}
		be := binanceError(resp.Status, resp.Body)
		if be.Kind == RateLimited && be.RetryAfter == 0 {
			// A -1003 body or a WAF 403 without Retry-After: Binance
			// limits the egress IP; the prober escalates (subaccount.go).
			be.RetryAfter = retryAfter(resp.Header, c.Now())
			if be.RetryAfter == 0 {
				be.RetryAfter = time.Minute
			}
		}
		return be
	}
	if v == nil {
		return nil
	}
	if json.Unmarshal(resp.Body, v) != nil {
		return unexpected(Binance, resp.Status, "answer of the wrong shape", excerpt)
	}
	return nil
}
