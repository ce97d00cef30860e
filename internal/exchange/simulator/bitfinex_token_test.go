package simulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// bitfinexSend posts body to path with key authentication (apiKey signed
// with secret) or, when token is set, with bfx-token alone.
func bitfinexSend(t *testing.T, s *Simulator, path, apiKey, secret, token, nonce, body string) (int, []any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/bitfinex"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("bfx-nonce", nonce)
	if token != "" {
		req.Header.Set("bfx-token", token)
	} else {
		req.Header.Set("bfx-apikey", apiKey)
		req.Header.Set("bfx-signature", bitfinexTestSign(secret, path, nonce, body))
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var out []any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not a JSON array: %q", rec.Body.String())
	}
	return rec.Code, out
}

// flags returns scope -> [read, write] of a permissions answer.
func flags(t *testing.T, out []any) map[string][2]float64 {
	t.Helper()
	m := map[string][2]float64{}
	for _, r := range out {
		row := r.([]any)
		m[row[0].(string)] = [2]float64{row[1].(float64), row[2].(float64)}
	}
	return m
}

func TestBitfinexSimulatorToken(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := New(WithClock(clock))
	s.AddKey(Key{Exchange: exchange.Bitfinex, APIKey: "bfx-key", Secret: "bfx-secret", Permissions: []string{"read", "trade", "withdraw"}})

	status, out := bitfinexSend(t, s, bitfinexTokenPath, "bfx-key", "bfx-secret", "", "1000", `{"scope":"api","ttl":60,"caps":["o","w"],"writePermission":true}`)
	if status != http.StatusOK || len(out) != 1 {
		t.Fatalf("mint: %d %v", status, out)
	}
	token, _ := out[0].(string)
	if token == "" || s.Tokens() != 1 {
		t.Fatalf("mint gave %v, %d tokens", out, s.Tokens())
	}

	// The token authenticates r/permissions without key or signature, and
	// sees the key's flags through its caps only: orders (o), wallets (w,
	// which this key cannot write), never withdraw.
	status, out = bitfinexSend(t, s, bitfinexPath, "", "", token, "1001", "{}")
	if status != http.StatusOK {
		t.Fatalf("token probe: %d %v", status, out)
	}
	got := flags(t, out)
	if got["orders"] != [2]float64{1, 1} || got["wallets"] != [2]float64{1, 0} || got["withdraw"] != [2]float64{0, 0} || got["account"] != [2]float64{0, 0} {
		t.Fatalf("token flags = %v", got)
	}

	// Tokens expire at ttl.
	advance(59 * time.Second)
	if status, _ := bitfinexSend(t, s, bitfinexPath, "", "", token, "1002", "{}"); status != http.StatusOK {
		t.Fatalf("token refused before its ttl: %d", status)
	}
	advance(time.Second)
	status, out = bitfinexSend(t, s, bitfinexPath, "", "", token, "1003", "{}")
	bitfinexExpectError(t, status, out, 10100, "token: expired")
	status, out = bitfinexSend(t, s, bitfinexPath, "", "", "not-a-token", "1004", "{}")
	bitfinexExpectError(t, status, out, 10100, "token: invalid")

	// A token dies with its key.
	_, out = bitfinexSend(t, s, bitfinexTokenPath, "bfx-key", "bfx-secret", "", "1005", `{"scope":"api","ttl":60,"caps":["a"]}`)
	second := out[0].(string)
	s.SetState(exchange.Bitfinex, "bfx-key", Inactive)
	status, out = bitfinexSend(t, s, bitfinexPath, "", "", second, "1006", "{}")
	bitfinexExpectError(t, status, out, 10100, "apikey: inactive")
}

func TestBitfinexSimulatorTokenRefusals(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read", "trade"}, nil)
	nonce := 2000
	next := func() string { nonce++; return itoa(nonce) }
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"scope", `{"scope":"web","ttl":60,"caps":["o"]}`, 10020, "scope: invalid"},
		{"zero ttl", `{"scope":"api","ttl":0,"caps":["o"]}`, 10020, "ttl: invalid"},
		{"fractional ttl", `{"scope":"api","ttl":1.5,"caps":["o"]}`, 10020, "ttl: invalid"},
		{"unknown cap", `{"scope":"api","ttl":60,"caps":["x"]}`, 10020, "caps: invalid"},
		// docs.bitfinex.com/reference/generate-token: "writePermission: true
		// is required for wd permission".
		{"wd without write", `{"scope":"api","ttl":60,"caps":["wd"]}`, 10020, "caps: invalid"},
		{"not JSON", `scope=api`, 10020, "request: invalid"},
	} {
		status, out := bitfinexSend(t, s, bitfinexTokenPath, "bfx-key", "bfx-secret", "", next(), tc.body)
		t.Run(tc.name, func(t *testing.T) { bitfinexExpectError(t, status, out, tc.code, tc.msg) })
	}
	// The mint is authenticated like every v2 request: a bad signature and
	// a small nonce are refused, and no token is minted.
	body := `{"scope":"api","ttl":60,"caps":["o"]}`
	status, out := bitfinexSend(t, s, bitfinexTokenPath, "bfx-key", "wrong-secret", "", next(), body)
	bitfinexExpectError(t, status, out, 10100, "apikey: digest invalid")
	status, out = bitfinexSend(t, s, bitfinexTokenPath, "bfx-key", "bfx-secret", "", "5", body)
	bitfinexExpectError(t, status, out, 10114, "nonce: small")
	if s.Tokens() != 0 {
		t.Fatalf("%d tokens minted by refused requests", s.Tokens())
	}
	// A default ttl is Bitfinex's 120 s.
	status, out = bitfinexSend(t, s, bitfinexTokenPath, "bfx-key", "bfx-secret", "", next(), `{"scope":"api","caps":["o"]}`)
	if status != http.StatusOK || s.Tokens() != 1 {
		t.Fatalf("mint without ttl: %d %v", status, out)
	}
}
