package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Bitstamp serves:
//
//	GET  /api/v2/ticker/{pair}/         public; its Date header is the clock the client resyncs to
//	POST /api/v2/account_balances/      needs the "Account balance" right (canonical read)
//
// Every answer carries a Date header from the simulated clock, so that a
// skewed exchange clock is visible the way it is on the real one.
func init() { registerHandler(exchange.Bitstamp, newBitstamp) }

// bitstampWindow is how far X-Auth-Timestamp may be from the server's clock.
const bitstampWindow = 150 * time.Second

type bitstampHandler struct{ s *Simulator }

func newBitstamp(s *Simulator) http.Handler { return &bitstampHandler{s: s} }

type bitstampErr struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Code   string `json:"code"`
}

func (h *bitstampHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := h.s.Now()
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v2/ticker/"):
		writeJSON(w, http.StatusOK, map[string]string{
			"timestamp": strconv.FormatInt(now.Unix(), 10),
			"last":      "64000.00", "bid": "63999.00", "ask": "64001.00",
			"high": "65000.00", "low": "63000.00", "open": "63500.00",
			"volume": "1234.56789012", "vwap": "64123.45",
		})
	case r.Method == http.MethodPost && r.URL.Path == "/api/v2/account_balances/":
		k, ok := h.authenticate(w, r, now)
		if !ok {
			return
		}
		if !k.Has(exchange.PermRead) {
			bitstampFail(w, "API0003", "No permission found")
			return
		}
		writeJSON(w, http.StatusOK, []map[string]string{
			{"currency": "btc", "total": "0.50000000", "available": "0.50000000", "reserved": "0.00000000"},
			{"currency": "eur", "total": "100.00", "available": "100.00", "reserved": "0.00"},
			{"currency": "usd", "total": "0.00", "available": "0.00", "reserved": "0.00"},
		})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"status": "error", "reason": "Not found"})
	}
}

func bitstampFail(w http.ResponseWriter, code, reason string) {
	writeJSON(w, http.StatusForbidden, bitstampErr{Status: "error", Reason: reason, Code: code})
}

// authenticate verifies the v2 X-Auth headers from the documented string to
// sign and writes Bitstamp's error answer when they fail.
func (h *bitstampHandler) authenticate(w http.ResponseWriter, r *http.Request, now time.Time) (Key, bool) {
	auth := r.Header.Get("X-Auth")
	if auth == "" {
		bitstampFail(w, "API0012", "X-Auth header is required")
		return Key{}, false
	}
	apiKey, hasPrefix := strings.CutPrefix(auth, "BITSTAMP ")
	if apiKey != "" {
		h.s.countKey(exchange.Bitstamp, apiKey)
	}
	if !hasPrefix || !bitstampKeyFormatOK(apiKey) {
		bitstampFail(w, "API0011", "Wrong API key format")
		return Key{}, false
	}
	k, ok := h.s.lookup(exchange.Bitstamp, apiKey)
	if !ok {
		bitstampFail(w, "API0001", "API key not found")
		return Key{}, false
	}
	if !callerAllowed(k, r) {
		bitstampFail(w, "API0002", "IP address not allowed")
		return Key{}, false
	}
	if r.Header.Get("X-Auth-Version") != "v2" {
		bitstampFail(w, "API0010", "Invalid version")
		return Key{}, false
	}
	tsText := r.Header.Get("X-Auth-Timestamp")
	if tsText == "" {
		bitstampFail(w, "API0015", "X-Auth-Timestamp header is required")
		return Key{}, false
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ts <= 0 {
		bitstampFail(w, "API0018", "X-Auth-Timestamp header is invalid")
		return Key{}, false
	}
	if d := now.Sub(time.UnixMilli(ts)); d > bitstampWindow || d < -bitstampWindow {
		bitstampFail(w, "API0017", "X-Auth-Timestamp header is out of boundaries")
		return Key{}, false
	}
	nonce := r.Header.Get("X-Auth-Nonce")
	if nonce == "" {
		bitstampFail(w, "API0014", "X-Auth-Nonce header is required")
		return Key{}, false
	}
	if !bitstampNonceOK(nonce) {
		bitstampFail(w, "API0004", "Invalid nonce")
		return Key{}, false
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	contentType := r.Header.Get("Content-Type")
	if len(body) == 0 && contentType != "" {
		bitstampFail(w, "API0020", "Content-Type header should not be present")
		return Key{}, false
	}
	if len(body) > 0 && contentType != "application/x-www-form-urlencoded" {
		bitstampFail(w, "API0019", "Content-type header is not accepted")
		return Key{}, false
	}
	sig := r.Header.Get("X-Auth-Signature")
	if sig == "" {
		bitstampFail(w, "API0013", "X-Auth-Signature header is required")
		return Key{}, false
	}
	msg := "BITSTAMP " + apiKey + r.Method + r.Host + r.URL.Path + r.URL.RawQuery + contentType + nonce + tsText + "v2" + string(body)
	if !bitstampSignatureOK(k.Secret, msg, sig) {
		bitstampFail(w, "API0005", "Invalid signature")
		return Key{}, false
	}
	// Spent only once the request is proven to come from the key holder,
	// so a forged request cannot burn a nonce.
	if !h.s.acceptOnce(exchange.Bitstamp, nonce) {
		bitstampFail(w, "API0004", "Invalid nonce")
		return Key{}, false
	}
	// The real answer for a key not yet activated through the e-mail link
	// is unverified; the simulator answers inactive and expired keys as a
	// frozen account, which the client maps to Inactive.
	if k.State == Inactive || h.s.expired(k) {
		bitstampFail(w, "API0006", "Your account is frozen")
		return Key{}, false
	}
	return k, true
}

// bitstampNonceOK accepts the documented nonce: a lowercase UUID v4.
func bitstampNonceOK(n string) bool {
	u, err := uuid.Parse(n)
	return err == nil && u.Version() == 4 && u.String() == n
}

func bitstampKeyFormatOK(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// bitstampSignatureOK compares hex signatures case-insensitively (Bitstamp
// accepts either case) and in constant time.
func bitstampSignatureOK(secret, msg, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hmac.Equal(got, m.Sum(nil))
}
