package exchange

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Coinbase Advanced Trade authenticates every request with a short-lived
// JWT signed by the CDP API key's private key. CDP keys come in two kinds
// (docs.cdp.coinbase.com/get-started/authentication/overview, "Choose your
// key algorithm"): Ed25519, the default since February 2025, whose secret is
// the base64 of 64 bytes (seed followed by public key), signed with alg
// EdDSA; and the older ECDSA keys, an EC P-256 PEM, signed with ES256.
// Advanced Trade accepts both. The claims and headers are the same for both
// (coinbase/coinbase-advanced-py, coinbase/jwt_generator.py): sub = key
// name, iss = "cdp", nbf = now, exp = nbf + 120, uri = "GET
// api.coinbase.com/api/v3/brokerage/key_permissions"; header kid = key name,
// nonce = random hex.
//
// Least-privilege key for a bot (docs.cdp.coinbase.com/api-reference/
// authentication): in the CDP portal, create a Secret API key scoped to the
// bot's portfolio with View and Trade only, and an IP allowlist. What the
// probe sees: can_view, can_trade and can_transfer of GET
// /api/v3/brokerage/key_permissions (see coinbasePermissions). What it cannot
// see: the IP allowlist (so IPRestriction is Unknown), the key's expiry, and
// which products the account is eligible for.
//
// Coinbase does not document its error bodies. The simulator answers with
// the grpc-gateway shape {"error", "code", "message", "error_details"} and
// puts a stable reason in error_details (the coinbaseReason* constants); the
// real exchange has been seen answering a bare "Unauthorized" text for every
// JWT problem, which this client treats as an unexplained rejection: it
// rules out clock skew itself (see probe), and classifies the rest as
// KeyOrIPRejected marked Ambiguous, because Coinbase gives the same answer
// to an unknown or deleted key, a wrong private key, a caller outside the
// key's IP allowlist, and now and then to a correctly signed token
// (coinbase/coinbase-advanced-py issue 132). The controller confirms it
// with a second probe before any verdict.
const (
	coinbasePermissionsPath = "/api/v3/brokerage/key_permissions"
	coinbaseTimePath        = "/api/v3/brokerage/time"

	// coinbaseJWTLifetime is the validity Coinbase's own SDKs give a token.
	coinbaseJWTLifetime = 120 * time.Second
	// coinbaseSkewTolerance is how far our clock may be from Coinbase's
	// before an unexplained 401 is blamed on the clock.
	coinbaseSkewTolerance = 5 * time.Second
	// coinbaseNonceBytes: the official SDK's nonce is secrets.token_hex(),
	// 32 random bytes in hex.
	coinbaseNonceBytes = 32
	// coinbaseRateLimitWait applies when a rate-limit answer names no wait.
	coinbaseRateLimitWait = time.Minute
)

// Reasons in error_details. Guessed, not documented by Coinbase: the
// simulator uses exactly these, and a real answer without one of them is
// classified by its status and "error" field alone.
const (
	coinbaseReasonKeyNotFound      = "KEY_NOT_FOUND"
	coinbaseReasonInvalidSignature = "INVALID_SIGNATURE"
	coinbaseReasonInvalidToken     = "INVALID_TOKEN"
	coinbaseReasonTokenExpired     = "TOKEN_EXPIRED"
	coinbaseReasonTokenNotYetValid = "TOKEN_NOT_YET_VALID"
	coinbaseReasonTokenReplayed    = "TOKEN_REPLAYED"
	coinbaseReasonKeyDisabled      = "KEY_DISABLED"
	coinbaseReasonKeyExpired       = "KEY_EXPIRED"
	coinbaseReasonIPNotAllowed     = "IP_NOT_ALLOWED"
)

// coinbasePermissions maps key_permissions onto canonical permissions. The
// scopes are documented per endpoint in "Advanced Trade Scope & Permissions"
// (docs.cdp.coinbase.com/coinbase-app/advanced-trade-apis/rest-scopes) and in
// general in "Coinbase App Authorization"
// (docs.cdp.coinbase.com/coinbase-app/authentication-authorization/authorization).
// The key's portfolio (portfolio_uuid, portfolio_type) changes none of this:
// each key is scoped to one portfolio (advanced-trade-apis/guides/portfolios),
// and on any portfolio type the same trade scope places orders on every
// product the account may trade.
var coinbasePermissions = permissionTable{
	{Native: "can_view", Grants: []string{PermRead},
		Source: "rest-scopes: view is what every read needs (GET /accounts, /orders/historical/*, /cfm/positions, /key_permissions); authorization: View reads balances and history"},
	{Native: "can_trade", Grants: []string{PermTrade, PermFutures, PermOptions},
		Source: "rest-scopes: trade places POST /orders and /orders/close_position on spot and US derivatives (futures, perpetual-style futures), and Global Derivatives private/buy and private/sell (options, futures, perpetuals)"},
	{Native: "can_transfer", Grants: []string{PermWithdraw, PermTransfer},
		Source: "authorization: Transfer \"send and receive funds, on and off platform\" (off platform = withdraw); rest-scopes: transfer moves funds between portfolios (POST /portfolios/move_funds, /intx/allocate) and futures sweeps (POST /cfm/sweeps/schedule)"},
}

type coinbaseDriver struct{}

func init() { register(Coinbase, coinbaseDriver{}) }

func (coinbaseDriver) defaultBase() string { return "https://api.coinbase.com" }

// checkCredentials requires the secret to be one of the shapes CDP issues:
// an Ed25519 key (base64, or PKCS #8 PEM) or an EC P-256 PEM key. Messages
// describe the shape only, never the value.
func (coinbaseDriver) checkCredentials(cr Credentials) error {
	_, err := coinbaseParseKey(cr.APISecret)
	return err
}

func (d coinbaseDriver) probe(ctx context.Context, c *call) (*Permissions, error) {
	resp, err := coinbaseGet(ctx, c, coinbasePermissionsPath)
	if err != nil {
		return nil, err
	}
	perms, perr := parseCoinbaseKeyPermissions(resp.Status, resp.Body)
	e, ok := AsError(perr)
	if !ok {
		return perms, perr
	}
	switch {
	case e.Kind == RateLimited:
		// A RESOURCE_EXHAUSTED that is not a 429 (the transport handles
		// those): the prober pauses the base URL for RetryAfter.
		e.RetryAfter = retryAfter(resp.Header, c.p.opts.Now())
		if e.RetryAfter <= 0 {
			e.RetryAfter = coinbaseRateLimitWait
		}
		e.Scope = ScopeEndpoint
	case coinbaseUnexplained(e):
		// Coinbase's usual 401 says nothing about the cause. The only cause
		// a retry can fix is our clock, so check it against Coinbase's and
		// let the prober resync when it is off.
		if server, terr := d.serverTime(ctx, c); terr == nil {
			if off := server.Sub(c.Now()); off > coinbaseSkewTolerance || off < -coinbaseSkewTolerance {
				return nil, newError(Coinbase, ClockSkew, e.HTTPStatus, e.Code,
					fmt.Sprintf("JWT rejected and the local clock is %s off Coinbase's", off.Round(time.Second)))
			}
		}
	}
	return nil, e
}

// serverTime reads Coinbase's public clock for the skew resync.
func (coinbaseDriver) serverTime(ctx context.Context, c *call) (time.Time, error) {
	resp, err := c.do(ctx, http.MethodGet, coinbaseTimePath, "", nil, nil)
	if err != nil {
		return time.Time{}, err
	}
	return parseCoinbaseTime(resp.Status, resp.Body)
}

// coinbaseGet sends a GET signed with a fresh JWT for exactly that request.
func coinbaseGet(ctx context.Context, c *call, path string) (*response, error) {
	key, err := coinbaseParseKey(c.creds.APISecret)
	if err != nil {
		return nil, newError(Coinbase, InvalidKey, 0, "", err.Error())
	}
	nonce := make([]byte, coinbaseNonceBytes)
	if err := c.random(nonce); err != nil {
		return nil, newError(Coinbase, UnexpectedResponse, 0, "", "cannot read randomness for the JWT nonce")
	}
	token, err := coinbaseJWT(key, c.creds.APIKey, http.MethodGet+" "+c.Host()+path, c.Now(), hex.EncodeToString(nonce))
	if err != nil {
		return nil, newError(Coinbase, UnexpectedResponse, 0, "", "cannot sign the request JWT")
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return c.do(ctx, http.MethodGet, path, "", nil, h)
}

// coinbaseJWT builds the per-request token: EdDSA for an Ed25519 key, ES256
// for an EC key. uri binds it to one method, host and path, so a leaked
// token cannot be replayed elsewhere; the nonce makes every token unique
// even within one second.
func coinbaseJWT(key crypto.Signer, keyName, uri string, now time.Time, nonce string) (string, error) {
	var method jwt.SigningMethod
	switch key.(type) {
	case ed25519.PrivateKey:
		method = jwt.SigningMethodEdDSA
	case *ecdsa.PrivateKey:
		method = jwt.SigningMethodES256
	default:
		return "", fmt.Errorf("unsupported key type %T", key)
	}
	nbf := now.Unix()
	tok := jwt.NewWithClaims(method, jwt.MapClaims{
		"sub": keyName,
		"iss": "cdp",
		"nbf": nbf,
		"exp": nbf + int64(coinbaseJWTLifetime/time.Second),
		"uri": uri,
	})
	tok.Header["kid"] = keyName
	tok.Header["nonce"] = nonce
	return tok.SignedString(key)
}

// coinbaseAcceptedShapes is what every malformed-secret message ends with.
const coinbaseAcceptedShapes = "want a CDP key secret: Ed25519 as base64 of 64 bytes (seed and public key) or 32 bytes (seed), " +
	"a PKCS #8 \"PRIVATE KEY\" PEM (Ed25519 or EC P-256), or an \"EC PRIVATE KEY\" PEM (P-256)"

// coinbaseParseKey decodes the CDP secret into an ed25519.PrivateKey or an
// *ecdsa.PrivateKey, as coinbase-advanced-py's _load_private_key does: PEM
// when it has a "-----BEGIN" line, else base64 of an Ed25519 key.
//
// Kubernetes users often paste the PEM from the downloaded JSON key file with
// its escaped "\n" sequences intact, so those are turned back into newlines:
// the PEM armour makes the intent unambiguous, and the alternative is a
// Secret that can never work. Whitespace inside base64 is dropped, as the SDK
// does for .env files that wrap or end lines.
func coinbaseParseKey(secret string) (crypto.Signer, error) {
	s := strings.TrimSpace(secret)
	if !strings.Contains(s, "-----BEGIN") {
		return coinbaseParseEd25519Base64(s)
	}
	if strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\r\n`, "\n")
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("API secret starts like PEM but is not a complete PEM block; %s", coinbaseAcceptedShapes)
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("API secret: EC PRIVATE KEY block does not parse as a SEC 1 EC key; %s", coinbaseAcceptedShapes)
		}
		return coinbaseCheckCurve(k)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("API secret: PRIVATE KEY block does not parse as a PKCS #8 key; %s", coinbaseAcceptedShapes)
		}
		switch k := k.(type) {
		case ed25519.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return coinbaseCheckCurve(k)
		default:
			return nil, fmt.Errorf("API secret: PKCS #8 key is %T, not Ed25519 or ECDSA; %s", k, coinbaseAcceptedShapes)
		}
	default:
		return nil, fmt.Errorf("API secret: PEM block is %q, not \"EC PRIVATE KEY\" or \"PRIVATE KEY\"; %s", sanitize(block.Type, 40), coinbaseAcceptedShapes)
	}
}

func coinbaseCheckCurve(k *ecdsa.PrivateKey) (crypto.Signer, error) {
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("API secret: EC key is on %s, not P-256; %s", k.Curve.Params().Name, coinbaseAcceptedShapes)
	}
	return k, nil
}

// coinbaseParseEd25519Base64 reads the secret the CDP portal shows for an
// Ed25519 key: base64 of the 32-byte seed followed by the 32-byte public
// key. coinbase-advanced-py also takes the seed alone. The SDK signs with
// the seed and ignores the second half; here it must be the seed's public
// key, so that a corrupted paste is reported now rather than as a
// signature the exchange rejects.
func coinbaseParseEd25519Base64(s string) (crypto.Signer, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, fmt.Errorf("API secret is neither PEM nor base64; %s", coinbaseAcceptedShapes)
	}
	switch len(raw) {
	case ed25519.SeedSize, ed25519.PrivateKeySize:
	default:
		return nil, fmt.Errorf("API secret is base64 of %d bytes, not 32 or 64; %s", len(raw), coinbaseAcceptedShapes)
	}
	key := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if len(raw) == ed25519.PrivateKeySize && subtle.ConstantTimeCompare(raw[ed25519.SeedSize:], key[ed25519.SeedSize:]) != 1 {
		return nil, fmt.Errorf("API secret: the last 32 of its 64 bytes are not the public key of the first 32 (a damaged copy?); %s", coinbaseAcceptedShapes)
	}
	return key, nil
}

type coinbaseKeyPermissions struct {
	CanView       *bool  `json:"can_view"`
	CanTrade      *bool  `json:"can_trade"`
	CanTransfer   *bool  `json:"can_transfer"`
	PortfolioUUID string `json:"portfolio_uuid"`
	PortfolioType string `json:"portfolio_type"`
}

type coinbaseErrorBody struct {
	Error        string          `json:"error"`
	Code         json.RawMessage `json:"code"`
	Message      string          `json:"message"`
	ErrorDetails string          `json:"error_details"`
}

// parseCoinbaseKeyPermissions maps a key_permissions answer through
// coinbasePermissions. The portfolio the key is scoped to has no place in the
// canonical model and is dropped. CDP keys may carry an IP allowlist
// (docs.cdp.coinbase.com/api-reference/authentication: "Set an IP allowlist
// for the key"), which key_permissions does not report: IPUnknown.
func parseCoinbaseKeyPermissions(status int, body []byte) (*Permissions, error) {
	if status != http.StatusOK {
		return nil, coinbaseParseError(status, body)
	}
	var kp coinbaseKeyPermissions
	if err := json.Unmarshal(body, &kp); err != nil {
		return nil, fallback(Coinbase, status, "key_permissions is not JSON of the expected shape", body)
	}
	if kp.CanView == nil || kp.CanTrade == nil || kp.CanTransfer == nil {
		return nil, fallback(Coinbase, status, "key_permissions lacks can_view, can_trade or can_transfer", body)
	}
	native := []string{}
	for _, f := range []struct {
		on     bool
		native string
	}{
		{*kp.CanView, "can_view"},
		{*kp.CanTrade, "can_trade"},
		{*kp.CanTransfer, "can_transfer"},
	} {
		if f.on {
			native = append(native, f.native)
		}
	}
	canonical, grants := coinbasePermissions.grant(native)
	return &Permissions{Canonical: canonical, Native: sortedCopy(native), Grants: grants, IPRestriction: IPUnknown}, nil
}

// coinbaseParseError maps a non-200 answer onto a Kind.
func coinbaseParseError(status int, body []byte) *Error {
	var eb coinbaseErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || (eb.Error == "" && eb.Message == "" && eb.ErrorDetails == "") {
		if status == http.StatusUnauthorized {
			// The real exchange's usual answer: a bare text "Unauthorized".
			t := strings.TrimSpace(string(body))
			if t == "" || strings.EqualFold(t, "Unauthorized") {
				return markAmbiguous(newError(Coinbase, KeyOrIPRejected, status, "", coinbaseUnexplainedMessage))
			}
		}
		return fallback(Coinbase, status, "error answer is not Coinbase's JSON error shape", body)
	}
	reason := strings.ToUpper(strings.TrimSpace(eb.ErrorDetails))
	msg := eb.Message
	if msg == "" {
		msg = eb.ErrorDetails
	}
	code := reason
	if code == "" {
		code = eb.Error
	}
	switch reason {
	case coinbaseReasonKeyNotFound:
		return newError(Coinbase, InvalidKey, status, code, msg)
	case coinbaseReasonInvalidSignature, coinbaseReasonInvalidToken:
		return newError(Coinbase, InvalidSignature, status, code, msg)
	case coinbaseReasonTokenExpired, coinbaseReasonTokenNotYetValid, coinbaseReasonTokenReplayed:
		// A replayed nonce is fixed by the fresh token of the retry that
		// follows a ClockSkew.
		return newError(Coinbase, ClockSkew, status, code, msg)
	case coinbaseReasonKeyDisabled, coinbaseReasonKeyExpired:
		return newError(Coinbase, Inactive, status, code, msg)
	case coinbaseReasonIPNotAllowed:
		return newError(Coinbase, IPNotAllowed, status, code, msg)
	}
	grpc := string(bytes.Trim(eb.Code, `"`))
	switch {
	case status == http.StatusUnauthorized || eb.Error == "UNAUTHENTICATED" || grpc == "16":
		// Authentication failed for a reason we cannot tell apart: the
		// same answer as the bare 401, so just as ambiguous.
		if msg == "" {
			msg = coinbaseUnexplainedMessage
		}
		return markAmbiguous(newError(Coinbase, KeyOrIPRejected, status, code, msg))
	case eb.Error == "RESOURCE_EXHAUSTED" || grpc == "8":
		return &Error{Kind: RateLimited, Exchange: Coinbase, HTTPStatus: status, Code: code, Message: sanitize(msg, 200)}
	case status >= 500:
		return &Error{Kind: Unavailable, Exchange: Coinbase, HTTPStatus: status, Code: code, Message: sanitize(msg, 200)}
	case status == http.StatusForbidden || eb.Error == "PERMISSION_DENIED" || grpc == "7":
		return newError(Coinbase, PermissionDenied, status, code, msg)
	}
	e := fallback(Coinbase, status, "unknown Coinbase error", body)
	e.Code = sanitize(code, 64)
	return e
}

const coinbaseUnexplainedMessage = "Coinbase rejected the JWT without a reason: unknown or deleted key, wrong private key, caller outside the key's IP allowlist, or clock skew"

// coinbaseUnexplained reports an authentication failure whose cause Coinbase
// did not name (its usual bare 401), as opposed to one it did (KEY_NOT_FOUND).
// It is one of the ambiguousAnswers: Coinbase also gives it to valid keys
// (coinbase-advanced-py issue 132) and to callers outside the allowlist.
func coinbaseUnexplained(e *Error) bool {
	return e.Kind == KeyOrIPRejected
}

// coinbaseFlexInt accepts a number or a numeric string: the time endpoint's
// epoch fields are strings on the wire, and a JSON number would be as clear.
// Anything else leaves it unset, so that another field can still be used.
type coinbaseFlexInt struct {
	v  int64
	ok bool
}

func (f *coinbaseFlexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		f.v, f.ok = i, true
		return nil
	}
	// Fractional seconds: keep the whole part.
	if fl, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(fl) && fl < 1e15 && fl > -1e15 {
		f.v, f.ok = int64(fl), true
	}
	return nil
}

// parseCoinbaseTime reads GET /api/v3/brokerage/time:
// {"iso":"...","epochSeconds":"...","epochMillis":"..."}.
func parseCoinbaseTime(status int, body []byte) (time.Time, error) {
	if status != http.StatusOK {
		return time.Time{}, fallback(Coinbase, status, fmt.Sprintf("server time answered HTTP %d", status), body)
	}
	var t struct {
		ISO          string          `json:"iso"`
		EpochSeconds coinbaseFlexInt `json:"epochSeconds"`
		EpochMillis  coinbaseFlexInt `json:"epochMillis"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return time.Time{}, fallback(Coinbase, status, "server time is not JSON of the expected shape", body)
	}
	// Bounds keep a garbage value from turning into an absurd clock offset.
	const minMillis, maxMillis = 946684800000, 32503680000000 // 2000 .. 3000
	switch {
	case t.EpochMillis.ok && t.EpochMillis.v > minMillis && t.EpochMillis.v < maxMillis:
		return time.UnixMilli(t.EpochMillis.v), nil
	case t.EpochSeconds.ok && t.EpochSeconds.v > minMillis/1000 && t.EpochSeconds.v < maxMillis/1000:
		return time.Unix(t.EpochSeconds.v, 0), nil
	}
	if ts, err := time.Parse(time.RFC3339Nano, t.ISO); err == nil && ts.UnixMilli() > minMillis && ts.UnixMilli() < maxMillis {
		return ts, nil
	}
	return time.Time{}, fallback(Coinbase, status, "server time has no usable epochMillis, epochSeconds or iso", body)
}
