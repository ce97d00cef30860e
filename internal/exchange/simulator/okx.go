package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// OKX v5: GET /api/v5/account/config behind OK-ACCESS-* headers, and the
// public GET /api/v5/public/time.
//
// Error answers are {"code":"5xxxx","msg":..,"data":[]} with the HTTP status
// OKX's error table gives each code
// (https://www.okx.com/docs-v5/en/#error-code-rest-api-public): 401 for the
// authentication failures, 400 for 50100 (frozen), 200 for 50119 (deleted).
// Keys are live keys unless SetOKXDemo marks them as demo-trading keys; a
// request's environment is demo when it carries x-simulated-trading: 1, and a
// mismatch is 50101 as on OKX.
const okxSimWindow = 30 * time.Second

type okxSim struct {
	s    *Simulator
	mux  *http.ServeMux
	mu   sync.Mutex
	demo map[string]bool
}

func init() {
	registerHandler(exchange.OKX, func(s *Simulator) http.Handler {
		o := &okxSim{s: s, demo: map[string]bool{}}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/v5/public/time", o.time)
		mux.HandleFunc("GET /api/v5/account/config", o.config)
		o.mux = mux
		// The handler is the okxSim itself so that SetOKXDemo can find it.
		return o
	})
}

// SetOKXDemo marks an OKX key as a demo-trading key (or a live one again).
func (s *Simulator) SetOKXDemo(apiKey string, demo bool) {
	o := s.handlers[exchange.OKX].(*okxSim)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.demo[apiKey] = demo
}

func (o *okxSim) isDemo(apiKey string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.demo[apiKey]
}

func (o *okxSim) ServeHTTP(w http.ResponseWriter, r *http.Request) { o.mux.ServeHTTP(w, r) }

func okxFail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "msg": msg, "data": []any{}})
}

func (o *okxSim) time(w http.ResponseWriter, _ *http.Request) {
	ts := strconv.FormatInt(o.s.Now().UnixMilli(), 10)
	writeJSON(w, http.StatusOK, map[string]any{"code": "0", "msg": "", "data": []map[string]string{{"ts": ts}}})
}

func (o *okxSim) config(w http.ResponseWriter, r *http.Request) {
	const unauth = http.StatusUnauthorized
	apiKey := r.Header.Get("OK-ACCESS-KEY")
	if apiKey == "" {
		okxFail(w, unauth, "50103", "Request header OK-ACCESS-KEY cannot be empty.")
		return
	}
	o.s.countKey(exchange.OKX, apiKey)
	pass, sign, tsText := r.Header.Get("OK-ACCESS-PASSPHRASE"), r.Header.Get("OK-ACCESS-SIGN"), r.Header.Get("OK-ACCESS-TIMESTAMP")
	switch {
	case pass == "":
		okxFail(w, unauth, "50104", "Request header OK-ACCESS-PASSPHRASE cannot be empty.")
		return
	case sign == "":
		okxFail(w, unauth, "50106", "Request header OK-ACCESS-SIGN cannot be empty.")
		return
	case tsText == "":
		okxFail(w, unauth, "50107", "Request header OK-ACCESS-TIMESTAMP cannot be empty.")
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, tsText)
	if err != nil || !strings.HasSuffix(tsText, "Z") {
		okxFail(w, unauth, "50112", "Invalid OK-ACCESS-TIMESTAMP")
		return
	}
	if d := o.s.Now().Sub(ts); d > okxSimWindow || d < -okxSimWindow {
		okxFail(w, unauth, "50102", "Timestamp request expired")
		return
	}
	k, found := o.s.lookup(exchange.OKX, apiKey)
	if !found {
		okxFail(w, unauth, "50111", "Invalid OK-ACCESS-KEY")
		return
	}
	if o.s.expired(k) {
		// OKX deletes keys that lapse rather than keeping them disabled.
		okxFail(w, http.StatusOK, "50119", "API key doesn't exist")
		return
	}
	if (r.Header.Get("x-simulated-trading") == "1") != o.isDemo(apiKey) {
		okxFail(w, unauth, "50101", "APIKey does not match current environment.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(pass), []byte(k.Passphrase)) != 1 {
		okxFail(w, unauth, "50105", "OK-ACCESS-PASSPHRASE incorrect.")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	requestPath := r.URL.Path
	if r.URL.RawQuery != "" {
		requestPath += "?" + r.URL.RawQuery
	}
	m := hmac.New(sha256.New, []byte(k.Secret))
	m.Write([]byte(tsText + r.Method + requestPath + string(body)))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sign), []byte(want)) {
		okxFail(w, unauth, "50113", "Invalid Sign")
		return
	}
	if k.State == Inactive {
		okxFail(w, http.StatusBadRequest, "50100", "API frozen, please contact customer service.")
		return
	}
	if !callerAllowed(k, r) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		okxFail(w, unauth, "50110", "Your IP "+host+" is not included in your API key's IP whitelist.")
		return
	}
	perms := okxPerms(k)
	writeJSON(w, http.StatusOK, map[string]any{"code": "0", "msg": "", "data": []map[string]any{{
		"uid":             "44705892343619584",
		"mainUid":         "44705892343619584",
		"acctLv":          "2",
		"posMode":         "net_mode",
		"autoLoan":        false,
		"greeksType":      "PA",
		"level":           "Lv1",
		"levelTmp":        "",
		"ctIsoMode":       "automatic",
		"mgnIsoMode":      "automatic",
		"spotOffsetType":  "",
		"roleType":        "0",
		"spotRoleType":    "0",
		"traderInsts":     []string{},
		"spotTraderInsts": []string{},
		"opAuth":          "0",
		"kycLv":           "2",
		"label":           "exchange-simulator",
		"ip":              strings.Join(k.AllowedIPs, ","),
		"perm":            strings.Join(perms, ","),
	}}})
}

// okxPerms renders a key's `perm` list: Native verbatim when set, else the
// canonical permissions in OKX's three values. OKX cannot grant margin,
// futures, options, transfer or earn without the rest of "trade", so a key
// registered with any of them is a trade key, as it would be on OKX.
func okxPerms(k Key) []string {
	if len(k.Native) > 0 {
		return k.Native
	}
	var perms []string
	if k.Has(exchange.PermRead) {
		perms = append(perms, "read_only")
	}
	for _, p := range []string{exchange.PermTrade, exchange.PermMargin, exchange.PermFutures, exchange.PermOptions, exchange.PermTransfer, exchange.PermEarn} {
		if k.Has(p) {
			perms = append(perms, "trade")
			break
		}
	}
	if k.Has(exchange.PermWithdraw) {
		perms = append(perms, "withdraw")
	}
	return perms
}
