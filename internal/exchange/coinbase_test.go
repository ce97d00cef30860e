package exchange

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func coinbaseTestKey(t testing.TB) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// coinbaseTestVerify checks a token the way the RFCs say (7518 §3.4 for
// ES256, 8037 for EdDSA), without the JWT library the client signs with,
// and returns its header and claims.
func coinbaseTestVerify(t *testing.T, token string, pub crypto.PublicKey) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature is not 64 raw bytes: %d, %v", len(sig), err)
	}
	input := []byte(parts[0] + "." + parts[1])
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(input)
		if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("ES256 signature does not verify with the public key")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, input, sig) {
			t.Fatal("EdDSA signature does not verify with the public key")
		}
	default:
		t.Fatalf("unsupported public key %T", pub)
	}
	var h, c map[string]any
	for i, dst := range []*map[string]any{&h, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return h, c
}

func TestCoinbaseJWT(t *testing.T) {
	ecKey, _ := coinbaseTestKey(t)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	name := "organizations/org-1/apiKeys/key-1"
	now := time.Unix(1700000000, 0)
	uri := "GET api.coinbase.com/api/v3/brokerage/key_permissions"
	nonce := strings.Repeat("ab", coinbaseNonceBytes)
	for _, tc := range []struct {
		alg string
		key crypto.Signer
		pub crypto.PublicKey
	}{
		{"ES256", ecKey, &ecKey.PublicKey},
		{"EdDSA", edKey, edPub},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			tok, err := coinbaseJWT(tc.key, name, uri, now, nonce)
			if err != nil {
				t.Fatal(err)
			}
			h, c := coinbaseTestVerify(t, tok, tc.pub)
			if h["alg"] != tc.alg || h["kid"] != name || h["nonce"] != nonce {
				t.Errorf("header %v", h)
			}
			want := map[string]any{"sub": name, "iss": "cdp", "nbf": 1700000000.0, "exp": 1700000120.0, "uri": uri}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if len(c) != len(want) {
				t.Errorf("claims %v, want exactly %v", c, want)
			}
		})
	}
}

// RFC 8037 Appendix A publishes an Ed25519 JWS: the key (A.1: d, x), the
// signing input of {"alg":"EdDSA"} over "Example of Ed25519 signing" and its
// signature (A.4). Coinbase publishes no vector; this one checks the secret
// parsing (seed followed by public key, as CDP shows it) and the EdDSA
// signer the JWT goes through.
const (
	coinbaseRFC8037D     = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	coinbaseRFC8037X     = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	coinbaseRFC8037Input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
	coinbaseRFC8037Sig   = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

func TestCoinbaseEd25519KnownAnswer(t *testing.T) {
	d, _ := base64.RawURLEncoding.DecodeString(coinbaseRFC8037D)
	x, _ := base64.RawURLEncoding.DecodeString(coinbaseRFC8037X)
	for name, secret := range map[string]string{
		"64 bytes": base64.StdEncoding.EncodeToString(append(append([]byte{}, d...), x...)),
		"seed":     base64.StdEncoding.EncodeToString(d),
	} {
		key, err := coinbaseParseKey(secret)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sig, err := jwt.SigningMethodEdDSA.Sign(coinbaseRFC8037Input, key)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.RawURLEncoding.EncodeToString(sig); got != coinbaseRFC8037Sig {
			t.Errorf("%s: signature %s, want RFC 8037 A.4's %s", name, got, coinbaseRFC8037Sig)
		}
		// The probe's own token verifies with the published public key.
		tok, err := coinbaseJWT(key, "k", "GET api.coinbase.com"+coinbasePermissionsPath, time.Unix(1700000000, 0), "00")
		if err != nil {
			t.Fatal(err)
		}
		coinbaseTestVerify(t, tok, ed25519.PublicKey(x))
	}
}

// TestCoinbaseJWTNonceFromOptionsRandom: the nonce is the hex of 32 bytes
// from Options.Random (the SDK's secrets.token_hex()), fresh per request.
func TestCoinbaseJWTNonceFromOptionsRandom(t *testing.T) {
	var mu sync.Mutex
	var nonces []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), ".")
		var h map[string]any
		if len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[0])
			_ = json.Unmarshal(b, &h)
		}
		n, _ := h["nonce"].(string)
		mu.Lock()
		nonces = append(nonces, n)
		mu.Unlock()
		_, _ = w.Write([]byte(`{"can_view":true,"can_trade":false,"can_transfer":false}`))
	}))
	defer srv.Close()
	random := bytes.NewReader(bytes.Repeat([]byte{0x01, 0x23}, coinbaseNonceBytes)) // two nonces' worth
	p := NewProber(Options{Random: random})
	req := Request{Exchange: Coinbase, Endpoint: srv.URL, Credentials: Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: base64.StdEncoding.EncodeToString(coinbaseTestEd25519(t))}}
	for i := 0; i < 2; i++ {
		if _, err := p.Probe(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.Repeat("0123", coinbaseNonceBytes/2)
	if len(nonces) != 2 || nonces[0] != want || nonces[1] != want {
		t.Errorf("nonces %q, want two of %q", nonces, want)
	}
	// The source is exhausted: the next probe fails before sending.
	if _, err := p.Probe(context.Background(), req); err == nil || len(nonces) != 2 {
		t.Errorf("probe without randomness: %v, %d requests", err, len(nonces))
	}
}

func coinbaseTestEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCoinbaseSignsExchangePath checks that the uri claim names the host and
// the exchange-relative path, not a path prefix of the base URL.
func TestCoinbaseSignsExchangePath(t *testing.T) {
	key, secret := coinbaseTestKey(t)
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/api/v3/brokerage/key_permissions" {
			http.NotFound(w, r)
			return
		}
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, _ = w.Write([]byte(`{"can_view":true,"can_trade":false,"can_transfer":true,"portfolio_uuid":"p","portfolio_type":"DEFAULT"}`))
	}))
	defer srv.Close()
	p := NewProber(Options{})
	perms, err := p.Probe(context.Background(), Request{Exchange: Coinbase, Endpoint: srv.URL + "/prefix/", Credentials: Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	if !coinbaseEqual(perms.Canonical, []string{PermRead, PermWithdraw, PermTransfer}) || !coinbaseEqual(perms.Native, []string{"can_transfer", "can_view"}) {
		t.Errorf("got %+v", perms)
	}
	_, c := coinbaseTestVerify(t, got, &key.PublicKey)
	if want := "GET " + strings.TrimPrefix(srv.URL, "http://") + "/api/v3/brokerage/key_permissions"; c["uri"] != want {
		t.Errorf("uri %v, want %q", c["uri"], want)
	}
}

func coinbaseEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCoinbaseParseKey(t *testing.T) {
	k, sec1 := coinbaseTestKey(t)
	p8der, _ := x509.MarshalPKCS8PrivateKey(k)
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8der}))
	ed := coinbaseTestEd25519(t)
	edDer, _ := x509.MarshalPKCS8PrivateKey(ed)
	edPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDer}))
	ed64 := base64.StdEncoding.EncodeToString(ed)
	ed32 := base64.StdEncoding.EncodeToString(ed.Seed())
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalECPrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDer, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	// seed of one key, public half of another
	other := coinbaseTestEd25519(t)
	mismatched := base64.StdEncoding.EncodeToString(append(append([]byte{}, ed.Seed()...), other[32:]...))

	type equaler interface{ Equal(crypto.PrivateKey) bool }
	for _, ok := range []struct {
		name, secret string
		want         equaler
	}{
		{"sec1", sec1, k},
		{"pkcs8 ec", pkcs8, k},
		{"escaped newlines", strings.ReplaceAll(sec1, "\n", `\n`), k},
		{"escaped CRLF", strings.ReplaceAll(sec1, "\n", `\r\n`), k},
		{"CRLF", strings.ReplaceAll(sec1, "\n", "\r\n"), k},
		{"surrounding whitespace", "\n  " + sec1 + "\n\n", k},
		// Ed25519, the default kind since February 2025.
		{"ed25519 base64 64 bytes", ed64, ed},
		{"ed25519 base64 32-byte seed", ed32, ed},
		{"ed25519 pkcs8 pem", edPEM, ed},
		{"ed25519 escaped pem", strings.ReplaceAll(edPEM, "\n", `\n`), ed},
		{"ed25519 base64 with trailing newline", ed64 + "\n", ed},
		{"ed25519 base64 wrapped", ed64[:40] + "\n" + ed64[40:], ed},
	} {
		got, err := coinbaseParseKey(ok.secret)
		if err != nil {
			t.Errorf("%s: %v", ok.name, err)
			continue
		}
		if !ok.want.Equal(got) {
			t.Errorf("%s: parsed a different key", ok.name)
		}
		if err := CheckCredentials(Coinbase, Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: ok.secret}); err != nil {
			t.Errorf("%s: CheckCredentials: %v", ok.name, err)
		}
	}
	for _, bad := range []struct{ name, secret, want string }{
		{"hex (valid base64 of 24 bytes)", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "24 bytes"},
		{"garbage", "not a key at all!", "neither PEM nor base64"},
		{"base64 of 48 bytes", base64.StdEncoding.EncodeToString(make([]byte, 48)), "48 bytes"},
		{"base64 of a password", base64.StdEncoding.EncodeToString([]byte("hunter2")), "7 bytes"},
		{"ed25519 halves of two keys", mismatched, "not the public key"},
		{"url-safe alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(ed64) + "-_", "neither PEM nor base64"},
		{"p384", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: p384der})), "P-256"},
		{"rsa", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDer})), "not Ed25519 or ECDSA"},
		{"public key", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})), "PEM block is"},
		{"corrupt sec1", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("not a key at all")})), "SEC 1"},
		{"truncated pem", sec1[:40], "not a complete PEM block"},
	} {
		err := CheckCredentials(Coinbase, Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: bad.secret})
		if err == nil {
			t.Errorf("%s: accepted", bad.name)
			continue
		}
		if !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %q does not mention %q", bad.name, err, bad.want)
		}
		// Every refusal says what would be accepted.
		if !strings.Contains(err.Error(), "Ed25519 as base64 of 64 bytes") || !strings.Contains(err.Error(), "EC PRIVATE KEY") {
			t.Errorf("%s: %q does not list the accepted shapes", bad.name, err)
		}
		if len(bad.secret) > 8 && strings.Contains(err.Error(), bad.secret[:8]) && !strings.HasPrefix(bad.secret, "-----") {
			t.Errorf("%s: message quotes the secret: %q", bad.name, err)
		}
	}
}

func TestCoinbaseMapping(t *testing.T) {
	for _, tc := range []struct {
		body          string
		canon, native []string
		grants        []Grant
	}{
		{`{"can_view":true,"can_trade":false,"can_transfer":false,"portfolio_uuid":"u","portfolio_type":"DEFAULT"}`, []string{"read"}, []string{"can_view"},
			[]Grant{{"can_view", []string{"read"}}}},
		// trade places futures and perpetuals orders through the same
		// POST /orders, and options on Global Derivatives (rest-scopes).
		{`{"can_view":true,"can_trade":true,"can_transfer":false}`, []string{"read", "trade", "futures", "options"}, []string{"can_trade", "can_view"},
			[]Grant{{"can_trade", []string{"trade", "futures", "options"}}, {"can_view", []string{"read"}}}},
		{`{"can_view":false,"can_trade":true,"can_transfer":false,"portfolio_type":"INTX"}`, []string{"trade", "futures", "options"}, []string{"can_trade"},
			[]Grant{{"can_trade", []string{"trade", "futures", "options"}}}},
		// can_transfer sends funds off Coinbase (withdraw) and between
		// portfolios (transfer).
		{`{"can_view":true,"can_trade":true,"can_transfer":true}`, []string{"read", "trade", "withdraw", "transfer", "futures", "options"}, []string{"can_trade", "can_transfer", "can_view"},
			[]Grant{{"can_trade", []string{"trade", "futures", "options"}}, {"can_transfer", []string{"withdraw", "transfer"}}, {"can_view", []string{"read"}}}},
		{`{"can_view":false,"can_trade":false,"can_transfer":false}`, []string{}, []string{}, nil},
	} {
		p, err := parseCoinbaseKeyPermissions(200, []byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if !coinbaseEqual(p.Canonical, tc.canon) || !coinbaseEqual(p.Native, tc.native) {
			t.Errorf("%s: got %v / %v", tc.body, p.Canonical, p.Native)
		}
		if !reflect.DeepEqual(p.Grants, tc.grants) {
			t.Errorf("%s: grants %v, want %v", tc.body, p.Grants, tc.grants)
		}
		// CDP keys may have an allowlist that key_permissions does not report.
		if p.IPRestriction != IPUnknown {
			t.Errorf("%s: IPRestriction %q, want Unknown", tc.body, p.IPRestriction)
		}
	}
}

// Every native name the parser can emit has a row with a source.
func TestCoinbasePermissionTable(t *testing.T) {
	for _, n := range []string{"can_view", "can_trade", "can_transfer"} {
		r, ok := coinbasePermissions.lookup(n)
		if !ok || len(r.Grants) == 0 || r.Source == "" {
			t.Errorf("%s: row %+v", n, r)
		}
	}
	if len(coinbasePermissions) != 3 {
		t.Errorf("%d rows, want 3", len(coinbasePermissions))
	}
}

func coinbaseErrBody(status int, reason string) string {
	e, code := "UNAUTHENTICATED", 16
	if status == 403 {
		e, code = "PERMISSION_DENIED", 7
	}
	b, _ := json.Marshal(map[string]any{"error": e, "code": code, "message": "m", "error_details": reason})
	return string(b)
}

func TestCoinbaseParseErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   Kind
	}{
		{401, coinbaseErrBody(401, "KEY_NOT_FOUND"), InvalidKey},
		{401, coinbaseErrBody(401, "INVALID_SIGNATURE"), InvalidSignature},
		{401, coinbaseErrBody(401, "INVALID_TOKEN"), InvalidSignature},
		{401, coinbaseErrBody(401, "TOKEN_EXPIRED"), ClockSkew},
		{401, coinbaseErrBody(401, "TOKEN_NOT_YET_VALID"), ClockSkew},
		{401, coinbaseErrBody(401, "TOKEN_REPLAYED"), ClockSkew},
		{401, coinbaseErrBody(401, "KEY_DISABLED"), Inactive},
		{401, coinbaseErrBody(401, "KEY_EXPIRED"), Inactive},
		{403, coinbaseErrBody(403, "IP_NOT_ALLOWED"), IPNotAllowed},
		{403, coinbaseErrBody(403, "SOMETHING_ELSE"), PermissionDenied},
		// An authentication failure Coinbase does not explain covers an
		// unknown key, a wrong private key and a caller outside the
		// allowlist, and valid keys get it now and then: ambiguous.
		{401, coinbaseErrBody(401, "SOMETHING_NEW"), KeyOrIPRejected},
		{401, "Unauthorized\n", KeyOrIPRejected},
		{401, "", KeyOrIPRejected},
		{401, `{"code":16,"message":"unauthenticated","details":[]}`, KeyOrIPRejected},
		{400, `{"error":"RESOURCE_EXHAUSTED","code":8,"message":"too many requests"}`, RateLimited},
		{400, `{"error":"INVALID_ARGUMENT","code":3,"message":"bad"}`, UnexpectedResponse},
		{404, `404 page not found`, UnexpectedResponse},
		{401, `<html>login</html>`, UnexpectedResponse},
		{500, `{"error":"INTERNAL","code":13,"message":"internal error"}`, Unavailable},
		{502, `upstream connect error`, Unavailable},
		{503, `<html>maintenance</html>`, Unavailable},
		{200, `<!DOCTYPE html><html>Just a moment...</html>`, UnexpectedResponse},
		{200, `{"can_view":true,"can_tr`, UnexpectedResponse},
		{200, `{"can_view":true}`, UnexpectedResponse},
		{200, `{"can_view":"yes","can_trade":true,"can_transfer":true}`, UnexpectedResponse},
		{200, `[]`, UnexpectedResponse},
		{200, `null`, UnexpectedResponse},
	} {
		_, err := parseCoinbaseKeyPermissions(tc.status, []byte(tc.body))
		e, ok := AsError(err)
		if !ok {
			t.Errorf("%d %s: not an *Error: %v", tc.status, tc.body, err)
			continue
		}
		if e.Kind != tc.want {
			t.Errorf("%d %s: got %s, want %s (%v)", tc.status, tc.body, e.Kind, tc.want, e)
		}
		if e.Exchange != Coinbase || e.HTTPStatus != tc.status {
			t.Errorf("%d %s: error %+v", tc.status, tc.body, e)
		}
		// Exactly the unexplained 401s are marked ambiguous (ambiguousAnswers).
		if e.Ambiguous != (tc.want == KeyOrIPRejected) {
			t.Errorf("%d %s: ambiguous = %v", tc.status, tc.body, e.Ambiguous)
		}
	}
	// Only a rejection Coinbase did not explain is worth a clock check.
	_, err := parseCoinbaseKeyPermissions(401, []byte(coinbaseErrBody(401, "KEY_NOT_FOUND")))
	if e, _ := AsError(err); coinbaseUnexplained(e) {
		t.Error("KEY_NOT_FOUND treated as unexplained")
	}
	_, err = parseCoinbaseKeyPermissions(401, []byte("Unauthorized"))
	if e, _ := AsError(err); !coinbaseUnexplained(e) {
		t.Error("bare Unauthorized treated as explained")
	}
}

func TestCoinbaseParseTime(t *testing.T) {
	want := time.UnixMilli(1700000000123)
	for _, body := range []string{
		`{"iso":"2023-11-14T22:13:20.123Z","epochSeconds":"1700000000","epochMillis":"1700000000123"}`,
		`{"epochMillis":1700000000123}`,
		`{"iso":"2023-11-14T22:13:20.123Z"}`,
		`{"iso":"2023-11-14T22:13:20.123Z","epochMillis":"garbage-is-ignored-if-iso-is-fine"}`,
	} {
		got, err := parseCoinbaseTime(200, []byte(body))
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("%s: got %v", body, got)
		}
	}
	if got, err := parseCoinbaseTime(200, []byte(`{"epochSeconds":"1700000000"}`)); err != nil || got.Unix() != 1700000000 {
		t.Errorf("seconds only: %v %v", got, err)
	}
	for _, tc := range []struct {
		status int
		body   string
		want   Kind
	}{
		{200, `{}`, UnexpectedResponse},
		{200, `{"epochMillis":"0"}`, UnexpectedResponse},
		{200, `{"iso":"yesterday"}`, UnexpectedResponse},
		{200, `<html></html>`, UnexpectedResponse},
		{200, `{"iso":"2023-11`, UnexpectedResponse},
		{404, `not found`, UnexpectedResponse},
		{503, `maintenance`, Unavailable},
	} {
		_, err := parseCoinbaseTime(tc.status, []byte(tc.body))
		if KindOf(err) != tc.want {
			t.Errorf("%d %s: got %v, want %s", tc.status, tc.body, err, tc.want)
		}
	}
}

// TestCoinbaseUnexplained401ChecksClock models the real exchange, which
// answers every JWT problem with a bare "Unauthorized": a skewed clock is
// found through the public time endpoint and the probe recovers.
func TestCoinbaseUnexplained401ChecksClock(t *testing.T) {
	_, secret := coinbaseTestKey(t)
	var mu sync.Mutex
	skew := -10 * time.Minute // the exchange's clock behind ours
	timeCalls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now().Add(skew)
		switch r.URL.Path {
		case coinbaseTimePath:
			timeCalls++
			_, _ = w.Write([]byte(`{"iso":"","epochSeconds":"0","epochMillis":"` + coinbaseItoa(now.UnixMilli()) + `"}`))
		case coinbasePermissionsPath:
			parts := strings.Split(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), ".")
			var c struct {
				Nbf int64 `json:"nbf"`
			}
			if len(parts) == 3 {
				b, _ := base64.RawURLEncoding.DecodeString(parts[1])
				_ = json.Unmarshal(b, &c)
			}
			if d := time.Unix(c.Nbf, 0).Sub(now); d > 5*time.Second || d < -5*time.Second || r.Header.Get("X-Test-Bad") != "" {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte("Unauthorized\n"))
				return
			}
			_, _ = w.Write([]byte(`{"can_view":true,"can_trade":false,"can_transfer":false}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	p := NewProber(Options{})
	req := Request{Exchange: Coinbase, Endpoint: srv.URL, Credentials: Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: secret}}
	if _, err := p.Probe(context.Background(), req); err != nil {
		t.Fatalf("want recovery after the clock check, got %v", err)
	}
	if off := p.ClockOffset(srv.URL); off > -9*time.Minute || off < -11*time.Minute {
		t.Errorf("learned offset %s, want about -10m", off)
	}

	// With the clock right, a bare 401 is the key's or the allowlist's
	// fault, or a spurious answer: KeyOrIPRejected, ambiguous.
	mu.Lock()
	skew, timeCalls = 0, 0
	mu.Unlock()
	p2 := NewProber(Options{})
	_, err := p2.Probe(context.Background(), Request{Exchange: Coinbase, Endpoint: srv.URL + "/", Credentials: Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: secret}})
	if err != nil {
		t.Fatalf("in sync: %v", err)
	}
	srvBad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Test-Bad", "1")
		srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer srvBad.Close()
	_, err = p2.Probe(context.Background(), Request{Exchange: Coinbase, Endpoint: srvBad.URL, Credentials: Credentials{APIKey: "organizations/o/apiKeys/k", APISecret: secret}})
	e, ok := AsError(err)
	if !ok || e.Kind != KeyOrIPRejected || !e.Ambiguous {
		t.Fatalf("want an ambiguous KeyOrIPRejected, got %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if timeCalls != 1 {
		t.Errorf("time endpoint called %d times, want 1", timeCalls)
	}
}

func coinbaseItoa(i int64) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func FuzzCoinbaseParseKeyPermissions(f *testing.F) {
	f.Add(200, []byte(`{"can_view":true,"can_trade":true,"can_transfer":false,"portfolio_uuid":"0b7a1f2e-1c1d-4e2f-9a3b-4c5d6e7f8091","portfolio_type":"DEFAULT"}`))
	f.Add(200, []byte(`{"can_view":true,"can_trade":true,"can_transfer":true,"portfolio_uuid":"","portfolio_type":"UNDEFINED"}`))
	for _, r := range []string{"KEY_NOT_FOUND", "INVALID_SIGNATURE", "INVALID_TOKEN", "TOKEN_EXPIRED", "TOKEN_NOT_YET_VALID", "TOKEN_REPLAYED", "KEY_DISABLED", "KEY_EXPIRED"} {
		f.Add(401, []byte(coinbaseErrBody(401, r)))
	}
	f.Add(403, []byte(coinbaseErrBody(403, "IP_NOT_ALLOWED")))
	f.Add(401, []byte("Unauthorized\n"))
	f.Add(400, []byte(`{"error":"RESOURCE_EXHAUSTED","code":"8","message":"slow down"}`))
	f.Add(500, []byte(`{"error":"INTERNAL","code":13,"message":"internal error"}`))
	f.Add(200, []byte(`<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>`))
	f.Add(503, []byte(`<html><body><h1>System maintenance</h1></body></html>`))
	f.Add(200, []byte(`{"can_view":true,"can_tr`))
	f.Add(200, []byte(`{"can_view":1}`))
	f.Add(200, []byte(`{"can_view":false,"can_trade":true,"can_transfer":true,"portfolio_uuid":"p","portfolio_type":"INTX"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p, err := parseCoinbaseKeyPermissions(status, body)
		if (p == nil) == (err == nil) {
			t.Fatalf("want exactly one of permissions and error, got %v, %v", p, err)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T", err)
			}
		}
	})
}

// FuzzCoinbaseParseKey: any secret yields either a usable Ed25519 or P-256
// key or an error that does not quote it.
func FuzzCoinbaseParseKey(f *testing.F) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDer, _ := x509.MarshalPKCS8PrivateKey(ed)
	_, sec1 := coinbaseTestKey(f)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(ed),
		base64.StdEncoding.EncodeToString(ed.Seed()),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDer})),
		sec1,
		strings.ReplaceAll(sec1, "\n", `\n`),
		"-----BEGIN EC PRIVATE KEY-----",
		"a1b2c3d4e5f60718293a4b5c6d7e8f90",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, secret string) {
		key, err := coinbaseParseKey(secret)
		if (key == nil) == (err == nil) {
			t.Fatalf("want exactly one of key and error, got %v, %v", key, err)
		}
		if err != nil {
			if len(secret) >= 16 && strings.Contains(err.Error(), secret) {
				t.Fatalf("error quotes the secret: %v", err)
			}
			return
		}
		switch k := key.(type) {
		case ed25519.PrivateKey:
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() {
				t.Fatalf("accepted a key on %s", k.Curve.Params().Name)
			}
		default:
			t.Fatalf("accepted a %T", key)
		}
	})
}

func FuzzCoinbaseParseTime(f *testing.F) {
	f.Add(200, []byte(`{"iso":"2023-11-14T22:13:20.123Z","epochSeconds":"1700000000","epochMillis":"1700000000123"}`))
	f.Add(200, []byte(`{"epochSeconds":1700000000.5}`))
	f.Add(200, []byte(`{"iso":"2023-11`))
	f.Add(200, []byte(`<html></html>`))
	f.Add(500, []byte(`{"error":"INTERNAL","code":13,"message":"internal error"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		ts, err := parseCoinbaseTime(status, body)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T", err)
			}
			return
		}
		if ts.Year() < 2000 || ts.Year() > 3000 {
			t.Fatalf("absurd time %v", ts)
		}
	})
}
