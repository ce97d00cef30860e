package simulator

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// KuCoin sub-account keys (kucoin.com/docs-new, "Sub Account API"; the
// official SDK's spec, Kucoin/kucoin-universal-sdk spec/rest/api/
// openapi-account-subaccount.json):
//   - POST /api/v1/sub/api-key (api-3470138): subName, passphrase (7-32
//     characters, no spaces), remark (1-24 characters), permission (only
//     General, Spot, Futures, Margin, InnerTransfer; default General),
//     ipWhitelist (up to 20 IPs, comma list), expire (-1 never, the default;
//     30, 90, 180, 360 days). The answer is the only one with apiSecret.
//   - GET /api/v1/sub/api-key (api-3470136): subName, apiKey optional; the
//     whitelist masked ("10.**.1"), no secret, no expiry.
//   - POST /api/v1/sub/api-key/update (api-3470139): subName, apiKey,
//     passphrase (the key's), permission, ipWhitelist, expire.
//   - DELETE /api/v1/sub/api-key (api-3470137): apiKey, subName and the
//     key's passphrase, in the query.
//   - GET /api/v1/user/api-key reports isMaster, and subName on a
//     sub-account's key (api-3470130).
//
// All four need General (every key has it) and count against the
// Management pool, 2000 per 30 s per UID at VIP 0, at weight 20 (create,
// list) or 30 (update, delete) (docs-new/rate-limit); the simulator counts
// every call at 30, so 66 calls per 30 s, and answers 429000 beyond.
//
// Unverified (KuCoin documents no code for them): a sub-account's own key
// on these endpoints answers 400007 (KuCoin's "Access denied, requires more
// permission"); an unknown sub-account, an unknown key and a wrong key
// passphrase answer 400100 with words that say so.
const (
	kucoinSubPoolMax    = 2000 / 30
	kucoinSubPoolWindow = 30 * time.Second
)

// KuCoinNeedKYC is KuCoin's refusal of an account that has not passed
// identity verification (docs-new/error-code, 4003xx; the text as ccxt's
// kucoin.js quotes it).
var KuCoinNeedKYC = Refusal{"400303", "To enjoy the full range of our products and services, we kindly request you complete the identity verification process."}

// KuCoinAccessDenied is KuCoin's answer to a key that lacks a permission
// a call needs (400007, docs-new/error-code): what the simulator answers a
// create through a master key a test wants refused, since a KuCoin master
// key cannot lose General.
var KuCoinAccessDenied = Refusal{"400007", "Access denied, requires more permission."}

func init() {
	subRoutes[exchange.KuCoin] = map[string]func(*Simulator, http.ResponseWriter, *http.Request){
		"POST /api/v1/sub/api-key":        (*Simulator).kucoinCreateSub,
		"GET /api/v1/sub/api-key":         (*Simulator).kucoinListSub,
		"POST /api/v1/sub/api-key/update": (*Simulator).kucoinUpdateSub,
		"DELETE /api/v1/sub/api-key":      (*Simulator).kucoinDeleteSub,
	}
	ownerPatches[exchange.KuCoin] = map[string]func(*Simulator, *http.Request, map[string]any) bool{
		"GET /api/v1/user/api-key": (*Simulator).kucoinPatchOwner,
	}
}

func kucoinOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"code": "200000", "data": data})
}

// kucoinParamError is KuCoin's 400100 "Parameter Error", with words that
// say which.
func kucoinParamError(w http.ResponseWriter, msg string) {
	kucoinFail(w, http.StatusBadRequest, "400100", msg)
}

// kucoinMaster authenticates a management call by a main account's key and
// counts it against the Management pool.
func (s *Simulator) kucoinMaster(w http.ResponseWriter, r *http.Request, body []byte) (keyOwner, bool) {
	k, ok := s.kucoinAuth(w, r, body)
	if !ok {
		return keyOwner{}, false
	}
	o := s.owner(exchange.KuCoin, k.APIKey)
	switch {
	case o.sub != "":
		kucoinFail(w, http.StatusForbidden, "400007", "Access denied, requires more permission.")
	case !s.allow(exchange.KuCoin, o.main, "management", kucoinSubPoolMax, kucoinSubPoolWindow):
		w.Header().Set("gw-ratelimit-reset", strconv.FormatInt(kucoinSubPoolWindow.Milliseconds(), 10))
		kucoinFail(w, http.StatusTooManyRequests, "429000", "Too Many Requests")
	default:
		return o, true
	}
	return keyOwner{}, false
}

// kucoinSubNatives are the settable permissions and what each grants.
var kucoinSubNatives = map[string][]string{
	"General":       {exchange.PermRead},
	"Spot":          {exchange.PermTrade, exchange.PermTransfer},
	"Margin":        {exchange.PermMargin},
	"Futures":       {exchange.PermFutures, exchange.PermTransfer},
	"InnerTransfer": {exchange.PermTransfer},
}

// kucoinSubPermission parses a permission list: General always, the rest
// only from the settable ones.
func kucoinSubPermission(list string) (native, canonical []string, ok bool) {
	native = []string{"General"}
	seen := map[string]bool{"General": true, exchange.PermRead: true}
	canonical = []string{exchange.PermRead}
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		grants, settable := kucoinSubNatives[p]
		if !settable {
			return nil, nil, false
		}
		if !seen[p] {
			seen[p] = true
			native = append(native, p)
		}
		for _, g := range grants {
			if !seen[g] {
				seen[g] = true
				canonical = append(canonical, g)
			}
		}
	}
	return native, canonical, true
}

// kucoinSubIPs parses an ipWhitelist: at most 20 addresses.
func kucoinSubIPs(list string) ([]string, bool) {
	var ips []string
	for _, ip := range strings.Split(list, ",") {
		if ip = strings.TrimSpace(ip); ip == "" {
			continue
		}
		if net.ParseIP(ip) == nil {
			return nil, false
		}
		ips = append(ips, ip)
	}
	return ips, len(ips) <= 20
}

// kucoinSubExpire parses expire: the expiry time, zero for never.
func kucoinSubExpire(v string, now time.Time) (time.Time, bool) {
	switch v {
	case "", "-1":
		return time.Time{}, true
	case "30", "90", "180", "360":
		d, _ := strconv.Atoi(v)
		return now.Add(time.Duration(d) * 24 * time.Hour), true
	}
	return time.Time{}, false
}

// kucoinMaskIP masks an address as KuCoin's lists do: "203.**.154".
func kucoinMaskIP(ip string) string {
	parts := strings.Split(ip, ".")
	if len(parts) != 4 {
		return "**"
	}
	return parts[0] + ".**." + parts[3]
}

func kucoinUID(a subAccount) int64 {
	n, _ := strconv.ParseInt(a.uid, 10, 64)
	return n
}

func (s *Simulator) kucoinCreateSub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	o, ok := s.kucoinMaster(w, r, body)
	if !ok {
		return
	}
	var req struct {
		SubName     string `json:"subName"`
		Passphrase  string `json:"passphrase"`
		Remark      string `json:"remark"`
		Permission  string `json:"permission"`
		IPWhitelist string `json:"ipWhitelist"`
		Expire      string `json:"expire"`
	}
	if json.Unmarshal(body, &req) != nil || req.SubName == "" || req.Passphrase == "" || req.Remark == "" {
		kucoinParamError(w, "subName, passphrase and remark are required")
		return
	}
	a, found := s.subOf(exchange.KuCoin, o.main, req.SubName)
	if !found {
		kucoinParamError(w, "sub-account does not exist")
		return
	}
	if ref, refused := s.refusal(exchange.KuCoin, a.name); refused {
		kucoinFail(w, http.StatusBadRequest, ref.Code, ref.Msg)
		return
	}
	if n := len([]rune(req.Passphrase)); n < 7 || n > 32 || strings.ContainsAny(req.Passphrase, " \t\r\n") {
		kucoinParamError(w, "passphrase must contain 7-32 characters and no spaces")
		return
	}
	if n := len([]rune(req.Remark)); n > 24 {
		kucoinParamError(w, "remark must contain 1-24 characters")
		return
	}
	native, canonical, ok := kucoinSubPermission(req.Permission)
	if !ok {
		kucoinParamError(w, "permission: only General, Spot, Futures, Margin and InnerTransfer can be set")
		return
	}
	ips, ok := kucoinSubIPs(req.IPWhitelist)
	if !ok {
		kucoinParamError(w, "ipWhitelist: up to 20 IP addresses")
		return
	}
	now := s.Now()
	expires, ok := kucoinSubExpire(req.Expire, now)
	if !ok {
		kucoinParamError(w, "expire must be -1, 30, 90, 180 or 360")
		return
	}
	key := Key{Exchange: exchange.KuCoin, APIKey: randomID(12), Secret: uuid.NewString(), Passphrase: req.Passphrase,
		Permissions: canonical, Native: native, AllowedIPs: ips, CreatedAt: now, ExpiresAt: expires}
	s.addCreatedKey(a, req.Remark, "", key)
	kucoinOK(w, map[string]any{
		"subName": a.name, "remark": req.Remark, "apiKey": key.APIKey, "apiSecret": key.Secret, "apiVersion": 3,
		"passphrase": req.Passphrase, "permission": strings.Join(native, ","), "ipWhitelist": strings.Join(ips, ","),
		"createdAt": now.UnixMilli(),
	})
}

func (s *Simulator) kucoinListSub(w http.ResponseWriter, r *http.Request) {
	o, ok := s.kucoinMaster(w, r, nil)
	if !ok {
		return
	}
	q := r.URL.Query()
	if q.Get("subName") == "" {
		kucoinParamError(w, "subName is required")
		return
	}
	a, found := s.subOf(exchange.KuCoin, o.main, q.Get("subName"))
	if !found {
		kucoinParamError(w, "sub-account does not exist")
		return
	}
	rows := []map[string]any{}
	for _, k := range s.liveSubKeys(exchange.KuCoin, a.name) {
		if want := q.Get("apiKey"); want != "" && want != k.APIKey {
			continue
		}
		var masked []string
		for _, ip := range k.AllowedIPs {
			masked = append(masked, kucoinMaskIP(ip))
		}
		rows = append(rows, map[string]any{
			"subName": a.name, "remark": k.label, "apiKey": k.APIKey, "apiVersion": 3,
			"permission": strings.Join(k.Native, ","), "ipWhitelist": strings.Join(masked, ","),
			"createdAt": k.CreatedAt.UnixMilli(), "uid": kucoinUID(a), "isMaster": false,
		})
	}
	kucoinOK(w, rows)
}

// kucoinSubKeyOf finds a live key of the named sub-account and checks the
// key's passphrase; it answers the error itself.
func (s *Simulator) kucoinSubKeyOf(w http.ResponseWriter, o keyOwner, subName, apiKey, passphrase string) (subAccount, Key, bool) {
	if subName == "" || apiKey == "" || passphrase == "" {
		kucoinParamError(w, "subName, apiKey and passphrase are required")
		return subAccount{}, Key{}, false
	}
	a, found := s.subOf(exchange.KuCoin, o.main, subName)
	if !found {
		kucoinParamError(w, "sub-account does not exist")
		return subAccount{}, Key{}, false
	}
	target := s.owner(exchange.KuCoin, apiKey)
	k, live := s.lookup(exchange.KuCoin, apiKey)
	if !live || target.sub != a.name || target.main != o.main {
		kucoinParamError(w, "apiKey does not exist")
		return subAccount{}, Key{}, false
	}
	if subtle.ConstantTimeCompare([]byte(passphrase), []byte(k.Passphrase)) != 1 {
		kucoinParamError(w, "passphrase error")
		return subAccount{}, Key{}, false
	}
	return a, k, true
}

func (s *Simulator) kucoinUpdateSub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	o, ok := s.kucoinMaster(w, r, body)
	if !ok {
		return
	}
	var req struct {
		SubName     string  `json:"subName"`
		APIKey      string  `json:"apiKey"`
		Passphrase  string  `json:"passphrase"`
		Permission  *string `json:"permission"`
		IPWhitelist *string `json:"ipWhitelist"`
		Expire      *string `json:"expire"`
	}
	if json.Unmarshal(body, &req) != nil {
		kucoinParamError(w, "Parameter Error")
		return
	}
	a, k, ok := s.kucoinSubKeyOf(w, o, req.SubName, req.APIKey, req.Passphrase)
	if !ok {
		return
	}
	native, canonical, ips := k.Native, k.Permissions, k.AllowedIPs
	expires := k.ExpiresAt
	if req.Permission != nil {
		if native, canonical, ok = kucoinSubPermission(*req.Permission); !ok {
			kucoinParamError(w, "permission: only General, Spot, Futures, Margin and InnerTransfer can be set")
			return
		}
	}
	if req.IPWhitelist != nil {
		if ips, ok = kucoinSubIPs(*req.IPWhitelist); !ok {
			kucoinParamError(w, "ipWhitelist: up to 20 IP addresses")
			return
		}
	}
	if req.Expire != nil {
		if expires, ok = kucoinSubExpire(*req.Expire, s.Now()); !ok {
			kucoinParamError(w, "expire must be -1, 30, 90, 180 or 360")
			return
		}
	}
	s.UpdateKey(exchange.KuCoin, k.APIKey, func(k *Key) {
		k.Native, k.Permissions, k.AllowedIPs, k.ExpiresAt = native, canonical, ips, expires
	})
	kucoinOK(w, map[string]any{"subName": a.name, "apiKey": k.APIKey, "permission": strings.Join(native, ","), "ipWhitelist": strings.Join(ips, ",")})
}

func (s *Simulator) kucoinDeleteSub(w http.ResponseWriter, r *http.Request) {
	o, ok := s.kucoinMaster(w, r, nil)
	if !ok {
		return
	}
	q := r.URL.Query()
	a, k, ok := s.kucoinSubKeyOf(w, o, q.Get("subName"), q.Get("apiKey"), q.Get("passphrase"))
	if !ok {
		return
	}
	s.SetState(exchange.KuCoin, k.APIKey, Revoked)
	kucoinOK(w, map[string]any{"subName": a.name, "apiKey": k.APIKey})
}

// kucoinPatchOwner sets isMaster, uid, subName and remark in Get Apikey
// Info.
func (s *Simulator) kucoinPatchOwner(r *http.Request, doc map[string]any) bool {
	data, ok := doc["data"].(map[string]any)
	if !ok {
		return false
	}
	o := s.owner(exchange.KuCoin, r.Header.Get("KC-API-KEY"))
	uid, _ := strconv.ParseInt(o.main, 10, 64)
	data["isMaster"], data["uid"] = true, uid
	delete(data, "subName")
	if o.sub != "" {
		a, _ := s.subOf(exchange.KuCoin, o.main, o.sub)
		data["isMaster"], data["uid"], data["subName"], data["remark"] = false, kucoinUID(a), o.sub, o.label
	}
	return true
}
