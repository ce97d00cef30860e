package simulator

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Coinbase Advanced Trade: GET /api/v3/brokerage/key_permissions behind a
// CDP JWT, and the public GET /api/v3/brokerage/time. A key registered with
// an Ed25519 secret (base64 of 64 or 32 bytes, or PKCS #8 PEM) must sign
// EdDSA; one registered with an EC P-256 PEM must sign ES256
// (docs.cdp.coinbase.com/get-started/authentication/overview; the claims
// and headers of coinbase/coinbase-advanced-py coinbase/jwt_generator.py).
//
// Coinbase does not document its authentication error bodies. The simulator
// answers in the grpc-gateway shape the API uses for other errors and puts a
// stable reason in error_details, so that each failure is told apart:
//
//	401 KEY_NOT_FOUND        unknown or revoked key name
//	401 INVALID_SIGNATURE    signature does not verify with the key's public key
//	401 INVALID_TOKEN        malformed JWT, alg not the key's, wrong iss/sub/uri
//	401 TOKEN_NOT_YET_VALID  nbf after the exchange's clock (plus leeway)
//	401 TOKEN_EXPIRED        exp before the exchange's clock (minus leeway)
//	401 TOKEN_REPLAYED       a JWT nonce seen before for this key
//	401 KEY_DISABLED         key exists but is inactive
//	401 KEY_EXPIRED          key past its expiry
//	403 IP_NOT_ALLOWED       caller outside the key's allowlist
//
// These reasons are a guess (the real exchange usually says only
// "Unauthorized"); the client understands both.
const (
	coinbaseSimLeeway      = 5 * time.Second
	coinbaseSimMaxLifetime = 2*time.Minute + coinbaseSimLeeway
)

func init() {
	registerHandler(exchange.Coinbase, func(s *Simulator) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/v3/brokerage/time", s.coinbaseTime)
		mux.HandleFunc("GET /api/v3/brokerage/key_permissions", s.coinbaseKeyPermissions)
		return mux
	})
}

func (s *Simulator) coinbaseTime(w http.ResponseWriter, _ *http.Request) {
	now := s.Now()
	// The epoch fields are strings on the wire.
	writeJSON(w, http.StatusOK, map[string]string{
		"iso":          now.UTC().Format(time.RFC3339Nano),
		"epochSeconds": strconv.FormatInt(now.Unix(), 10),
		"epochMillis":  strconv.FormatInt(now.UnixMilli(), 10),
	})
}

func coinbaseFail(w http.ResponseWriter, status int, reason, msg string) {
	e, code := "UNAUTHENTICATED", 16
	if status == http.StatusForbidden {
		e, code = "PERMISSION_DENIED", 7
	}
	writeJSON(w, status, map[string]any{"error": e, "code": code, "message": msg, "error_details": reason, "details": []any{}})
}

func (s *Simulator) coinbaseKeyPermissions(w http.ResponseWriter, r *http.Request) {
	authz := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || raw == "" {
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "missing bearer token")
		return
	}
	tok, err := coinbaseSimSplit(raw)
	if err != nil {
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", err.Error())
		return
	}
	s.countKey(exchange.Coinbase, tok.header.Kid)
	if f := s.takeKeyFault(exchange.Coinbase, tok.header.Kid); f != nil && s.applyFault(w, r, f) {
		return
	}
	k, found := s.lookup(exchange.Coinbase, tok.header.Kid)
	if !found {
		coinbaseFail(w, http.StatusUnauthorized, "KEY_NOT_FOUND", "api key not found")
		return
	}
	pub, err := coinbaseSimPublicKey(k.Secret)
	if err != nil {
		// A registered key the simulator cannot use is the test's mistake.
		http.Error(w, "simulator: registered Coinbase secret is not an Ed25519 or EC P-256 key", http.StatusInternalServerError)
		return
	}
	if tok.header.Alg != pub.alg() {
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "signing algorithm does not match the api key's")
		return
	}
	if !tok.verify(pub) {
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_SIGNATURE", "jwt signature verification failed")
		return
	}
	c := tok.claims
	wantURI := r.Method + " " + r.Host + r.URL.Path
	switch {
	case c.Sub != k.APIKey:
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "sub does not match kid")
		return
	case c.Iss != "cdp":
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "invalid issuer")
		return
	case c.URI != wantURI:
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "uri claim does not match the request")
		return
	case c.Nbf == nil || c.Exp == nil:
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "nbf and exp are required")
		return
	case tok.header.Nonce == "":
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "nonce is required")
		return
	}
	now := s.Now()
	nbf, exp := time.Unix(*c.Nbf, 0), time.Unix(*c.Exp, 0)
	switch {
	case exp.Sub(nbf) > coinbaseSimMaxLifetime || !exp.After(nbf):
		coinbaseFail(w, http.StatusUnauthorized, "INVALID_TOKEN", "token lifetime must be at most 2 minutes")
		return
	case nbf.After(now.Add(coinbaseSimLeeway)):
		coinbaseFail(w, http.StatusUnauthorized, "TOKEN_NOT_YET_VALID", "token is not valid yet")
		return
	case !exp.After(now.Add(-coinbaseSimLeeway)):
		coinbaseFail(w, http.StatusUnauthorized, "TOKEN_EXPIRED", "token is expired")
		return
	case !s.acceptOnce(exchange.Coinbase, k.APIKey+"/"+tok.header.Nonce):
		// Refusing replays is a guess: it is what the nonce is for.
		coinbaseFail(w, http.StatusUnauthorized, "TOKEN_REPLAYED", "token nonce already used")
		return
	}
	switch {
	case k.State == Inactive:
		coinbaseFail(w, http.StatusUnauthorized, "KEY_DISABLED", "api key is disabled")
		return
	case s.expired(k):
		coinbaseFail(w, http.StatusUnauthorized, "KEY_EXPIRED", "api key is expired")
		return
	case !callerAllowed(k, r):
		coinbaseFail(w, http.StatusForbidden, "IP_NOT_ALLOWED", "request ip is not in the api key's allowlist")
		return
	}
	view, trade, transfer := k.Has(exchange.PermRead), k.Has(exchange.PermTrade), k.Has(exchange.PermWithdraw) || k.Has(exchange.PermTransfer)
	if k.Native != nil {
		view, trade, transfer = slices.Contains(k.Native, "can_view"), slices.Contains(k.Native, "can_trade"), slices.Contains(k.Native, "can_transfer")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"can_view":       view,
		"can_trade":      trade,
		"can_transfer":   transfer,
		"portfolio_uuid": coinbaseSimPortfolio(k.APIKey),
		"portfolio_type": "DEFAULT",
	})
}

// coinbaseSimToken is a JWT split and decoded but not yet verified.
type coinbaseSimToken struct {
	signingInput string
	sig          []byte
	header       struct {
		Alg   string `json:"alg"`
		Kid   string `json:"kid"`
		Nonce string `json:"nonce"`
	}
	claims struct {
		Sub string `json:"sub"`
		Iss string `json:"iss"`
		URI string `json:"uri"`
		Nbf *int64 `json:"nbf"`
		Exp *int64 `json:"exp"`
	}
}

func coinbaseSimSplit(raw string) (*coinbaseSimToken, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed jwt")
	}
	t := &coinbaseSimToken{signingInput: parts[0] + "." + parts[1]}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, fmt.Errorf("malformed jwt encoding")
	}
	if json.Unmarshal(hb, &t.header) != nil || json.Unmarshal(cb, &t.claims) != nil {
		return nil, fmt.Errorf("malformed jwt json")
	}
	if t.header.Kid == "" {
		return nil, fmt.Errorf("missing kid")
	}
	t.sig = sig
	return t, nil
}

// coinbaseSimKey is the public half of a registered secret.
type coinbaseSimKey struct {
	ed ed25519.PublicKey
	ec *ecdsa.PublicKey
}

// alg is the JWS algorithm a token for this key must name.
func (k coinbaseSimKey) alg() string {
	if k.ed != nil {
		return "EdDSA"
	}
	return "ES256"
}

// verify checks the token's signature over its signing input. EdDSA is
// RFC 8037: a 64-byte Ed25519 signature of the signing input itself. ES256
// is RFC 7518 §3.4: the raw 32-byte R and S concatenated (not ASN.1 DER)
// over SHA-256 of the signing input.
func (t *coinbaseSimToken) verify(k coinbaseSimKey) bool {
	if k.ed != nil {
		return len(t.sig) == ed25519.SignatureSize && ed25519.Verify(k.ed, []byte(t.signingInput), t.sig)
	}
	if len(t.sig) != 64 {
		return false
	}
	r := new(big.Int).SetBytes(t.sig[:32])
	sv := new(big.Int).SetBytes(t.sig[32:])
	sum := sha256.Sum256([]byte(t.signingInput))
	return ecdsa.Verify(k.ec, sum[:], r, sv)
}

// coinbaseSimPublicKey derives the public key from the registered secret:
// PEM (SEC 1 or PKCS #8, with literal "\n" accepted as the client does) or
// base64 of an Ed25519 key. Of the 64-byte form it takes the public key as
// written in the second half, as Coinbase holds it, not derived from the
// seed.
func coinbaseSimPublicKey(secret string) (coinbaseSimKey, error) {
	s := strings.ReplaceAll(strings.TrimSpace(secret), `\n`, "\n")
	if !strings.Contains(s, "-----BEGIN") {
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
		switch {
		case err != nil:
			return coinbaseSimKey{}, err
		case len(raw) == 64:
			return coinbaseSimKey{ed: ed25519.PublicKey(raw[32:])}, nil
		case len(raw) == 32:
			return coinbaseSimKey{ed: ed25519.NewKeyFromSeed(raw).Public().(ed25519.PublicKey)}, nil
		}
		return coinbaseSimKey{}, fmt.Errorf("base64 secret of %d bytes", len(raw))
	}
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return coinbaseSimKey{}, fmt.Errorf("no PEM private key")
		}
		var key any
		var err error
		switch block.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return coinbaseSimKey{}, err
		}
		switch k := key.(type) {
		case ed25519.PrivateKey:
			return coinbaseSimKey{ed: k.Public().(ed25519.PublicKey)}, nil
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() {
				return coinbaseSimKey{}, fmt.Errorf("not a P-256 key")
			}
			return coinbaseSimKey{ec: &k.PublicKey}, nil
		}
		return coinbaseSimKey{}, fmt.Errorf("unsupported key type")
	}
}

// coinbaseSimPortfolio gives each key a stable portfolio UUID of its own,
// as a CDP key is scoped to one portfolio.
func coinbaseSimPortfolio(keyName string) string {
	h := sha256.Sum256([]byte(keyName))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
