package simulator

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
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

const bitfinexPath = "/v2/auth/r/permissions"

// bitfinexTestSign follows Bitfinex's documented recipe, independently of
// both the client and the handler.
func bitfinexTestSign(secret, path, nonce, body string) string {
	mac := hmac.New(sha512.New384, []byte(secret))
	mac.Write([]byte("/api" + path + nonce + body))
	return hex.EncodeToString(mac.Sum(nil))
}

// bitfinexDo sends one hand-built permissions request and returns the status
// and the decoded JSON array.
func bitfinexDo(t *testing.T, s *Simulator, apiKey, signSecret, signPath, nonce, remote string) (int, []any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/bitfinex"+bitfinexPath, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("bfx-apikey", apiKey)
	req.Header.Set("bfx-nonce", nonce)
	req.Header.Set("bfx-signature", bitfinexTestSign(signSecret, signPath, nonce, "{}"))
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var out []any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not a JSON array: %q", rec.Body.String())
	}
	return rec.Code, out
}

func bitfinexExpectError(t *testing.T, status int, out []any, code int, msg string) {
	t.Helper()
	// Bitfinex sends every error as HTTP 500 with ["error", code, message].
	want := []any{"error", float64(code), msg}
	if status != http.StatusInternalServerError || !reflect.DeepEqual(out, want) {
		t.Fatalf("want 500 %v, got %d %v", want, status, out)
	}
}

func newBitfinexSim(t *testing.T, perms []string, ips []string) (*Simulator, time.Time) {
	t.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	s.AddKey(Key{Exchange: exchange.Bitfinex, APIKey: "bfx-key", Secret: "bfx-secret", Permissions: perms, AllowedIPs: ips})
	return s, now
}

func TestBitfinexSimulatorAnswers(t *testing.T) {
	for _, tc := range []struct {
		perms []string
		want  map[string][2]float64 // scope -> read, write; others 0/0
	}{
		{[]string{"read"}, map[string][2]float64{"account": {1, 0}, "history": {1, 0}, "orders": {1, 0}, "positions": {1, 0}, "funding": {1, 0}, "settings": {1, 0}, "wallets": {1, 0}}},
		{[]string{"read", "trade", "withdraw"}, map[string][2]float64{"account": {1, 0}, "history": {1, 0}, "orders": {1, 1}, "positions": {1, 0}, "funding": {1, 0}, "settings": {1, 0}, "wallets": {1, 0}, "withdraw": {0, 1}}},
		{[]string{"transfer", "margin", "earn"}, map[string][2]float64{"wallets": {0, 1}, "positions": {0, 1}, "funding": {0, 1}}},
	} {
		s, _ := newBitfinexSim(t, tc.perms, nil)
		status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000000", "")
		if status != http.StatusOK || len(out) != len(bitfinexScopes) {
			t.Fatalf("%v: got %d %v", tc.perms, status, out)
		}
		for i, row := range out {
			r, ok := row.([]any)
			if !ok || len(r) != 3 || r[0] != bitfinexScopes[i] {
				t.Fatalf("row %d: %v", i, row)
			}
			want := tc.want[bitfinexScopes[i]]
			if r[1] != want[0] || r[2] != want[1] {
				t.Errorf("%v: %s = %v/%v, want %v/%v", tc.perms, r[0], r[1], r[2], want[0], want[1])
			}
		}
		if s.Requests(exchange.Bitfinex, "bfx-key") != 1 {
			t.Error("request not counted")
		}
	}
}

func TestBitfinexSimulatorRejectsWrongSecret(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, nil)
	status, out := bitfinexDo(t, s, "bfx-key", "not-the-secret", bitfinexPath, "1700000000000000", "")
	bitfinexExpectError(t, status, out, 10100, "apikey: digest invalid")
	// The documented "/api" prefix is part of what is signed; the
	// simulator's own prefix is not.
	status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", "/bitfinex"+bitfinexPath, "1700000000000001", "")
	bitfinexExpectError(t, status, out, 10100, "apikey: digest invalid")
	// A failed signature does not burn the nonce.
	if status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000000", ""); status != http.StatusOK {
		t.Fatalf("correct request after bad ones: %d %v", status, out)
	}
}

func TestBitfinexSimulatorRejectsTamperedBody(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, nil)
	req := httptest.NewRequest(http.MethodPost, "/bitfinex"+bitfinexPath, strings.NewReader(`{"x":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("bfx-apikey", "bfx-key")
	req.Header.Set("bfx-nonce", "1700000000000000")
	req.Header.Set("bfx-signature", bitfinexTestSign("bfx-secret", bitfinexPath, "1700000000000000", "{}"))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "apikey: digest invalid") {
		t.Fatalf("got %d %s", rec.Code, rec.Body.String())
	}
}

func TestBitfinexSimulatorRejectsReusedNonce(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, nil)
	if status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000005", ""); status != http.StatusOK {
		t.Fatalf("first request: %d %v", status, out)
	}
	status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000005", "")
	bitfinexExpectError(t, status, out, 10114, "nonce: small")
	status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000004", "")
	bitfinexExpectError(t, status, out, 10114, "nonce: small")
}

// Nanosecond nonces exceed Bitfinex's documented maximum of 2^53-1.
func TestBitfinexSimulatorRejectsOversizedNonce(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, nil)
	status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, strconv.FormatUint(1<<53, 10), "")
	bitfinexExpectError(t, status, out, 10114, "nonce: invalid")
	status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "not-a-number", "")
	bitfinexExpectError(t, status, out, 10114, "nonce: invalid")
	if status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, strconv.FormatUint(1<<53-1, 10), ""); status != http.StatusOK {
		t.Fatalf("maximum nonce: %d %v", status, out)
	}
}

func TestBitfinexSimulatorIPAllowlist(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, []string{"203.0.113.7"})
	status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000000", "192.0.2.10:4000")
	bitfinexExpectError(t, status, out, 10100, "apikey: ip not allowed")
	if status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000001", "203.0.113.7:4000"); status != http.StatusOK {
		t.Fatalf("allowed caller: %d %v", status, out)
	}
}

func TestBitfinexSimulatorKeyStates(t *testing.T) {
	s, now := newBitfinexSim(t, []string{"read"}, nil)
	status, out := bitfinexDo(t, s, "nobody", "bfx-secret", bitfinexPath, "1700000000000000", "")
	bitfinexExpectError(t, status, out, 10100, "apikey: invalid")

	s.SetState(exchange.Bitfinex, "bfx-key", Inactive)
	status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000001", "")
	bitfinexExpectError(t, status, out, 10100, "apikey: inactive")

	s.SetState(exchange.Bitfinex, "bfx-key", Active)
	s.UpdateKey(exchange.Bitfinex, "bfx-key", func(k *Key) { k.ExpiresAt = now })
	status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000002", "")
	bitfinexExpectError(t, status, out, 10100, "apikey: inactive")

	s.SetState(exchange.Bitfinex, "bfx-key", Revoked)
	status, out = bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1700000000000003", "")
	bitfinexExpectError(t, status, out, 10100, "apikey: invalid")
}

func TestBitfinexSimulatorNonces(t *testing.T) {
	runNonceTests(t, nonceCase{
		ex:     exchange.Bitfinex,
		secret: "bfx-secret",
		send: func(t *testing.T, s *Simulator, apiKey string, nonce uint64) bool {
			t.Helper()
			status, out := bitfinexDo(t, s, apiKey, "bfx-secret", bitfinexPath, strconv.FormatUint(nonce, 10), "")
			if reflect.DeepEqual(out, []any{"error", float64(10114), "nonce: small"}) {
				return false
			}
			if status != http.StatusOK {
				t.Fatalf("bot request: %d %v", status, out)
			}
			return true
		},
		// Bitfinex caps nonces at 2^53-1, so nanoseconds cannot be sent;
		// a client that reached the cap leaves nothing above it.
		aboveMicros: func(time.Time) uint64 { return bitfinexMaxNonce },
	})
}

// Each key has its own floor: a high floor on one key refuses nothing of
// another, and a refused nonce does not move the floor.
func TestBitfinexSimulatorNonceFloorPerKey(t *testing.T) {
	s, _ := newBitfinexSim(t, []string{"read"}, nil)
	s.AddKey(Key{Exchange: exchange.Bitfinex, APIKey: "other", Secret: "bfx-secret", Permissions: []string{"read"}})
	s.AdvanceNonce(exchange.Bitfinex, "bfx-key", bitfinexMaxNonce)
	if status, out := bitfinexDo(t, s, "other", "bfx-secret", bitfinexPath, "1000", ""); status != http.StatusOK {
		t.Fatalf("other key refused: %v", out)
	}
	status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "2000", "")
	bitfinexExpectError(t, status, out, 10114, "nonce: small")
	if s.LastNonce(exchange.Bitfinex, "bfx-key") != bitfinexMaxNonce || s.LastNonce(exchange.Bitfinex, "other") != 1000 {
		t.Fatalf("floors %d %d", s.LastNonce(exchange.Bitfinex, "bfx-key"), s.LastNonce(exchange.Bitfinex, "other"))
	}
}

// Native scope flags are rendered verbatim, newer scopes after the ten.
func TestBitfinexSimulatorNative(t *testing.T) {
	s, _ := newBitfinexSim(t, nil, nil)
	s.UpdateKey(exchange.Bitfinex, "bfx-key", func(k *Key) { k.Native = []string{"orders:write", "eaas_withdraw:write", "account:read"} })
	status, out := bitfinexDo(t, s, "bfx-key", "bfx-secret", bitfinexPath, "1000", "")
	if status != http.StatusOK || len(out) != len(bitfinexScopes)+1 {
		t.Fatalf("got %d %v", status, out)
	}
	want := map[string][2]float64{"orders": {0, 1}, "account": {1, 0}, "eaas_withdraw": {0, 1}}
	for _, row := range out {
		r := row.([]any)
		w := want[r[0].(string)]
		if r[1] != w[0] || r[2] != w[1] {
			t.Errorf("%v, want %v", r, w)
		}
	}
	if last := out[len(out)-1].([]any); last[0] != "eaas_withdraw" {
		t.Errorf("last row %v", last)
	}
}
