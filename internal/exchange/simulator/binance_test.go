package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
	w, body := binanceServe(s, binanceRestrictionsTestPath, "binKeyNobody", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2015, "Invalid API-key, IP, or permissions for action.")
	if strings.Contains(body["msg"].(string), "request ip") {
		t.Errorf("unknown key must not look like an IP rejection: %v", body["msg"])
	}
	s.SetState(exchange.Binance, "binKeyOK", Revoked)
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOK", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2015, "Invalid API-key")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "bad key!", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2014, "API-key format invalid.")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -2014, "API-key format invalid.")
	w, body = binanceServe(s, binanceRestrictionsTestPath, "binKeyOff", q, "192.0.2.1:5555")
	expectBinanceError(t, w, body, 401, -1002, "not authorized")
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
