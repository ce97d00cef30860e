package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// kucoinSubDo sends a KuCoin management request signed by hand from the
// docs (KC-API-SIGN over timestamp + METHOD + path?query + body) as kc-key;
// signedBody, when not nil, is what the signature covers instead of body.
func kucoinSubDo(s *Simulator, method, pathQuery, body string, signedBody *string) (int, map[string]json.RawMessage) {
	ts := strconv.FormatInt(kucoinTestNow.UnixMilli(), 10)
	signed := body
	if signedBody != nil {
		signed = *signedBody
	}
	r := httptest.NewRequest(method, "/kucoin"+pathQuery, strings.NewReader(body))
	r.Header.Set("KC-API-KEY", "kc-key")
	r.Header.Set("KC-API-SIGN", kcMAC("kc-secret", ts+method+pathQuery+signed))
	r.Header.Set("KC-API-TIMESTAMP", ts)
	r.Header.Set("KC-API-PASSPHRASE", kcMAC("kc-secret", "kc-pass"))
	r.Header.Set("KC-API-KEY-VERSION", "2")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var out map[string]json.RawMessage
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// TestKuCoinSubCreateRules: the signature covers the body; only the
// settable permissions, the documented expire values, 7-32 character
// passphrases without spaces and 1-24 character remarks are accepted; the
// expiry asked for is the key's; update needs the key's passphrase.
func TestKuCoinSubCreateRules(t *testing.T) {
	s := newKuCoinTestSim(t)
	s.AddSubAccount(exchange.KuCoin, "kc-key", "kcsub1")
	ok := `{"expire":"90","passphrase":"SubPass2026","permission":"General,Spot","remark":"bot-1","subName":"kcsub1"}`
	empty := ""
	for _, tc := range []struct {
		name, body string
		signed     *string
		status     int
		code       string
	}{
		{"body not signed", ok, &empty, 401, "400005"},
		{"withdrawal right", strings.Replace(ok, "General,Spot", "General,Transfer", 1), nil, 400, "400100"},
		{"earn", strings.Replace(ok, "General,Spot", "General,Earn", 1), nil, 400, "400100"},
		{"expire 60", strings.Replace(ok, `"90"`, `"60"`, 1), nil, 400, "400100"},
		{"passphrase of 6", strings.Replace(ok, "SubPass2026", "Sub202", 1), nil, 400, "400100"},
		{"passphrase with a space", strings.Replace(ok, "SubPass2026", "Sub Pass2026", 1), nil, 400, "400100"},
		{"remark of 25", strings.Replace(ok, "bot-1", strings.Repeat("r", 25), 1), nil, 400, "400100"},
		{"unknown sub-account", strings.Replace(ok, "kcsub1", "nosuch", 1), nil, 400, "400100"},
	} {
		status, body := kucoinSubDo(s, "POST", "/api/v1/sub/api-key", tc.body, tc.signed)
		if status != tc.status || kcCode(body) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, kcCode(body), tc.status, tc.code)
		}
	}
	if got := len(s.liveSubKeys(exchange.KuCoin, "kcsub1")); got != 0 {
		t.Fatalf("refused creates made %d keys", got)
	}

	status, body := kucoinSubDo(s, "POST", "/api/v1/sub/api-key", ok, nil)
	if status != 200 || kcCode(body) != "200000" {
		t.Fatalf("create: %d %s", status, body)
	}
	var created struct {
		APIKey, APISecret, Passphrase, Permission string
	}
	if err := json.Unmarshal(body["data"], &created); err != nil || created.APISecret == "" || created.Passphrase != "SubPass2026" || created.Permission != "General,Spot" {
		t.Fatalf("create answer %s", body["data"])
	}
	k, _ := s.lookup(exchange.KuCoin, created.APIKey)
	if want := kucoinTestNow.AddDate(0, 0, 90); !k.ExpiresAt.Equal(want) {
		t.Errorf("expires %v, want %v", k.ExpiresAt, want)
	}

	upd := `{"apiKey":"` + created.APIKey + `","passphrase":"WRONGpass1","permission":"General,Spot,Futures","subName":"kcsub1"}`
	if status, body := kucoinSubDo(s, "POST", "/api/v1/sub/api-key/update", upd, nil); status != 400 || kcCode(body) != "400100" {
		t.Errorf("update with a wrong passphrase: %d %s", status, kcCode(body))
	}
	upd = strings.Replace(upd, "WRONGpass1", "SubPass2026", 1)
	if status, body := kucoinSubDo(s, "POST", "/api/v1/sub/api-key/update", upd, nil); status != 200 || kcCode(body) != "200000" {
		t.Errorf("update: %d %s", status, body)
	}
	if k, _ := s.lookup(exchange.KuCoin, created.APIKey); strings.Join(k.Native, ",") != "General,Spot,Futures" {
		t.Errorf("after update: %v", k.Native)
	}
}

// TestKuCoinSubManagementPool: the Management pool is counted per main
// account: 66 calls in 30 s, then 429000 with gw-ratelimit-reset.
func TestKuCoinSubManagementPool(t *testing.T) {
	s := newKuCoinTestSim(t)
	s.AddSubAccount(exchange.KuCoin, "kc-key", "kcsub1")
	for i := 0; i < kucoinSubPoolMax; i++ {
		if status, body := kucoinSubDo(s, http.MethodGet, "/api/v1/sub/api-key?subName=kcsub1", "", nil); status != 200 {
			t.Fatalf("call %d: %d %s", i+1, status, kcCode(body))
		}
	}
	if status, body := kucoinSubDo(s, http.MethodGet, "/api/v1/sub/api-key?subName=kcsub1", "", nil); status != 429 || kcCode(body) != "429000" {
		t.Errorf("call %d: %d %s, want 429 429000", kucoinSubPoolMax+1, status, kcCode(body))
	}
}
