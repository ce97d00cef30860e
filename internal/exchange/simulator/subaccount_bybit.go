package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Bybit v5 sub-account keys, from bybit-exchange/docs:
//   - POST /v5/user/create-sub-api (create-subuid-apikey.mdx): master
//     account's key only, holding "Account Transfer", "Subaccount Transfer"
//     or "Withdrawal"; subuid, note, readOnly, ips ("*" or absent =
//     unbound: the key expires after 90 days), permissions (at least one
//     category; a sub-account key may hold ContractTrade, Spot, Options,
//     Wallet AccountTransfer/SubMemberTransferList, Exchange, Earn,
//     Derivatives). The answer is the only one with the secret. 1 req/s.
//   - GET /v5/user/sub-apikeys (list-sub-apikeys.mdx): master only, any
//     permission; subMemberId, limit 1..20, cursor; secret "******". 10 req/s.
//   - POST /v5/user/delete-sub-api (rm-sub-apikey.mdx): master with the
//     same permissions; apikey. 5 req/s.
//   - query-api (apikey-info.mdx) reports isMaster and parentUid.
//
// Rate limits count per UID (rate-limit.mdx); a refusal is retCode 10006
// with X-Bapi-Limit-Reset-Timestamp. Answers the docs do not give, and so
// guesses: a sub-account key or a master without the permissions gets 10005;
// a sub UID of another main account 500010 (error.mdx, "The subaccount
// specified does not belong to the parent account"); an unknown apikey on
// delete 10001.
func init() {
	subRoutes[exchange.Bybit] = map[string]func(*Simulator, http.ResponseWriter, *http.Request){
		"POST /v5/user/create-sub-api": (*Simulator).bybitCreateSub,
		"GET /v5/user/sub-apikeys":     (*Simulator).bybitListSub,
		"POST /v5/user/delete-sub-api": (*Simulator).bybitDeleteSub,
	}
	ownerPatches[exchange.Bybit] = map[string]func(*Simulator, *http.Request, map[string]any) bool{
		"GET /v5/user/query-api": (*Simulator).bybitPatchOwner,
	}
}

// bybitSubCategories are what a sub-account key may hold.
var bybitSubCategories = map[string][]string{
	"ContractTrade": {"Order", "Position"},
	"Spot":          {"SpotTrade"},
	"Options":       {"OptionsTrade"},
	"Wallet":        {"AccountTransfer", "SubMemberTransferList"},
	"Exchange":      {"ExchangeHistory"},
	"Earn":          {"Earn"},
	"Derivatives":   {"DerivativesTrade"},
}

// bybitSubCanonical is what each category lets a read-write key do, for the
// probe handler's rendering from canonical permissions.
var bybitSubCanonical = map[string]string{
	"ContractTrade": exchange.PermFutures, "Derivatives": exchange.PermFutures, "Spot": exchange.PermTrade,
	"Exchange": exchange.PermTrade, "Options": exchange.PermOptions, "Wallet": exchange.PermTransfer, "Earn": exchange.PermEarn,
}

// bybitAuth checks a v5 signed request: hex HMAC-SHA256 over timestamp +
// key + recvWindow + (query string for GET | body for POST).
func (s *Simulator) bybitAuth(w http.ResponseWriter, r *http.Request, body []byte) (Key, bool) {
	now := s.Now()
	apiKey := r.Header.Get("X-BAPI-API-KEY")
	if apiKey == "" {
		bybitAnswer(w, http.StatusUnauthorized, now, 10003, "API key is invalid.", nil)
		return Key{}, false
	}
	s.countKey(exchange.Bybit, apiKey)
	tsText, recvText := r.Header.Get("X-BAPI-TIMESTAMP"), r.Header.Get("X-BAPI-RECV-WINDOW")
	recv := int64(5000)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if recvText != "" {
		recv, _ = strconv.ParseInt(recvText, 10, 64)
	}
	if err != nil || recv <= 0 {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: X-BAPI-TIMESTAMP or X-BAPI-RECV-WINDOW", nil)
		return Key{}, false
	}
	if server := now.UnixMilli(); ts < server-recv || ts >= server+1000 {
		bybitAnswer(w, http.StatusOK, now, 10002, "invalid request, please check your server timestamp or recv_window param", nil)
		return Key{}, false
	}
	k, ok := s.lookup(exchange.Bybit, apiKey)
	if !ok {
		bybitAnswer(w, http.StatusUnauthorized, now, 10003, "API key is invalid.", nil)
		return Key{}, false
	}
	payload := r.URL.RawQuery
	if r.Method == http.MethodPost {
		payload = string(body)
	}
	m := hmac.New(sha256.New, []byte(k.Secret))
	m.Write([]byte(tsText + apiKey + recvText + payload))
	if sig, err := hex.DecodeString(r.Header.Get("X-BAPI-SIGN")); err != nil || !hmac.Equal(sig, m.Sum(nil)) {
		bybitAnswer(w, http.StatusOK, now, 10004, "Error sign, please check your signature generation algorithm.", nil)
		return Key{}, false
	}
	switch {
	case s.expired(k):
		bybitAnswer(w, http.StatusOK, now, 33004, "Your api key has expired.", nil)
	case k.State == Inactive:
		bybitAnswer(w, http.StatusOK, now, 10008, "Common banned, please check your account mode", nil)
	case !callerAllowed(k, r):
		bybitAnswer(w, http.StatusOK, now, 10010, "Unmatched IP, please check your API key's bound IP addresses.", nil)
	default:
		return k, true
	}
	return Key{}, false
}

// bybitMaster authenticates a master-only call; write says whether the call
// needs the transfer or withdrawal permission (create, delete).
func (s *Simulator) bybitMaster(w http.ResponseWriter, r *http.Request, body []byte, write bool, endpoint string, perSecond int) (keyOwner, bool) {
	k, ok := s.bybitAuth(w, r, body)
	if !ok {
		return keyOwner{}, false
	}
	o := s.owner(exchange.Bybit, k.APIKey)
	now := s.Now()
	if o.sub != "" {
		bybitAnswer(w, http.StatusOK, now, 10005, "Permission denied, please check your API key permissions. Use master user's api key only.", nil)
		return keyOwner{}, false
	}
	if write && !bybitCanManage(k) {
		bybitAnswer(w, http.StatusOK, now, 10005, "Permission denied, please check your API key permissions. The master API key needs Account Transfer, Subaccount Transfer or Withdrawal.", nil)
		return keyOwner{}, false
	}
	if !s.allow(exchange.Bybit, o.main, endpoint, perSecond, time.Second) {
		w.Header().Set("X-Bapi-Limit-Reset-Timestamp", strconv.FormatInt(now.Add(time.Second).UnixMilli(), 10))
		bybitAnswer(w, http.StatusOK, now, 10006, "Too many visits. Exceeded the API Rate Limit.", nil)
		return keyOwner{}, false
	}
	return o, true
}

// bybitCanManage: a read-write key with Wallet AccountTransfer,
// SubMemberTransfer or Withdraw (canonical transfer or withdraw).
func bybitCanManage(k Key) bool {
	if len(k.Native) > 0 {
		ro := false
		wallet := false
		for _, n := range k.Native {
			switch n {
			case "readOnly":
				ro = true
			case "Wallet:AccountTransfer", "Wallet:SubMemberTransfer", "Wallet:Withdraw":
				wallet = true
			}
		}
		return wallet && !ro
	}
	return k.Has(exchange.PermTransfer) || k.Has(exchange.PermWithdraw)
}

func (s *Simulator) bybitCreateSub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	o, ok := s.bybitMaster(w, r, body, true, "create-sub-api", 1)
	if !ok {
		return
	}
	now := s.Now()
	var req struct {
		SubUID      json.Number         `json:"subuid"`
		Note        string              `json:"note"`
		ReadOnly    *int                `json:"readOnly"`
		IPs         string              `json:"ips"`
		Permissions map[string][]string `json:"permissions"`
	}
	if json.Unmarshal(body, &req) != nil || req.SubUID == "" || req.ReadOnly == nil || (*req.ReadOnly != 0 && *req.ReadOnly != 1) {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: subuid and readOnly are required", nil)
		return
	}
	if _, err := req.SubUID.Int64(); err != nil {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: subuid must be an integer", nil)
		return
	}
	a, ok := s.subOf(exchange.Bybit, o.main, req.SubUID.String())
	if !ok {
		bybitAnswer(w, http.StatusOK, now, 500010, "The subaccount specified does not belong to the parent account", nil)
		return
	}
	if ref, refused := s.refusal(exchange.Bybit, a.name); refused {
		code, _ := strconv.Atoi(ref.Code)
		bybitAnswer(w, http.StatusOK, now, code, ref.Msg, nil)
		return
	}
	native, canonical := []string{}, []string{exchange.PermRead}
	for cat, vals := range req.Permissions {
		for _, v := range vals {
			allowed := false
			for _, a := range bybitSubCategories[cat] {
				allowed = allowed || a == v
			}
			if !allowed {
				bybitAnswer(w, http.StatusOK, now, 10001, "params error: permission "+cat+" "+v+" is not available to sub-account keys", nil)
				return
			}
			native = append(native, cat+":"+v)
			if *req.ReadOnly == 0 {
				canonical = append(canonical, bybitSubCanonical[cat])
			}
		}
	}
	if len(native) == 0 {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: permissions must name at least one type", nil)
		return
	}
	if *req.ReadOnly == 1 {
		native = append(native, "readOnly")
	}
	var ips []string
	for _, ip := range strings.Split(req.IPs, ",") {
		if ip = strings.TrimSpace(ip); ip != "" && ip != "*" {
			ips = append(ips, ip)
		}
	}
	key := Key{Exchange: exchange.Bybit, APIKey: randomID(9), Secret: randomID(18), Permissions: dedupe(canonical),
		Native: sortedPerms(native), AllowedIPs: ips, CreatedAt: now}
	id := s.nextKeyID()
	if len(ips) == 0 {
		key.ExpiresAt = now.Add(90 * 24 * time.Hour)
	}
	s.addCreatedKey(a, req.Note, id, key)
	bybitAnswer(w, http.StatusOK, now, 0, "", map[string]any{
		"id": id, "note": req.Note, "apiKey": key.APIKey, "readOnly": *req.ReadOnly,
		"secret": key.Secret, "permissions": bybitSubPermissions(key.Native),
	})
}

// bybitSubPermissions renders natives as the permissions object.
func bybitSubPermissions(native []string) map[string][]string {
	out := map[string][]string{"ContractTrade": {}, "Spot": {}, "Wallet": {}, "Options": {}, "Derivatives": {},
		"CopyTrading": {}, "BlockTrade": {}, "Exchange": {}, "NFT": {}, "Affiliate": {}, "Earn": {}}
	for _, n := range native {
		if cat, v, ok := strings.Cut(n, ":"); ok {
			out[cat] = append(out[cat], v)
		}
	}
	return out
}

func (s *Simulator) bybitListSub(w http.ResponseWriter, r *http.Request) {
	o, ok := s.bybitMaster(w, r, nil, false, "sub-apikeys", 10)
	if !ok {
		return
	}
	now := s.Now()
	q := r.URL.Query()
	a, ok := s.subOf(exchange.Bybit, o.main, q.Get("subMemberId"))
	if !ok {
		bybitAnswer(w, http.StatusOK, now, 500010, "The subaccount specified does not belong to the parent account", nil)
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if q.Get("limit") == "" {
		limit = 20
	} else if err != nil || limit < 1 || limit > 20 {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: limit must be 1..20", nil)
		return
	}
	start, _ := strconv.Atoi(q.Get("cursor"))
	keys := s.liveSubKeys(exchange.Bybit, a.name)
	rows := []map[string]any{}
	next := ""
	for i := start; i < len(keys); i++ {
		if len(rows) == limit {
			next = strconv.Itoa(i)
			break
		}
		rows = append(rows, bybitSubRow(keys[i], now))
	}
	bybitAnswer(w, http.StatusOK, now, 0, "", map[string]any{"result": rows, "nextPageCursor": next})
}

func bybitSubRow(k subKey, now time.Time) map[string]any {
	ips := []string{"*"}
	if len(k.AllowedIPs) > 0 {
		ips = k.AllowedIPs
	}
	status, expiredAt, deadline := 1, "", 0
	readOnly := false
	natives := []string{}
	for _, n := range k.Native {
		if n == "readOnly" {
			readOnly = true
		} else {
			natives = append(natives, n)
		}
	}
	if !k.ExpiresAt.IsZero() {
		expiredAt = k.ExpiresAt.UTC().Format(time.RFC3339)
		left := k.ExpiresAt.Sub(now)
		deadline = int(left.Hours() / 24)
		switch {
		case left <= 0:
			status, deadline = 2, 0
		case left < 7*24*time.Hour:
			status = 4
		default:
			status = 3
		}
	}
	return map[string]any{
		"id": k.id, "ips": ips, "apiKey": k.APIKey, "note": k.label, "status": status,
		"expiredAt": expiredAt, "createdAt": k.CreatedAt.UTC().Format(time.RFC3339), "type": 1,
		"permissions": bybitSubPermissions(natives), "secret": "******", "readOnly": readOnly,
		"deadlineDay": deadline, "flag": "hmac",
	}
}

func (s *Simulator) bybitDeleteSub(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	o, ok := s.bybitMaster(w, r, body, true, "delete-sub-api", 5)
	if !ok {
		return
	}
	now := s.Now()
	var req struct {
		APIKey string `json:"apikey"`
	}
	if json.Unmarshal(body, &req) != nil || req.APIKey == "" {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: apikey is required when the master account manages a sub account's key", nil)
		return
	}
	target := s.owner(exchange.Bybit, req.APIKey)
	if _, live := s.lookup(exchange.Bybit, req.APIKey); !live || target.sub == "" || target.main != o.main {
		bybitAnswer(w, http.StatusOK, now, 10001, "params error: apikey not found", nil)
		return
	}
	s.SetState(exchange.Bybit, req.APIKey, Revoked)
	bybitAnswer(w, http.StatusOK, now, 0, "", map[string]any{})
}

// bybitPatchOwner sets isMaster, parentUid, userID and note in query-api.
func (s *Simulator) bybitPatchOwner(r *http.Request, doc map[string]any) bool {
	result, ok := doc["result"].(map[string]any)
	if !ok {
		return false
	}
	o := s.owner(exchange.Bybit, r.Header.Get("X-BAPI-API-KEY"))
	if o.sub == "" {
		result["isMaster"], result["parentUid"] = true, "0"
		result["userID"], _ = strconv.Atoi(o.main)
		return true
	}
	a, _ := s.subOf(exchange.Bybit, o.main, o.sub)
	result["isMaster"], result["parentUid"], result["note"] = false, o.main, o.label
	result["userID"], _ = strconv.Atoi(a.uid)
	return true
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range in {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
