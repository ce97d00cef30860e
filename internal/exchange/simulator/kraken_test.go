package simulator

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
)

var krakenTestSecret = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("kraken-secret-64", 4)))

// krakenTestSign follows Kraken's documented recipe, independently of both
// the client and the handler.
func krakenTestSign(secretB64, path, nonce, body string) string {
	secret, _ := base64.StdEncoding.DecodeString(secretB64)
	h := sha256.Sum256([]byte(nonce + body))
	mac := hmac.New(sha512.New, secret)
	mac.Write(append([]byte(path), h[:]...))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

type krakenAnswer struct {
	Error  []string `json:"error"`
	Result struct {
		APIKey      string   `json:"apiKey"`
		Permissions []string `json:"permissions"`
		IPAllowlist []string `json:"ipAllowlist"`
		ValidUntil  string   `json:"validUntil"`
		CreatedTime string   `json:"createdTime"`
		Nonce       string   `json:"nonce"`
	} `json:"result"`
}

// krakenDo sends one hand-built GetApiKeyInfo request. signPath and
// signSecret let a test sign something other than what is sent.
func krakenDo(t *testing.T, s *Simulator, apiKey, signSecret, signPath string, nonce uint64, remote string) (int, krakenAnswer) {
	t.Helper()
	n := strconv.FormatUint(nonce, 10)
	body := "nonce=" + n
	req := httptest.NewRequest(http.MethodPost, "/kraken/0/private/GetApiKeyInfo", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("API-Key", apiKey)
	req.Header.Set("API-Sign", krakenTestSign(signSecret, signPath, n, body))
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var a krakenAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	return rec.Code, a
}

func krakenExpectError(t *testing.T, status int, a krakenAnswer, want string) {
	t.Helper()
	// Kraken reports API errors with HTTP 200 and the error array.
	if status != http.StatusOK || !reflect.DeepEqual(a.Error, []string{want}) {
		t.Fatalf("want 200 %q, got %d %v", want, status, a.Error)
	}
}

const krakenPath = "/0/private/GetApiKeyInfo"

func newKrakenSim(t *testing.T, perms []string, ips []string) (*Simulator, time.Time) {
	t.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New(WithClock(func() time.Time { return now }))
	s.AddKey(Key{Exchange: exchange.Kraken, APIKey: "kr-key", Secret: krakenTestSecret, Permissions: perms, AllowedIPs: ips, CreatedAt: now.Add(-48 * time.Hour)})
	return s, now
}

func TestKrakenSimulatorAnswers(t *testing.T) {
	s, now := newKrakenSim(t, []string{"read", "trade", "withdraw"}, nil)
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	if status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("got %d %v", status, a.Error)
	}
	want := []string{"close-trades", "modify-trades", "query-closed-trades", "query-funds", "query-ledger", "query-open-trades", "withdraw-funds"}
	if !reflect.DeepEqual(a.Result.Permissions, want) {
		t.Errorf("permissions %v, want %v", a.Result.Permissions, want)
	}
	if a.Result.ValidUntil != "0" || a.Result.CreatedTime != strconv.FormatInt(now.Add(-48*time.Hour).Unix(), 10) || a.Result.Nonce != "1000" {
		t.Errorf("validUntil %q createdTime %q nonce %q", a.Result.ValidUntil, a.Result.CreatedTime, a.Result.Nonce)
	}
	if a.Result.IPAllowlist == nil || len(a.Result.IPAllowlist) != 0 {
		t.Errorf("ipAllowlist should be an empty list, got %#v", a.Result.IPAllowlist)
	}
	if s.Requests(exchange.Kraken, "kr-key") != 1 {
		t.Errorf("request not counted")
	}

	// An expiry is reported as Unix seconds.
	exp := now.Add(24 * time.Hour)
	s.UpdateKey(exchange.Kraken, "kr-key", func(k *Key) { k.ExpiresAt = exp })
	_, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1001, "")
	if a.Result.ValidUntil != strconv.FormatInt(exp.Unix(), 10) {
		t.Errorf("validUntil %q", a.Result.ValidUntil)
	}
}

func TestKrakenSimulatorRejectsWrongSecret(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	other := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("another-secret!!", 4)))
	status, a := krakenDo(t, s, "kr-key", other, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid signature")
	// A failed signature does not burn the nonce.
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	if status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("correct request after a bad one: %d %v", status, a.Error)
	}
}

func TestKrakenSimulatorRejectsSignatureOverPrefixedPath(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, "/kraken"+krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid signature")
}

func TestKrakenSimulatorRejectsTamperedBody(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	req := httptest.NewRequest(http.MethodPost, "/kraken"+krakenPath, strings.NewReader("nonce=2000"))
	req.Header.Set("API-Key", "kr-key")
	req.Header.Set("API-Sign", krakenTestSign(krakenTestSecret, krakenPath, "1999", "nonce=1999"))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), "EAPI:Invalid signature") {
		t.Fatalf("got %s", rec.Body.String())
	}
}

func TestKrakenSimulatorRejectsReusedNonce(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	if status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 5000, ""); status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("first request: %d %v", status, a.Error)
	}
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 5000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid nonce")
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 4999, "")
	krakenExpectError(t, status, a, "EAPI:Invalid nonce")
}

func TestKrakenSimulatorIPAllowlist(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, []string{"203.0.113.7"})
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "192.0.2.10:4000")
	krakenExpectError(t, status, a, "EGeneral:Permission denied")
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1001, "203.0.113.7:4000")
	if status != http.StatusOK || len(a.Error) != 0 || !reflect.DeepEqual(a.Result.IPAllowlist, []string{"203.0.113.7"}) {
		t.Fatalf("allowed caller: %d %v %v", status, a.Error, a.Result.IPAllowlist)
	}
}

func TestKrakenSimulatorKeyStates(t *testing.T) {
	s, now := newKrakenSim(t, []string{"read"}, nil)
	status, a := krakenDo(t, s, "nobody", krakenTestSecret, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid key")
	status, a = krakenDo(t, s, "", krakenTestSecret, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid key")

	s.SetState(exchange.Kraken, "kr-key", Inactive)
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	krakenExpectError(t, status, a, "EAPI:Key disabled")

	s.SetState(exchange.Kraken, "kr-key", Active)
	s.UpdateKey(exchange.Kraken, "kr-key", func(k *Key) { k.ExpiresAt = now.Add(-time.Second) })
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1001, "")
	krakenExpectError(t, status, a, "EAPI:Key expired")

	s.SetState(exchange.Kraken, "kr-key", Revoked)
	status, a = krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1002, "")
	krakenExpectError(t, status, a, "EAPI:Invalid key")
}

func TestKrakenSimulatorServerTime(t *testing.T) {
	s, now := newKrakenSim(t, nil, nil)
	s.SetClockSkew(-10 * time.Minute)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/kraken/0/public/Time", nil))
	var a struct {
		Result struct {
			Unixtime int64 `json:"unixtime"`
		} `json:"result"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Result.Unixtime != now.Add(-10*time.Minute).Unix() {
		t.Fatalf("time: %s", rec.Body.String())
	}
}

// Counter nonces, shared by both Kraken and Bitfinex tests: a probe shares
// the key's nonce floor with the bots that use the key.

// testClock is one clock for the simulator, the prober and the bot.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// nonceCase is one exchange's side of the shared nonce tests.
type nonceCase struct {
	ex     exchange.Name
	secret string
	// send makes one request for apiKey with nonce the way a bot does,
	// signed by the test's own code; false means the exchange refused the
	// nonce (any other failure fails the test).
	send func(t *testing.T, s *Simulator, apiKey string, nonce uint64) bool
	// aboveMicros is a floor no microsecond nonce can pass: a client of
	// the key that uses a larger scale.
	aboveMicros func(now time.Time) uint64
}

type nonceRig struct {
	nc    nonceCase
	now   func() time.Time
	clock *testClock // nil: the real clock
	sim   *Simulator
	srv   *httptest.Server
	// sent counts the requests of every prober of the rig (the bot's
	// requests to the same key are not among them).
	sent atomic.Int64
}

// newNonceRig runs the simulator and the prober on a fake clock that moves
// only when the test says so. Nothing in such a test may be refused: the
// prober's waits for its clock take real time.
func newNonceRig(t *testing.T, nc nonceCase) *nonceRig {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	r := newRealNonceRig(t, nc)
	r.clock, r.now = clock, clock.Now
	r.sim = New(WithClock(clock.Now))
	r.srv.Config.Handler = r.sim
	return r
}

// newRealNonceRig runs everything on the real clock, as bots and the
// operator do: the prober's retries wait for it.
func newRealNonceRig(t *testing.T, nc nonceCase) *nonceRig {
	t.Helper()
	sim := New()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &nonceRig{nc: nc, now: time.Now, sim: sim, srv: srv}
}

func (r *nonceRig) addKey(apiKey string) {
	r.sim.AddKey(Key{Exchange: r.nc.ex, APIKey: apiKey, Secret: r.nc.secret, Permissions: []string{exchange.PermRead}})
}

func (r *nonceRig) prober() *exchange.Prober {
	return exchange.NewProber(exchange.Options{Now: r.now, Observe: func(exchange.Observation) { r.sent.Add(1) },
		RateLimits: map[exchange.Name]exchange.RateLimit{r.nc.ex: {PerSecond: 1e6, Burst: 1e6}}})
}

// probe probes apiKey with the declared unit and returns the result and how
// many requests the rig's probers made meanwhile.
func (r *nonceRig) probe(p *exchange.Prober, apiKey string, unit exchange.NonceUnit) (*exchange.Permissions, int, error) {
	before := r.sent.Load()
	perms, err := p.Probe(context.Background(), exchange.Request{Exchange: r.nc.ex, Endpoint: BaseURL(r.srv.URL, r.nc.ex),
		Credentials: exchange.Credentials{APIKey: apiKey, APISecret: r.nc.secret}, NonceUnit: unit})
	return perms, int(r.sent.Load() - before), err
}

// startBot starts a bot that trades on apiKey every interval with nonces
// from its own clock, the way a ccxt bot does (exchangetest.Bot).
func (r *nonceRig) startBot(t *testing.T, apiKey string, interval time.Duration, nonce func(time.Time) uint64) *exchangetest.Bot {
	t.Helper()
	return exchangetest.StartBot(t, interval, func() (bool, string) {
		n := nonce(time.Now())
		return r.nc.send(t, r.sim, apiKey, n), strconv.FormatUint(n, 10)
	})
}

// A millisecond bot (ccxt: nonce = Date.now()) keeps working however many
// probes run between its requests; one microsecond probe would have lifted
// the key's floor above every nonce it will ever send.
func testMillisecondBotSurvivesProbes(t *testing.T, nc nonceCase) {
	r := newNonceRig(t, nc)
	r.addKey("shared")
	p := r.prober()
	for round := 0; round < 4; round++ {
		if !nc.send(t, r.sim, "shared", uint64(r.clock.Add(time.Millisecond).UnixMilli())) {
			t.Fatalf("round %d: the bot's millisecond nonce was refused (floor %d)", round, r.sim.LastNonce(nc.ex, "shared"))
		}
		for i := 0; i < 50; i++ {
			r.clock.Add(time.Millisecond)
			perms, n, err := r.probe(p, "shared", "")
			if err != nil || n != 1 || perms.NonceUnit != exchange.NonceMilliseconds {
				t.Fatalf("round %d probe %d: %v, %d requests, unit %v", round, i, err, n, perms)
			}
			if floor, clock := r.sim.LastNonce(nc.ex, "shared"), uint64(r.clock.Now().UnixMilli()); floor > clock {
				t.Fatalf("the probe lifted the floor to %d, above the clock %d", floor, clock)
			}
		}
	}
}

// A millisecond bot whose clock runs 1.5 s ahead of the operator's and that
// trades every 150 ms, through the first verification and a forced
// revalidation: never refused. The operator cannot verify the key without
// sending a nonce above its clock, which it never does: NonceConflict, the
// floor left to the bot.
func testMillisecondBotAhead(t *testing.T, nc nonceCase) {
	r := newRealNonceRig(t, nc)
	r.addKey("ahead")
	b := r.startBot(t, "ahead", 150*time.Millisecond, func(now time.Time) uint64 {
		return uint64(now.Add(1500 * time.Millisecond).UnixMilli())
	})
	for _, p := range []*exchange.Prober{r.prober(), r.prober()} { // first verification, revalidation after a restart
		for i := 0; i < 2; i++ { // and a forced revalidation
			_, n, err := r.probe(p, "ahead", "")
			e, ok := exchange.AsError(err)
			if !ok || e.Kind != exchange.NonceConflict || n < 2 || n > 4 {
				t.Fatalf("want NonceConflict after a bounded retry, got %v after %d requests", err, n)
			}
			for _, want := range []string{"clock runs ahead", "larger unit", "spec.validation.nonceUnit"} {
				if !strings.Contains(e.Message, want) {
					t.Errorf("message %q does not say %q", e.Message, want)
				}
			}
			if strings.Contains(err.Error(), nc.secret) || strings.Contains(err.Error(), "ahead\"") {
				t.Fatalf("message names key material: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.Check(t, 5)
}

// A microsecond bot (Bitfinex's own SDKs) with the declared unit
// Microseconds: the key verifies, first time and on revalidation, and the
// bot is never refused. Its clock runs a little ahead of the operator's,
// which the bounded retry passes.
func testMicrosecondBotDeclared(t *testing.T, nc nonceCase) {
	r := newRealNonceRig(t, nc)
	r.addKey("micro")
	r.addKey("milli")
	b := r.startBot(t, "micro", 150*time.Millisecond, func(now time.Time) uint64 {
		return uint64(now.Add(30 * time.Millisecond).UnixMicro())
	})
	for _, p := range []*exchange.Prober{r.prober(), r.prober()} {
		for i := 0; i < 2; i++ {
			perms, n, err := r.probe(p, "micro", exchange.NonceMicroseconds)
			if err != nil || perms.NonceUnit != exchange.NonceMicroseconds || n > 4 {
				t.Fatalf("declared Microseconds: %v, %d requests, %+v", err, n, perms)
			}
			time.Sleep(70 * time.Millisecond)
		}
	}
	b.Check(t, 3)
	// The declaration is per key: another key is probed in milliseconds.
	before := uint64(time.Now().UnixMilli())
	if perms, n, err := r.probe(r.prober(), "milli", ""); err != nil || n != 1 || perms.NonceUnit != exchange.NonceMilliseconds {
		t.Fatalf("other key: %v, %d requests, %+v", err, n, perms)
	}
	if got := r.sim.LastNonce(nc.ex, "milli"); got < before || got > uint64(time.Now().UnixMilli()) {
		t.Fatalf("other key's floor %d is not the millisecond clock %d", got, before)
	}
}

// The same microsecond bot without the declaration: the operator probes in
// milliseconds, every nonce is refused, NonceConflict names the setting, and
// the bot is never refused. Nothing switches the key to microseconds.
func testMicrosecondBotUndeclared(t *testing.T, nc nonceCase) {
	r := newRealNonceRig(t, nc)
	r.addKey("micro")
	b := r.startBot(t, "micro", 150*time.Millisecond, func(now time.Time) uint64 { return uint64(now.UnixMicro()) })
	p := r.prober()
	for i := 0; i < 2; i++ {
		_, n, err := r.probe(p, "micro", "")
		e, ok := exchange.AsError(err)
		if !ok || e.Kind != exchange.NonceConflict || n > 4 {
			t.Fatalf("want NonceConflict, got %v after %d requests", err, n)
		}
		if !strings.Contains(e.Message, "spec.validation.nonceUnit") || !strings.Contains(e.Message, "Milliseconds") {
			t.Fatalf("message %q names neither the setting nor the unit", e.Message)
		}
	}
	b.Check(t, 2)
	// No floor above the microsecond clock was ever sent by the operator.
	if got, now := r.sim.LastNonce(nc.ex, "micro"), uint64(time.Now().UnixMicro()); got > now {
		t.Fatalf("floor %d above the microsecond clock %d", got, now)
	}
}

// A key whose floor is above even the microsecond clock gets NonceConflict,
// and the refused probes leave the floor where it was.
func testFloorAboveMicroseconds(t *testing.T, nc nonceCase) {
	r := newRealNonceRig(t, nc)
	r.addKey("nano")
	floor := nc.aboveMicros(time.Now())
	r.sim.AdvanceNonce(nc.ex, "nano", floor)
	p := r.prober()
	for _, unit := range []exchange.NonceUnit{"", exchange.NonceMicroseconds} {
		_, n, err := r.probe(p, "nano", unit)
		e, ok := exchange.AsError(err)
		if !ok || e.Kind != exchange.NonceConflict || n != 4 {
			t.Fatalf("%q: want NonceConflict after 4 requests, got %v after %d", unit, err, n)
		}
		if strings.Contains(err.Error(), nc.secret) || strings.Contains(err.Error(), "nano") {
			t.Fatalf("message: %v", err)
		}
		if got := r.sim.LastNonce(nc.ex, "nano"); got != floor {
			t.Fatalf("floor moved from %d to %d", floor, got)
		}
	}
	// Once the other client has gone, a probe passes at once.
	r.sim.AdvanceNonce(nc.ex, "nano", 0)
	if perms, n, err := r.probe(p, "nano", ""); err != nil || n != 1 || perms.NonceUnit != exchange.NonceMilliseconds {
		t.Fatalf("after the other client left: %v, %d requests, %+v", err, n, perms)
	}
}

// Keys probed concurrently each get strictly increasing nonces, none ahead
// of the clock.
func testConcurrentKeys(t *testing.T, nc nonceCase) {
	r := newRealNonceRig(t, nc)
	keys := []string{"k1", "k2", "k3"}
	for _, k := range keys {
		r.addKey(k)
	}
	p := r.prober()
	start := uint64(time.Now().UnixMilli())
	var wg sync.WaitGroup
	for _, k := range keys {
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(k string) {
				defer wg.Done()
				for i := 0; i < 4; i++ {
					if _, _, err := r.probe(p, k, ""); err != nil {
						t.Errorf("%s: %v", k, err)
					}
				}
			}(k)
		}
	}
	wg.Wait()
	end := uint64(time.Now().UnixMilli())
	for _, k := range keys {
		// 12 probes accepted, each with a nonce of its own millisecond.
		floor, reqs := r.sim.LastNonce(nc.ex, k), r.sim.Requests(nc.ex, k)
		if reqs != 12 || floor < start+11 || floor > end {
			t.Errorf("%s: floor %d after %d requests, clock %d..%d", k, floor, reqs, start, end)
		}
	}
}

func runNonceTests(t *testing.T, nc nonceCase) {
	t.Run("millisecond bot survives probes", func(t *testing.T) { testMillisecondBotSurvivesProbes(t, nc) })
	t.Run("millisecond bot 1.5s ahead", func(t *testing.T) { t.Parallel(); testMillisecondBotAhead(t, nc) })
	t.Run("microsecond bot declared", func(t *testing.T) { t.Parallel(); testMicrosecondBotDeclared(t, nc) })
	t.Run("microsecond bot undeclared", func(t *testing.T) { t.Parallel(); testMicrosecondBotUndeclared(t, nc) })
	t.Run("floor above microseconds", func(t *testing.T) { t.Parallel(); testFloorAboveMicroseconds(t, nc) })
	t.Run("concurrent keys", func(t *testing.T) { t.Parallel(); testConcurrentKeys(t, nc) })
}

func TestKrakenSimulatorNonces(t *testing.T) {
	runNonceTests(t, nonceCase{
		ex:     exchange.Kraken,
		secret: krakenTestSecret,
		send: func(t *testing.T, s *Simulator, apiKey string, nonce uint64) bool {
			t.Helper()
			status, a := krakenDo(t, s, apiKey, krakenTestSecret, krakenPath, nonce, "")
			if reflect.DeepEqual(a.Error, []string{"EAPI:Invalid nonce"}) {
				return false
			}
			if status != http.StatusOK || len(a.Error) != 0 {
				t.Fatalf("bot request: %d %v", status, a.Error)
			}
			return true
		},
		// A nanosecond client (19 digits).
		aboveMicros: func(now time.Time) uint64 { return uint64(now.UnixNano()) },
	})
}

// Each key has its own floor: a high floor on one key refuses nothing of
// another, and a refused nonce does not move the floor.
func TestKrakenSimulatorNonceFloorPerKey(t *testing.T) {
	s, _ := newKrakenSim(t, []string{"read"}, nil)
	s.AddKey(Key{Exchange: exchange.Kraken, APIKey: "other", Secret: krakenTestSecret, Permissions: []string{"read"}})
	s.AdvanceNonce(exchange.Kraken, "kr-key", 1<<62)
	if status, a := krakenDo(t, s, "other", krakenTestSecret, krakenPath, 1000, ""); status != http.StatusOK || len(a.Error) != 0 {
		t.Fatalf("other key refused: %v", a.Error)
	}
	status, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 2000, "")
	krakenExpectError(t, status, a, "EAPI:Invalid nonce")
	if s.LastNonce(exchange.Kraken, "kr-key") != 1<<62 || s.LastNonce(exchange.Kraken, "other") != 1000 {
		t.Fatalf("floors %d %d", s.LastNonce(exchange.Kraken, "kr-key"), s.LastNonce(exchange.Kraken, "other"))
	}
}

// Native permission strings are rendered verbatim.
func TestKrakenSimulatorNative(t *testing.T) {
	s, _ := newKrakenSim(t, nil, nil)
	s.UpdateKey(exchange.Kraken, "kr-key", func(k *Key) { k.Native = []string{"modify-trades", "create-ws-token"} })
	_, a := krakenDo(t, s, "kr-key", krakenTestSecret, krakenPath, 1000, "")
	if want := []string{"create-ws-token", "modify-trades"}; !reflect.DeepEqual(a.Result.Permissions, want) {
		t.Fatalf("permissions %v, want %v", a.Result.Permissions, want)
	}
}
