package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// These tests sign by hand, from the docs, and call the simulator directly
// (no client), with a fixed clock: the simulator's own checks are under test.

// okxSubDo sends a signed OKX management request as the master test key.
func okxSubDo(s *Simulator, method, path, body string) *httptest.ResponseRecorder {
	ts := okxTestNow.UTC().Format("2006-01-02T15:04:05.000Z")
	m := hmac.New(sha256.New, []byte(okxTestSecret))
	m.Write([]byte(ts + method + path + body))
	r := httptest.NewRequest(method, "/okx"+path, strings.NewReader(body))
	r.Header.Set("OK-ACCESS-KEY", okxTestKey)
	r.Header.Set("OK-ACCESS-SIGN", base64.StdEncoding.EncodeToString(m.Sum(nil)))
	r.Header.Set("OK-ACCESS-TIMESTAMP", ts)
	r.Header.Set("OK-ACCESS-PASSPHRASE", okxTestPass)
	r.RemoteAddr = "127.0.0.1:5555"
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func okxSubSim(mod func(*Key)) *Simulator {
	s := okxTestSim(func(k *Key) {
		k.AllowedIPs = []string{"127.0.0.1"}
		if mod != nil {
			mod(k)
		}
	})
	s.AddSubAccount(exchange.OKX, okxTestKey, "botsub001")
	return s
}

const okxCreateBody = `{"subAcct":"botsub001","label":"L1","passphrase":"Sub-Pass-2026!","perm":"read_only,trade","ip":"127.0.0.1"}`

func TestOKXSubSecretOnlyInCreateAnswer(t *testing.T) {
	s := okxSubSim(nil)
	b := okxExpect(t, okxSubDo(s, "POST", "/api/v5/users/subaccount/apikey", okxCreateBody), 200, "0")
	if len(b.Data) != 1 || b.Data[0]["secretKey"] == "" || b.Data[0]["perm"] != "read_only,trade" {
		t.Fatalf("create answer %v", b.Data)
	}
	list := okxExpect(t, okxSubDo(s, "GET", "/api/v5/users/subaccount/apikey?subAcct=botsub001", ""), 200, "0")
	if len(list.Data) != 1 || list.Data[0]["apiKey"] != b.Data[0]["apiKey"] || list.Data[0]["label"] != "L1" {
		t.Fatalf("list %v", list.Data)
	}
	if _, shown := list.Data[0]["secretKey"]; shown {
		t.Errorf("list shows the secret: %v", list.Data[0])
	}
}

func TestOKXSubRateLimitPerUserID(t *testing.T) {
	s := okxSubSim(nil)
	okxExpect(t, okxSubDo(s, "POST", "/api/v5/users/subaccount/apikey", okxCreateBody), 200, "0")
	// Same instant (fixed clock): the second create breaks 1 request per second.
	second := strings.Replace(okxCreateBody, `"L1"`, `"L2"`, 1)
	okxExpect(t, okxSubDo(s, "POST", "/api/v5/users/subaccount/apikey", second), 429, "50011")
	// Queries have their own budget, 20 per 2 s.
	for i := 0; i < 20; i++ {
		okxExpect(t, okxSubDo(s, "GET", "/api/v5/users/subaccount/apikey?subAcct=botsub001", ""), 200, "0")
	}
	okxExpect(t, okxSubDo(s, "GET", "/api/v5/users/subaccount/apikey?subAcct=botsub001", ""), 429, "50011")
}

func TestOKXSubMasterRules(t *testing.T) {
	unbound := okxSubSim(func(k *Key) {})
	unbound.UpdateKey(exchange.OKX, okxTestKey, func(k *Key) { k.AllowedIPs = nil })
	okxExpect(t, okxSubDo(unbound, "POST", "/api/v5/users/subaccount/apikey", okxCreateBody), 200, "50120")

	readOnly := okxSubSim(func(k *Key) { k.Permissions = []string{"read"} })
	okxExpect(t, okxSubDo(readOnly, "POST", "/api/v5/users/subaccount/apikey", okxCreateBody), 200, "50120")
	// Read is enough to list.
	okxExpect(t, okxSubDo(readOnly, "GET", "/api/v5/users/subaccount/apikey?subAcct=botsub001", ""), 200, "0")

	for body, code := range map[string]string{
		strings.Replace(okxCreateBody, "botsub001", "othersub", 1):                 "59510",
		strings.Replace(okxCreateBody, "Sub-Pass-2026!", "password", 1):            "59505",
		strings.Replace(okxCreateBody, "read_only,trade", "read_only,withdraw", 1): "59504",
	} {
		// A fresh simulator each: every request counts against 1/s.
		okxExpect(t, okxSubDo(okxSubSim(nil), "POST", "/api/v5/users/subaccount/apikey", body), 200, code)
	}
}

// bybitSubDo signs a Bybit v5 request as key/secret: hex HMAC-SHA256 over
// timestamp + key + recvWindow + (query | body).
func bybitSubDo(s *Simulator, key, secret, method, path, query, body string) map[string]any {
	ts := strconv.FormatInt(s.Now().UnixMilli(), 10)
	payload := query
	if method == http.MethodPost {
		payload = body
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + key + "5000" + payload))
	target := "/bybit" + path
	if query != "" {
		target += "?" + query
	}
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Header.Set("X-BAPI-API-KEY", key)
	r.Header.Set("X-BAPI-TIMESTAMP", ts)
	r.Header.Set("X-BAPI-RECV-WINDOW", "5000")
	r.Header.Set("X-BAPI-SIGN", hex.EncodeToString(m.Sum(nil)))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return out
}

func TestBybitSubMasterAndSubKeys(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	s.AddKey(Key{Exchange: exchange.Bybit, APIKey: "MASTERKEY000000001", Secret: "master-secret", Permissions: []string{"read", "transfer"}})
	s.AddSubAccount(exchange.Bybit, "MASTERKEY000000001", "10023455")
	create := `{"subuid":10023455,"note":"bot-1","readOnly":0,"permissions":{"Spot":["SpotTrade"]}}`
	got := bybitSubDo(s, "MASTERKEY000000001", "master-secret", "POST", "/v5/user/create-sub-api", "", create)
	res, _ := got["result"].(map[string]any)
	if got["retCode"] != float64(0) || res["secret"] == "" || res["apiKey"] == "" {
		t.Fatalf("create: %v", got)
	}
	sub, secret := res["apiKey"].(string), res["secret"].(string)
	// Unbound: it expires in 90 days, and the list shows no secret.
	list := bybitSubDo(s, "MASTERKEY000000001", "master-secret", "GET", "/v5/user/sub-apikeys", "subMemberId=10023455", "")
	rows := list["result"].(map[string]any)["result"].([]any)
	row := rows[0].(map[string]any)
	if len(rows) != 1 || row["secret"] != "******" || row["expiredAt"] != now.Add(90*24*time.Hour).Format(time.RFC3339) || row["note"] != "bot-1" {
		t.Fatalf("list: %v", list)
	}
	// The sub-account's key cannot manage keys, and query-api says whose it is.
	refused := bybitSubDo(s, sub, secret, "POST", "/v5/user/create-sub-api", "", create)
	if refused["retCode"] != float64(10005) {
		t.Errorf("create with the sub-account's key: %v", refused)
	}
	info := bybitSubDo(s, sub, secret, "GET", "/v5/user/query-api", "", "")["result"].(map[string]any)
	if info["isMaster"] != false || info["parentUid"] == "0" || info["note"] != "bot-1" {
		t.Errorf("query-api of a sub-account key: %v", info)
	}
	// Create is 1 per second per UID.
	again := bybitSubDo(s, "MASTERKEY000000001", "master-secret", "POST", "/v5/user/create-sub-api", "", strings.Replace(create, "bot-1", "bot-2", 1))
	if again["retCode"] != float64(10006) {
		t.Errorf("second create in the same second: %v", again)
	}
	// A master without a transfer or withdrawal permission is refused.
	s.SetPermissions(exchange.Bybit, "MASTERKEY000000001", "read", "trade")
	now = now.Add(2 * time.Second)
	if got := bybitSubDo(s, "MASTERKEY000000001", "master-secret", "POST", "/v5/user/create-sub-api", "", create); got["retCode"] != float64(10005) {
		t.Errorf("create by a master without transfer: %v", got)
	}
}
