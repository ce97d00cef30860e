package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Binance serves:
//
//	GET /api/v3/time                      public server time
//	GET /sapi/v1/account/apiRestrictions  the key's scopes (production)
//	GET /api/v3/account                   canTrade/canWithdraw (what the testnet offers)
//
// Checks run in the order a gateway can make them: key format, key known,
// caller IP, timestamp window, signature, then the key's state.
func init() { registerHandler(exchange.Binance, newBinance) }

type binanceHandler struct{ s *Simulator }

func newBinance(s *Simulator) http.Handler { return &binanceHandler{s: s} }

type binanceErr struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

func (h *binanceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v3/time":
		writeJSON(w, http.StatusOK, map[string]int64{"serverTime": h.s.Now().UnixMilli()})
	case r.Method == http.MethodGet && r.URL.Path == "/sapi/v1/account/apiRestrictions":
		if k, ok := h.authenticate(w, r); ok {
			writeJSON(w, http.StatusOK, binanceRestrictions(k))
		}
	case r.Method == http.MethodGet && r.URL.Path == "/api/v3/account":
		if k, ok := h.authenticate(w, r); ok {
			writeJSON(w, http.StatusOK, binanceAccount(k, h.s.Now()))
		}
	default:
		writeJSON(w, http.StatusNotFound, binanceErr{-1099, "Not found, unauthenticated, or unauthorized."})
	}
}

// authenticate verifies a SIGNED (USER_DATA) request and writes Binance's
// error answer when it fails.
func (h *binanceHandler) authenticate(w http.ResponseWriter, r *http.Request) (Key, bool) {
	apiKey := r.Header.Get("X-MBX-APIKEY")
	if apiKey != "" {
		h.s.countKey(exchange.Binance, apiKey)
	}
	if !binanceKeyFormatOK(apiKey) {
		writeJSON(w, http.StatusUnauthorized, binanceErr{-2014, "API-key format invalid."})
		return Key{}, false
	}
	k, ok := h.s.lookup(exchange.Binance, apiKey)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, binanceErr{-2015, "Invalid API-key, IP, or permissions for action."})
		return Key{}, false
	}
	if !callerAllowed(k, r) {
		writeJSON(w, http.StatusUnauthorized, binanceErr{-2015, "Invalid API-key, IP, or permissions for action, request ip: " + binancePeerIP(r)})
		return Key{}, false
	}

	// The signature covers the query string exactly as sent, up to the
	// signature parameter, which must come last, followed by the body.
	raw := r.URL.RawQuery
	i := strings.LastIndex(raw, "signature=")
	if i < 0 || (i > 0 && raw[i-1] != '&') || strings.Contains(raw[i:], "&") {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."})
		return Key{}, false
	}
	signed := strings.TrimSuffix(raw[:i], "&")
	sig := raw[i+len("signature="):]
	params, err := url.ParseQuery(signed)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1100, "Illegal characters found in a parameter."})
		return Key{}, false
	}
	ts, err := strconv.ParseInt(params.Get("timestamp"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."})
		return Key{}, false
	}
	recv := int64(5000)
	if v := params.Get("recvWindow"); v != "" {
		recv, err = strconv.ParseInt(v, 10, 64)
		if err != nil || recv <= 0 || recv > 60000 {
			writeJSON(w, http.StatusBadRequest, binanceErr{-1131, "recvWindow must be less than 60000"})
			return Key{}, false
		}
	}
	server := h.s.Now().UnixMilli()
	if ts >= server+1000 {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1021, "Timestamp for this request was 1000ms ahead of the server's time."})
		return Key{}, false
	}
	if server-ts > recv {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1021, "Timestamp for this request is outside of the recvWindow."})
		return Key{}, false
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if !binanceSignatureOK(k.Secret, signed+string(body), sig) {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1022, "Signature for this request is not valid."})
		return Key{}, false
	}
	// Binance has no documented answer for a disabled key; the simulator
	// uses -1002 and the client maps it to Inactive (see binance.go).
	if k.State == Inactive || h.s.expired(k) {
		writeJSON(w, http.StatusUnauthorized, binanceErr{-1002, "You are not authorized to execute this request."})
		return Key{}, false
	}
	return k, true
}

// binanceSignatureOK compares hex signatures case-insensitively, in
// constant time, as Binance documents signatures as not case sensitive.
func binanceSignatureOK(secret, payload, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return hmac.Equal(got, m.Sum(nil))
}

func binanceKeyFormatOK(k string) bool {
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

func binancePeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// binanceRestrictions renders a key the way apiRestrictions does. Binance
// has no Earn scope, so a canonical earn permission is not rendered.
func binanceRestrictions(k Key) map[string]any {
	return map[string]any{
		"ipRestrict":                   len(k.AllowedIPs) > 0,
		"createTime":                   k.CreatedAt.UnixMilli(),
		"enableReading":                k.Has(exchange.PermRead),
		"enableWithdrawals":            k.Has(exchange.PermWithdraw),
		"enableInternalTransfer":       k.Has(exchange.PermTransfer),
		"enableMargin":                 k.Has(exchange.PermMargin),
		"enableFutures":                k.Has(exchange.PermFutures),
		"permitsUniversalTransfer":     k.Has(exchange.PermTransfer),
		"enableVanillaOptions":         k.Has(exchange.PermOptions),
		"enableFixApiTrade":            false,
		"enableFixReadOnly":            false,
		"enableSpotAndMarginTrading":   k.Has(exchange.PermTrade),
		"enablePortfolioMarginTrading": false,
	}
}

// binanceAccount renders the subset of GET /api/v3/account that describes
// the key.
func binanceAccount(k Key, now time.Time) map[string]any {
	perms := []string{"SPOT"}
	if k.Has(exchange.PermMargin) {
		perms = append(perms, "MARGIN")
	}
	return map[string]any{
		"makerCommission":            10,
		"takerCommission":            10,
		"canTrade":                   k.Has(exchange.PermTrade),
		"canWithdraw":                k.Has(exchange.PermWithdraw),
		"canDeposit":                 true,
		"brokered":                   false,
		"updateTime":                 now.UnixMilli(),
		"accountType":                "SPOT",
		"balances":                   []any{},
		"permissions":                perms,
		"requireSelfTradePrevention": false,
	}
}
