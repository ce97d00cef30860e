package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// The requests below are built by hand from Bybit's docs, not by the
// client, so that a shared mistake cannot make both sides agree.

var bybitTestNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newBybitTestSim(t *testing.T) *Simulator {
	t.Helper()
	s := New(WithClock(func() time.Time { return bybitTestNow }))
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "bybit-key", Secret: "bybit-secret", Permissions: []string{"read", "trade", "withdraw"}})
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "bybit-ip", Secret: "bybit-secret", Permissions: []string{"read"}, AllowedIPs: []string{"203.0.113.7"}})
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "bybit-frozen", Secret: "bybit-secret", Permissions: []string{"read"}, State: Inactive})
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "bybit-old", Secret: "bybit-secret", Permissions: []string{"read"}, ExpiresAt: bybitTestNow.Add(-time.Hour)})
	return s
}

type bybitReply struct {
	RetCode int             `json:"retCode"`
	RetMsg  string          `json:"retMsg"`
	Result  json.RawMessage `json:"result"`
	Time    int64           `json:"time"`
}

// bybitTestRequest signs GET /bybit/v5/user/query-api the documented way
// and serves it from remote.
func bybitTestRequest(t *testing.T, s *Simulator, apiKey, secret string, ts time.Time, remote string) (int, bybitReply) {
	t.Helper()
	tsStr := strconv.FormatInt(ts.UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(tsStr + apiKey + "5000"))
	r := httptest.NewRequest(http.MethodGet, "/bybit/v5/user/query-api", nil)
	r.RemoteAddr = remote
	r.Header.Set("X-BAPI-API-KEY", apiKey)
	r.Header.Set("X-BAPI-TIMESTAMP", tsStr)
	r.Header.Set("X-BAPI-RECV-WINDOW", "5000")
	r.Header.Set("X-BAPI-SIGN", hex.EncodeToString(m.Sum(nil)))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var rep bybitReply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatalf("answer is not JSON: %q", w.Body.String())
	}
	if rep.Time == 0 {
		t.Errorf("answer lacks the time field: %s", w.Body.String())
	}
	return w.Code, rep
}

func TestBybitSimAccepts(t *testing.T) {
	s := newBybitTestSim(t)
	status, rep := bybitTestRequest(t, s, "bybit-key", "bybit-secret", bybitTestNow, "192.0.2.1:1234")
	if status != 200 || rep.RetCode != 0 {
		t.Fatalf("got %d %+v", status, rep)
	}
	var res struct {
		APIKey      string              `json:"apiKey"`
		ReadOnly    int                 `json:"readOnly"`
		Permissions map[string][]string `json:"permissions"`
		IPs         []string            `json:"ips"`
		CreatedAt   string              `json:"createdAt"`
	}
	if err := json.Unmarshal(rep.Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.APIKey != "bybit-key" || res.ReadOnly != 0 || len(res.IPs) != 1 || res.IPs[0] != "*" {
		t.Errorf("result %+v", res)
	}
	if len(res.Permissions["Spot"]) != 1 || res.Permissions["Spot"][0] != "SpotTrade" {
		t.Errorf("spot %v", res.Permissions["Spot"])
	}
	if w := res.Permissions["Wallet"]; len(w) != 1 || w[0] != "Withdraw" {
		t.Errorf("wallet %v", w)
	}
	if res.CreatedAt != "2026-05-01T12:00:00Z" {
		t.Errorf("createdAt %q", res.CreatedAt)
	}
	if got := s.Requests(exchange.Bybit, "bybit-key"); got != 1 {
		t.Errorf("counted %d requests", got)
	}
}

func TestBybitSimRejects(t *testing.T) {
	s := newBybitTestSim(t)
	for _, tc := range []struct {
		name, key, secret string
		ts                time.Time
		remote            string
		status, code      int
	}{
		{"wrong secret", "bybit-key", "not-the-secret", bybitTestNow, "192.0.2.1:1", 200, 10004},
		{"stale timestamp", "bybit-key", "bybit-secret", bybitTestNow.Add(-6 * time.Second), "192.0.2.1:1", 200, 10002},
		{"timestamp from the future", "bybit-key", "bybit-secret", bybitTestNow.Add(time.Second), "192.0.2.1:1", 200, 10002},
		{"unknown key", "nobody", "bybit-secret", bybitTestNow, "192.0.2.1:1", 401, 10003},
		{"ip outside the allowlist", "bybit-ip", "bybit-secret", bybitTestNow, "192.0.2.1:1", 200, 10010},
		{"inactive key", "bybit-frozen", "bybit-secret", bybitTestNow, "192.0.2.1:1", 200, 10008},
		{"expired key", "bybit-old", "bybit-secret", bybitTestNow, "192.0.2.1:1", 200, 33004},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, rep := bybitTestRequest(t, s, tc.key, tc.secret, tc.ts, tc.remote)
			if status != tc.status || rep.RetCode != tc.code || rep.RetMsg == "" {
				t.Errorf("got HTTP %d retCode %d %q, want HTTP %d retCode %d", status, rep.RetCode, rep.RetMsg, tc.status, tc.code)
			}
		})
	}
	// Inside the window on the old side, and from the allowed address.
	if _, rep := bybitTestRequest(t, s, "bybit-key", "bybit-secret", bybitTestNow.Add(-4*time.Second), "192.0.2.1:1"); rep.RetCode != 0 {
		t.Errorf("4 s old: retCode %d", rep.RetCode)
	}
	if _, rep := bybitTestRequest(t, s, "bybit-ip", "bybit-secret", bybitTestNow, "203.0.113.7:443"); rep.RetCode != 0 {
		t.Errorf("allowed ip: retCode %d", rep.RetCode)
	}
}

func TestBybitSimRevoked(t *testing.T) {
	s := newBybitTestSim(t)
	s.SetState(exchange.Bybit, "bybit-key", Revoked)
	if status, rep := bybitTestRequest(t, s, "bybit-key", "bybit-secret", bybitTestNow, "192.0.2.1:1"); status != 401 || rep.RetCode != 10003 {
		t.Errorf("got %d %+v", status, rep)
	}
}

func TestBybitSimTamperedSignature(t *testing.T) {
	s := newBybitTestSim(t)
	ts := strconv.FormatInt(bybitTestNow.UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte("bybit-secret"))
	// Signed without the recv window: the server must notice.
	m.Write([]byte(ts + "bybit-key"))
	r := httptest.NewRequest(http.MethodGet, "/bybit/v5/user/query-api", nil)
	r.Header.Set("X-BAPI-API-KEY", "bybit-key")
	r.Header.Set("X-BAPI-TIMESTAMP", ts)
	r.Header.Set("X-BAPI-RECV-WINDOW", "5000")
	r.Header.Set("X-BAPI-SIGN", hex.EncodeToString(m.Sum(nil)))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var rep bybitReply
	_ = json.Unmarshal(w.Body.Bytes(), &rep)
	if rep.RetCode != 10004 {
		t.Errorf("got %s", w.Body.String())
	}
}

func TestBybitSimServerTime(t *testing.T) {
	s := newBybitTestSim(t)
	s.SetClockSkew(-10 * time.Minute)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/bybit/v5/market/time", nil))
	var rep struct {
		RetCode int `json:"retCode"`
		Result  struct {
			TimeSecond string `json:"timeSecond"`
			TimeNano   string `json:"timeNano"`
		} `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.RetCode != 0 {
		t.Fatalf("got %s", w.Body.String())
	}
	want := bybitTestNow.Add(-10 * time.Minute)
	if rep.Result.TimeNano != strconv.FormatInt(want.UnixNano(), 10) || rep.Result.TimeSecond != strconv.FormatInt(want.Unix(), 10) {
		t.Errorf("got %+v, want %v", rep.Result, want)
	}
}

// Native names are rendered verbatim: "Category:Value" pairs and readOnly.
func TestBybitSimNative(t *testing.T) {
	s := newBybitTestSim(t)
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "bybit-native", Secret: "bybit-secret", Native: []string{"Options:OptionsTrade", "BlockTrade:BlockTrade"}})
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "bybit-native-ro", Secret: "bybit-secret", Native: []string{"readOnly", "Spot:SpotTrade"}})
	for _, tc := range []struct {
		key      string
		readOnly int
		cat, val string
	}{
		{"bybit-native", 0, "Options", "OptionsTrade"},
		{"bybit-native", 0, "BlockTrade", "BlockTrade"},
		{"bybit-native-ro", 1, "Spot", "SpotTrade"},
	} {
		_, rep := bybitTestRequest(t, s, tc.key, "bybit-secret", bybitTestNow, "192.0.2.1:1")
		var res struct {
			ReadOnly    int                 `json:"readOnly"`
			Permissions map[string][]string `json:"permissions"`
		}
		if err := json.Unmarshal(rep.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.ReadOnly != tc.readOnly || len(res.Permissions[tc.cat]) != 1 || res.Permissions[tc.cat][0] != tc.val {
			t.Errorf("%s: got readOnly %d, %v", tc.key, res.ReadOnly, res.Permissions)
		}
		if len(res.Permissions["ContractTrade"]) != 0 {
			t.Errorf("%s: ContractTrade %v rendered, not in Native", tc.key, res.Permissions["ContractTrade"])
		}
	}
}
