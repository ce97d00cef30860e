package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Bybit v5: GET /v5/user/query-api (signed) and GET /v5/market/time (public).
// Error codes and messages from docs/v5/error.mdx.
//
// HTTP statuses of the error answers are a guess where Bybit's docs are
// silent: 10003 comes with 401 (the docs tie 401 to "use the correct key"),
// every other retCode with 200. Inactive keys answer 10008 ("Common banned,
// please check your account mode") and expired ones 33004 ("Your api key
// has expired"); neither is confirmed for query-api.
func init() { registerHandler(exchange.Bybit, newBybitHandler) }

type bybitHandler struct{ s *Simulator }

func newBybitHandler(s *Simulator) http.Handler { return &bybitHandler{s: s} }

func (h *bybitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v5/market/time" && r.Method == http.MethodGet:
		h.serverTime(w)
	case r.URL.Path == "/v5/user/query-api" && r.Method == http.MethodGet:
		h.queryAPI(w, r)
	default:
		// Bybit answers unknown routes with 404 and an empty body.
		w.WriteHeader(http.StatusNotFound)
	}
}

func bybitAnswer(w http.ResponseWriter, status int, now time.Time, code int, msg string, result any) {
	if result == nil {
		result = map[string]any{}
	}
	writeJSON(w, status, map[string]any{
		"retCode":    code,
		"retMsg":     msg,
		"result":     result,
		"retExtInfo": map[string]any{},
		"time":       now.UnixMilli(),
	})
}

func (h *bybitHandler) serverTime(w http.ResponseWriter) {
	now := h.s.Now()
	bybitAnswer(w, http.StatusOK, now, 0, "OK", map[string]string{
		"timeSecond": strconv.FormatInt(now.Unix(), 10),
		"timeNano":   strconv.FormatInt(now.UnixNano(), 10),
	})
}

func (h *bybitHandler) queryAPI(w http.ResponseWriter, r *http.Request) {
	now := h.s.Now()
	apiKey := r.Header.Get("X-BAPI-API-KEY")
	if apiKey == "" {
		bybitAnswer(w, http.StatusUnauthorized, now, 10003, "API key is invalid.", nil)
		return
	}
	h.s.countKey(exchange.Bybit, apiKey)

	tsHeader := r.Header.Get("X-BAPI-TIMESTAMP")
	recvHeader := r.Header.Get("X-BAPI-RECV-WINDOW")
	if recvHeader == "" {
		recvHeader = "5000"
	}
	ts, terr := strconv.ParseInt(tsHeader, 10, 64)
	recv, rerr := strconv.ParseInt(recvHeader, 10, 64)
	if terr != nil || rerr != nil || recv <= 0 {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: X-BAPI-TIMESTAMP or X-BAPI-RECV-WINDOW is not a number", nil)
		return
	}
	server := now.UnixMilli()
	// Bybit's rule: serverTime - recvWindow <= timestamp < serverTime + 1000.
	if ts < server-recv || ts >= server+1000 {
		bybitAnswer(w, http.StatusOK, now, 10002, fmt.Sprintf(
			"invalid request, please check your server timestamp or recv_window param. req_timestamp[%d],server_timestamp[%d],recv_window[%d]",
			ts, server, recv), nil)
		return
	}

	key, ok := h.s.lookup(exchange.Bybit, apiKey)
	if !ok {
		bybitAnswer(w, http.StatusUnauthorized, now, 10003, "API key is invalid.", nil)
		return
	}
	if !bybitSignatureOK(key.Secret, tsHeader, apiKey, r.Header.Get("X-BAPI-RECV-WINDOW"), r.URL.RawQuery, r.Header.Get("X-BAPI-SIGN")) {
		bybitAnswer(w, http.StatusOK, now, 10004, "Error sign, please check your signature generation algorithm.", nil)
		return
	}
	if h.s.expired(key) {
		bybitAnswer(w, http.StatusOK, now, 33004, "Your api key has expired.", nil)
		return
	}
	if key.State == Inactive {
		bybitAnswer(w, http.StatusOK, now, 10008, "Common banned, please check your account mode", nil)
		return
	}
	if !callerAllowed(key, r) {
		bybitAnswer(w, http.StatusOK, now, 10010, "Unmatched IP, please check your API key's bound IP addresses.", nil)
		return
	}
	bybitAnswer(w, http.StatusOK, now, 0, "", bybitKeyResult(key, now))
}

// bybitSignatureOK recomputes the v5 HMAC from the docs:
// hex(HMAC-SHA256(secret, timestamp + apiKey + recvWindow + queryString)).
// The recv window is signed as sent (empty when the header is absent).
func bybitSignatureOK(secret, ts, apiKey, recvWindow, query, got string) bool {
	want := hmac.New(sha256.New, []byte(secret))
	want.Write([]byte(ts + apiKey + recvWindow + query))
	sig, err := hex.DecodeString(got)
	return err == nil && hmac.Equal(sig, want.Sum(nil))
}

// bybitKeyResult renders a key in query-api's shape
// (bybit-exchange/docs docs/v5/user/apikey-info.mdx). Native, when set, is
// rendered verbatim: "Category:Value" pairs, and "readOnly" for a read-only
// key. Otherwise the canonical permissions are mapped: a key with nothing
// beyond read is a read-only key with read access to the spot, contract and
// wallet categories, as Bybit's form suggests; trade is Spot:SpotTrade
// (which also trades spot margin), futures ContractTrade, options
// Options:OptionsTrade (USDC options and perpetuals). Bybit has no
// category for margin alone, so canonical margin is not rendered.
// bybitOnlyRead reports whether k has no canonical permission beyond read.
func bybitOnlyRead(k Key) bool {
	for _, p := range k.Permissions {
		if p != exchange.PermRead {
			return false
		}
	}
	return true
}

func bybitKeyResult(k Key, now time.Time) map[string]any {
	perms := map[string][]string{
		"ContractTrade": {}, "Spot": {}, "Wallet": {}, "Options": {}, "Derivatives": {},
		"CopyTrading": {}, "BlockTrade": {}, "Exchange": {}, "NFT": {}, "Affiliate": {}, "Earn": {},
	}
	readOnly := 1
	switch {
	case len(k.Native) > 0:
		readOnly = 0
		for _, n := range k.Native {
			if n == "readOnly" {
				readOnly = 1
				continue
			}
			if cat, val, ok := strings.Cut(n, ":"); ok {
				perms[cat] = append(perms[cat], val)
			}
		}
	case bybitOnlyRead(k):
		perms["ContractTrade"] = []string{"Order", "Position"}
		perms["Spot"] = []string{"SpotTrade"}
		perms["Wallet"] = []string{"AccountTransfer"}
	default:
		readOnly = 0
		for _, p := range sortedPerms(k.Permissions) {
			switch p {
			case exchange.PermTrade:
				perms["Spot"] = append(perms["Spot"], "SpotTrade")
			case exchange.PermFutures:
				perms["ContractTrade"] = append(perms["ContractTrade"], "Order", "Position")
			case exchange.PermOptions:
				perms["Options"] = append(perms["Options"], "OptionsTrade")
			case exchange.PermTransfer:
				perms["Wallet"] = append(perms["Wallet"], "AccountTransfer", "SubMemberTransfer")
			case exchange.PermWithdraw:
				perms["Wallet"] = append(perms["Wallet"], "Withdraw")
			case exchange.PermEarn:
				perms["Earn"] = append(perms["Earn"], "Earn")
			}
		}
	}
	ips := []string{"*"}
	if len(k.AllowedIPs) > 0 {
		ips = append([]string{}, k.AllowedIPs...)
	}
	expiredAt, deadline := "", 0
	if !k.ExpiresAt.IsZero() {
		expiredAt = k.ExpiresAt.UTC().Format(time.RFC3339)
		if left := k.ExpiresAt.Sub(now); left > 0 {
			deadline = int(left.Hours() / 24)
		}
	}
	return map[string]any{
		"id":          "13770661",
		"note":        "simulated",
		"apiKey":      k.APIKey,
		"readOnly":    readOnly,
		"secret":      "",
		"permissions": perms,
		"ips":         ips,
		"type":        1,
		"deadlineDay": deadline,
		"expiredAt":   expiredAt,
		"createdAt":   k.CreatedAt.UTC().Format(time.RFC3339),
		"unified":     0,
		"uta":         1,
		"userID":      24617703,
		"inviterID":   0,
		"vipLevel":    "No VIP",
		"isMaster":    true,
		"parentUid":   "0",
	}
}
