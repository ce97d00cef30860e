package simulator

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

const (
	okxTestKey    = "a1b2c3d4-0000-4000-8000-5e6f7a8b9c0d"
	okxTestSecret = "22582BD0CFF14C41EDBF1AB98506286D"
	okxTestPass   = "Correct-Horse-1"
	okxTestPath   = "/api/v5/account/config"
)

var okxTestNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func okxTestSim(mod func(*Key)) *Simulator {
	s := New(WithClock(func() time.Time { return okxTestNow }))
	k := Key{Exchange: exchange.OKX, APIKey: okxTestKey, Secret: okxTestSecret, Passphrase: okxTestPass, Permissions: []string{"read", "trade"}}
	if mod != nil {
		mod(&k)
	}
	s.AddKey(k)
	return s
}

type okxTestReq struct {
	key, secret, pass string
	ts                time.Time
	tsText            string // overrides ts
	path              string // signed path, when it differs from the request's
	demo              bool
	remote            string
}

func okxTestDo(s *Simulator, q okxTestReq) *httptest.ResponseRecorder {
	if q.key == "" {
		q.key = okxTestKey
	}
	if q.secret == "" {
		q.secret = okxTestSecret
	}
	if q.pass == "" {
		q.pass = okxTestPass
	}
	if q.ts.IsZero() {
		q.ts = okxTestNow
	}
	if q.tsText == "" {
		q.tsText = q.ts.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if q.path == "" {
		q.path = okxTestPath
	}
	m := hmac.New(sha256.New, []byte(q.secret))
	m.Write([]byte(q.tsText + "GET" + q.path))
	r := httptest.NewRequest(http.MethodGet, "/okx"+okxTestPath, nil)
	r.Header.Set("OK-ACCESS-KEY", q.key)
	r.Header.Set("OK-ACCESS-SIGN", base64.StdEncoding.EncodeToString(m.Sum(nil)))
	r.Header.Set("OK-ACCESS-TIMESTAMP", q.tsText)
	r.Header.Set("OK-ACCESS-PASSPHRASE", q.pass)
	if q.demo {
		r.Header.Set("x-simulated-trading", "1")
	}
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

type okxTestBody struct {
	Code string           `json:"code"`
	Msg  string           `json:"msg"`
	Data []map[string]any `json:"data"`
}

func okxExpect(t *testing.T, w *httptest.ResponseRecorder, status int, code string) okxTestBody {
	t.Helper()
	var b okxTestBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	if w.Code != status || b.Code != code {
		t.Fatalf("got %d %s, want %d code %s", w.Code, w.Body, status, code)
	}
	if code != "0" && (b.Msg == "" || b.Data == nil) {
		t.Fatalf("error body lacks msg or data: %s", w.Body)
	}
	return b
}

func TestOKXSimAccepts(t *testing.T) {
	s := okxTestSim(func(k *Key) { k.Permissions = []string{"read", "trade", "withdraw"} })
	b := okxExpect(t, okxTestDo(s, okxTestReq{}), 200, "0")
	if len(b.Data) != 1 || b.Data[0]["perm"] != "read_only,trade,withdraw" || b.Data[0]["ip"] != "" {
		t.Errorf("data %v", b.Data)
	}
	if s.Requests(exchange.OKX, okxTestKey) != 1 {
		t.Error("request not counted against the key")
	}
	// Within the 30 s window either way.
	okxExpect(t, okxTestDo(s, okxTestReq{ts: okxTestNow.Add(29 * time.Second)}), 200, "0")
	okxExpect(t, okxTestDo(s, okxTestReq{ts: okxTestNow.Add(-29 * time.Second)}), 200, "0")
}

func TestOKXSimAllowlistRendered(t *testing.T) {
	s := okxTestSim(func(k *Key) { k.AllowedIPs = []string{"192.0.2.1", "203.0.113.7"} })
	b := okxExpect(t, okxTestDo(s, okxTestReq{remote: "192.0.2.1:5555"}), 200, "0")
	if b.Data[0]["ip"] != "192.0.2.1,203.0.113.7" || b.Data[0]["perm"] != "read_only,trade" {
		t.Errorf("data %v", b.Data)
	}
}

func TestOKXSimRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Key)
		req    okxTestReq
		status int // 401 unless set: OKX's error table gives each code's status
		code   string
	}{
		{name: "wrong secret", req: okxTestReq{secret: "00000000000000000000000000000000"}, code: "50113"},
		{name: "signed with the prefixed path", req: okxTestReq{path: "/okx" + okxTestPath}, code: "50113"},
		{name: "wrong passphrase", req: okxTestReq{pass: okxTestPass + "x"}, code: "50105"},
		{name: "stale timestamp", req: okxTestReq{ts: okxTestNow.Add(-31 * time.Second)}, code: "50102"},
		{name: "future timestamp", req: okxTestReq{ts: okxTestNow.Add(10 * time.Minute)}, code: "50102"},
		{name: "timestamp in ms epoch", req: okxTestReq{tsText: "1772366400000"}, code: "50112"},
		{name: "unknown key", req: okxTestReq{key: "ffffffff-0000-4000-8000-000000000000"}, code: "50111"},
		{name: "revoked", mod: func(k *Key) { k.State = Revoked }, code: "50111"},
		{name: "expired key", mod: func(k *Key) { k.ExpiresAt = okxTestNow.Add(-time.Hour) }, status: http.StatusOK, code: "50119"},
		{name: "frozen", mod: func(k *Key) { k.State = Inactive }, status: http.StatusBadRequest, code: "50100"},
		{name: "ip outside allowlist", mod: func(k *Key) { k.AllowedIPs = []string{"203.0.113.7"} }, req: okxTestReq{remote: "198.51.100.1:4242"}, code: "50110"},
		{name: "demo header on a live key", req: okxTestReq{demo: true}, code: "50101"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := okxTestSim(tc.mod)
			status := tc.status
			if status == 0 {
				status = http.StatusUnauthorized
			}
			okxExpect(t, okxTestDo(s, tc.req), status, tc.code)
		})
	}
}

func TestOKXSimDemoKeys(t *testing.T) {
	s := okxTestSim(nil)
	s.SetOKXDemo(okxTestKey, true)
	okxExpect(t, okxTestDo(s, okxTestReq{}), http.StatusUnauthorized, "50101")
	okxExpect(t, okxTestDo(s, okxTestReq{demo: true}), 200, "0")
	s.SetOKXDemo(okxTestKey, false)
	okxExpect(t, okxTestDo(s, okxTestReq{}), 200, "0")
}

func TestOKXSimMissingHeaders(t *testing.T) {
	s := okxTestSim(nil)
	for header, code := range map[string]string{
		"OK-ACCESS-KEY":        "50103",
		"OK-ACCESS-PASSPHRASE": "50104",
		"OK-ACCESS-SIGN":       "50106",
		"OK-ACCESS-TIMESTAMP":  "50107",
	} {
		r := httptest.NewRequest(http.MethodGet, "/okx"+okxTestPath, nil)
		for _, h := range []string{"OK-ACCESS-KEY", "OK-ACCESS-PASSPHRASE", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP"} {
			if h != header {
				r.Header.Set(h, "x")
			}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		okxExpect(t, w, http.StatusUnauthorized, code)
	}
}

func TestOKXSimTime(t *testing.T) {
	s := New(WithClock(func() time.Time { return okxTestNow }))
	s.SetClockSkew(-10 * time.Minute)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/okx/api/v5/public/time", nil))
	b := okxExpect(t, w, 200, "0")
	if len(b.Data) != 1 || b.Data[0]["ts"] != "1772365800000" {
		t.Errorf("data %v", b.Data)
	}
}

// TestOKXSimNativePerm: a key registered with native perm values is rendered
// verbatim; canonical permissions that only OKX's "trade" can give render as
// trade, as a real OKX key would.
func TestOKXSimNativePerm(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Key)
		perm string
	}{
		{func(k *Key) { k.Native = []string{"trade"}; k.Permissions = nil }, "trade"},
		{func(k *Key) { k.Native = []string{"read_only", "withdraw", "copy_trading"} }, "read_only,withdraw,copy_trading"},
		{func(k *Key) { k.Permissions = []string{"read", "futures"} }, "read_only,trade"},
		{func(k *Key) { k.Permissions = []string{"read", "withdraw"} }, "read_only,withdraw"},
	} {
		s := okxTestSim(tc.mod)
		b := okxExpect(t, okxTestDo(s, okxTestReq{}), 200, "0")
		if b.Data[0]["perm"] != tc.perm {
			t.Errorf("got perm %v, want %s", b.Data[0]["perm"], tc.perm)
		}
	}
}

// TestOKXSimTradeKeyImpliesFutures runs the real driver against the
// simulator: a key whose only native permission is "trade" reports every
// canonical permission a futures-forbidding policy must catch.
func TestOKXSimTradeKeyImpliesFutures(t *testing.T) {
	s := New(WithClock(func() time.Time { return okxTestNow }))
	s.AddKey(Key{Exchange: exchange.OKX, APIKey: okxTestKey, Secret: okxTestSecret, Passphrase: okxTestPass, Native: []string{"read_only", "trade"}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	p := exchange.NewProber(exchange.Options{Now: func() time.Time { return okxTestNow }})
	got, err := p.Probe(context.Background(), exchange.Request{Exchange: exchange.OKX, Endpoint: BaseURL(srv.URL, exchange.OKX),
		Credentials: exchange.Credentials{APIKey: okxTestKey, APISecret: okxTestSecret, Passphrase: okxTestPass}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Has(exchange.PermFutures) || !got.Has(exchange.PermOptions) || !got.Has(exchange.PermMargin) || got.Has(exchange.PermWithdraw) {
		t.Errorf("canonical %v", got.Canonical)
	}
	if strings.Join(got.Native, ",") != "read_only,trade" || len(got.Grants) != 2 || got.Grants[1].Native != "trade" {
		t.Errorf("native %v grants %+v", got.Native, got.Grants)
	}
}
