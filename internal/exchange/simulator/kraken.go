package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Kraken spot: POST /0/private/GetApiKeyInfo and GET /0/public/Time.
//
// Authentication is verified as Kraken documents it: API-Sign must equal
// base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body))), and
// the nonce must be greater than the last one accepted for that key ("less
// than or equal to the last accepted nonce for this API key" is
// EAPI:Invalid nonce, docs.kraken.com exchange/guides/general/errors). The
// floor is per key; a refused nonce does not move it. Errors are HTTP 200 with {"error":[...]}, as
// Kraken answers them.
//
// Unverified choices (Kraken documents no error for these cases):
//   - a caller outside the key's IP allowlist gets "EGeneral:Permission denied"
//     (which the client reports as what Kraken documents it to be, a
//     missing permission: Kraken names no allowlist error);
//   - an inactive (frozen) key gets "EAPI:Key disabled" and an expired one
//     "EAPI:Key expired".
func init() {
	registerHandler(exchange.Kraken, func(s *Simulator) http.Handler { return &krakenHandler{s: s} })
}

type krakenHandler struct{ s *Simulator }

// krakenPerms renders canonical permissions as GetApiKeyInfo's strings.
// Margin orders need the same permission as spot orders (AddOrder with
// leverage, docs.kraken.com/api-reference/trading/add-order), so margin is
// rendered as modify-trades. Canonical permissions with no Kraken spot
// equivalent (transfer, futures, options) cannot be granted to a Kraken key
// and are left out. Key.Native, when set, is rendered verbatim instead.
var krakenPerms = map[string][]string{
	exchange.PermRead:     {"query-funds", "query-open-trades", "query-closed-trades", "query-ledger"},
	exchange.PermTrade:    {"modify-trades", "close-trades"},
	exchange.PermMargin:   {"modify-trades"},
	exchange.PermWithdraw: {"withdraw-funds"},
	exchange.PermEarn:     {"earn-funds"},
}

func (h *krakenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/0/public/Time":
		now := h.s.Now()
		writeJSON(w, http.StatusOK, map[string]any{"error": []string{}, "result": map[string]any{
			"unixtime": now.Unix(),
			"rfc1123":  now.UTC().Format("Mon, 02 Jan 06 15:04:05 +0000"),
		}})
	case "/0/private/GetApiKeyInfo":
		h.keyInfo(w, r)
	default:
		krakenFail(w, "EGeneral:Unknown method")
	}
}

func krakenFail(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusOK, map[string]any{"error": []string{msg}})
}

func (h *krakenHandler) keyInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		krakenFail(w, "EGeneral:Invalid arguments")
		return
	}
	apiKey := r.Header.Get("API-Key")
	h.s.countKey(exchange.Kraken, apiKey)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		krakenFail(w, "EGeneral:Invalid arguments")
		return
	}
	k, ok := h.s.lookup(exchange.Kraken, apiKey)
	if apiKey == "" || !ok {
		krakenFail(w, "EAPI:Invalid key")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		krakenFail(w, "EGeneral:Invalid arguments")
		return
	}
	nonceStr := form.Get("nonce")
	if !krakenSignatureValid(k.Secret, r.URL.Path, nonceStr, string(body), r.Header.Get("API-Sign")) {
		krakenFail(w, "EAPI:Invalid signature")
		return
	}
	nonce, err := strconv.ParseUint(nonceStr, 10, 64)
	if err != nil || !h.s.acceptNonce(exchange.Kraken, apiKey, nonce) {
		krakenFail(w, "EAPI:Invalid nonce")
		return
	}
	if !callerAllowed(k, r) {
		krakenFail(w, "EGeneral:Permission denied")
		return
	}
	if k.State == Inactive {
		krakenFail(w, "EAPI:Key disabled")
		return
	}
	if h.s.expired(k) {
		krakenFail(w, "EAPI:Key expired")
		return
	}
	perms := append([]string{}, k.Native...)
	if len(k.Native) == 0 {
		seen := map[string]bool{}
		for _, p := range k.Permissions {
			for _, n := range krakenPerms[p] {
				if !seen[n] {
					seen[n] = true
					perms = append(perms, n)
				}
			}
		}
	}
	validUntil := "0"
	if !k.ExpiresAt.IsZero() {
		validUntil = strconv.FormatInt(k.ExpiresAt.Unix(), 10)
	}
	allow := append([]string{}, k.AllowedIPs...)
	now := h.s.Now()
	writeJSON(w, http.StatusOK, map[string]any{"error": []string{}, "result": map[string]any{
		"apiKeyName":   "simulated-key",
		"apiKey":       k.APIKey,
		"nonce":        nonceStr,
		"nonceWindow":  0,
		"permissions":  sortedPerms(perms),
		"iban":         "AA00 SIMU LATE DKEY",
		"validUntil":   validUntil,
		"queryFrom":    "0",
		"queryTo":      "0",
		"createdTime":  strconv.FormatInt(k.CreatedAt.Unix(), 10),
		"modifiedTime": strconv.FormatInt(k.CreatedAt.Unix(), 10),
		"ipAllowlist":  allow,
		"lastUsed":     strconv.FormatInt(now.Unix(), 10),
	}})
}

// krakenSignatureValid checks API-Sign from the documented recipe, not from
// the client's code, so that a client signing bug is caught here.
func krakenSignatureValid(secretB64, path, nonce, postData, sign string) bool {
	secret, err := base64.StdEncoding.DecodeString(secretB64)
	if err != nil {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(sign)
	if err != nil {
		return false
	}
	inner := sha256.New()
	inner.Write([]byte(nonce))
	inner.Write([]byte(postData))
	mac := hmac.New(sha512.New, secret)
	mac.Write([]byte(path))
	mac.Write(inner.Sum(nil))
	return hmac.Equal(got, mac.Sum(nil))
}
