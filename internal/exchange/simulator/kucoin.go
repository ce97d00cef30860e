package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// KuCoin: GET /api/v1/user/api-key (signed) and GET /api/v1/timestamp
// (public).
//
// HTTP statuses of the error answers: 401 for the authentication failures
// (400003, 400004, 400005, 400006; 400004 with 401 is seen in user
// reports), 400 for missing headers and a stale timestamp (400002 with 400
// is seen in SDK reports), 403 for 400007 and a frozen key (411100). The
// statuses other than those two sightings are unverified. KuCoin keys carry
// no expiry; a key whose ExpiresAt has passed answers like a frozen one.
func init() { registerHandler(exchange.KuCoin, newKuCoinHandler) }

type kucoinHandler struct{ s *Simulator }

func newKuCoinHandler(s *Simulator) http.Handler { return &kucoinHandler{s: s} }

// kucoinTimestampWindow is KuCoin's tolerance between a request's
// KC-API-TIMESTAMP and the server clock, both ways.
const kucoinTimestampWindow = 5 * time.Second

func (h *kucoinHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/v1/timestamp" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"code": "200000", "msg": "success", "data": h.s.Now().UnixMilli()})
	case r.URL.Path == "/api/v1/user/api-key" && r.Method == http.MethodGet:
		h.apiKeyInfo(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "404000", "msg": "Url Not Found"})
	}
}

func kucoinFail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "msg": msg})
}

func (h *kucoinHandler) apiKeyInfo(w http.ResponseWriter, r *http.Request) {
	key, ok := h.s.kucoinAuth(w, r, nil)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": "200000", "data": kucoinKeyData(key)})
}

// kucoinAuth checks the KC-API-* headers of a signed request over
// timestamp + METHOD + path?query + body, the key's state and its IP
// whitelist, and answers the error itself when one fails.
func (s *Simulator) kucoinAuth(w http.ResponseWriter, r *http.Request, body []byte) (Key, bool) {
	apiKey := r.Header.Get("KC-API-KEY")
	if apiKey != "" {
		s.countKey(exchange.KuCoin, apiKey)
	}
	sign := r.Header.Get("KC-API-SIGN")
	tsHeader := r.Header.Get("KC-API-TIMESTAMP")
	passphrase := r.Header.Get("KC-API-PASSPHRASE")
	if apiKey == "" || sign == "" || tsHeader == "" || passphrase == "" {
		kucoinFail(w, http.StatusBadRequest, "400001", "Please check the header of your request for KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE")
		return Key{}, false
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if d := s.Now().Sub(time.UnixMilli(ts)); err != nil || d > kucoinTimestampWindow || d < -kucoinTimestampWindow {
		kucoinFail(w, http.StatusBadRequest, "400002", "Invalid KC-API-TIMESTAMP")
		return Key{}, false
	}
	key, ok := s.lookup(exchange.KuCoin, apiKey)
	if !ok {
		kucoinFail(w, http.StatusUnauthorized, "400003", "KC-API-KEY not exists")
		return Key{}, false
	}
	endpoint := r.URL.Path
	if r.URL.RawQuery != "" {
		endpoint += "?" + r.URL.RawQuery
	}
	// The signature is checked before the passphrase: with a wrong secret
	// both fail, and users with a wrong secret report 400005, not 400004.
	if !kucoinMACOK(key.Secret, tsHeader+r.Method+endpoint+string(body), sign) {
		kucoinFail(w, http.StatusUnauthorized, "400005", "Invalid KC-API-SIGN")
		return Key{}, false
	}
	if !kucoinPassphraseOK(key, r.Header.Get("KC-API-KEY-VERSION"), passphrase) {
		kucoinFail(w, http.StatusUnauthorized, "400004", "Invalid KC-API-PASSPHRASE")
		return Key{}, false
	}
	if key.State == Inactive || s.expired(key) {
		kucoinFail(w, http.StatusForbidden, "411100", "User is frozen")
		return Key{}, false
	}
	if !callerAllowed(key, r) {
		kucoinFail(w, http.StatusUnauthorized, "400006", "Invalid request ip, the current clientIp is:"+kucoinCallerIP(r))
		return Key{}, false
	}
	return key, true
}

// kucoinPassphraseOK: v2 and v3 keys send base64(HMAC-SHA256(secret,
// passphrase)); without a version header (v1) the passphrase is plain.
func kucoinPassphraseOK(k Key, version, got string) bool {
	switch version {
	case "2", "3":
		return kucoinMACOK(k.Secret, k.Passphrase, got)
	default:
		return hmac.Equal([]byte(got), []byte(k.Passphrase))
	}
}

// kucoinMACOK checks got == base64(HMAC-SHA256(secret, msg)).
func kucoinMACOK(secret, msg, got string) bool {
	sig, err := base64.StdEncoding.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hmac.Equal(sig, m.Sum(nil))
}

func kucoinCallerIP(r *http.Request) string {
	if i := strings.LastIndex(r.RemoteAddr, ":"); i > 0 {
		return strings.Trim(r.RemoteAddr[:i], "[]")
	}
	return r.RemoteAddr
}

// kucoinKeyData renders the key's permission list: Native verbatim when set,
// else the canonical permissions in KuCoin's names. Every key has General;
// Transfer is KuCoin's withdrawal right and InnerTransfer its Flex Transfer.
func kucoinKeyData(k Key) map[string]any {
	names := []string{"General"}
	if len(k.Native) > 0 {
		names = k.Native
	}
	for _, p := range sortedPerms(k.Permissions) {
		if len(k.Native) > 0 {
			break
		}
		switch p {
		case exchange.PermTrade:
			names = append(names, "Spot")
		case exchange.PermMargin:
			names = append(names, "Margin")
		case exchange.PermFutures:
			names = append(names, "Futures")
		case exchange.PermTransfer:
			names = append(names, "InnerTransfer")
		case exchange.PermWithdraw:
			names = append(names, "Transfer")
		case exchange.PermEarn:
			names = append(names, "Earn")
		}
	}
	return map[string]any{
		"remark":      "simulated",
		"apiKey":      k.APIKey,
		"apiVersion":  3,
		"permission":  strings.Join(names, ","),
		"ipWhitelist": strings.Join(k.AllowedIPs, ","),
		"createdAt":   k.CreatedAt.UnixMilli(),
		"uid":         165111215,
		"isMaster":    true,
	}
}
