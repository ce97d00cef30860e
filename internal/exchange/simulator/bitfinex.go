package simulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Bitfinex v2: POST /v2/auth/r/permissions.
//
// Authentication is verified as Bitfinex documents it: bfx-signature must be
// hex HMAC-SHA384(secret, "/api" + path + bfx-nonce + body), and the nonce
// must be greater than the last one accepted for that key (10114
// "nonce: small" otherwise; the floor is per key and a refused nonce does not
// move it) and stay at or under 2^53-1. Every error is HTTP 500 with
// ["error", code, "message"], as Bitfinex answers them.
//
// Unverified choices (Bitfinex documents no error for these cases):
//   - a caller outside the key's IP allowlist gets 10100 "apikey: ip not allowed";
//   - an inactive or expired key gets 10100 "apikey: inactive";
//   - a nonce that is not a number or exceeds 2^53-1 gets 10114 "nonce: invalid".
func init() {
	registerHandler(exchange.Bitfinex, func(s *Simulator) http.Handler {
		return &bitfinexHandler{s: s, tokens: map[string]bitfinexToken{}}
	})
}

type bitfinexHandler struct {
	s *Simulator

	mu     sync.Mutex
	tokens map[string]bitfinexToken
}

const (
	bitfinexPermissionsPath = "/v2/auth/r/permissions"
	bitfinexTokenPath       = "/v2/auth/w/token"
)

const bitfinexMaxNonce = 1<<53 - 1

// bitfinexScopes is the order in which Bitfinex lists its scopes.
var bitfinexScopes = []string{"account", "history", "orders", "positions", "funding", "settings", "wallets", "withdraw", "ui_withdraw", "bfxpay"}

// bitfinexGrants renders canonical permissions onto Bitfinex's scope flags.
// read opens every data scope for reading; the rest are write flags.
// Derivative (futures) orders are placed with the orders scope, like spot
// and margin ones; options have no Bitfinex scope and cannot be granted.
// Native names ("orders:write"), when given, set exactly those flags.
func bitfinexGrants(perms, native []string) (read, write map[string]bool) {
	read, write = map[string]bool{}, map[string]bool{}
	if len(native) > 0 {
		for _, n := range native {
			scope, flag, _ := strings.Cut(n, ":")
			switch flag {
			case "read":
				read[scope] = true
			case "write":
				write[scope] = true
			}
		}
		return read, write
	}
	for _, p := range perms {
		switch p {
		case exchange.PermRead:
			for _, s := range []string{"account", "history", "orders", "positions", "funding", "settings", "wallets"} {
				read[s] = true
			}
		case exchange.PermTrade, exchange.PermFutures:
			write["orders"] = true
		case exchange.PermWithdraw:
			write["withdraw"] = true
		case exchange.PermTransfer:
			write["wallets"] = true
		case exchange.PermMargin:
			write["positions"] = true
		case exchange.PermEarn:
			write["funding"] = true
		}
	}
	return read, write
}

func bitfinexFail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, http.StatusInternalServerError, []any{"error", code, msg})
}

func (h *bitfinexHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != bitfinexPermissionsPath && r.URL.Path != bitfinexTokenPath {
		writeJSON(w, http.StatusNotFound, []any{"error", 10020, "route: invalid"})
		return
	}
	if r.Method != http.MethodPost {
		bitfinexFail(w, 10020, "method: invalid")
		return
	}
	if r.Header.Get("bfx-apikey") == "" && r.Header.Get("bfx-token") != "" && r.URL.Path == bitfinexPermissionsPath {
		h.serveTokenAuth(w, r)
		return
	}
	apiKey := r.Header.Get("bfx-apikey")
	h.s.countKey(exchange.Bitfinex, apiKey)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		bitfinexFail(w, 10020, "request: invalid")
		return
	}
	k, ok := h.s.lookup(exchange.Bitfinex, apiKey)
	if apiKey == "" || !ok {
		bitfinexFail(w, 10100, "apikey: invalid")
		return
	}
	nonceStr := r.Header.Get("bfx-nonce")
	want := hmac.New(sha512.New384, []byte(k.Secret))
	want.Write([]byte("/api" + r.URL.Path + nonceStr + string(body)))
	got, err := hex.DecodeString(strings.ToLower(r.Header.Get("bfx-signature")))
	if err != nil || !hmac.Equal(got, want.Sum(nil)) {
		bitfinexFail(w, 10100, "apikey: digest invalid")
		return
	}
	nonce, err := strconv.ParseUint(nonceStr, 10, 64)
	if err != nil || nonce > bitfinexMaxNonce {
		bitfinexFail(w, 10114, "nonce: invalid")
		return
	}
	if !h.s.acceptNonce(exchange.Bitfinex, apiKey, nonce) {
		bitfinexFail(w, 10114, "nonce: small")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		bitfinexFail(w, 10020, "content-type: invalid")
		return
	}
	if !callerAllowed(k, r) {
		bitfinexFail(w, 10100, "apikey: ip not allowed")
		return
	}
	if k.State == Inactive || h.s.expired(k) {
		bitfinexFail(w, 10100, "apikey: inactive")
		return
	}
	if r.URL.Path == bitfinexTokenPath {
		h.mint(w, k, body)
		return
	}
	h.writePermissions(w, k, nil, false)
}

// writePermissions answers r/permissions for key k, or for a token of k
// with caps (non-nil) and write.
func (h *bitfinexHandler) writePermissions(w http.ResponseWriter, k Key, caps map[string]bool, tokenWrite bool) {
	read, write := bitfinexGrants(k.Permissions, k.Native)
	if caps != nil {
		// A token sees its key's flags through its caps only.
		for scope := range read {
			read[scope] = read[scope] && caps[scope]
		}
		for scope := range write {
			write[scope] = write[scope] && caps[scope] && tokenWrite
		}
	}
	rows := make([][]any, 0, len(bitfinexScopes))
	listed := map[string]bool{}
	for _, s := range bitfinexScopes {
		listed[s] = true
		rows = append(rows, []any{s, bitfinexBit(read[s]), bitfinexBit(write[s])})
	}
	// Scopes beyond the documented ten (eaas_withdraw, ...) come after.
	var extra []string
	for s := range read {
		if !listed[s] {
			listed[s] = true
			extra = append(extra, s)
		}
	}
	for s := range write {
		if !listed[s] {
			listed[s] = true
			extra = append(extra, s)
		}
	}
	for _, s := range sortedPerms(extra) {
		rows = append(rows, []any{s, bitfinexBit(read[s]), bitfinexBit(write[s])})
	}
	writeJSON(w, http.StatusOK, rows)
}

func bitfinexBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bitfinexToken is a token minted by POST /v2/auth/w/token.
type bitfinexToken struct {
	apiKey  string
	caps    map[string]bool // scopes (account, orders, ...)
	write   bool
	expires time.Time
}

// bitfinexDefaultTTL is the ttl Bitfinex documents as the default (120 s).
const bitfinexDefaultTTL = 120

// mint serves POST /v2/auth/w/token for key k (already authenticated):
// {"scope":"api","ttl":<s>,"caps":[...],"writePermission":<bool>} gives
// [TOKEN]. scope must be "api"; ttl a positive int32 (120 when absent);
// caps from docs.bitfinex.com/reference/generate-token, wd only with
// writePermission. Unverified: the error codes and messages for a bad
// scope, ttl or caps (the simulator answers 10020 "<field>: invalid").
func (h *bitfinexHandler) mint(w http.ResponseWriter, k Key, body []byte) {
	var req struct {
		Scope           string   `json:"scope"`
		TTL             *float64 `json:"ttl"`
		Caps            []string `json:"caps"`
		WritePermission bool     `json:"writePermission"`
	}
	if json.Unmarshal(body, &req) != nil {
		bitfinexFail(w, 10020, "request: invalid")
		return
	}
	if req.Scope != "api" {
		bitfinexFail(w, 10020, "scope: invalid")
		return
	}
	ttl := float64(bitfinexDefaultTTL)
	if req.TTL != nil {
		ttl = *req.TTL
	}
	if ttl <= 0 || ttl > 1<<31-1 || ttl != float64(int64(ttl)) {
		bitfinexFail(w, 10020, "ttl: invalid")
		return
	}
	caps := map[string]bool{}
	for _, c := range req.Caps {
		scope, ok := exchange.TokenCaps[c]
		if !ok || (c == "wd" && !req.WritePermission) {
			bitfinexFail(w, 10020, "caps: invalid")
			return
		}
		caps[scope] = true
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	token := "simtok-" + hex.EncodeToString(raw)
	h.mu.Lock()
	now := h.s.Now()
	for t, v := range h.tokens {
		if !now.Before(v.expires) {
			delete(h.tokens, t)
		}
	}
	h.tokens[token] = bitfinexToken{apiKey: k.APIKey, caps: caps, write: req.WritePermission, expires: now.Add(time.Duration(ttl) * time.Second)}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, []any{token})
}

// serveTokenAuth answers r/permissions for a request carrying bfx-token
// instead of a key and signature. Unverified: Bitfinex's answers to an
// unknown or expired token (the simulator says 10100 "token: invalid" and
// "token: expired"); the nonce of a token request is not checked.
func (h *bitfinexHandler) serveTokenAuth(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	t, ok := h.tokens[r.Header.Get("bfx-token")]
	h.mu.Unlock()
	switch {
	case !ok:
		bitfinexFail(w, 10100, "token: invalid")
		return
	case !h.s.Now().Before(t.expires):
		bitfinexFail(w, 10100, "token: expired")
		return
	}
	h.s.countKey(exchange.Bitfinex, t.apiKey)
	k, ok := h.s.lookup(exchange.Bitfinex, t.apiKey)
	if !ok {
		bitfinexFail(w, 10100, "apikey: invalid")
		return
	}
	if k.State == Inactive || h.s.expired(k) {
		bitfinexFail(w, 10100, "apikey: inactive")
		return
	}
	h.writePermissions(w, k, t.caps, t.write)
}

// Tokens is the number of unexpired Bitfinex tokens the simulator minted
// (tests).
func (s *Simulator) Tokens() int {
	h, ok := s.handlers[exchange.Bitfinex].(*bitfinexHandler)
	if !ok {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range h.tokens {
		if s.Now().Before(t.expires) {
			n++
		}
	}
	return n
}
