// Package simulator serves the permission-probe endpoints of every supported
// exchange on loopback, verifying each request's authentication the way the
// exchange does, so that the operator can be tested and demonstrated without
// real keys or network access.
//
// Each exchange is served under its own path prefix: a client's base URL is
// <server URL>/<exchange>, e.g. http://127.0.0.1:4000/binance. Handlers see
// the path with that prefix removed, which is the path the client signs.
package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// State is a key's life-cycle state on the exchange.
type State string

const (
	Active   State = "active"
	Inactive State = "inactive" // not activated yet, or frozen
	Revoked  State = "revoked"  // deleted: the exchange no longer knows it
)

// Key is a key registered on the simulated exchange.
type Key struct {
	Exchange   exchange.Name `json:"exchange"`
	APIKey     string        `json:"apiKey"`
	Secret     string        `json:"secret"`
	Passphrase string        `json:"passphrase,omitempty"`
	// Permissions are canonical names; each exchange renders its own scopes.
	Permissions []string `json:"permissions"`
	// Native, when set, is rendered verbatim as the exchange's own scope
	// names instead of mapping Permissions (to test what one native
	// permission implies, e.g. OKX "trade").
	Native []string `json:"native,omitempty"`
	// AllowedIPs, when set, is the allowlist; callers from elsewhere are refused.
	AllowedIPs []string  `json:"allowedIPs,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	// ExpiresAt zero means never.
	ExpiresAt time.Time `json:"expiresAt,omitempty"`
	State     State     `json:"state,omitempty"`
}

// Has reports whether the key has the canonical permission p.
func (k *Key) Has(p string) bool {
	for _, x := range k.Permissions {
		if x == p {
			return true
		}
	}
	return false
}

// FaultKind is a failure the simulator can be told to produce.
type FaultKind string

const (
	FaultRateLimit     FaultKind = "RateLimit"     // 429 with Retry-After
	FaultBan           FaultKind = "Ban"           // 418 with Retry-After (Binance's IP ban)
	FaultServerError   FaultKind = "ServerError"   // 500/502
	FaultMaintenance   FaultKind = "Maintenance"   // 503 with a maintenance body
	FaultHTML          FaultKind = "HTML"          // 200 with an HTML page (captive portal, WAF)
	FaultSlow          FaultKind = "Slow"          // answer after Delay
	FaultTruncatedJSON FaultKind = "TruncatedJSON" // 200 with a cut-off JSON body
	// FaultUnauthorized: 401 with the bare text "Unauthorized", Coinbase's
	// answer to every authentication failure and, now and then, to a
	// correctly signed token (coinbase/coinbase-advanced-py issue 132).
	FaultUnauthorized FaultKind = "Unauthorized"
)

// Fault is applied to requests for one exchange before authentication.
type Fault struct {
	Kind       FaultKind     `json:"kind"`
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
	Delay      time.Duration `json:"delay,omitempty"`
	// Times is how many requests it applies to; 0 means until cleared.
	Times int `json:"times,omitempty"`
}

// Simulator is an http.Handler. Use New, then serve it (httptest.NewServer,
// or http.Serve on a loopback listener).
type Simulator struct {
	mu       sync.Mutex
	now      func() time.Time
	skew     time.Duration
	keys     map[exchange.Name]map[string]*Key
	faults   map[exchange.Name]*Fault
	byKey    map[exchange.Name]map[string]int
	byPath   map[exchange.Name]map[string]int
	total    int
	nonces   map[string]uint64   // exchange/key -> last accepted nonce (the key's floor)
	used     map[string]struct{} // exchange/nonce of single-use nonces
	handlers map[exchange.Name]http.Handler
	sub      *subRegistry // sub-account relations (subaccount.go)
	// onKey, when set, hears of every request that named a key (a soak
	// test's log of when each key was probed).
	onKey func(n exchange.Name, apiKey string)
	// perKey holds faults of one key's requests (exchange/apiKey), applied
	// after the request is counted (Coinbase only, see SetKeyFault).
	perKey map[string]*Fault
}

// handlerFactories is filled by each exchange's file in an init function.
var handlerFactories = map[exchange.Name]func(*Simulator) http.Handler{}

func registerHandler(n exchange.Name, f func(*Simulator) http.Handler) { handlerFactories[n] = f }

// Option configures a Simulator.
type Option func(*Simulator)

// WithClock sets the simulator's clock (before any skew).
func WithClock(now func() time.Time) Option { return func(s *Simulator) { s.now = now } }

// WithKeyLog calls f for every request that named a key, after counting it.
func WithKeyLog(f func(n exchange.Name, apiKey string)) Option {
	return func(s *Simulator) { s.onKey = f }
}

// New returns an empty simulator.
func New(opts ...Option) *Simulator {
	s := &Simulator{
		now:      time.Now,
		keys:     map[exchange.Name]map[string]*Key{},
		faults:   map[exchange.Name]*Fault{},
		perKey:   map[string]*Fault{},
		byKey:    map[exchange.Name]map[string]int{},
		byPath:   map[exchange.Name]map[string]int{},
		nonces:   map[string]uint64{},
		used:     map[string]struct{}{},
		handlers: map[exchange.Name]http.Handler{},
		sub:      newSubRegistry(),
	}
	for _, o := range opts {
		o(s)
	}
	for n, f := range handlerFactories {
		s.handlers[n] = f(s)
	}
	return s
}

// BaseURL is the base URL a client uses for exchange n on a server at serverURL.
func BaseURL(serverURL string, n exchange.Name) string {
	return strings.TrimRight(serverURL, "/") + "/" + string(n)
}

// ServeHTTP routes /<exchange>/... to that exchange's handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/admin/subaccounts" {
		s.serveSubAccountAdmin(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/admin/") {
		s.serveAdmin(w, r)
		return
	}
	first, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	n := exchange.Name(first)
	h, ok := s.handlers[n]
	if !ok {
		http.NotFound(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + rest
	r2.URL.RawPath = ""
	s.mu.Lock()
	s.total++
	if s.byPath[n] == nil {
		s.byPath[n] = map[string]int{}
	}
	s.byPath[n][r2.URL.Path]++
	f := s.takeFault(n)
	s.mu.Unlock()
	if f != nil && s.applyFault(w, r2, f) {
		return
	}
	if s.serveSubAccount(n, h, w, r2) {
		return
	}
	h.ServeHTTP(w, r2)
}

// takeFault returns the active fault for n, consuming one use. Caller holds mu.
func (s *Simulator) takeFault(n exchange.Name) *Fault {
	f := s.faults[n]
	if f == nil {
		return nil
	}
	cp := *f
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(s.faults, n)
		}
	}
	return &cp
}

// applyFault writes the fault's answer; false means carry on (Slow).
func (s *Simulator) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	switch f.Kind {
	case FaultRateLimit, FaultBan:
		secs := int(f.RetryAfter / time.Second)
		if secs <= 0 {
			secs = 1
		}
		w.Header().Set("Retry-After", itoa(secs))
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusTooManyRequests
		if f.Kind == FaultBan {
			status = http.StatusTeapot
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"code":-1003,"msg":"Too many requests."}`))
	case FaultServerError:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("upstream connect error"))
	case FaultMaintenance:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html><body><h1>System maintenance</h1></body></html>"))
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>"))
	case FaultUnauthorized:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("Unauthorized\n"))
	case FaultTruncatedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"data":[{"perm":"read_only,tr`))
	case FaultSlow:
		// Read the body first: only then does the HTTP server notice a
		// client that gave up (timed out) and cancel the request, which is
		// then neither answered nor counted, as on a real exchange that
		// never got to it.
		if r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		}
		return false
	default:
		return false
	}
	return true
}

// Now is the simulated exchange's clock (local clock plus skew).
func (s *Simulator) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().Add(s.skew)
}

// SetClockSkew makes the exchange's clock run ahead (positive) or behind.
func (s *Simulator) SetClockSkew(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skew = d
}

// AddKey registers (or replaces) a key. State defaults to Active and
// CreatedAt to now.
func (s *Simulator) AddKey(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.State == "" {
		k.State = Active
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now().Add(s.skew)
	}
	if s.keys[k.Exchange] == nil {
		s.keys[k.Exchange] = map[string]*Key{}
	}
	cp := k
	cp.Permissions = append([]string{}, k.Permissions...)
	cp.AllowedIPs = append([]string{}, k.AllowedIPs...)
	s.keys[k.Exchange][k.APIKey] = &cp
}

// UpdateKey changes a registered key in place; false if it is unknown.
func (s *Simulator) UpdateKey(n exchange.Name, apiKey string, f func(*Key)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[n][apiKey]
	if ok {
		f(k)
	}
	return ok
}

// SetState revokes, deactivates or reactivates a key.
func (s *Simulator) SetState(n exchange.Name, apiKey string, st State) bool {
	return s.UpdateKey(n, apiKey, func(k *Key) { k.State = st })
}

// SetPermissions replaces a key's canonical permissions.
func (s *Simulator) SetPermissions(n exchange.Name, apiKey string, perms ...string) bool {
	return s.UpdateKey(n, apiKey, func(k *Key) { k.Permissions = append([]string{}, perms...) })
}

// lookup returns a copy of a key as the exchange sees it: revoked keys are
// unknown, exactly as a deleted key is on a real exchange.
func (s *Simulator) lookup(n exchange.Name, apiKey string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[n][apiKey]
	if !ok || k.State == Revoked {
		return Key{}, false
	}
	return *k, true
}

// expired reports whether k has an expiry in the simulator's past.
func (s *Simulator) expired(k Key) bool {
	return !k.ExpiresAt.IsZero() && !s.Now().Before(k.ExpiresAt)
}

// SetFault makes the next f.Times requests (all, if 0) to n fail as f says.
func (s *Simulator) SetFault(n exchange.Name, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := f
	s.faults[n] = &cp
}

// SetKeyFault makes the next f.Times requests (all, if 0) that name apiKey
// on exchange n fail as f says, after they are counted for the key: a fault
// of one key that other keys' requests cannot consume. Only the Coinbase
// handler applies key faults (FaultUnauthorized: its bare 401).
func (s *Simulator) SetKeyFault(n exchange.Name, apiKey string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := f
	s.perKey[string(n)+"/"+apiKey] = &cp
}

// takeKeyFault returns the active fault for apiKey, consuming one use.
func (s *Simulator) takeKeyFault(n exchange.Name, apiKey string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := string(n) + "/" + apiKey
	f := s.perKey[id]
	if f == nil {
		return nil
	}
	cp := *f
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.perKey, id)
		}
	}
	return &cp
}

// ClearFaults removes every fault.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[exchange.Name]*Fault{}
	s.perKey = map[string]*Fault{}
}

// countKey records a request that named apiKey. Handlers call it once per
// request, as soon as they have read the key header.
func (s *Simulator) countKey(n exchange.Name, apiKey string) {
	s.mu.Lock()
	if s.byKey[n] == nil {
		s.byKey[n] = map[string]int{}
	}
	s.byKey[n][apiKey]++
	s.mu.Unlock()
	if s.onKey != nil {
		s.onKey(n, apiKey)
	}
}

// Requests is how many requests named apiKey on exchange n.
func (s *Simulator) Requests(n exchange.Name, apiKey string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byKey[n][apiKey]
}

// EndpointRequests is how many requests reached path (without the exchange
// prefix) on exchange n, faults included.
func (s *Simulator) EndpointRequests(n exchange.Name, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byPath[n][path]
}

// TotalRequests counts every exchange request served.
func (s *Simulator) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// ResetCounters zeroes all request counters.
func (s *Simulator) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total = 0
	s.byKey = map[exchange.Name]map[string]int{}
	s.byPath = map[exchange.Name]map[string]int{}
}

// acceptNonce enforces strictly increasing nonces per key (Kraken, Bitfinex),
// as both exchanges do: each key has its own floor, the last nonce accepted
// for it, and a nonce at or under it is refused without moving it. Keys
// never share a floor.
func (s *Simulator) acceptNonce(n exchange.Name, apiKey string, nonce uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := string(n) + "/" + apiKey
	if nonce <= s.nonces[id] {
		return false
	}
	s.nonces[id] = nonce
	return true
}

// AdvanceNonce records nonce as the last one seen for a key, as if another
// client had used the key with larger nonces: the next request with a
// smaller nonce is refused (Bitfinex "nonce: small", Kraken "Invalid nonce").
func (s *Simulator) AdvanceNonce(n exchange.Name, apiKey string, nonce uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonces[string(n)+"/"+apiKey] = nonce
}

// LastNonce is the last nonce accepted for a key (its floor), 0 if none.
func (s *Simulator) LastNonce(n exchange.Name, apiKey string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nonces[string(n)+"/"+apiKey]
}

// acceptOnce enforces single-use nonces (Bitstamp's UUIDs).
func (s *Simulator) acceptOnce(n exchange.Name, nonce string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := string(n) + "/" + nonce
	if _, seen := s.used[id]; seen {
		return false
	}
	s.used[id] = struct{}{}
	return true
}

// callerAllowed applies the key's IP allowlist to the request's peer address.
func callerAllowed(k Key, r *http.Request) bool {
	if len(k.AllowedIPs) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	for _, ip := range k.AllowedIPs {
		if ip == host {
			return true
		}
	}
	return false
}

// sortedPerms is a helper for handlers rendering permission lists.
func sortedPerms(in []string) []string {
	out := append([]string{}, in...)
	sort.Strings(out)
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
