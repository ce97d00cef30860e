package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// OKX v5 sub-account keys (okx.com/docs-v5/en/, "Sub-account"):
//   - POST /api/v5/users/subaccount/apikey: "Applies to master accounts
//     only and master accounts API Key must be linked to IP addresses";
//     Permission: Trade; 1 request per second per User ID. subAcct, label,
//     passphrase (8-32 characters, at least one digit, upper-case,
//     lower-case letter and special character), perm (read_only, trade),
//     ip (up to 20). The answer is the only one with secretKey.
//   - GET /api/v5/users/subaccount/apikey: master only; Permission: Read;
//     20 requests per 2 s. No secret.
//   - POST /api/v5/users/subaccount/delete-apikey: as create; 1/s.
//   - account/config reports uid and mainUid (equal on the main account).
//
// Codes (ccxt's OKX exceptions table): 59500 main account only, 59501 at
// most 50 keys per account, 59502 duplicate note among live keys, 59503 at
// most 20 IPs, 59504 no withdrawal for sub-accounts, 59505 passphrase
// format, 59506 APIKey does not exist, 59510 sub-account does not exist
// (not in ccxt 4.5.84's table: unverified, and the client maps it only by
// OKX's words; see internal/exchange/codes.go), 50011 rate limit (HTTP 429),
// 50120 missing permission. OKX documents no
// code for a master key without bound IPs: the simulator answers 50120.
const okxSubMaxKeys = 50

func init() {
	subRoutes[exchange.OKX] = map[string]func(*Simulator, http.ResponseWriter, *http.Request){
		"POST /api/v5/users/subaccount/apikey":        (*Simulator).okxCreateSub,
		"GET /api/v5/users/subaccount/apikey":         (*Simulator).okxListSub,
		"POST /api/v5/users/subaccount/delete-apikey": (*Simulator).okxDeleteSub,
	}
	ownerPatches[exchange.OKX] = map[string]func(*Simulator, *http.Request, map[string]any) bool{
		"GET /api/v5/account/config": (*Simulator).okxPatchOwner,
	}
}

func okxOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"code": "0", "msg": "", "data": data})
}

// okxSim returns the OKX handler, which knows demo keys.
func (s *Simulator) okxSim() *okxSim { return s.handlers[exchange.OKX].(*okxSim) }

// okxAuth checks OK-ACCESS-* over timestamp + METHOD + path?query + body.
func (s *Simulator) okxAuth(w http.ResponseWriter, r *http.Request, body []byte) (Key, bool) {
	const unauth = http.StatusUnauthorized
	apiKey := r.Header.Get("OK-ACCESS-KEY")
	if apiKey == "" {
		okxFail(w, unauth, "50103", "Request header OK-ACCESS-KEY cannot be empty.")
		return Key{}, false
	}
	s.countKey(exchange.OKX, apiKey)
	tsText := r.Header.Get("OK-ACCESS-TIMESTAMP")
	ts, err := time.Parse(time.RFC3339Nano, tsText)
	if err != nil || !strings.HasSuffix(tsText, "Z") {
		okxFail(w, unauth, "50112", "Invalid OK-ACCESS-TIMESTAMP")
		return Key{}, false
	}
	if d := s.Now().Sub(ts); d > okxSimWindow || d < -okxSimWindow {
		okxFail(w, unauth, "50102", "Timestamp request expired")
		return Key{}, false
	}
	k, ok := s.lookup(exchange.OKX, apiKey)
	if !ok || s.expired(k) {
		okxFail(w, unauth, "50111", "Invalid OK-ACCESS-KEY")
		return Key{}, false
	}
	if (r.Header.Get("x-simulated-trading") == "1") != s.okxSim().isDemo(apiKey) {
		okxFail(w, unauth, "50101", "APIKey does not match current environment.")
		return Key{}, false
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("OK-ACCESS-PASSPHRASE")), []byte(k.Passphrase)) != 1 {
		okxFail(w, unauth, "50105", "OK-ACCESS-PASSPHRASE incorrect.")
		return Key{}, false
	}
	requestPath := r.URL.Path
	if r.URL.RawQuery != "" {
		requestPath += "?" + r.URL.RawQuery
	}
	m := hmac.New(sha256.New, []byte(k.Secret))
	m.Write([]byte(tsText + r.Method + requestPath + string(body)))
	if !hmac.Equal([]byte(r.Header.Get("OK-ACCESS-SIGN")), []byte(base64.StdEncoding.EncodeToString(m.Sum(nil)))) {
		okxFail(w, unauth, "50113", "Invalid Sign")
		return Key{}, false
	}
	if k.State == Inactive {
		okxFail(w, http.StatusBadRequest, "50100", "API frozen, please contact customer service.")
		return Key{}, false
	}
	if !callerAllowed(k, r) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		okxFail(w, unauth, "50110", "Your IP "+host+" is not included in your API key's IP whitelist.")
		return Key{}, false
	}
	return k, true
}

// okxPermsOf is the key's perm list as account/config shows it.
func okxPermsOf(k Key) map[string]bool {
	out := map[string]bool{}
	for _, p := range okxPerms(k) {
		out[p] = true
	}
	return out
}

// okxMaster authenticates a master-only call. trade: the call needs Trade
// and an IP-bound key (create, delete); otherwise Read.
func (s *Simulator) okxMaster(w http.ResponseWriter, r *http.Request, body []byte, trade bool, endpoint string, max int, window time.Duration) (keyOwner, bool) {
	k, ok := s.okxAuth(w, r, body)
	if !ok {
		return keyOwner{}, false
	}
	o := s.owner(exchange.OKX, k.APIKey)
	perms := okxPermsOf(k)
	switch {
	case o.sub != "":
		okxFail(w, http.StatusOK, "59500", "Only the APIKey of the main account has permission for this operation.")
	case trade && len(k.AllowedIPs) == 0:
		okxFail(w, http.StatusOK, "50120", "This API key doesn't have permission to use this function: master accounts API Key must be linked to IP addresses.")
	case trade && !perms["trade"]:
		okxFail(w, http.StatusOK, "50120", "This API key doesn't have permission to use this function.")
	case !trade && !perms["read_only"] && !perms["trade"]:
		okxFail(w, http.StatusOK, "50120", "This API key doesn't have permission to use this function.")
	case !s.allow(exchange.OKX, o.main, endpoint, max, window):
		okxFail(w, http.StatusTooManyRequests, "50011", "Rate limit reached. Please refer to API documentation and throttle requests accordingly.")
	default:
		return o, true
	}
	return keyOwner{}, false
}

// okxPassphraseOK: 8 to 32 characters with a digit, an upper-case and a
// lower-case letter and a special character.
func okxPassphraseOK(p string) bool {
	var d, u, l, sp bool
	for _, r := range p {
		switch {
		case unicode.IsDigit(r):
			d = true
		case unicode.IsUpper(r):
			u = true
		case unicode.IsLower(r):
			l = true
		case r > ' ' && r < 0x7f:
			sp = true
		default:
			return false
		}
	}
	return len(p) >= 8 && len(p) <= 32 && d && u && l && sp
}

func (s *Simulator) okxCreateSub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	o, ok := s.okxMaster(w, r, body, true, "POST apikey", 1, time.Second)
	if !ok {
		return
	}
	var req struct {
		SubAcct    string `json:"subAcct"`
		Label      string `json:"label"`
		Passphrase string `json:"passphrase"`
		Perm       string `json:"perm"`
		IP         string `json:"ip"`
	}
	if json.Unmarshal(body, &req) != nil || req.SubAcct == "" || req.Label == "" || req.Passphrase == "" {
		okxFail(w, http.StatusOK, "50014", "Parameter subAcct, label or passphrase can not be empty.")
		return
	}
	a, found := s.subOf(exchange.OKX, o.main, req.SubAcct)
	if !found {
		okxFail(w, http.StatusOK, "59510", "Sub-account does not exist")
		return
	}
	if ref, refused := s.refusal(exchange.OKX, a.name); refused {
		okxFail(w, http.StatusOK, ref.Code, ref.Msg)
		return
	}
	if !okxPassphraseOK(req.Passphrase) {
		okxFail(w, http.StatusOK, "59505", "The passphrase format is incorrect.")
		return
	}
	native := []string{"read_only"}
	for _, p := range strings.Split(req.Perm, ",") {
		switch p = strings.TrimSpace(p); p {
		case "", "read_only":
		case "trade":
			native = append(native, "trade")
		case "withdraw":
			okxFail(w, http.StatusOK, "59504", "The sub account does not support the withdrawal function.")
			return
		default:
			okxFail(w, http.StatusOK, "51000", "Parameter perm error")
			return
		}
	}
	var ips []string
	for _, ip := range strings.Split(req.IP, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			ips = append(ips, ip)
		}
	}
	if len(ips) > 20 {
		okxFail(w, http.StatusOK, "59503", "Each APIKey can bind up to 20 IP addresses.")
		return
	}
	live := s.liveSubKeys(exchange.OKX, a.name)
	if len(live) >= okxSubMaxKeys {
		okxFail(w, http.StatusOK, "59501", "Only 50 APIKeys can be created per account.")
		return
	}
	for _, k := range live {
		if k.label == req.Label {
			okxFail(w, http.StatusOK, "59502", "Note name cannot be duplicate with the currently created APIKey note name.")
			return
		}
	}
	now := s.Now()
	canonical := []string{exchange.PermRead}
	if len(native) > 1 {
		canonical = append(canonical, exchange.PermTrade)
	}
	key := Key{Exchange: exchange.OKX, APIKey: uuid.NewString(), Secret: strings.ToUpper(randomID(16)), Passphrase: req.Passphrase,
		Permissions: canonical, Native: native, AllowedIPs: ips, CreatedAt: now}
	s.addCreatedKey(a, req.Label, "", key)
	if r.Header.Get("x-simulated-trading") == "1" {
		s.SetOKXDemo(key.APIKey, true)
	}
	okxOK(w, []map[string]string{{
		"subAcct": a.name, "label": req.Label, "apiKey": key.APIKey, "secretKey": key.Secret, "passphrase": req.Passphrase,
		"perm": strings.Join(native, ","), "ip": strings.Join(ips, ","), "ts": strconv.FormatInt(now.UnixMilli(), 10),
	}})
}

func (s *Simulator) okxListSub(w http.ResponseWriter, r *http.Request) {
	o, ok := s.okxMaster(w, r, nil, false, "GET apikey", 20, 2*time.Second)
	if !ok {
		return
	}
	q := r.URL.Query()
	a, found := s.subOf(exchange.OKX, o.main, q.Get("subAcct"))
	if !found {
		okxFail(w, http.StatusOK, "59510", "Sub-account does not exist")
		return
	}
	rows := []map[string]string{}
	for _, k := range s.liveSubKeys(exchange.OKX, a.name) {
		if want := q.Get("apiKey"); want != "" && want != k.APIKey {
			continue
		}
		rows = append(rows, map[string]string{
			"label": k.label, "apiKey": k.APIKey, "perm": strings.Join(okxPerms(k.Key), ","),
			"ip": strings.Join(k.AllowedIPs, ","), "ts": strconv.FormatInt(k.CreatedAt.UnixMilli(), 10),
		})
	}
	okxOK(w, rows)
}

func (s *Simulator) okxDeleteSub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	o, ok := s.okxMaster(w, r, body, true, "POST delete-apikey", 1, time.Second)
	if !ok {
		return
	}
	var req struct {
		SubAcct string `json:"subAcct"`
		APIKey  string `json:"apiKey"`
	}
	if json.Unmarshal(body, &req) != nil || req.SubAcct == "" || req.APIKey == "" {
		okxFail(w, http.StatusOK, "50014", "Parameter subAcct or apiKey can not be empty.")
		return
	}
	a, found := s.subOf(exchange.OKX, o.main, req.SubAcct)
	if !found {
		okxFail(w, http.StatusOK, "59510", "Sub-account does not exist")
		return
	}
	target := s.owner(exchange.OKX, req.APIKey)
	if _, live := s.lookup(exchange.OKX, req.APIKey); !live || target.sub != a.name || target.main != o.main {
		okxFail(w, http.StatusOK, "59506", "APIKey does not exist.")
		return
	}
	s.SetState(exchange.OKX, req.APIKey, Revoked)
	okxOK(w, []map[string]string{{"subAcct": a.name}})
}

// okxPatchOwner sets uid, mainUid and label in account/config.
func (s *Simulator) okxPatchOwner(r *http.Request, doc map[string]any) bool {
	data, ok := doc["data"].([]any)
	if !ok || len(data) == 0 {
		return false
	}
	row, ok := data[0].(map[string]any)
	if !ok {
		return false
	}
	o := s.owner(exchange.OKX, r.Header.Get("OK-ACCESS-KEY"))
	row["mainUid"], row["uid"] = o.main, o.main
	if o.sub != "" {
		a, _ := s.subOf(exchange.OKX, o.main, o.sub)
		row["uid"], row["label"] = a.uid, o.label
	}
	return true
}
