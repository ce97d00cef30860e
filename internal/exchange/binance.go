package exchange

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Binance probes GET /sapi/v1/account/apiRestrictions, which needs no
// permission of its own and reports every scope of the key, whether it is
// bound to an IP allowlist (ipRestrict) and when it was created. The spot
// testnet (testnet.binance.vision) serves no /sapi routes, so there the probe
// falls back to GET /api/v3/account, which only reveals canTrade and
// canWithdraw.
//
// Key types: Binance issues HMAC, Ed25519 (recommended) and RSA keys
// (binance-spot-api-docs faqs/api_key_types.md). The secret tells them apart:
// an HMAC secret is a plain string, the others are PEM private keys whose
// public half was uploaded to Binance. All three sign the same payload (the
// query string as sent, then the body); HMAC gives lowercase hex, Ed25519
// and RSASSA-PKCS1-v1_5/SHA-256 give base64, which is percent-encoded as the
// signature parameter (rest-api.md, "SIGNED Endpoint Examples").
//
// A least-privilege key for a bot: Ed25519, "Enable Reading" plus only the
// trading scopes the bot needs, restricted to the cluster's egress IPs
// (withdrawals need an IP restriction, api-key-permission docs). The
// operator sees every scope, the allowlist flag (not the addresses) and the
// creation time. It does not read tradingAuthorityExpirationTime, which
// older answers carry for the spot trading right of unrestricted keys (not
// the key's own expiry).
//
// Binance answers an unknown or deleted key and a caller outside the
// allowlist with one code, -2015 "Invalid API-key, IP, or permissions for
// action" (errors.md). The ", request ip: <ip>" suffix some endpoint families
// append also comes with unknown keys (binance/binance-api-postman#77,
// ccxt/node-binance-api#531), so it does not say which: the answer is
// KeyOrIPRejected, quoting the IP when Binance gives one.

const (
	binanceRestrictionsPath = "/sapi/v1/account/apiRestrictions"
	binanceAccountPath      = "/api/v3/account"
	binanceTimePath         = "/api/v3/time"
	// binanceRecvWindow is Binance's default; the prober's clock-offset
	// learning keeps us well inside it.
	binanceRecvWindow = "5000"
	// binanceDefaultWait is the pause after a rate-limit answer that named
	// no Retry-After (a -1003 body, a WAF 403).
	binanceDefaultWait = time.Minute
)

type binanceDriver struct{}

func init() { register(Binance, binanceDriver{}) }

func (binanceDriver) defaultBase() string { return "https://api.binance.com" }

// binanceIsTestnet reports whether base points at the spot testnet, which
// has no /sapi routes.
func binanceIsTestnet(base string) bool {
	return strings.Contains(strings.ToLower(base), "testnet")
}

// binanceKeyType is the kind of key a Binance secret belongs to.
type binanceKeyType string

const (
	binanceHMAC    binanceKeyType = "HMAC"
	binanceEd25519 binanceKeyType = "Ed25519"
	binanceRSA     binanceKeyType = "RSA"
)

// binanceSecret is a parsed secret: the HMAC key, or an Ed25519 or RSA
// private key.
type binanceSecret struct {
	kind binanceKeyType
	hmac []byte
	ed   ed25519.PrivateKey
	rsa  *rsa.PrivateKey
}

const binanceAcceptedSecrets = "an HMAC secret (a string without whitespace) or an unencrypted PEM private key: PKCS#8 Ed25519, PKCS#8 RSA or PKCS#1 RSA"

// parseBinanceSecret tells the key type from the material. A secret holding
// "-----BEGIN" must be exactly one PEM private key; anything else is an HMAC
// secret, which never contains whitespace. Errors name shapes, never values.
func parseBinanceSecret(secret string) (*binanceSecret, error) {
	if !strings.Contains(secret, "-----BEGIN") {
		if strings.ContainsAny(secret, " \t\r\n") {
			return nil, fmt.Errorf("API secret contains whitespace (a trailing newline from a file?); Binance accepts %s", binanceAcceptedSecrets)
		}
		return &binanceSecret{kind: binanceHMAC, hmac: []byte(secret)}, nil
	}
	block, rest := pem.Decode([]byte(strings.TrimSpace(secret)))
	if block == nil {
		return nil, fmt.Errorf("API secret looks like PEM but does not decode; Binance accepts %s", binanceAcceptedSecrets)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("API secret holds more than one PEM block; Binance accepts %s", binanceAcceptedSecrets)
	}
	switch block.Type {
	case "PRIVATE KEY":
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("API secret is a PKCS#8 PEM that does not parse; Binance accepts %s", binanceAcceptedSecrets)
		}
		switch k := key.(type) {
		case ed25519.PrivateKey:
			return &binanceSecret{kind: binanceEd25519, ed: k}, nil
		case *rsa.PrivateKey:
			return &binanceSecret{kind: binanceRSA, rsa: k}, nil
		}
		return nil, fmt.Errorf("API secret is a PKCS#8 key of another algorithm (EC?); Binance accepts %s", binanceAcceptedSecrets)
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("API secret is a PKCS#1 PEM that does not parse; Binance accepts %s", binanceAcceptedSecrets)
		}
		return &binanceSecret{kind: binanceRSA, rsa: k}, nil
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("API secret is an encrypted private key; store it unencrypted in the Secret. Binance accepts %s", binanceAcceptedSecrets)
	case "PUBLIC KEY":
		return nil, fmt.Errorf("API secret is a public key: Binance holds that half; the Secret needs the private key. Binance accepts %s", binanceAcceptedSecrets)
	}
	return nil, fmt.Errorf("API secret is a PEM block of type %q; Binance accepts %s", sanitize(block.Type, 40), binanceAcceptedSecrets)
}

// checkCredentials rejects secrets that are none of the three key types.
func (binanceDriver) checkCredentials(c Credentials) error {
	_, err := parseBinanceSecret(c.APISecret)
	return err
}

// binanceQuery percent-encodes each value and joins the pairs in the given
// order. Binance verifies the signature over the query string exactly as
// sent, so the encoded form is both what is signed and what goes on the wire.
func binanceQuery(params [][2]string) string {
	var b strings.Builder
	for i, kv := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[0]))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[1]))
	}
	return b.String()
}

// binanceSign is the lowercase hex HMAC-SHA256 of payload (query string
// followed by the body) keyed with the secret.
func binanceSign(secret, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return hex.EncodeToString(m.Sum(nil))
}

// rawSignature is the signature before it goes on the wire: hex for HMAC,
// base64 for Ed25519 and RSASSA-PKCS1-v1_5 over SHA-256 (both
// deterministic, so known answers hold).
func (s *binanceSecret) rawSignature(payload string) (string, error) {
	switch s.kind {
	case binanceEd25519:
		return base64.StdEncoding.EncodeToString(ed25519.Sign(s.ed, []byte(payload))), nil
	case binanceRSA:
		digest := sha256.Sum256([]byte(payload))
		sig, err := rsa.SignPKCS1v15(nil, s.rsa, crypto.SHA256, digest[:])
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(sig), nil
	}
	return binanceSign(string(s.hmac), payload), nil
}

// signature is the value of the signature parameter as sent: the raw
// signature percent-encoded (base64's +, / and = must not reach the query
// as they are; hex is unchanged).
func (s *binanceSecret) signature(payload string) (string, error) {
	raw, err := s.rawSignature(payload)
	if err != nil {
		return "", err
	}
	return url.QueryEscape(raw), nil
}

func (d binanceDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	secret, err := parseBinanceSecret(c.creds.APISecret)
	if err != nil {
		// CheckCredentials ran first; this is only reachable if it did not.
		return nil, &Error{Kind: InvalidKey, Exchange: Binance, Message: err.Error()}
	}
	testnet := binanceIsTestnet(c.base)
	path := binanceRestrictionsPath
	if testnet {
		path = binanceAccountPath
	}
	q := binanceQuery([][2]string{
		{"timestamp", strconv.FormatInt(c.Now().UnixMilli(), 10)},
		{"recvWindow", binanceRecvWindow},
	})
	sig, err := secret.signature(q)
	if err != nil {
		return nil, &Error{Kind: InvalidKey, Exchange: Binance, Message: "cannot sign with this " + string(secret.kind) + " private key"}
	}
	q += "&signature=" + sig
	h := http.Header{}
	h.Set("X-MBX-APIKEY", c.creds.APIKey)
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, h)
	if err != nil {
		return nil, err
	}
	var p *Permissions
	if testnet {
		p, err = parseBinanceAccount(resp.Status, resp.Body)
	} else {
		p, err = parseBinanceAPIRestrictions(resp.Status, resp.Body)
	}
	if e, ok := AsError(err); ok && e.Kind == RateLimited && e.RetryAfter == 0 {
		// A -1003 body or a WAF 403: Binance limits the egress IP
		// (ScopeEndpoint, set by binanceError), and the prober pauses the
		// whole base URL for this long.
		e.RetryAfter = retryAfter(resp.Header, c.p.opts.Now())
		if e.RetryAfter <= 0 {
			e.RetryAfter = binanceDefaultWait
		}
	}
	return p, err
}

func (binanceDriver) serverTime(ctx context.Context, c *call) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, binanceTimePath, "", nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return parseBinanceServerTime(resp.Status, resp.Body)
}

// parseBinanceServerTime reads GET /api/v3/time: {"serverTime": <ms>}.
func parseBinanceServerTime(status int, body []byte) (time.Time, error) {
	if status != http.StatusOK {
		return time.Time{}, binanceError(status, body)
	}
	var r struct {
		ServerTime *int64 `json:"serverTime"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.ServerTime == nil || *r.ServerTime <= 0 {
		return time.Time{}, unexpected(Binance, status, "server time: want {\"serverTime\": <ms>}", body)
	}
	return time.UnixMilli(*r.ServerTime).UTC(), nil
}

const (
	binanceAPIKeyPermissionDoc = "developers.binance.com/docs/wallet/account/api-key-permission"
	binanceAccountDoc          = "binance-spot-api-docs rest-api.md, Account information (USER_DATA)"
)

// binancePermissions is every native permission the probe can report, from
// apiRestrictions (production) and /api/v3/account (testnet), and the
// canonical permissions each implies.
var binancePermissions = permissionTable{
	{"enableReading", []string{PermRead}, binanceAPIKeyPermissionDoc},
	{"enableSpotAndMarginTrading", []string{PermTrade, PermMargin},
		binanceAPIKeyPermissionDoc + `: "Spot and margin trading", one flag for both markets`},
	{"enableWithdrawals", []string{PermWithdraw}, binanceAPIKeyPermissionDoc + `: "allows you to withdraw via API"`},
	{"enableInternalTransfer", []string{PermTransfer},
		binanceAPIKeyPermissionDoc + `: "transfer funds between your master account and your sub account"`},
	{"permitsUniversalTransfer", []string{PermTransfer},
		binanceAPIKeyPermissionDoc + `: the universal transfer API between wallets`},
	{"enableMargin", []string{PermMargin},
		binanceAPIKeyPermissionDoc + "; the sub-account key form calls it canMarginLoanRepay (margin loan and repay)"},
	{"enableFutures", []string{PermFutures}, binanceAPIKeyPermissionDoc + ": futures trading"},
	{"enableVanillaOptions", []string{PermOptions}, binanceAPIKeyPermissionDoc + `: "Vanilla options trading"`},
	{"enablePortfolioMarginTrading", []string{PermMargin, PermFutures},
		binanceAPIKeyPermissionDoc + "; the portfolio margin API trades cross margin and USDⓈ-M/COIN-M futures (developers.binance.com/docs/derivatives/portfolio-margin)"},
	{"enableFixApiTrade", []string{PermTrade},
		binanceAPIKeyPermissionDoc + " (zh-CN: FIX API trading); spot order entry over FIX, binance-spot-api-docs fix-api.md"},
	{"enableFixReadOnly", []string{PermRead}, binanceAPIKeyPermissionDoc + " (zh-CN: FIX API read)"},
	{"canTrade", []string{PermTrade}, binanceAccountDoc + " (testnet: spot only)"},
	{"canWithdraw", []string{PermWithdraw}, binanceAccountDoc},
	{"canDeposit", nil, binanceAccountDoc + ": the account may deposit, no key right"},
}

// binanceUnchecked: Binance has no key scope for Earn products, so the key
// can be neither shown to have nor to lack it.
var binanceUnchecked = []string{PermEarn}

// parseBinanceAPIRestrictions maps GET /sapi/v1/account/apiRestrictions.
// Every enable*/permits* flag that is true is a native permission, known to
// binancePermissions or not, so that a new scope is at least visible.
func parseBinanceAPIRestrictions(status int, body []byte) (*Permissions, error) {
	if status != http.StatusOK {
		return nil, binanceError(status, body)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, unexpected(Binance, status, "apiRestrictions: not a JSON object", body)
	}
	if _, isErr := fields["code"]; isErr {
		return nil, binanceError(status, body)
	}
	var r struct {
		IPRestrict    *bool  `json:"ipRestrict"`
		CreateTime    *int64 `json:"createTime"`
		EnableReading *bool  `json:"enableReading"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.IPRestrict == nil || r.EnableReading == nil {
		return nil, unexpected(Binance, status, "apiRestrictions: want ipRestrict and enableReading", body)
	}
	native := []string{}
	for name, raw := range fields {
		if !strings.HasPrefix(name, "enable") && !strings.HasPrefix(name, "permits") {
			continue
		}
		var on bool
		if err := json.Unmarshal(raw, &on); err != nil {
			return nil, unexpected(Binance, status, "apiRestrictions: flag "+sanitize(name, 40)+" is not a boolean", body)
		}
		if on {
			native = append(native, sanitize(name, 60))
		}
	}
	native = sortedCopy(native)
	canonical, grants := binancePermissions.grant(native)
	p := &Permissions{
		Canonical:     canonical,
		Native:        native,
		Grants:        grants,
		Unchecked:     append([]string{}, binanceUnchecked...),
		IPRestriction: restrictedIf(*r.IPRestrict),
	}
	if r.CreateTime != nil && *r.CreateTime > 0 {
		t := time.UnixMilli(*r.CreateTime).UTC()
		p.CreatedAt = &t
	}
	return p, nil
}

// parseBinanceAccount maps the testnet's GET /api/v3/account. A successful
// signed call proves read access; canTrade and canWithdraw are the only key
// rights it reports, so the others are unchecked, and it says nothing about
// an allowlist (IPUnknown). The account's own permissions list (SPOT,
// MARGIN, ...) describes markets, not the key, and is kept as native names
// that grant nothing.
func parseBinanceAccount(status int, body []byte) (*Permissions, error) {
	if status != http.StatusOK {
		return nil, binanceError(status, body)
	}
	var r struct {
		Code        *int     `json:"code"`
		CanTrade    *bool    `json:"canTrade"`
		CanWithdraw *bool    `json:"canWithdraw"`
		CanDeposit  *bool    `json:"canDeposit"`
		Permissions []string `json:"permissions"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, unexpected(Binance, status, "account: want a JSON object with canTrade and canWithdraw", body)
	}
	if r.Code != nil {
		return nil, binanceError(status, body)
	}
	if r.CanTrade == nil || r.CanWithdraw == nil {
		return nil, unexpected(Binance, status, "account: want canTrade and canWithdraw", body)
	}
	native := []string{}
	if *r.CanTrade {
		native = append(native, "canTrade")
	}
	if *r.CanWithdraw {
		native = append(native, "canWithdraw")
	}
	if r.CanDeposit != nil && *r.CanDeposit {
		native = append(native, "canDeposit")
	}
	for _, perm := range r.Permissions {
		native = append(native, sanitize(perm, 40))
	}
	native = sortedCopy(native)
	canonical, grants := binancePermissions.grant(native)
	// The signed call itself proves read access.
	canonical = canonicalSet(toSet(append(canonical, PermRead)))
	return &Permissions{
		Canonical:     canonical,
		Native:        native,
		Grants:        grants,
		Unchecked:     []string{PermTransfer, PermMargin, PermFutures, PermOptions, PermEarn},
		IPRestriction: IPUnknown,
	}, nil
}

// binanceRequestIP finds the address in "..., request ip: <ip>" and
// returns it only if it parses as an IP.
func binanceRequestIP(msg string) string {
	i := strings.LastIndex(strings.ToLower(msg), "request ip:")
	if i < 0 {
		return ""
	}
	s := strings.TrimSpace(msg[i+len("request ip:"):])
	if j := strings.IndexAny(s, " ,;"); j >= 0 {
		s = s[:j]
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	return addr.String()
}

// binanceError maps an error answer {"code": <negative int>, "msg": "..."}
// (codes and names from binance-spot-api-docs errors.md).
func binanceError(status int, body []byte) *Error {
	var e struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == nil {
		switch {
		case status == http.StatusForbidden:
			// rest-api.md: "HTTP 403 return code is used when the WAF
			// Limit (Web Application Firewall) has been violated"; it
			// also continues an IP ban. Either way the egress IP must
			// back off, so every key of this base URL waits.
			return &Error{Kind: RateLimited, Scope: ScopeEndpoint, Exchange: Binance, HTTPStatus: status, Message: "HTTP 403: request blocked by Binance's web application firewall", Excerpt: sanitize(string(body), 120)}
		case status >= 500:
			return &Error{Kind: Unavailable, Exchange: Binance, HTTPStatus: status, Message: "server error", Excerpt: sanitize(string(body), 120)}
		}
		return unexpected(Binance, status, "not a Binance error object", body)
	}
	code := strconv.Itoa(*e.Code)
	kind := UnexpectedResponse
	var ip string
	ambiguous := false
	switch *e.Code {
	case -2014:
		// BAD_API_KEY_FMT "API-key format invalid.": no key can look like
		// this, so it is definitely not a key Binance knows.
		kind = InvalidKey
	case -2008:
		// "Invalid Api-Key ID." (derivatives and sapi families; not in the
		// spot list).
		kind = InvalidKey
	case -2015:
		// REJECTED_MBX_KEY "Invalid API-key, IP, or permissions for
		// action.": the probe needs no permission, so an unknown key or a
		// caller outside the allowlist, and Binance does not say which.
		kind = KeyOrIPRejected
		ip = binanceRequestIP(e.Msg)
		ambiguous = true // a valid key from outside its allowlist gets it too (ambiguousAnswers)
	case -1022:
		kind = InvalidSignature // INVALID_SIGNATURE
	case -1021:
		kind = ClockSkew // INVALID_TIMESTAMP: outside recvWindow or 1000 ms ahead
	case -1002:
		// UNAUTHORIZED "You are not authorized to execute this request."
		// (errors.md): Binance does not authorize this key for this
		// request, the one meaning both this file and
		// subaccount_binance.go give it. apiRestrictions needs no
		// permission, and Binance documents no cause of -1002 for it, so
		// the probe draws no conclusion about the key (unverified: no
		// verdict, Binance's words in the message). On the master-only
		// sub-account endpoints the same refusal means that key may not
		// manage sub-account keys (NotMasterKey there).
		kind = UnexpectedResponse
	case -1003:
		// TOO_MANY_REQUESTS: request weight is counted per IP.
		kind = RateLimited
	case -1000, -1001, -1006, -1007, -1008, -1016:
		// UNKNOWN, DISCONNECTED, UNEXPECTED_RESP, TIMEOUT, SERVER_BUSY,
		// SERVICE_SHUTTING_DOWN.
		kind = Unavailable
	default:
		if status >= 500 {
			kind = Unavailable
		}
	}
	err := newError(Binance, kind, status, code, e.Msg)
	err.IP = ip
	if ambiguous {
		err = markAmbiguous(err)
	}
	if kind == RateLimited {
		err.Scope = ScopeEndpoint
	}
	return err
}
