package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

var krakenTestSecret = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("kraken-secret-64", 4)))

// krakenTestSign follows Kraken's documented recipe, independently of both
// the client and the handler.
func krakenTestSign(secretB64, path, nonce, body string) string {
	secret, _ := base64.StdEncoding.DecodeString(secretB64)
	h := sha256.Sum256([]byte(nonce + body))
	mac := hmac.New(sha512.New, secret)
	mac.Write(append([]byte(path), h[:]...))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

type krakenAnswer struct {
	Error  []string `json:"error"`
	Result struct {
		APIKey      string   `json:"apiKey"`
		Permissions []string `json:"permissions"`
		IPAllowlist []string `json:"ipAllowlist"`
		ValidUntil  string   `json:"validUntil"`
		CreatedTime string   `json:"createdTime"`
		Nonce       string   `json:"nonce"`
	} `json:"result"`
}

// krakenDo sends one hand-built GetApiKeyInfo request. signPath and
// signSecret let a test sign something other than what is sent.
func krakenDo(t *testing.T, s *Simulator, apiKey, signSecret, signPath string, nonce uint64, remote string) (int, krakenAnswer) {
	t.Helper()
	n := strconv.FormatUint(nonce, 10)
	body := "nonce=" + n
	req := httptest.NewRequest(http.MethodPost, "/kraken/0/private/GetApiKeyInfo", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("API-Key", apiKey)
	req.Header.Set("API-Sign", krakenTestSign(signSecret, signPath, n, body))
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var a krakenAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	return rec.Code, a
}

func krakenExpectError(t *testing.T, status int, a krakenAnswer, want string) {
	t.Helper()
	// Kraken reports API errors with HTTP 200 and the error array.
	if status != http.StatusOK || !reflect.DeepEqual(a.Error, []string{want}) {
		t.Fatalf("want 200 %q, got %d %v", want, status, a.Error)
	}
}

const krakenPath = "/0/private/GetApiKeyInfo"

func newKrakenSim(t *testing.T, perms []string, ips []string) (*Simulator, time.Time) {
	t.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	s.AddKey(Key{Exchange: exchange.Kraken, APIKey: "kr-key", Secret: krakenTestSecret, Permissions: perms, AllowedIPs: ips, CreatedAt: now.Add(-48 * time.Hour)})
	return s, now
}

func TestKrakenSimulatorAnswers(t *testing.T) {
	s, now := newKrakenSim(t, []string{"read", "trade", "withdraw"}, nil)
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	if status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("got %d %v", status, a.Error)
	}
	want := []string{"close-trades", "modify-trades", "query-closed-trades", "query-funds", "query-ledger", "query-open-trades", "withdraw-funds"}
	if !reflect.DeepEqual(a.Result.Permissions, want) {
		t.Errorf("permissions %v, want %v", a.Result.Permissions, want)
	}
	if a.Result.ValidUntil != "0" || a.Result.CreatedTime != strconv.FormatInt(now.Add(-48*time.Hour).Unix(), 10) || a.Result.Nonce != "1000" {
		t.Errorf("validUntil %q createdTime %q nonce %q", a.Result.ValidUntil, a.Result.CreatedTime, a.Result.Nonce)
	}
	if a.Result.IPAllowlist == nil || len(a.Result.IPAllowlist) != 0 {
		t.Errorf("ipAllowlist should be an empty list, got %#v", a.Result.IPAllowlist)
	}
	if s.Requests(exchange.Kraken, "kr-key") != 1 {
		t.Errorf("request not counted")
	}

	// An expiry is reported as Unix seconds.
	exp := now.Add(24 * time.Hour)
	s.UpdateKey(exchange.Kraken, "kr-key", func(k *Key) { k.ExpiresAt = exp })
	_, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1001, "")
	if a.Result.ValidUntil != strconv.FormatInt(exp.Unix(), 10) {
		t.Errorf("validUntil %q", a.Result.ValidUntil)
	}
}

func TestKrakenSimulatorRejectsWrongSecret(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	other := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("another-secret!!", 4)))
	status, a := krakenDo(t, s, "kr-key", other, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid signature")
	// A failed signature does not burn the nonce.
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	if status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("correct request after a bad one: %d %v", status, a.Error)
	}
}

func TestKrakenSimulatorRejectsSignatureOverPrefixedPath(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, "/kraken"+krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid signature")
}

func TestKrakenSimulatorRejectsTamperedBody(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	req := httptest.NewRequest(http.MethodPost, "/kraken"+krakenPath, strings.NewReader("nonce=2000"))
	req.Header.Set("API-Key", "kr-key")
	req.Header.Set("API-Sign", krakenTestSign(krakenTestSecret, krakenPath, "1999", "nonce=1999"))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), "EAPI:Invalid signature") {
		t.Fatalf("got %s", rec.Body.String())
	}
}

func TestKrakenSimulatorRejectsReusedNonce(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	if status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 5000, ""); status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("first request: %d %v", status, a.Error)
	}
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 5000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid nonce")
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 4999, "")
	krakenExpectError(t, status, a, "EAPI:Invalid nonce")
}

func TestKrakenSimulatorIPAllowlist(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, []string{"203.0.113.7"})
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "192.0.2.10:4000")
	krakenExpectError(t, status, a, "EGeneral:Permission denied")
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1001, "203.0.113.7:4000")
	if status != http.StatusOK || len(a.Error) != 0 || !reflect.DeepEqual(a.Result.IPAllowlist, []string{"203.0.113.7"}) {
		t.Fatalf("allowed caller: %d %v %v", status, a.Error, a.Result.IPAllowlist)
	}
}

func TestKrakenSimulatorKeyStates(t *testing.T) {
	s, now := newKrakenSim(t, []string{"read"}, nil)
	status, a := krakenDo(t, s, "nobody", krakenTestSecret, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid key")
	status, a = krakenDo(t, s, "", krakenTestSecret, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid key")

	s.SetState(exchange.Kraken, "kr-key", Inactive)
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Key disabled")

	s.SetState(exchange.Kraken, "kr-key", Active)
	s.UpdateKey(exchange.Kraken, "kr-key", func(k *Key) { k.ExpiresAt = now.Add(-time.Second) })
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1001, "")
	krakenExpectError(t, status, a, "EAPI:Key expired")

	s.SetState(exchange.Kraken, "kr-key", Revoked)
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1002, "")
	krakenExpectError(t, status, a, "EAPI:Invalid key")
}

func TestKrakenSimulatorServerTime(t *testing.T) {
	s, now := newKrakenSim(t, nil, nil)
	s.SetClockSkew(-10 * time.Minute)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/kraken/0/public/Time", nil))
	var a struct {
		Result struct {
			Unixtime int64 `json:"unixtime"`
		} `json:"result"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Result.Unixtime != now.Add(-10*time.Minute).Unix() {
		t.Fatalf("time: %s", rec.Body.String())
	}
}
