package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Sub-account key management: each exchange's master-only endpoints to
// create, list and delete a sub-account's API keys (subaccount_<exchange>.go),
// with the simulator's own checks written from the exchanges' docs. This
// file holds what they share: who owns which key, the sub-accounts of each
// main account, the management endpoints' rate limits, and the routing hook
// that simulator.go calls.
//
// Accounts: every key registered with AddKey is a main-account key (each
// its own main account) unless AddSubAccountKey registered it for a
// sub-account, or a management call created it. AddSubAccount places a
// sub-account under the main account that owns a master key.

// keyOwner is the account a key belongs to.
type keyOwner struct {
	main  string // the main account's UID
	sub   string // the sub-account's name, "" for a main-account key
	label string // note/label/apiName given at creation
	id    string // the exchange's own key id, where it has one (Bybit)
}

// subAccount is a sub-account of a main account.
type subAccount struct {
	name string // Bybit UID, OKX name, Binance email
	main string
	uid  string
}

// subRegistry is the simulator's record of accounts.
type subRegistry struct {
	mu     sync.Mutex
	owners map[string]*keyOwner   // exchange/apiKey
	subs   map[string]*subAccount // exchange/sub name
	seq    int
	hits   map[string][]time.Time // rate-limit windows: exchange/main/endpoint
	// refusals are the answers create gives for a sub-account whose
	// account cannot issue keys (RefuseSubAccountCreate).
	refusals map[string]Refusal // exchange/sub name
}

// Refusal is an exchange's answer to a create on a sub-account: its code
// (Bybit retCode, OKX code, Binance code) and message.
type Refusal struct {
	Code string
	Msg  string
}

// Documented refusals of accounts that cannot create keys.
var (
	// BybitEurope: bybit-exchange.github.io/docs/v5/error, section User.
	BybitEurope = Refusal{"81007", "Bybit Europe is not supported create API Key"}
	// BybitNeedKYC: the same section.
	BybitNeedKYC = Refusal{"20096", "need KYC authentication"}
	// OKXSubSuspended: okx.com/docs-v5/en/#error-code-rest-api-sub-account.
	OKXSubSuspended = Refusal{"59508", "The sub account of {0} is suspended"}
)

func newSubRegistry() *subRegistry {
	return &subRegistry{owners: map[string]*keyOwner{}, subs: map[string]*subAccount{}, hits: map[string][]time.Time{}, refusals: map[string]Refusal{}}
}

// RefuseSubAccountCreate makes every create on sub-account sub answer with
// ref (the zero Refusal lifts it); list and delete still work.
func (s *Simulator) RefuseSubAccountCreate(n exchange.Name, sub string, ref Refusal) {
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	if ref == (Refusal{}) {
		delete(g.refusals, regID(n, sub))
		return
	}
	g.refusals[regID(n, sub)] = ref
}

// refusal is the answer RefuseSubAccountCreate set for sub.
func (s *Simulator) refusal(n exchange.Name, sub string) (Refusal, bool) {
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	ref, ok := g.refusals[regID(n, sub)]
	return ref, ok
}

func regID(n exchange.Name, s string) string { return string(n) + "/" + s }

// owner returns who owns apiKey, making an unknown key the only key of a
// main account of its own.
func (s *Simulator) owner(n exchange.Name, apiKey string) keyOwner {
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	o, ok := g.owners[regID(n, apiKey)]
	if !ok {
		g.seq++
		o = &keyOwner{main: strconv.Itoa(100000000 + g.seq)}
		g.owners[regID(n, apiKey)] = o
	}
	return *o
}

// subOf returns sub-account name if it belongs to main.
func (s *Simulator) subOf(n exchange.Name, main, name string) (subAccount, bool) {
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.subs[regID(n, name)]
	if !ok || a.main != main {
		return subAccount{}, false
	}
	return *a, true
}

// AddSubAccount places sub-account sub (a Bybit UID, an OKX sub-account
// name, a Binance email) under the main account that owns masterKey.
func (s *Simulator) AddSubAccount(n exchange.Name, masterKey, sub string) {
	o := s.owner(n, masterKey)
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	uid := sub
	if _, err := strconv.ParseInt(sub, 10, 64); err != nil {
		uid = strconv.Itoa(200000000 + g.seq)
	}
	g.subs[regID(n, sub)] = &subAccount{name: sub, main: o.main, uid: uid}
}

// AddSubAccountKey registers k as a key of sub-account sub, labelled label:
// a sub-account's own key, which cannot manage keys. The sub-account must
// have been added with AddSubAccount.
func (s *Simulator) AddSubAccountKey(sub, label string, k Key) bool {
	g := s.sub
	g.mu.Lock()
	a, ok := g.subs[regID(k.Exchange, sub)]
	if ok {
		g.owners[regID(k.Exchange, k.APIKey)] = &keyOwner{main: a.main, sub: sub, label: label}
	}
	g.mu.Unlock()
	if ok {
		s.AddKey(k)
	}
	return ok
}

// SubAccountOf reports the sub-account a key belongs to ("" for a main
// account's key) and its label.
func (s *Simulator) SubAccountOf(n exchange.Name, apiKey string) (sub, label string) {
	o := s.owner(n, apiKey)
	return o.sub, o.label
}

// SubKeysCreated counts the keys ever placed on sub-account sub of
// exchange n (created by a management call or registered with
// AddSubAccountKey), revoked and deleted ones included: a test's count of
// the creates the exchange carried out for one sub-account.
func (s *Simulator) SubKeysCreated(n exchange.Name, sub string) int {
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	count := 0
	for id, o := range g.owners {
		if o.sub == sub && strings.HasPrefix(id, string(n)+"/") {
			count++
		}
	}
	return count
}

// liveSubKeys returns the keys of a sub-account that the exchange still
// knows, oldest first.
func (s *Simulator) liveSubKeys(n exchange.Name, sub string) []subKey {
	g := s.sub
	g.mu.Lock()
	owners := map[string]keyOwner{}
	for id, o := range g.owners {
		if o.sub == sub && len(id) > len(n)+1 && id[:len(n)+1] == string(n)+"/" {
			owners[id[len(n)+1:]] = *o
		}
	}
	g.mu.Unlock()
	var out []subKey
	for apiKey, o := range owners {
		if k, ok := s.lookup(n, apiKey); ok {
			out = append(out, subKey{Key: k, label: o.label, id: o.id})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].APIKey < out[j].APIKey
	})
	return out
}

type subKey struct {
	Key
	label string
	id    string
}

// addCreatedKey registers a key a management call made for sub; id is the
// exchange's own id of the key ("" where it has none).
func (s *Simulator) addCreatedKey(a subAccount, label, id string, k Key) {
	g := s.sub
	g.mu.Lock()
	g.owners[regID(k.Exchange, k.APIKey)] = &keyOwner{main: a.main, sub: a.name, label: label, id: id}
	g.mu.Unlock()
	s.AddKey(k)
}

// allow applies a sliding-window limit of max requests per window to one
// endpoint of one main account (the exchanges count per user ID).
func (s *Simulator) allow(n exchange.Name, main, endpoint string, max int, window time.Duration) bool {
	now := s.Now()
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	id := regID(n, main+" "+endpoint)
	var kept []time.Time
	for _, t := range g.hits[id] {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	if len(kept) >= max {
		g.hits[id] = kept
		return false
	}
	g.hits[id] = append(kept, now)
	return true
}

// randomID is n random bytes in hex (key IDs and secrets).
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// subRoutes are the management endpoints, by exchange, "METHOD path".
var subRoutes = map[exchange.Name]map[string]func(*Simulator, http.ResponseWriter, *http.Request){}

// serveSubAccount is the hook simulator.go calls before an exchange's own
// handler: it serves the management endpoints, and reports on probe answers
// who owns the key (Bybit isMaster/parentUid, OKX uid/mainUid), which the
// probe handlers do not know. false means "not mine".
func (s *Simulator) serveSubAccount(n exchange.Name, h http.Handler, w http.ResponseWriter, r *http.Request) bool {
	if f, ok := subRoutes[n][r.Method+" "+r.URL.Path]; ok {
		f(s, w, r)
		return true
	}
	patch, ok := ownerPatches[n][r.Method+" "+r.URL.Path]
	if !ok {
		return false
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	out := rec.Body.Bytes()
	var doc map[string]any
	if rec.Code == http.StatusOK && json.Unmarshal(out, &doc) == nil && patch(s, r, doc) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		if enc.Encode(doc) == nil {
			out = buf.Bytes()
		}
	}
	for k, vs := range rec.Header() {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(out)
	return true
}

// ownerPatches rewrite a successful probe answer with the key's owner; true
// when the document changed.
var ownerPatches = map[exchange.Name]map[string]func(*Simulator, *http.Request, map[string]any) bool{}

// serveSubAccountAdmin is POST /admin/subaccounts
// {"exchange":..,"masterKey":..,"subAccount":..}: AddSubAccount for the
// standalone binary (the demo). Loopback only, like the rest of /admin.
func (s *Simulator) serveSubAccountAdmin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Exchange   exchange.Name `json:"exchange"`
		MasterKey  string        `json:"masterKey"`
		SubAccount string        `json:"subAccount"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil || body.MasterKey == "" || body.SubAccount == "" || !exchange.SupportsSubAccountKeys(body.Exchange) {
		http.Error(w, "want POST {\"exchange\": bybit|okx|binance|kucoin, \"masterKey\": .., \"subAccount\": ..}", http.StatusBadRequest)
		return
	}
	s.AddSubAccount(body.Exchange, body.MasterKey, body.SubAccount)
	w.WriteHeader(http.StatusNoContent)
}

// nextKeyID is a key id as Bybit gives one ("Unique id. Internal used"): a
// decimal number, unique in the simulator.
func (s *Simulator) nextKeyID() string {
	g := s.sub
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	return strconv.Itoa(5000000 + g.seq)
}
