package exchange

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kraken (spot) probe: POST /0/private/GetApiKeyInfo ("API Key Permissions
// Required: None", docs.kraken.com/api-reference/account-data/get-api-key-info),
// so every valid key can call it, and the answer lists the key's own
// permissions, IP allowlist (ipAllowlist), creation time and expiry
// (validUntil, 0 = never).
//
// Least-privilege key for a trading bot (Settings -> API, docs.kraken.com
// exchange/guides/rest/api-keys "Algorithmic spot trading"): Query Funds,
// Query Open Orders & Trades, Create & Modify Orders, Cancel/Close Orders;
// no Withdraw Funds. Restrict it to the bot's egress IPs: the operator sees
// the allowlist and can require it.
//
// What the operator sees: every permission (krakenPermissions below), the
// allowlist (IPRestriction True/False, never Unknown), creation and expiry.
// What it cannot see: whether the key has API two-factor authentication
// (an "otp" parameter on every request, exchange/guides/rest/authentication):
// such a key cannot be probed without the second factor, which the operator
// does not hold; the answer Kraken gives then is not documented.
//
// Nonces: Kraken refuses a nonce not greater than the last one it accepted
// for the key, and the key is shared with the bots that use it, so the probe
// sends nonces in the declared unit (spec.validation.nonceUnit; milliseconds
// by default, as Kraken recommends and ccxt does), never above that unit's
// clock (nonce.go). "EAPI:Invalid nonce" becomes NonceConflict, which the
// prober retries a few times with its clock before giving up; it never
// switches unit.
//
// Kraken answers errors as HTTP 200 with {"error":["EAPI:Invalid key"]}
// (docs.kraken.com api/docs/guides/spot-errors and exchange/guides/general/errors):
//
//	EAPI:Invalid key                     -> InvalidKey (missing, deleted, revoked)
//	EAPI:Invalid signature               -> InvalidSignature
//	EAPI:Invalid nonce                   -> NonceConflict ("less than or equal to the
//	                                        last accepted nonce for this API key";
//	                                        bounded retry, see nonce.go)
//	EGeneral:Permission denied           -> PermissionDenied ("API key doesn't have
//	                                        permission to make this request", spot-errors;
//	                                        ccxt: PermissionDenied; see below)
//	EAPI:Key disabled, EAPI:Key expired  -> Inactive (unverified: Kraken documents
//	                                        no error for a disabled/expired key;
//	                                        these are the simulator's strings)
//	EAPI:Rate limit exceeded             -> RateLimited, ScopeKey: "Each API key's
//	                                        counter is separate" (exchange/guides/rest/ratelimits)
//	EService:Throttled:<unix time>       -> RateLimited, whole base URL, until that
//	                                        time: "too many concurrent requests. Try
//	                                        again after [timestamp]" (same page)
//	EGeneral:Temporary lockout           -> RateLimited, whole base URL, 15 min:
//	                                        "Too many sequential EAPI:Invalid key
//	                                        errors" (spot-errors); lockouts are "IP
//	                                        based" and "typically last approximately
//	                                        15 minutes" (support.kraken.com, article
//	                                        360001491786 "API Error Codes")
//	EService:Unavailable, EService:Busy,
//	EService:Deadline elapsed,
//	EGeneral:Internal error[:<code>]     -> Unavailable
//
// "EGeneral:Permission denied" is reported as what Kraken documents it to
// be, "API key doesn't have permission to make this request"
// (api/docs/guides/spot-errors), and ccxt classifies it the same way
// (PermissionDenied). GetApiKeyInfo needs no key permission, so the message
// says so too; Kraken documents no error for a caller outside the key's IP
// allowlist, and the operator no longer claims that this is one.
type krakenDriver struct{}

const (
	krakenKeyInfoPath = "/0/private/GetApiKeyInfo"
	// krakenLockout: temporary lockouts "typically last approximately 15
	// minutes" (support.kraken.com, article 360001491786 "API Error Codes").
	krakenLockout = 15 * time.Minute
)

func init() { register(Kraken, krakenDriver{}) }

// krakenGuide is Kraken's page that says what each permission enables; the
// native names are GetApiKeyInfo's strings (its example answer lists
// query-funds, withdraw-funds, query-open-trades, modify-trades).
const krakenGuide = "docs.kraken.com/exchange/guides/rest/api-keys"

// krakenPermissions maps GetApiKeyInfo's permission strings. Natives that
// cannot move funds or place orders grant nothing and stay visible in
// Native for policies that name them.
var krakenPermissions = permissionTable{
	{"query-funds", []string{PermRead}, krakenGuide + ": Query Funds -> Balance, BalanceEx, TradeBalance"},
	{"query-open-trades", []string{PermRead}, krakenGuide + ": Query Open Orders & Trades -> OpenOrders, QueryOrders, TradesHistory, QueryTrades, OpenPositions"},
	{"query-closed-trades", []string{PermRead}, krakenGuide + ": Query Closed Orders & Trades -> ClosedOrders, QueryOrders, TradesHistory, QueryTrades"},
	{"query-ledger", []string{PermRead}, krakenGuide + ": Query Ledger Entries -> Ledgers, QueryLedgers"},
	{"export-data", []string{PermRead}, krakenGuide + ": Export Data -> AddExport, ExportStatus, RetrieveExport, RemoveExport"},
	// AddOrder takes "leverage" and places margin orders with the same
	// permission ("API Key Permissions Required: Orders and trades -
	// Create & modify orders", docs.kraken.com/api-reference/trading/add-order).
	// Kraken Futures has its own keys, so a spot key grants no futures.
	{"modify-trades", []string{PermTrade, PermMargin}, krakenGuide + ": Create & Modify Orders -> AddOrder, EditOrder, AmendOrder, AddOrderBatch; AddOrder's leverage parameter opens margin positions"},
	// Cancelling cannot open a position, but it changes what a bot has on
	// the book: a policy that forbids trading refuses it.
	{"close-trades", []string{PermTrade}, krakenGuide + ": Cancel/Close Orders -> CancelOrder, CancelAll, CancelAllOrdersAfter, CancelOrderBatch"},
	{"withdraw-funds", []string{PermWithdraw}, krakenGuide + ": Withdraw Funds -> WithdrawMethods, WithdrawAddresses, WithdrawInfo, Withdraw, WithdrawStatus, WithdrawCancel"},
	{"earn-funds", []string{PermEarn}, "docs.kraken.com/api-reference (Earn): Allocate/Deallocate need the Earn Funds permission"},
	{"add-funds", nil, krakenGuide + ": Deposit Funds -> DepositMethods, DepositAddresses, DepositStatus (brings funds in only)"},
	{"create-ws-token", nil, krakenGuide + ": Access WebSocket API -> GetWebSocketsToken (the token acts with the key's own permissions)"},
	// Managing withdrawal addresses moves no funds by itself; reporting
	// withdraw for it would make a no-withdraw policy reject keys that
	// cannot withdraw.
	{"add-withdraw-address", nil, krakenGuide + ": Withdraw Funds group, address book only"},
	{"update-withdraw-address", nil, krakenGuide + ": Withdraw Funds group, address book only"},
}

// krakenTable is krakenPermissions plus a read row for any query-* string it
// does not list yet: every documented query-* permission is a read, and a
// new one will be too.
func krakenTable(natives []string) permissionTable {
	t := krakenPermissions
	for _, n := range natives {
		if _, known := t.lookup(n); !known && strings.HasPrefix(n, "query-") {
			t = append(t[:len(t):len(t)], permissionRow{n, []string{PermRead}, "query-* permissions are reads (" + krakenGuide + ")"})
		}
	}
	return t
}

func (krakenDriver) defaultBase() string { return "https://api.kraken.com" }

// checkCredentials rejects a private key that is not the base64 text Kraken
// shows, so that a mangled copy is reported before any request is signed.
func (krakenDriver) checkCredentials(c Credentials) error {
	if strings.ContainsAny(c.APISecret, " \t\r\n") {
		// The base64 decoder skips newlines silently; a pasted key with a
		// trailing newline must still be caught.
		return fmt.Errorf("API secret contains whitespace (a trailing newline from a file?)")
	}
	raw, err := base64.StdEncoding.DecodeString(c.APISecret)
	if err != nil || len(raw) == 0 {
		return fmt.Errorf("Kraken private key is not valid standard base64 (copy it exactly as Kraken shows it)") //nolint:staticcheck // ST1005: starts with a proper noun
	}
	return nil
}

// krakenSign computes API-Sign: base64(HMAC-SHA512(secret, path +
// SHA256(nonce + postData))). secret is the decoded private key.
func krakenSign(secret []byte, path, nonce, postData string) string {
	sum := sha256.Sum256([]byte(nonce + postData))
	mac := hmac.New(sha512.New, secret)
	mac.Write([]byte(path))
	mac.Write(sum[:])
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (krakenDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	secret, err := base64.StdEncoding.DecodeString(c.creds.APISecret)
	if err != nil {
		return nil, newError(Kraken, InvalidKey, 0, "", "Kraken private key is not valid standard base64")
	}
	n, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	nonce := strconv.FormatUint(n, 10)
	body := "nonce=" + nonce
	h := http.Header{}
	h.Set("API-Key", c.creds.APIKey)
	h.Set("API-Sign", krakenSign(secret, krakenKeyInfoPath, nonce, body))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.do(ctx, http.MethodPost, krakenKeyInfoPath, "", []byte(body), h)
	if err != nil {
		return nil, err
	}
	perms, err := parseKrakenKeyInfo(resp.Status, resp.Body)
	if e, ok := AsError(err); ok && e.Kind == RateLimited {
		if until, ok := krakenThrottledUntil(e.Code); ok {
			if wait := until.Sub(c.Now()); wait > time.Second && wait < krakenLockout {
				e.RetryAfter = wait.Round(time.Second)
			}
		}
	}
	return perms, err
}

// krakenThrottledUntil reads the time in "EService:Throttled:<unix seconds>"
// (Kraken writes it with or without spaces).
func krakenThrottledUntil(code string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(strings.ReplaceAll(code, " ", ""), "EService:Throttled:")
	if !ok {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// krakenEnvelope is every Kraken REST answer.
type krakenEnvelope struct {
	Error  []string        `json:"error"`
	Result json.RawMessage `json:"result"`
}

type krakenKeyInfo struct {
	Permissions *[]string     `json:"permissions"`
	IPAllowlist []string      `json:"ipAllowlist"`
	ValidUntil  krakenUnixSec `json:"validUntil"`
	CreatedTime krakenUnixSec `json:"createdTime"`
}

// krakenUnixSec accepts Unix seconds as a JSON string (as documented) or a
// number; 0 and absent mean unset.
type krakenUnixSec struct{ t *time.Time }

func (u *krakenUnixSec) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) >= 2 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	if s == "" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a Unix time")
	}
	// Beyond year 9999 is not a date but garbage; refusing it keeps
	// time.Unix from producing nonsense in status.
	if !(f >= 0 && f <= 253402300799) {
		return errors.New("Unix time out of range") //nolint:staticcheck // ST1005: starts with a proper noun
	}
	if f == 0 {
		return nil
	}
	t := time.Unix(int64(f), 0).UTC()
	u.t = &t
	return nil
}

// parseKrakenKeyInfo maps a GetApiKeyInfo answer. It is pure so that it can
// be fuzzed.
func parseKrakenKeyInfo(status int, body []byte) (*Permissions, error) {
	var env krakenEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fallback(Kraken, status, "response is not Kraken's JSON envelope", body)
	}
	for _, msg := range env.Error {
		// Kraken prefixes warnings with W; only E entries are failures.
		if strings.HasPrefix(msg, "E") {
			return nil, krakenError(status, msg, body)
		}
	}
	if status < 200 || status > 299 {
		return nil, fallback(Kraken, status, fmt.Sprintf("HTTP %d without a Kraken error", status), body)
	}
	if len(env.Result) == 0 || bytes.Equal(env.Result, []byte("null")) {
		return nil, unexpected(Kraken, status, "answer has neither an error nor a result", body)
	}
	var info krakenKeyInfo
	if err := json.Unmarshal(env.Result, &info); err != nil {
		return nil, unexpected(Kraken, status, "result is not GetApiKeyInfo's shape", body)
	}
	if info.Permissions == nil {
		return nil, unexpected(Kraken, status, "result has no permissions list", body)
	}
	native := sortedCopy(*info.Permissions)
	canonical, grants := krakenTable(native).grant(native)
	perms := &Permissions{
		Canonical: canonical,
		Native:    native,
		Grants:    grants,
		CreatedAt: info.CreatedTime.t,
		ExpiresAt: info.ValidUntil.t,
		// An empty ipAllowlist is Kraken saying the key works from any IP.
		IPRestriction: restrictedIf(len(info.IPAllowlist) > 0),
	}
	if len(info.IPAllowlist) > 0 {
		perms.AllowedIPs = sortedCopy(info.IPAllowlist)
	}
	return perms, nil
}

// krakenError maps one of Kraken's "E<Category>:<Message>" strings.
func krakenError(status int, msg string, body []byte) *Error {
	var kind Kind
	var wait time.Duration
	// Code keeps Kraken's whole string, which is what its docs and support
	// articles quote; Message is the human part after the category.
	text := msg
	if _, after, ok := strings.Cut(msg, ":"); ok && after != "" {
		text = after
	}
	scope := ScopeEndpoint
	switch {
	case msg == "EAPI:Invalid key":
		kind = InvalidKey
	case msg == "EAPI:Invalid signature":
		kind = InvalidSignature
	case msg == "EAPI:Invalid nonce":
		kind = NonceConflict
		text += " (another client of this key may have sent a larger nonce)"
	case msg == "EGeneral:Permission denied":
		kind = PermissionDenied
		text += " (Kraken: the API key doesn't have permission to make this request; GetApiKeyInfo needs no key permission, and Kraken documents no other cause)"
	case msg == "EAPI:Key disabled", msg == "EAPI:Key expired":
		kind = Inactive
	case msg == "EAPI:Rate limit exceeded":
		// Each key has its own call counter: the other keys go on.
		kind, wait, scope = RateLimited, time.Minute, ScopeKey
	case msg == "EGeneral:Temporary lockout":
		// IP based: every key behind this egress is locked out.
		kind, wait = RateLimited, krakenLockout
	case strings.HasPrefix(strings.ReplaceAll(msg, " ", ""), "EService:Throttled"):
		// The service sheds concurrent load: every key would get it.
		kind, wait = RateLimited, time.Minute
	case msg == "EService:Unavailable", msg == "EService:Busy", msg == "EService:Deadline elapsed",
		msg == "EGeneral:Internal error", strings.HasPrefix(msg, "EGeneral:Internal error:"):
		kind = Unavailable
	default:
		return fallback(Kraken, status, "unknown Kraken error "+sanitize(msg, 80), body)
	}
	e := newError(Kraken, kind, status, msg, text)
	e.RetryAfter = wait
	if kind == RateLimited {
		e.Scope = scope
	}
	return e
}
