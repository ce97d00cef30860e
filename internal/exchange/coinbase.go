package exchange

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
// ES256 JWT signed by the CDP key's EC P-256 private key.
//
// Coinbase does not document its error bodies. The simulator answers with
// the grpc-gateway shape {"error", "code", "message", "error_details"} and
// puts a stable reason in error_details (the coinbaseReason* constants); the
// real exchange has been seen answering a bare "Unauthorized" text for every
// JWT problem, which this client treats as an unexplained rejection and
// disambiguates itself (see probe).
const (
	coinbasePermissionsPath = "/api/v3/brokerage/key_permissions"
	coinbaseTimePath        = "/api/v3/brokerage/time"

	// coinbaseJWTLifetime is the validity Coinbase's own SDKs give a token.
	coinbaseJWTLifetime = 120 * time.Second
	// coinbaseSkewTolerance is how far our clock may be from Coinbase's
	// before an unexplained 401 is blamed on the clock.
	coinbaseSkewTolerance = 5 * time.Second
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

type coinbaseDriver struct{}

func init() { register(Coinbase, coinbaseDriver{}) }

func (coinbaseDriver) defaultBase() string { return "https://api.coinbase.com" }

// checkCredentials requires the secret to be a PEM EC P-256 private key.
// Messages describe the shape only, never the value.
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
		return nil, c.rateLimited(e.HTTPStatus, e.Code, e.Message, retryAfter(resp.Header, c.Now()))
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
	token, err := coinbaseJWT(key, c.creds.APIKey, http.MethodGet+" "+c.Host()+path, c.Now())
	if err != nil {
		return nil, newError(Coinbase, UnexpectedResponse, 0, "", "cannot sign the request JWT")
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return c.do(ctx, http.MethodGet, path, "", nil, h)
}

// coinbaseJWT builds the per-request token. uri binds it to one method,
// host and path, so a leaked token cannot be replayed elsewhere.
func coinbaseJWT(key *ecdsa.PrivateKey, keyName, uri string, now time.Time) (string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	nbf := now.Unix()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": keyName,
		"iss": "cdp",
		"nbf": nbf,
		"exp": nbf + int64(coinbaseJWTLifetime/time.Second),
		"uri": uri,
	})
	tok.Header["kid"] = keyName
	// The nonce makes every token unique even within one second.
	tok.Header["nonce"] = hex.EncodeToString(nonce)
	return tok.SignedString(key)
}

// coinbaseParseKey decodes the CDP secret. Kubernetes users often paste the
// PEM from the downloaded JSON key file with its escaped "\n" sequences
// intact, so those are turned back into newlines: the PEM armour makes the
// intent unambiguous, and the alternative is a Secret that can never work.
func coinbaseParseKey(secret string) (*ecdsa.PrivateKey, error) {
	s := strings.TrimSpace(secret)
	if strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\r\n`, "\n")
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) == 64 {
			return nil, fmt.Errorf("API secret looks like an Ed25519 key; Coinbase Advanced Trade needs an ECDSA (P-256) CDP key")
		}
		return nil, fmt.Errorf("API secret is not a PEM block; want the CDP key's \"-----BEGIN EC PRIVATE KEY-----\" private key")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("API secret: EC PRIVATE KEY block does not parse as a SEC 1 EC key")
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("API secret: PRIVATE KEY block does not parse as a PKCS #8 key")
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("API secret: PKCS #8 key is %T, want an ECDSA P-256 key", k)
		}
		key = ek
	default:
		return nil, fmt.Errorf("API secret: PEM block is %q, want \"EC PRIVATE KEY\" or \"PRIVATE KEY\"", sanitize(block.Type, 40))
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("API secret: EC key is on %s, want P-256", key.Curve.Params().Name)
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

// parseCoinbaseKeyPermissions maps a key_permissions answer. can_transfer is
// the right to send funds off Coinbase, hence withdraw. The portfolio the key
// is scoped to has no place in the canonical model and is dropped.
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
	set := map[string]bool{}
	native := []string{}
	for _, f := range []struct {
		on     bool
		native string
		canon  string
	}{
		{*kp.CanView, "can_view", PermRead},
		{*kp.CanTrade, "can_trade", PermTrade},
		{*kp.CanTransfer, "can_transfer", PermWithdraw},
	} {
		if f.on {
			set[f.canon] = true
			native = append(native, f.native)
		}
	}
	return &Permissions{Canonical: canonicalSet(set), Native: sortedCopy(native)}, nil
}

// coinbaseParseError maps a non-200 answer onto a Kind.
func coinbaseParseError(status int, body []byte) *Error {
	var eb coinbaseErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || (eb.Error == "" && eb.Message == "" && eb.ErrorDetails == "") {
		if status == http.StatusUnauthorized {
			// The real exchange's usual answer: a bare text "Unauthorized".
			t := strings.TrimSpace(string(body))
			if t == "" || strings.EqualFold(t, "Unauthorized") {
				return newError(Coinbase, InvalidKey, status, "", coinbaseUnexplainedMessage)
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
		// Authentication failed for a reason we cannot tell apart.
		if msg == "" {
			msg = coinbaseUnexplainedMessage
		}
		return newError(Coinbase, InvalidKey, status, code, msg)
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

const coinbaseUnexplainedMessage = "Coinbase rejected the JWT without a reason: unknown or revoked key, wrong private key, or clock skew"

// coinbaseUnexplained reports an authentication failure whose cause Coinbase
// did not name, as opposed to one it did (KEY_NOT_FOUND).
func coinbaseUnexplained(e *Error) bool {
	return e.Kind == InvalidKey && e.Code != coinbaseReasonKeyNotFound
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
