package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Hand-built requests signed the way KuCoin's docs describe, independent
// of the client.

var kucoinTestNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newKuCoinTestSim(t *testing.T) *Simulator {
	t.Helper()
	s := New(WithClock(func() time.Time { return kucoinTestNow }))
	add := func(k Key) {
		k.Exchange, k.Secret, k.Passphrase = exchange.KuCoin, "kc-secret", "kc-pass"
		s.AddKey(k)
	}
	add(Key{APIKey: "kc-key", Permissions: []string{"read", "trade", "withdraw", "transfer"}})
	add(Key{APIKey: "kc-ip", Permissions: []string{"read"}, AllowedIPs: []string{"203.0.113.7"}})
	add(Key{APIKey: "kc-frozen", Permissions: []string{"read"}, State: Inactive})
	return s
}

func kcMAC(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

type kucoinReq struct {
	key, secret, passphrase, version string
	ts                               time.Time
	remote                           string
	plainPassphrase                  bool
	omit                             string // a header to leave out
}

func (q kucoinReq) serve(t *testing.T, s *Simulator) (int, map[string]json.RawMessage) {
	t.Helper()
	ts := strconv.FormatInt(q.ts.UnixMilli(), 10)
	r := httptest.NewRequest(http.MethodGet, "/kucoin/api/v1/user/api-key", nil)
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	pass := kcMAC(q.secret, q.passphrase)
	if q.plainPassphrase {
		pass = q.passphrase
	}
	for h, v := range map[string]string{
		"KC-API-KEY":         q.key,
		"KC-API-SIGN":        kcMAC(q.secret, ts+"GET/api/v1/user/api-key"),
		"KC-API-TIMESTAMP":   ts,
		"KC-API-PASSPHRASE":  pass,
		"KC-API-KEY-VERSION": q.version,
	} {
		if h != q.omit && v != "" {
			r.Header.Set(h, v)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var body map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer is not JSON: %q", w.Body.String())
	}
	return w.Code, body
}

func kcCode(body map[string]json.RawMessage) string {
	var c string
	_ = json.Unmarshal(body["code"], &c)
	return c
}

func TestKuCoinSimAccepts(t *testing.T) {
	s := newKuCoinTestSim(t)
	for _, version := range []string{"2", "3"} {
		status, body := kucoinReq{key: "kc-key", secret: "kc-secret", passphrase: "kc-pass", version: version, ts: kucoinTestNow}.serve(t, s)
		if status != 200 || kcCode(body) != "200000" {
			t.Fatalf("version %s: got %d %v", version, status, body)
		}
		var data struct {
			APIKey      string `json:"apiKey"`
			Permission  string `json:"permission"`
			IPWhitelist string `json:"ipWhitelist"`
			CreatedAt   int64  `json:"createdAt"`
		}
		if err := json.Unmarshal(body["data"], &data); err != nil {
			t.Fatal(err)
		}
		// withdraw is KuCoin's "Transfer", transfer its "InnerTransfer".
		if data.APIKey != "kc-key" || data.Permission != "General,Spot,InnerTransfer,Transfer" || data.IPWhitelist != "" || data.CreatedAt != kucoinTestNow.UnixMilli() {
			t.Errorf("data %+v", data)
		}
	}
	// A v1 key sends its passphrase in clear and no version header.
	if status, body := (kucoinReq{key: "kc-key", secret: "kc-secret", passphrase: "kc-pass", plainPassphrase: true, ts: kucoinTestNow}).serve(t, s); status != 200 {
		t.Errorf("v1: got %d %v", status, body)
	}
	if got := s.Requests(exchange.KuCoin, "kc-key"); got != 3 {
		t.Errorf("counted %d requests", got)
	}
}

func TestKuCoinSimRejects(t *testing.T) {
	s := newKuCoinTestSim(t)
	ok := kucoinReq{key: "kc-key", secret: "kc-secret", passphrase: "kc-pass", version: "2", ts: kucoinTestNow}
	for _, tc := range []struct {
		name   string
		edit   func(*kucoinReq)
		status int
		code   string
	}{
		{"wrong secret", func(q *kucoinReq) { q.secret = "other" }, 401, "400005"},
		{"wrong passphrase", func(q *kucoinReq) { q.passphrase = "kc-pass-x" }, 401, "400004"},
		{"hashed passphrase without a version", func(q *kucoinReq) { q.version = "" }, 401, "400004"},
		{"stale timestamp", func(q *kucoinReq) { q.ts = kucoinTestNow.Add(-6 * time.Second) }, 400, "400002"},
		{"timestamp from the future", func(q *kucoinReq) { q.ts = kucoinTestNow.Add(6 * time.Second) }, 400, "400002"},
		{"unknown key", func(q *kucoinReq) { q.key = "nobody" }, 401, "400003"},
		{"ip outside the whitelist", func(q *kucoinReq) { q.key = "kc-ip" }, 401, "400006"},
		{"frozen key", func(q *kucoinReq) { q.key = "kc-frozen" }, 403, "411100"},
		{"missing signature", func(q *kucoinReq) { q.omit = "KC-API-SIGN" }, 400, "400001"},
		{"missing passphrase", func(q *kucoinReq) { q.omit = "KC-API-PASSPHRASE" }, 400, "400001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := ok
			q.remote = "192.0.2.1:1234"
			tc.edit(&q)
			status, body := q.serve(t, s)
			if status != tc.status || kcCode(body) != tc.code || len(body["msg"]) < 3 {
				t.Errorf("got HTTP %d %v, want HTTP %d code %s", status, body, tc.status, tc.code)
			}
		})
	}
	// Within 5 s either way, and from the whitelisted address.
	for _, d := range []time.Duration{-4 * time.Second, 4 * time.Second} {
		q := ok
		q.ts = kucoinTestNow.Add(d)
		if status, body := q.serve(t, s); status != 200 {
			t.Errorf("%s: got %d %v", d, status, body)
		}
	}
	q := ok
	q.key, q.remote = "kc-ip", "203.0.113.7:443"
	if status, body := q.serve(t, s); status != 200 {
		t.Errorf("whitelisted ip: got %d %v", status, body)
	}
}

func TestKuCoinSimRevoked(t *testing.T) {
	s := newKuCoinTestSim(t)
	s.SetState(exchange.KuCoin, "kc-key", Revoked)
	status, body := kucoinReq{key: "kc-key", secret: "kc-secret", passphrase: "kc-pass", version: "2", ts: kucoinTestNow}.serve(t, s)
	if status != 401 || kcCode(body) != "400003" {
		t.Errorf("got %d %v", status, body)
	}
}

func TestKuCoinSimTimestamp(t *testing.T) {
	s := newKuCoinTestSim(t)
	s.SetClockSkew(-10 * time.Minute)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/kucoin/api/v1/timestamp", nil))
	var rep struct {
		Code string `json:"code"`
		Data int64  `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.Code != "200000" || rep.Data != kucoinTestNow.Add(-10*time.Minute).UnixMilli() {
		t.Errorf("got %s", w.Body.String())
	}
}

// TestKuCoinSimNative: a key registered with native names is rendered
// verbatim (no General added), so tests can show what one name implies.
func TestKuCoinSimNative(t *testing.T) {
	s := New(WithClock(func() time.Time { return kucoinTestNow }))
	s.AddKey(Key{Exchange: exchange.KuCoin, APIKey: "kc-native", Secret: "kc-secret", Passphrase: "kc-pass",
		Permissions: []string{"read", "withdraw"}, Native: []string{"General", "Unified", "LeadtradeFutures"}})
	status, body := kucoinReq{key: "kc-native", secret: "kc-secret", passphrase: "kc-pass", version: "2", ts: kucoinTestNow}.serve(t, s)
	var data struct {
		Permission string `json:"permission"`
	}
	if status != 200 || json.Unmarshal(body["data"], &data) != nil || data.Permission != "General,Unified,LeadtradeFutures" {
		t.Errorf("got %d %s", status, body["data"])
	}
}
