package simulator

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Binance sub-account keys (developers.binance.com, Sub Account > API
// Management, "For Master Account"; shapes as in binance-connector-go
// clients/subaccount):
//   - POST /sapi/v1/sub-account/subAccountApi (TRADE): email, apiName,
//     status (1 unrestricted, 2 trusted IPs with ipAddress), canTrade,
//     canMarginLoanRepay, canFuturesTrade, canUniversalTransfer,
//     canVanillaOptions, publicKey (Ed25519, PEM). The key then signs with
//     Ed25519 and Binance holds only the public key.
//   - GET the same path (USER_DATA): email, page, size; {"total", "list"}.
//   - DELETE the same path (TRADE): email, subAccountApiKey.
//   - GET /sapi/v1/sub-account/list: the master's sub-accounts.
//
// Each is "For Master Account": a sub-account's key gets -1002 "You are not
// authorized to execute this request." (errors.md; Binance documents no
// sharper code). TRADE endpoints need the key's Spot & Margin trading
// permission, else -2015. Weight(UID) 3000 against 180000 per minute: 60
// calls a minute per endpoint, then HTTP 429 with -1003. A parameter the
// docs refuse is -1102 (missing) or -1130 (invalid), also used for an email
// that is not a sub-account of this master, where the docs give no code.
const binanceSubPerMinute = 60

func init() {
	subRoutes[exchange.Binance] = map[string]func(*Simulator, http.ResponseWriter, *http.Request){
		"POST /sapi/v1/sub-account/subAccountApi":   (*Simulator).binanceCreateSub,
		"GET /sapi/v1/sub-account/subAccountApi":    (*Simulator).binanceListSub,
		"DELETE /sapi/v1/sub-account/subAccountApi": (*Simulator).binanceDeleteSub,
		"GET /sapi/v1/sub-account/list":             (*Simulator).binanceListSubAccounts,
	}
}

// binanceSubFlags maps the create form's flags to what apiRestrictions
// then reports and the canonical permission it grants.
var binanceSubFlags = []struct{ form, restriction, canonical string }{
	{"canTrade", "enableSpotAndMarginTrading", exchange.PermTrade},
	{"canMarginLoanRepay", "enableMargin", exchange.PermMargin},
	{"canFuturesTrade", "enableFutures", exchange.PermFutures},
	{"canUniversalTransfer", "permitsUniversalTransfer", exchange.PermTransfer},
	{"canVanillaOptions", "enableVanillaOptions", exchange.PermOptions},
}

// binanceMaster authenticates a master-only call (signature over query
// string + body up to the signature parameter) and applies its limits.
func (s *Simulator) binanceMaster(w http.ResponseWriter, r *http.Request, trade bool) (url.Values, keyOwner, bool) {
	apiKey := r.Header.Get("X-MBX-APIKEY")
	if apiKey == "" || !binanceKeyFormatOK(apiKey) {
		writeJSON(w, http.StatusUnauthorized, binanceErr{-2014, "API-key format invalid."})
		return nil, keyOwner{}, false
	}
	s.countKey(exchange.Binance, apiKey)
	rejected := binanceErr{-2015, "Invalid API-key, IP, or permissions for action, request ip: " + binancePeerIP(r)}
	k, ok := s.lookup(exchange.Binance, apiKey)
	if !ok || !callerAllowed(k, r) {
		writeJSON(w, http.StatusUnauthorized, rejected)
		return nil, keyOwner{}, false
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	query, form := r.URL.RawQuery, string(body)
	var sig string
	for _, part := range []*string{&query, &form} {
		if i := strings.LastIndex(*part, "signature="); i >= 0 && (i == 0 || (*part)[i-1] == '&') && !strings.Contains((*part)[i:], "&") {
			sig = (*part)[i+len("signature="):]
			*part = strings.TrimSuffix((*part)[:i], "&")
		}
	}
	params, err := url.ParseQuery(strings.Trim(query+"&"+form, "&"))
	if sig == "" || err != nil {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."})
		return nil, keyOwner{}, false
	}
	ts, err := strconv.ParseInt(params.Get("timestamp"), 10, 64)
	recv, rerr := strconv.ParseInt(params.Get("recvWindow"), 10, 64)
	if params.Get("recvWindow") == "" {
		recv, rerr = 5000, nil
	}
	if err != nil || rerr != nil || recv <= 0 || recv > 60000 {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."})
		return nil, keyOwner{}, false
	}
	if server := s.Now().UnixMilli(); ts >= server+1000 || server-ts > recv {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1021, "Timestamp for this request is outside of the recvWindow."})
		return nil, keyOwner{}, false
	}
	if !binanceSubSignatureOK(k.Secret, query+form, sig) {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1022, "Signature for this request is not valid."})
		return nil, keyOwner{}, false
	}
	o := s.owner(exchange.Binance, apiKey)
	switch {
	case k.State == Inactive || s.expired(k) || o.sub != "":
		writeJSON(w, http.StatusUnauthorized, binanceErr{-1002, "You are not authorized to execute this request."})
	case trade && !binanceCanTrade(k):
		writeJSON(w, http.StatusUnauthorized, rejected)
	case !s.allow(exchange.Binance, o.main, r.Method+" "+r.URL.Path, binanceSubPerMinute, time.Minute):
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusTooManyRequests, binanceErr{-1003, "Too much request weight used; current limit is 180000 request weight per 1 MINUTE."})
	default:
		return params, o, true
	}
	return nil, keyOwner{}, false
}

// binanceCanTrade: the key's Spot & Margin trading permission.
func binanceCanTrade(k Key) bool {
	for _, n := range k.Native {
		if n == "enableSpotAndMarginTrading" {
			return true
		}
	}
	return len(k.Native) == 0 && k.Has(exchange.PermTrade)
}

// binanceSubSignatureOK verifies hex HMAC-SHA256 for an HMAC secret, and
// the percent-encoded base64 Ed25519 signature for a key registered as a
// PEM (public key, or private key whose public half is used).
func binanceSubSignatureOK(secret, payload, sig string) bool {
	if !strings.Contains(secret, "-----BEGIN") {
		got, err := hex.DecodeString(sig)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(payload))
		return err == nil && hmac.Equal(got, m.Sum(nil))
	}
	block, _ := pem.Decode([]byte(secret))
	if block == nil {
		return false
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, _ = x509.ParsePKIXPublicKey(block.Bytes)
	case "PRIVATE KEY":
		if priv, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			if signer, ok := priv.(crypto.Signer); ok {
				pub = signer.Public()
			}
		}
	}
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return false
	}
	unescaped, err := url.QueryUnescape(sig)
	if err != nil {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(unescaped)
	return err == nil && ed25519.Verify(ed, []byte(payload), raw)
}

func (s *Simulator) binanceCreateSub(w http.ResponseWriter, r *http.Request) {
	p, o, ok := s.binanceMaster(w, r, true)
	if !ok {
		return
	}
	for _, name := range []string{"email", "apiName", "status"} {
		if p.Get(name) == "" {
			writeJSON(w, http.StatusBadRequest, binanceErr{-1102, "Mandatory parameter '" + name + "' was not sent, was empty/null, or malformed."})
			return
		}
	}
	a, found := s.subOf(exchange.Binance, o.main, p.Get("email"))
	if !found {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'email' is not valid."})
		return
	}
	if ref, refused := s.refusal(exchange.Binance, a.name); refused {
		code, _ := strconv.Atoi(ref.Code)
		writeJSON(w, http.StatusBadRequest, binanceErr{code, ref.Msg})
		return
	}
	var ips []string
	switch p.Get("status") {
	case "1":
	case "2":
		ipText := p.Get("ipAddress")
		for _, ip := range strings.Split(ipText, ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				ips = append(ips, ip)
			}
		}
		if len(ips) == 0 || len(ipText) > 500 {
			writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'ipAddress' is not valid."})
			return
		}
	default:
		writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'status' is not valid."})
		return
	}
	secret := randomID(32)
	if pk := p.Get("publicKey"); pk != "" {
		block, _ := pem.Decode([]byte(pk))
		var pub any
		if block != nil && block.Type == "PUBLIC KEY" {
			pub, _ = x509.ParsePKIXPublicKey(block.Bytes)
		}
		if _, isEd := pub.(ed25519.PublicKey); !isEd {
			writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'publicKey' is not valid."})
			return
		}
		// The probe handler verifies signatures against this PEM.
		secret = pk
	}
	native := []string{"enableReading"}
	canonical := []string{exchange.PermRead}
	answer := map[string]any{"apiName": p.Get("apiName"), "status": p.Get("status"), "ipList": ips}
	for _, f := range binanceSubFlags {
		on := p.Get(f.form) == "true"
		answer[f.form] = on
		if on {
			native = append(native, f.restriction)
			canonical = append(canonical, f.canonical)
		}
	}
	key := Key{Exchange: exchange.Binance, APIKey: randomID(32), Secret: secret, Permissions: dedupe(canonical),
		Native: sortedPerms(native), AllowedIPs: ips, CreatedAt: s.Now()}
	s.addCreatedKey(a, p.Get("apiName"), "", key)
	answer["apiKey"] = key.APIKey
	if !strings.Contains(secret, "-----BEGIN") {
		answer["secretKey"] = secret
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Simulator) binanceListSub(w http.ResponseWriter, r *http.Request) {
	p, o, ok := s.binanceMaster(w, r, false)
	if !ok {
		return
	}
	a, found := s.subOf(exchange.Binance, o.main, p.Get("email"))
	if !found {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'email' is not valid."})
		return
	}
	page, size := 1, 30
	if v, err := strconv.Atoi(p.Get("page")); err == nil && v >= 1 {
		page = v
	}
	if v, err := strconv.Atoi(p.Get("size")); err == nil && v >= 1 && v <= 100 {
		size = v
	}
	keys := s.liveSubKeys(exchange.Binance, a.name)
	rows := []map[string]any{}
	for i := (page - 1) * size; i < len(keys) && len(rows) < size; i++ {
		k := keys[i]
		if want := p.Get("subAccountApiKey"); want != "" && want != k.APIKey {
			continue
		}
		row := map[string]any{"email": a.name, "apiName": k.label, "apikey": k.APIKey, "timestamp": k.CreatedAt.UnixMilli()}
		has := map[string]bool{}
		for _, n := range k.Native {
			has[n] = true
		}
		for _, f := range binanceSubFlags {
			row[f.form] = has[f.restriction]
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": len(keys), "list": rows})
}

func (s *Simulator) binanceDeleteSub(w http.ResponseWriter, r *http.Request) {
	p, o, ok := s.binanceMaster(w, r, true)
	if !ok {
		return
	}
	a, found := s.subOf(exchange.Binance, o.main, p.Get("email"))
	if !found {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'email' is not valid."})
		return
	}
	apiKey := p.Get("subAccountApiKey")
	target := s.owner(exchange.Binance, apiKey)
	if _, live := s.lookup(exchange.Binance, apiKey); !live || target.sub != a.name {
		writeJSON(w, http.StatusBadRequest, binanceErr{-1130, "Data sent for parameter 'subAccountApiKey' is not valid."})
		return
	}
	s.SetState(exchange.Binance, apiKey, Revoked)
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Simulator) binanceListSubAccounts(w http.ResponseWriter, r *http.Request) {
	p, o, ok := s.binanceMaster(w, r, false)
	if !ok {
		return
	}
	rows := []map[string]any{}
	g := s.sub
	g.mu.Lock()
	for id, a := range g.subs {
		if strings.HasPrefix(id, regID(exchange.Binance, "")) && a.main == o.main && (p.Get("email") == "" || p.Get("email") == a.name) {
			rows = append(rows, map[string]any{"email": a.name, "isFreeze": false, "createTime": 0,
				"isManagedSubAccount": false, "isAssetManagementSubAccount": false})
		}
	}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"subAccounts": rows})
}
