package simulator

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

const (
	coinbaseTestName = "organizations/11111111-2222-3333-4444-555555555555/apiKeys/66666666-7777-8888-9999-000000000000"
	coinbaseTestHost = "api.example.test"
	coinbaseTestPath = "/api/v3/brokerage/key_permissions"
)

var coinbaseTestNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func coinbaseTestPEM(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// coinbaseTestToken signs a JWT by hand, independently of the client.
func coinbaseTestToken(t *testing.T, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func coinbaseTestClaims(now time.Time) (map[string]any, map[string]any) {
	h := map[string]any{"alg": "ES256", "typ": "JWT", "kid": coinbaseTestName, "nonce": "0123456789abcdef0123456789abcdef"}
	c := map[string]any{"sub": coinbaseTestName, "iss": "cdp", "nbf": now.Unix(), "exp": now.Unix() + 120, "uri": "GET " + coinbaseTestHost + coinbaseTestPath}
	return h, c
}

func coinbaseTestSim(t *testing.T, secret string, mod func(*Key)) *Simulator {
	t.Helper()
	s := New(WithClock(func() time.Time { return coinbaseTestNow }))
	k := Key{Exchange: exchange.Coinbase, APIKey: coinbaseTestName, Secret: secret, Permissions: []string{"read", "trade"}}
	if mod != nil {
		mod(&k)
	}
	s.AddKey(k)
	return s
}

func coinbaseTestDo(s *Simulator, token, remote string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "http://"+coinbaseTestHost+"/coinbase"+coinbaseTestPath, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if remote != "" {
		r.RemoteAddr = remote
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func coinbaseExpectFail(t *testing.T, w *httptest.ResponseRecorder, status int, reason string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	var b struct {
		Error        string `json:"error"`
		Code         int    `json:"code"`
		Message      string `json:"message"`
		ErrorDetails string `json:"error_details"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	wantErr := "UNAUTHENTICATED"
	if status == http.StatusForbidden {
		wantErr = "PERMISSION_DENIED"
	}
	if b.Error != wantErr || b.ErrorDetails != reason || b.Message == "" {
		t.Fatalf("got %+v, want %s/%s", b, wantErr, reason)
	}
}

func TestCoinbaseSimAccepts(t *testing.T) {
	key, secret := coinbaseTestPEM(t)
	s := coinbaseTestSim(t, secret, nil)
	h, c := coinbaseTestClaims(coinbaseTestNow)
	w := coinbaseTestDo(s, coinbaseTestToken(t, key, h, c), "")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	if got["can_view"] != true || got["can_trade"] != true || got["can_transfer"] != false || got["portfolio_type"] != "DEFAULT" {
		t.Errorf("got %v", got)
	}
	if s.Requests(exchange.Coinbase, coinbaseTestName) != 1 {
		t.Error("request not counted against the key")
	}
}

func TestCoinbaseSimPKCS8AndEscapedSecret(t *testing.T) {
	key, _ := coinbaseTestPEM(t)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	escaped := strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "\n", `\n`)
	s := coinbaseTestSim(t, escaped, nil)
	h, c := coinbaseTestClaims(coinbaseTestNow)
	if w := coinbaseTestDo(s, coinbaseTestToken(t, key, h, c), ""); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

func TestCoinbaseSimRejects(t *testing.T) {
	key, secret := coinbaseTestPEM(t)
	other, _ := coinbaseTestPEM(t)
	for _, tc := range []struct {
		name   string
		sign   *ecdsa.PrivateKey
		mod    func(h, c map[string]any)
		key    func(*Key)
		remote string
		status int
		reason string
	}{
		{name: "wrong secret", sign: other, status: 401, reason: "INVALID_SIGNATURE"},
		{name: "unknown key", mod: func(h, c map[string]any) { h["kid"] = "organizations/x/apiKeys/y"; c["sub"] = h["kid"] }, status: 401, reason: "KEY_NOT_FOUND"},
		{name: "revoked", key: func(k *Key) { k.State = Revoked }, status: 401, reason: "KEY_NOT_FOUND"},
		{name: "inactive", key: func(k *Key) { k.State = Inactive }, status: 401, reason: "KEY_DISABLED"},
		{name: "expired key", key: func(k *Key) { k.ExpiresAt = coinbaseTestNow.Add(-time.Hour) }, status: 401, reason: "KEY_EXPIRED"},
		{name: "stale token", mod: func(h, c map[string]any) {
			c["nbf"] = coinbaseTestNow.Add(-5 * time.Minute).Unix()
			c["exp"] = coinbaseTestNow.Add(-3 * time.Minute).Unix()
		}, status: 401, reason: "TOKEN_EXPIRED"},
		{name: "token from the future", mod: func(h, c map[string]any) {
			c["nbf"] = coinbaseTestNow.Add(10 * time.Minute).Unix()
			c["exp"] = coinbaseTestNow.Add(12 * time.Minute).Unix()
		}, status: 401, reason: "TOKEN_NOT_YET_VALID"},
		{name: "lifetime too long", mod: func(h, c map[string]any) { c["exp"] = coinbaseTestNow.Add(time.Hour).Unix() }, status: 401, reason: "INVALID_TOKEN"},
		{name: "wrong uri path", mod: func(h, c map[string]any) { c["uri"] = "GET " + coinbaseTestHost + "/coinbase" + coinbaseTestPath }, status: 401, reason: "INVALID_TOKEN"},
		{name: "wrong uri host", mod: func(h, c map[string]any) { c["uri"] = "GET api.coinbase.com" + coinbaseTestPath }, status: 401, reason: "INVALID_TOKEN"},
		{name: "wrong uri method", mod: func(h, c map[string]any) { c["uri"] = "POST " + coinbaseTestHost + coinbaseTestPath }, status: 401, reason: "INVALID_TOKEN"},
		{name: "wrong issuer", mod: func(h, c map[string]any) { c["iss"] = "coinbase-cloud" }, status: 401, reason: "INVALID_TOKEN"},
		{name: "sub differs from kid", mod: func(h, c map[string]any) { c["sub"] = "organizations/x/apiKeys/y" }, status: 401, reason: "INVALID_TOKEN"},
		{name: "alg none", mod: func(h, c map[string]any) { h["alg"] = "none" }, status: 401, reason: "INVALID_TOKEN"},
		{name: "no nonce", mod: func(h, c map[string]any) { delete(h, "nonce") }, status: 401, reason: "INVALID_TOKEN"},
		{name: "no exp", mod: func(h, c map[string]any) { delete(c, "exp") }, status: 401, reason: "INVALID_TOKEN"},
		{name: "ip outside allowlist", key: func(k *Key) { k.AllowedIPs = []string{"203.0.113.7"} }, remote: "198.51.100.1:4242", status: 403, reason: "IP_NOT_ALLOWED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := coinbaseTestSim(t, secret, tc.key)
			h, c := coinbaseTestClaims(coinbaseTestNow)
			if tc.mod != nil {
				tc.mod(h, c)
			}
			signer := key
			if tc.sign != nil {
				signer = tc.sign
			}
			coinbaseExpectFail(t, coinbaseTestDo(s, coinbaseTestToken(t, signer, h, c), tc.remote), tc.status, tc.reason)
		})
	}
}

func TestCoinbaseSimReplayedNonce(t *testing.T) {
	key, secret := coinbaseTestPEM(t)
	s := coinbaseTestSim(t, secret, nil)
	h, c := coinbaseTestClaims(coinbaseTestNow)
	tok := coinbaseTestToken(t, key, h, c)
	if w := coinbaseTestDo(s, tok, ""); w.Code != http.StatusOK {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	coinbaseExpectFail(t, coinbaseTestDo(s, tok, ""), 401, "TOKEN_REPLAYED")
}

func TestCoinbaseSimLeeway(t *testing.T) {
	key, secret := coinbaseTestPEM(t)
	s := coinbaseTestSim(t, secret, nil)
	h, c := coinbaseTestClaims(coinbaseTestNow.Add(4 * time.Second))
	if w := coinbaseTestDo(s, coinbaseTestToken(t, key, h, c), ""); w.Code != http.StatusOK {
		t.Fatalf("4 s ahead is within the leeway: %d %s", w.Code, w.Body)
	}
	h, c = coinbaseTestClaims(coinbaseTestNow.Add(6 * time.Second))
	h["nonce"] = "another"
	coinbaseExpectFail(t, coinbaseTestDo(s, coinbaseTestToken(t, key, h, c), ""), 401, "TOKEN_NOT_YET_VALID")
}

func TestCoinbaseSimRejectsDERSignature(t *testing.T) {
	key, secret := coinbaseTestPEM(t)
	s := coinbaseTestSim(t, secret, nil)
	h, c := coinbaseTestClaims(coinbaseTestNow)
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sum := sha256.Sum256([]byte(input))
	r, sv, _ := ecdsa.Sign(rand.Reader, key, sum[:])
	der, _ := asn1.Marshal(struct{ R, S *big.Int }{r, sv})
	tok := input + "." + base64.RawURLEncoding.EncodeToString(der)
	coinbaseExpectFail(t, coinbaseTestDo(s, tok, ""), 401, "INVALID_SIGNATURE")
}

func TestCoinbaseSimMissingOrMalformedToken(t *testing.T) {
	_, secret := coinbaseTestPEM(t)
	s := coinbaseTestSim(t, secret, nil)
	coinbaseExpectFail(t, coinbaseTestDo(s, "", ""), 401, "INVALID_TOKEN")
	coinbaseExpectFail(t, coinbaseTestDo(s, "not.a-jwt", ""), 401, "INVALID_TOKEN")
}

func TestCoinbaseSimTime(t *testing.T) {
	s := New(WithClock(func() time.Time { return coinbaseTestNow }))
	s.SetClockSkew(-10 * time.Minute)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/coinbase/api/v3/brokerage/time", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	var b map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	want := coinbaseTestNow.Add(-10 * time.Minute)
	if b["epochMillis"] != "1772365800000" || b["epochSeconds"] != "1772365800" || b["iso"] != want.Format(time.RFC3339Nano) {
		t.Errorf("got %v, want %v", b, want)
	}
}

// coinbaseTestEdToken signs an EdDSA JWT by hand (RFC 8037), independently
// of the client.
func coinbaseTestEdToken(key ed25519.PrivateKey, header, claims map[string]any) string {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(input)))
}

func coinbaseTestEdClaims(now time.Time) (map[string]any, map[string]any) {
	h, c := coinbaseTestClaims(now)
	h["alg"] = "EdDSA"
	return h, c
}

// Every Ed25519 secret shape CDP and coinbase-advanced-py use verifies.
func TestCoinbaseSimAcceptsEd25519(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	for name, secret := range map[string]string{
		"base64 of 64 bytes": base64.StdEncoding.EncodeToString(key),
		"base64 of the seed": base64.StdEncoding.EncodeToString(key.Seed()),
		"pkcs8 pem":          string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	} {
		t.Run(name, func(t *testing.T) {
			s := coinbaseTestSim(t, secret, nil)
			h, c := coinbaseTestEdClaims(coinbaseTestNow)
			w := coinbaseTestDo(s, coinbaseTestEdToken(key, h, c), "")
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
		})
	}
}

func TestCoinbaseSimRejectsEd25519(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, ecSecret := coinbaseTestPEM(t)
	s := coinbaseTestSim(t, base64.StdEncoding.EncodeToString(key), nil)

	// Signed with another Ed25519 key.
	h, c := coinbaseTestEdClaims(coinbaseTestNow)
	coinbaseExpectFail(t, coinbaseTestDo(s, coinbaseTestEdToken(other, h, c), ""), http.StatusUnauthorized, "INVALID_SIGNATURE")

	// A valid signature, one byte changed.
	h, c = coinbaseTestEdClaims(coinbaseTestNow)
	tok := []byte(coinbaseTestEdToken(key, h, c))
	sig, _ := base64.RawURLEncoding.DecodeString(string(tok[strings.LastIndex(string(tok), ".")+1:]))
	sig[10] ^= 1
	forged := string(tok[:strings.LastIndex(string(tok), ".")+1]) + base64.RawURLEncoding.EncodeToString(sig)
	coinbaseExpectFail(t, coinbaseTestDo(s, forged, ""), http.StatusUnauthorized, "INVALID_SIGNATURE")

	// An ES256 token for an Ed25519 key, and an EdDSA token for an EC key:
	// the algorithm is the key's, not the token's choice.
	h, c = coinbaseTestClaims(coinbaseTestNow)
	coinbaseExpectFail(t, coinbaseTestDo(s, coinbaseTestToken(t, ecKey, h, c), ""), http.StatusUnauthorized, "INVALID_TOKEN")
	sEC := coinbaseTestSim(t, ecSecret, nil)
	h, c = coinbaseTestEdClaims(coinbaseTestNow)
	coinbaseExpectFail(t, coinbaseTestDo(sEC, coinbaseTestEdToken(key, h, c), ""), http.StatusUnauthorized, "INVALID_TOKEN")
}

// Native names are rendered verbatim, so a test can register can_trade alone.
func TestCoinbaseSimNativePermissions(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := coinbaseTestSim(t, base64.StdEncoding.EncodeToString(key), func(k *Key) {
		k.Permissions = []string{"read", "withdraw"}
		k.Native = []string{"can_trade"}
	})
	h, c := coinbaseTestEdClaims(coinbaseTestNow)
	w := coinbaseTestDo(s, coinbaseTestEdToken(key, h, c), "")
	var got map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	if w.Code != http.StatusOK || got["can_view"] != false || got["can_trade"] != true || got["can_transfer"] != false {
		t.Errorf("status %d, got %v", w.Code, got)
	}
}

// The simulator's own EdDSA check accepts RFC 8037 A.4's published JWS for
// the A.1 key, registered as CDP shows it (seed followed by public key),
// and refuses it with one bit changed.
func TestCoinbaseSimEd25519KnownAnswer(t *testing.T) {
	d, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	sig, _ := base64.RawURLEncoding.DecodeString("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
	key, err := coinbaseSimPublicKey(base64.StdEncoding.EncodeToString(append(append([]byte{}, d...), x...)))
	if err != nil || key.alg() != "EdDSA" {
		t.Fatalf("key %+v, %v", key, err)
	}
	tok := &coinbaseSimToken{signingInput: "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc", sig: sig}
	if !tok.verify(key) {
		t.Fatal("RFC 8037 A.4 signature refused")
	}
	tok.signingInput += "x"
	if tok.verify(key) {
		t.Fatal("changed input accepted")
	}
}
