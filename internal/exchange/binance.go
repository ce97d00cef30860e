package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Binance probes GET /sapi/v1/account/apiRestrictions, which needs no
// permission of its own and reports every scope of the key. The spot testnet
// (testnet.binance.vision) serves no /sapi routes, so there the probe falls
// back to GET /api/v3/account, which only reveals canTrade and canWithdraw.
//
// Binance answers a deleted key, a wrong IP and a missing permission with the
// same code, -2015. The probe endpoint needs no permission, so -2015 can only
// mean "unknown key" or "IP not allowed"; Binance appends ", request ip: <ip>"
// to the message when it rejects the caller's address (seen on the live
// exchange for allowlisted keys), and that suffix is what tells them apart.

const (
	binanceRestrictionsPath = "/sapi/v1/account/apiRestrictions"
	binanceAccountPath      = "/api/v3/account"
	binanceTimePath         = "/api/v3/time"
	// binanceRecvWindow is Binance's default; the prober's clock-offset
	// learning keeps us well inside it.
	binanceRecvWindow = "5000"
)

type binanceDriver struct{}

func init() { register(Binance, binanceDriver{}) }

func (binanceDriver) defaultBase() string { return "https://api.binance.com" }

// binanceIsTestnet reports whether base points at the spot testnet, which
// has no /sapi routes.
func binanceIsTestnet(base string) bool {
	return strings.Contains(strings.ToLower(base), "testnet")
}

// checkCredentials rejects RSA and Ed25519 private keys: Binance accepts
// them as an alternative to HMAC secrets, but this client signs with HMAC
// only, and a PEM would otherwise surface as a confusing signature error.
func (binanceDriver) checkCredentials(c Credentials) error {
	if strings.Contains(c.APISecret, "-----BEGIN") {
		return fmt.Errorf("API secret is a PEM private key: Binance RSA and Ed25519 keys are not supported, use an HMAC key")
	}
	if strings.ContainsAny(c.APISecret, " \t\r\n") {
		return fmt.Errorf("API secret contains whitespace (a trailing newline from a file?)")
	}
	return nil
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

func (d binanceDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	testnet := binanceIsTestnet(c.base)
	path := binanceRestrictionsPath
	if testnet {
		path = binanceAccountPath
	}
	q := binanceQuery([][2]string{
		{"timestamp", strconv.FormatInt(c.Now().UnixMilli(), 10)},
		{"recvWindow", binanceRecvWindow},
	})
	q += "&signature=" + binanceSign(c.creds.APISecret, q)
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
	return p, binancePause(c, resp, err)
}

// binancePause turns a rate-limit answer that did not come as 429/418 (a
// -1003 body, a 403 from the WAF) into a pause of every request to this base
// URL: Binance bans the egress IP, not the key, so other keys must wait too.
func binancePause(c *call, resp *response, err error) error {
	e, ok := AsError(err)
	if !ok || e.Kind != RateLimited {
		return err
	}
	return c.rateLimited(e.HTTPStatus, e.Code, e.Message, retryAfter(resp.Header, c.p.opts.Now()))
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

// binanceFlags maps apiRestrictions flags onto canonical permissions. FIX
// API flags are the same rights over another protocol; portfolio-margin
// trading covers both margin and futures in the unified account, so it is
// reported as both rather than hidden.
var binanceFlags = map[string][]string{
	"enableReading":                {PermRead},
	"enableFixReadOnly":            {PermRead},
	"enableSpotAndMarginTrading":   {PermTrade},
	"enableFixApiTrade":            {PermTrade},
	"enableWithdrawals":            {PermWithdraw},
	"enableInternalTransfer":       {PermTransfer},
	"permitsUniversalTransfer":     {PermTransfer},
	"enableMargin":                 {PermMargin},
	"enablePortfolioMarginTrading": {PermMargin, PermFutures},
	"enableFutures":                {PermFutures},
	"enableVanillaOptions":         {PermOptions},
}

// binanceUnchecked: Binance has no key scope for Earn products, so the key
// can be neither shown to have nor to lack it.
var binanceUnchecked = []string{PermEarn}

// parseBinanceAPIRestrictions maps GET /sapi/v1/account/apiRestrictions.
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
	granted := map[string]bool{}
	native := []string{}
	for name, raw := range fields {
		if !strings.HasPrefix(name, "enable") && !strings.HasPrefix(name, "permits") {
			continue
		}
		var on bool
		if err := json.Unmarshal(raw, &on); err != nil {
			return nil, unexpected(Binance, status, "apiRestrictions: flag "+sanitize(name, 40)+" is not a boolean", body)
		}
		if !on {
			continue
		}
		native = append(native, name)
		for _, p := range binanceFlags[name] {
			granted[p] = true
		}
	}
	p := &Permissions{
		Canonical:     canonicalSet(granted),
		Native:        sortedCopy(native),
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
// rights it reports, so the others are unchecked. The account's own
// permissions list (SPOT, MARGIN, ...) describes markets, not the key, and
// is kept as native names only.
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
	granted := map[string]bool{PermRead: true}
	native := []string{}
	if *r.CanTrade {
		granted[PermTrade] = true
		native = append(native, "canTrade")
	}
	if *r.CanWithdraw {
		granted[PermWithdraw] = true
		native = append(native, "canWithdraw")
	}
	if r.CanDeposit != nil && *r.CanDeposit {
		native = append(native, "canDeposit")
	}
	for _, perm := range r.Permissions {
		native = append(native, sanitize(perm, 40))
	}
	return &Permissions{
		Canonical: canonicalSet(granted),
		Native:    sortedCopy(native),
		Unchecked: []string{PermTransfer, PermMargin, PermFutures, PermOptions, PermEarn},
	}, nil
}

// binanceError maps an error answer {"code": <negative int>, "msg": "..."}.
func binanceError(status int, body []byte) *Error {
	var e struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == nil {
		switch {
		case status == http.StatusForbidden:
			// Binance documents 403 as a WAF rule violation; in practice it
			// is also how an IP ban continues after 418. Either way the
			// egress IP must back off, which only RateLimited does.
			return &Error{Kind: RateLimited, Exchange: Binance, HTTPStatus: status, Message: "HTTP 403: request blocked by Binance's web application firewall", Excerpt: sanitize(string(body), 120)}
		case status >= 500:
			return &Error{Kind: Unavailable, Exchange: Binance, HTTPStatus: status, Message: "server error", Excerpt: sanitize(string(body), 120)}
		}
		return unexpected(Binance, status, "not a Binance error object", body)
	}
	code := strconv.Itoa(*e.Code)
	kind := UnexpectedResponse
	switch *e.Code {
	case -2014, -2008:
		// -2014: API-key format invalid; -2008: Invalid Api-Key ID.
		kind = InvalidKey
	case -2015:
		if strings.Contains(strings.ToLower(e.Msg), "request ip") {
			kind = IPNotAllowed
		} else {
			kind = InvalidKey
		}
	case -1022:
		kind = InvalidSignature
	case -1021:
		kind = ClockSkew
	case -1002:
		// Unverified: the key is known and correctly signed but may not act
		// on an endpoint that needs no permission, which points at a key or
		// account that is disabled rather than unknown.
		kind = Inactive
	case -1003:
		kind = RateLimited
	case -1000, -1001, -1006, -1007, -1008, -1016:
		kind = Unavailable
	default:
		if status >= 500 {
			kind = Unavailable
		}
	}
	return newError(Binance, kind, status, code, e.Msg)
}
