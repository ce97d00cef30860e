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

// Kraken (spot) probe: POST /0/private/GetApiKeyInfo, which needs no key
// permission at all, so every valid key can call it and the answer lists the
// key's own permissions, IP allowlist, creation and expiry time.
//
// Native -> canonical mapping (permission strings as documented for
// GetApiKeyInfo):
//
//	query-funds, query-open-trades, query-closed-trades,
//	query-ledger (any query-*), export-data   -> read
//	modify-trades, close-trades               -> trade
//	withdraw-funds                            -> withdraw
//	earn-funds                                -> earn
//	add-funds (deposit), create-ws-token,
//	add-withdraw-address, update-withdraw-address -> none (kept in Native)
//
// The address permissions are not mapped to withdraw: on their own they
// cannot move funds, and reporting withdraw for them would make a policy
// that forbids withdraw reject keys that cannot withdraw. They stay visible
// in Native for policies that care.
//
// Kraken answers errors as HTTP 200 with {"error":["EAPI:Invalid key"]}.
//
//	EAPI:Invalid key                     -> InvalidKey (unknown, deleted, revoked)
//	EAPI:Invalid signature               -> InvalidSignature
//	EAPI:Invalid nonce                   -> ClockSkew (no server-time resync: the
//	                                        nonce is a counter, not a timestamp)
//	EGeneral:Permission denied           -> IPNotAllowed (see below; unverified)
//	EAPI:Key disabled, EAPI:Key expired  -> Inactive (unverified: Kraken documents
//	                                        no error for a disabled/expired key;
//	                                        these are the simulator's strings)
//	EAPI:Rate limit exceeded             -> RateLimited (per-key counter: no
//	                                        pause for the other keys)
//	EGeneral:Temporary lockout           -> RateLimited (per key, 15 min guess)
//	EService:Throttled...                -> RateLimited (pauses the base URL)
//	EService:Unavailable, EService:Busy,
//	EService:Deadline elapsed,
//	EGeneral:Internal error              -> Unavailable
//
// GetApiKeyInfo needs no permission, so "EGeneral:Permission denied" cannot
// mean a missing key permission here; the likeliest remaining cause of a
// permission refusal for a valid, correctly signed key is its IP allowlist,
// so it is reported as IPNotAllowed. Kraken does not document which error an
// allowlist refusal gives; this is a best guess and the simulator uses the
// same string.
type krakenDriver struct{}

const (
	krakenKeyInfoPath = "/0/private/GetApiKeyInfo"
	// krakenLockout is a guess: Kraken documents a temporary lockout after
	// repeated failures but not its length.
	krakenLockout = 15 * time.Minute
)

func init() { register(Kraken, krakenDriver{}) }

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
		return fmt.Errorf("Kraken private key is not valid standard base64 (copy it exactly as Kraken shows it)")
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
	nonce := strconv.FormatUint(c.Nonce(), 10)
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
	if e, ok := AsError(err); ok && e.Kind == RateLimited && strings.HasPrefix(e.Code, "EService:Throttled") {
		// Throttling is the service shedding load, not one key's counter:
		// every key on this base would get the same answer.
		return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, e.RetryAfter)
	}
	return perms, err
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
		return errors.New("Unix time out of range")
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
	native := *info.Permissions
	set := map[string]bool{}
	for _, p := range native {
		if c := krakenCanonical(p); c != "" {
			set[c] = true
		}
	}
	perms := &Permissions{
		Canonical: canonicalSet(set),
		Native:    sortedCopy(native),
		CreatedAt: info.CreatedTime.t,
		ExpiresAt: info.ValidUntil.t,
	}
	if len(info.IPAllowlist) > 0 {
		perms.IPRestriction = IPRestricted
		perms.AllowedIPs = sortedCopy(info.IPAllowlist)
	}
	return perms, nil
}

// krakenCanonical maps one native permission; "" means no canonical meaning.
func krakenCanonical(p string) string {
	switch p {
	case "export-data":
		return PermRead
	case "modify-trades", "close-trades":
		return PermTrade
	case "withdraw-funds":
		return PermWithdraw
	case "earn-funds":
		return PermEarn
	}
	// Every documented query-* permission is a read; a new one will be too.
	if strings.HasPrefix(p, "query-") {
		return PermRead
	}
	return ""
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
	switch {
	case msg == "EAPI:Invalid key":
		kind = InvalidKey
	case msg == "EAPI:Invalid signature":
		kind = InvalidSignature
	case msg == "EAPI:Invalid nonce":
		kind = ClockSkew
	case msg == "EGeneral:Permission denied":
		kind = IPNotAllowed
		text += " (GetApiKeyInfo needs no key permission, so the likely cause is the key's IP allowlist)"
	case msg == "EAPI:Key disabled", msg == "EAPI:Key expired":
		kind = Inactive
	case msg == "EAPI:Rate limit exceeded":
		kind, wait = RateLimited, time.Minute
	case msg == "EGeneral:Temporary lockout":
		kind, wait = RateLimited, krakenLockout
	case strings.HasPrefix(msg, "EService:Throttled"):
		kind, wait = RateLimited, time.Minute
	case msg == "EService:Unavailable", msg == "EService:Busy", msg == "EService:Deadline elapsed", msg == "EGeneral:Internal error":
		kind = Unavailable
	default:
		return fallback(Kraken, status, "unknown Kraken error "+sanitize(msg, 80), body)
	}
	e := newError(Kraken, kind, status, msg, text)
	e.RetryAfter = wait
	if kind == RateLimited && !strings.HasPrefix(msg, "EService:") {
		// Kraken's rate counters and lockouts are per key.
		e.Scope = ScopeKey
	}
	return e
}
