package simulator

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

var binanceTestNow = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func newBinanceTestSim(t *testing.T) *Simulator {
	t.Helper()
	s := New(WithClock(func() time.Time { return binanceTestNow }))
	s.AddKey(Key{Exchange: exchange.Binance, APIKey: "binKeyOK", Secret: "bin-secret", Permissions: []string{"read", "trade", "transfer"}, CreatedAt: time.UnixMilli(1623840271000)})
	s.AddKey(Key{Exchange: exchange.Binance, APIKey: "binKeyIP", Secret: "bin-secret", Permissions: []string{"read"}, AllowedIPs: []string{"203.0.113.7"}})
	s.AddKey(Key{Exchange: exchange.Binance, APIKey: "binKeyOff", Secret: "bin-secret", Permissions: []string{"read"}, State: Inactive})
	return s
}

// binanceTestSign is written from Binance's docs, independently of the
// simulator's verifier.
func binanceTestSign(secret, payload string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return hex.EncodeToString(m.Sum(nil))
}

func binanceTestQuery(secret string, ts time.Time) string {
	q := "timestamp=" + strconv.FormatInt(ts.UnixMilli(), 10) + "&recvWindow=5000"
	return q + "&signature=" + binanceTestSign(secret, q)
}

func binanceServe(s *Simulator, path, apiKey, rawQuery, remote string) (*httptest.ResponseRecorder, map[string]any) {
	r := httptest.NewRequest(http.MethodGet, "http://sim.test/binance"+path+"?"+rawQuery, nil)
	r.RemoteAddr = remote
	if apiKey != "" {
		r.Header.Set("X-MBX-APIKEY", apiKey)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w, body
}

func expectBinanceError(t *testing.T, w *httptest.ResponseRecorder, body map[string]any, status int, code float64, msgPart string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d (%s)", w.Code, status, w.Body.String())
	}
	if got, _ := body["code"].(float64); got != code {
		t.Fatalf("code %v, want %v (%s)", body["code"], code, w.Body.String())
	}
	msg, _ := body["msg"].(string)
	if !strings.Contains(msg, msgPart) {
		t.Fatalf("msg %q, want it to contain %q", msg, msgPart)
	}
	if len(body) != 2 {
		t.Fatalf("error body %s, want exactly code and msg", w.Body.String())
	}
}

const binanceRestrictionsTestPath = "/sapi/v1/account/apiRestrictions"

func TestBinanceSimAccepts(t *testing.T) {
	s := newBinanceTestSim(t)
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", binanceTestQuery("bin-secret", binanceTestNow), "192.0.2.1:5555")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	want := map[string]any{
		"enableReading": true, "enableSpotAndMarginTrading": true, "permitsUniversalTransfer": true, "enableInternalTransfer": true,
		"enableWithdrawals": false, "enableMargin": false, "enableFutures": false, "enableVanillaOptions": false, "ipRestrict": false,
		"createTime": float64(1623840271000),
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	if s.Requests(exchange.Binance, "binKeyOK") != 1 {
		t.Errorf("request not counted for the key")
	}
	// Binance documents signatures as case-insensitive.
	q := "timestamp=" + strconv.FormatInt(binanceTestNow.UnixMilli(), 10) + "&recvWindow=5000"
	w, _ = binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", q+"&signature="+strings.ToUpper(binanceTestSign("bin-secret", q)), "192.0.2.1:5555")
	if w.Code != 200 {
		t.Fatalf("uppercase signature: status %d: %s", w.Code, w.Body.String())
	}
	// The testnet's account endpoint.
	w, body = binanceServe(s, "/api/v3/account", "binKeyOK", binanceTestQuery("bin-secret", binanceTestNow), "192.0.2.1:5555")
	if w.Code != 200 || body["canTrade"] != true || body["canWithdraw"] != false {
		t.Fatalf("account: %d %s", w.Code, w.Body.String())
	}
}

func TestBinanceSimWrongSecret(t *testing.T) {
	s := newBinanceTestSim(t)
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", binanceTestQuery("not-the-secret", binanceTestNow), "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1022, "Signature for this request is not valid.")
}

// The signature covers the query exactly as sent: the same parameters in
// another order are a different payload.
func TestBinanceSimSignatureCoversExactQuery(t *testing.T) {
	s := newBinanceTestSim(t)
	ts := strconv.FormatInt(binanceTestNow.UnixMilli(), 10)
	sig := binanceTestSign("bin-secret", "timestamp="+ts+"&recvWindow=5000")
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", "recvWindow=5000&timestamp="+ts+"&signature="+sig, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1022, "Signature")
	// Signature not last.
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", "signature="+sig+"&timestamp="+ts+"&recvWindow=5000", "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1102, "signature")
}

func TestBinanceSimStaleTimestamp(t *testing.T) {
	s := newBinanceTestSim(t)
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", binanceTestQuery("bin-secret", binanceTestNow.Add(-6*time.Second)), "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1021, "outside of the recvWindow")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", binanceTestQuery("bin-secret", binanceTestNow.Add(time.Second)), "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1021, "ahead of the server's time")
	// Just inside both edges.
	for _, d := range []time.Duration{-5 * time.Second, 999 * time.Millisecond} {
		if w, _ := binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", binanceTestQuery("bin-secret", binanceTestNow.Add(d)), "192.0.2.1:5555"); w.Code != 200 {
			t.Errorf("offset %s: status %d %s", d, w.Code, w.Body.String())
		}
	}
}

func TestBinanceSimIPNotAllowed(t *testing.T) {
	s := newBinanceTestSim(t)
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyIP", binanceTestQuery("bin-secret", binanceTestNow), "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 192.0.2.1")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyIP", binanceTestQuery("bin-secret", binanceTestNow), "203.0.113.7:5555")
	if w.Code != 200 || body["ipRestrict"] != true {
		t.Fatalf("allowlisted caller: %d %s", w.Code, w.Body.String())
	}
}

func TestBinanceSimKeyErrors(t *testing.T) {
	s := newBinanceTestSim(t)
	q := binanceTestQuery("bin-secret", binanceTestNow)
	// An unknown key gets the very answer a caller outside the allowlist
	// gets, "request ip" suffix included on /sapi.
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyNobody", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 192.0.2.1")
	s.SetState(exchange.Binance, "binKeyOK", Revoked)
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2015, "Invalid API-key, IP, or permissions for action, request ip: 192.0.2.1")
	// On /api routes neither cause carries the suffix.
	for _, key := range []string{"binKeyNobody", "binKeyIP"} {
		w, body = binanceServe(s, "/api/v3/account", key, q, "192.0.2.1:5555")
		expectBinanceError(t, w, body, 401, -2015, "Invalid API-key, IP, or permissions for action.")
		if strings.Contains(body["msg"].(string), "request ip") {
			t.Errorf("%s on /api: %v", key, body["msg"])
		}
	}
	w, body = binanceServe(s, binanceRestrictionsTestPath, "bad key!", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2014, "API-key format invalid.")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2014, "API-key format invalid.")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOff", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -1002, "not authorized")
}

// binanceTestAsymQuery signs the probe query the way rest-api.md shows for
// RSA and Ed25519 keys: base64 of the signature, then percent-encoded.
func binanceTestAsymQuery(t *testing.T, priv crypto.Signer, ts time.Time) string {
	t.Helper()
	q := "timestamp=" + strconv.FormatInt(ts.UnixMilli(), 10) + "&recvWindow=5000"
	var sig []byte
	var err error
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(q))
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(q))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	return q + "&signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

func binanceTestPublicPEM(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// Ed25519 and RSA keys are registered by their public key, as on Binance,
// and each signature is checked with its own algorithm.
func TestBinanceSimAsymmetricKeys(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := newBinanceTestSim(t)
	s.AddKey(Key{Exchange: exchange.Binance, APIKey: "binEd", Secret: binanceTestPublicPEM(t, edPriv.Public()), Permissions: []string{"read"}})
	s.AddKey(Key{Exchange: exchange.Binance, APIKey: "binRSA", Secret: binanceTestPublicPEM(t, rsaPriv.Public()), Permissions: []string{"read"}})
	for _, tc := range []struct {
		name, key string
		query     string
		code      float64
	}{
		{"Ed25519", "binEd", binanceTestAsymQuery(t, edPriv, binanceTestNow), 0},
		{"RSA", "binRSA", binanceTestAsymQuery(t, rsaPriv, binanceTestNow), 0},
		{"Ed25519 signed by another key", "binEd", binanceTestAsymQuery(t, otherEd, binanceTestNow), -1022},
		{"RSA key signed with Ed25519", "binRSA", binanceTestAsymQuery(t, edPriv, binanceTestNow), -1022},
		{"Ed25519 key with an HMAC signature", "binEd", binanceTestQuery("bin-secret", binanceTestNow), -1022},
		{"HMAC key with an Ed25519 signature", "binKeyOK", binanceTestAsymQuery(t, edPriv, binanceTestNow), -1022},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, body := binanceServe(s, binanceRestrictionsTestPath, tc.key, tc.query, "192.0.2.1:5555")
			if tc.code == 0 {
				if w.Code != 200 || body["enableReading"] != true {
					t.Fatalf("status %d: %s", w.Code, w.Body.String())
				}
				return
			}
			expectBinanceError(t, w, body, 400, tc.code, "Signature for this request is not valid.")
		})
	}
	// Base64 signatures are case-sensitive (rest-api.md, "Signature Case
	// Sensitivity"), unlike hex HMAC ones.
	q := binanceTestAsymQuery(t, rsaPriv, binanceTestNow)
	i := strings.LastIndex(q, "=")
	flipped := q[:i+1] + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 32
		case r >= 'A' && r <= 'Z':
			return r + 32
		}
		return r
	}, q[i+1:])
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binRSA", flipped, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1022, "Signature")
}

// Native flags are rendered verbatim: the key holds exactly these.
func TestBinanceSimNativeFlags(t *testing.T) {
	s := newBinanceTestSim(t)
	s.AddKey(Key{Exchange: exchange.Binance, APIKey: "binNative", Secret: "bin-secret", Native: []string{"enableReading", "enablePortfolioMarginTrading"}})
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binNative", binanceTestQuery("bin-secret", binanceTestNow), "192.0.2.1:5555")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	for _, f := range binanceFlagNames {
		want := f == "enableReading" || f == "enablePortfolioMarginTrading"
		if body[f] != want {
			t.Errorf("%s = %v, want %v", f, body[f], want)
		}
	}
}

func TestBinanceSimServerTime(t *testing.T) {
	s := newBinanceTestSim(t)
	s.SetClockSkew(-10 * time.Minute)
	w, body := binanceServe(s, "/api/v3/time", "", "", "192.0.2.1:5555")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if got, _ := body["serverTime"].(float64); int64(got) != binanceTestNow.Add(-10*time.Minute).UnixMilli() {
		t.Fatalf("serverTime %v", body["serverTime"])
	}
	// A request signed with our (now fast) clock is rejected as ahead.
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", binanceTestQuery("bin-secret", binanceTestNow), "192.0.2.1:5555")
	expectBinanceError(t, w, body, 400, -1021, "ahead")
}
