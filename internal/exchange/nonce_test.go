package exchange

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the prober's clock in these tests; sleeping advances it, so
// that waits for the clock take no real time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Add(d)
	return nil
}

// sent is one nonce and the prober's clock when the server received it.
type sent struct {
	nonce uint64
	at    time.Time
}

// nonceRecorder is a Bitfinex-shaped server that records every nonce per key
// and answers with one permission row, or with "nonce: small" while refuse
// says so.
type nonceRecorder struct {
	mu     sync.Mutex
	clock  func() time.Time
	nonces map[string][]sent
	refuse func(key string, nonce uint64) bool
}

func newNonceRecorder(t *testing.T, clock func() time.Time) (*nonceRecorder, *httptest.Server) {
	t.Helper()
	rec := &nonceRecorder{nonces: map[string][]sent{}, clock: clock}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseUint(r.Header.Get("bfx-nonce"), 10, 64)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		key := r.Header.Get("bfx-apikey")
		rec.mu.Lock()
		rec.nonces[key] = append(rec.nonces[key], sent{n, rec.clock()})
		refuse := rec.refuse != nil && rec.refuse(key, n)
		rec.mu.Unlock()
		if refuse {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`["error",10114,"nonce: small"]`))
			return
		}
		_, _ = w.Write([]byte(`[["account",1,0]]`))
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

func (r *nonceRecorder) of(key string) []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent{}, r.nonces[key]...)
}

func clockedProber(c *fakeClock) *Prober {
	p := NewProber(Options{Now: c.Now, RateLimits: map[Name]RateLimit{
		Kraken: {PerSecond: 1e6, Burst: 1e6}, Bitfinex: {PerSecond: 1e6, Burst: 1e6}}})
	p.nonces.sleep = c.sleep
	return p
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)}
}

// checkNeverAhead fails when a nonce was above the declared unit's clock
// when it arrived, or did not grow.
func checkNeverAhead(t *testing.T, key string, got []sent, unit NonceUnit) {
	t.Helper()
	var last uint64
	for i, s := range got {
		clock, _ := clockIn(unit, s.at)
		if s.nonce > clock {
			t.Fatalf("%s: nonce %d is %d ahead of the %s clock %d", key, s.nonce, s.nonce-clock, unit, clock)
		}
		if i > 0 && s.nonce <= last {
			t.Fatalf("%s: nonce %d after %d: not increasing", key, s.nonce, last)
		}
		last = s.nonce
	}
}

// Nonces are counted per key and never run ahead of the clock: many keys
// probed at once in one millisecond each send the clock itself, and one key
// probed many times within a millisecond waits for the clock to pass its
// last nonce rather than send "last + 1".
func TestNoncePerKeyNeverAheadOfTheClock(t *testing.T) {
	clock := newFakeClock()
	rec, srv := newNonceRecorder(t, clock.Now)
	p := clockedProber(clock)
	p.nonces.sleep = func(ctx context.Context, d time.Duration) error { return nil } // the clock stands still for now
	ms := uint64(clock.Now().UnixMilli())
	probe := func(key string) error {
		_, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: key, APISecret: "s"}})
		return err
	}

	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := probe(fmt.Sprintf("key-%d", i)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	for i := 0; i < 100; i++ {
		if got := rec.of(fmt.Sprintf("key-%d", i)); len(got) != 1 || got[0].nonce != ms {
			t.Fatalf("key-%d sent %v, want [%d]: the clock in milliseconds", i, got, ms)
		}
	}

	// A second probe of one key while the clock stands still sends
	// nothing: it would have to run ahead of the clock.
	defer func(d time.Duration) { nonceMaxWait = d }(nonceMaxWait)
	nonceMaxWait = 10 * time.Millisecond
	err := probe("key-0")
	if e, ok := AsError(err); !ok || e.Kind != NonceConflict || !strings.Contains(e.Message, "ahead of its clock") {
		t.Fatalf("probe at a standing clock: %v", err)
	}
	if got := rec.of("key-0"); len(got) != 1 {
		t.Fatalf("key-0 sent %d nonces, want 1", len(got))
	}

	// One key probed 20 times from 4 goroutines, with a clock that moves
	// only while a probe waits for it: every nonce is the clock itself.
	p.nonces.sleep = clock.sleep
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if err := probe("busy"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got := rec.of("busy")
	if len(got) != 20 {
		t.Fatalf("%d requests, want 20", len(got))
	}
	checkNeverAhead(t, "busy", got, NonceMilliseconds)
	// The busy key does not push anyone else's nonce.
	if err := probe("quiet"); err != nil {
		t.Fatal(err)
	}
	if got := rec.of("quiet"); len(got) != 1 || got[0].nonce != uint64(clock.Now().UnixMilli()) {
		t.Fatalf("quiet key sent %v, want the clock %d", got, clock.Now().UnixMilli())
	}
}

// Each key's nonces grow strictly across goroutines, each one the clock.
func TestNonceBookStrictlyIncreasingPerKey(t *testing.T) {
	b := newNonceBook()
	clock := newFakeClock()
	b.sleep = clock.sleep
	ids := []nonceID{nonceIDOf(Kraken, "a"), nonceIDOf(Kraken, "b"), nonceIDOf(Bitfinex, "a")}
	var mu sync.Mutex
	got := map[nonceID][]uint64{}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(id nonceID) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				// next is called with the key held, as Probe does.
				release, err := b.acquire(context.Background(), id, "", clock.Now())
				if err != nil {
					t.Error(err)
					return
				}
				n, err := b.next(context.Background(), id, clock.Now)
				if err != nil {
					t.Error(err)
				}
				if now := uint64(clock.Now().UnixMilli()); n > now {
					t.Errorf("nonce %d ahead of the clock %d", n, now)
				}
				mu.Lock()
				got[id] = append(got[id], n)
				mu.Unlock()
				release()
			}
		}(ids[g%len(ids)])
	}
	wg.Wait()
	for _, id := range ids {
		seen := map[uint64]bool{}
		for _, n := range got[id] {
			if seen[n] {
				t.Fatalf("nonce %d sent twice", n)
			}
			seen[n] = true
		}
		if len(seen) != 400 {
			t.Fatalf("key got %d distinct nonces, want 400", len(seen))
		}
	}
	// Kraken's "a" and Bitfinex's "a" are different counters.
	if nonceIDOf(Kraken, "a") == nonceIDOf(Bitfinex, "a") {
		t.Fatal("one counter for two exchanges")
	}
	// When the clock has moved past the counter, the clock itself.
	later := clock.Add(time.Second)
	if n, _ := b.next(context.Background(), ids[0], clock.Now); n != uint64(later.UnixMilli()) {
		t.Fatalf("after a second: %d, want the clock %d", n, later.UnixMilli())
	}
	// A declared unit of Microseconds counts in microseconds from then on.
	release, _ := b.acquire(context.Background(), ids[0], NonceMicroseconds, later)
	if n, _ := b.next(context.Background(), ids[0], clock.Now); n != uint64(later.UnixMicro()) {
		t.Fatalf("microseconds: %d, want %d", n, later.UnixMicro())
	}
	release()
}

// A clock that stepped back behind the last nonce sent is waited for, but
// not for long: the probe then fails without sending anything.
func TestNonceClockSteppedBack(t *testing.T) {
	clock := newFakeClock()
	rec, srv := newNonceRecorder(t, clock.Now)
	p := clockedProber(clock)
	req := Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "k", APISecret: "s"}}
	if _, err := p.Probe(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// Back by a little: the probe waits for the clock.
	clock.Add(-50 * time.Millisecond)
	if _, err := p.Probe(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// Back by an hour: no nonce is sent.
	clock.Add(-time.Hour)
	_, err := p.Probe(context.Background(), req)
	if KindOf(err) != NonceConflict || !strings.Contains(err.Error(), "behind the last nonce") {
		t.Fatalf("clock an hour back: %v", err)
	}
	got := rec.of("k")
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	checkNeverAhead(t, "k", got, NonceMilliseconds)
}

// The memory forgets keys unused for a day and never holds more than
// maxNonceEntries.
func TestNonceBookBounded(t *testing.T) {
	b := newNonceBook()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	ctx := context.Background()
	old := nonceIDOf(Kraken, "old")
	release, _ := b.acquire(ctx, old, NonceMicroseconds, t0)
	release()
	_, _ = b.next(ctx, nonceIDOf(Kraken, "fresh"), at(20*time.Hour))
	_, _ = b.next(ctx, nonceIDOf(Kraken, "new"), at(25*time.Hour))
	if b.size() != 2 {
		t.Fatalf("%d entries after a day, want 2 (the idle key dropped)", b.size())
	}

	b = newNonceBook()
	b.limit = 100
	first := nonceIDOf(Bitfinex, "k0")
	for i := 0; i < 110; i++ {
		_, _ = b.next(ctx, nonceIDOf(Bitfinex, "k"+strconv.Itoa(i)), at(time.Duration(i+1)*time.Millisecond))
	}
	if b.size() > 100 {
		t.Fatalf("%d entries, cap 100", b.size())
	}
	b.mu.Lock()
	_, kept := b.entries[first]
	b.mu.Unlock()
	if kept {
		t.Fatal("the least recently used key was kept over the cap")
	}
}

// The unit is the declared one, request by request: nothing is remembered
// or inferred across probes.
func TestNonceUnitDeclared(t *testing.T) {
	clock := newFakeClock()
	rec, srv := newNonceRecorder(t, clock.Now)
	p := clockedProber(clock)
	req := Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "k", APISecret: "s"}, NonceUnit: NonceMicroseconds}
	perms, err := p.Probe(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.of("k"); len(got) != 1 || got[0].nonce != uint64(clock.Now().UnixMicro()) || perms.NonceUnit != NonceMicroseconds {
		t.Fatalf("declared Microseconds sent %v, unit %q; want [%d] Microseconds", got, perms.NonceUnit, clock.Now().UnixMicro())
	}
	// No declaration: Milliseconds, whatever this key used before.
	clock.Add(time.Millisecond)
	rec.mu.Lock()
	rec.nonces = map[string][]sent{}
	rec.mu.Unlock()
	req.NonceUnit = ""
	if perms, err = p.Probe(context.Background(), req); err != nil || perms.NonceUnit != NonceMilliseconds {
		t.Fatalf("undeclared: %+v %v, want Milliseconds", perms, err)
	}
	if got := rec.of("k"); len(got) != 1 || got[0].nonce != uint64(clock.Now().UnixMilli()) {
		t.Fatalf("undeclared sent %v, want the millisecond clock %d", got, clock.Now().UnixMilli())
	}
	// Other exchanges have no counter nonce and report no unit.
	if CapabilitiesOf(Binance).CounterNonce {
		t.Fatal("Binance has no counter nonce")
	}
}

// A bot a few milliseconds ahead of the operator's clock (or in the same
// millisecond) is passed by the bounded retry, which sends the clock of
// each moment and nothing above it.
func TestNonceRetryPassesABotSlightlyAhead(t *testing.T) {
	clock := newFakeClock()
	rec, srv := newNonceRecorder(t, clock.Now)
	floor := uint64(clock.Now().UnixMilli()) + 20 // the bot's last nonce
	rec.refuse = func(_ string, n uint64) bool { return n <= floor }
	p := clockedProber(clock)
	perms, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "k", APISecret: "s"}})
	if err != nil || perms.NonceUnit != NonceMilliseconds {
		t.Fatalf("%+v %v", perms, err)
	}
	got := rec.of("k")
	if len(got) != 3 { // refused at +0 and +5 ms, accepted at +55 ms
		t.Fatalf("sent %v, want 3 requests", got)
	}
	checkNeverAhead(t, "k", got, NonceMilliseconds)
}

// Every nonce refused: a few retries, every one in the declared unit and at
// most its clock; then NonceConflict with a message that names both causes
// and the setting, and no key material. The unit never changes.
func TestNonceConflictNeverSwitchesUnit(t *testing.T) {
	for _, unit := range []NonceUnit{"", NonceMicroseconds} {
		clock := newFakeClock()
		rec, srv := newNonceRecorder(t, clock.Now)
		rec.refuse = func(string, uint64) bool { return true }
		p := clockedProber(clock)
		creds := Credentials{APIKey: "the-api-key", APISecret: "the-secret"}
		start := clock.Now()
		_, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: creds, NonceUnit: unit})
		e, ok := AsError(err)
		if !ok || e.Kind != NonceConflict || !e.Kind.Transient() {
			t.Fatalf("%q: want NonceConflict, got %v", unit, err)
		}
		for _, want := range []string{"clock runs ahead", "larger unit", "spec.validation.nonceUnit", string(unitOrDefault(unit))} {
			if !strings.Contains(e.Message, want) {
				t.Errorf("message %q does not say %q", e.Message, want)
			}
		}
		if strings.Contains(err.Error(), creds.APIKey) || strings.Contains(err.Error(), creds.APISecret) {
			t.Fatalf("error names key material: %v", err)
		}
		got := rec.of(creds.APIKey)
		if len(got) != 1+len(nonceRetryDelays) {
			t.Fatalf("%q: %d requests, want %d", unit, len(got), 1+len(nonceRetryDelays))
		}
		checkNeverAhead(t, "key", got, unitOrDefault(unit))
		if first, _ := clockIn(unitOrDefault(unit), start); got[0].nonce != first {
			t.Fatalf("first nonce %d, want the clock %d", got[0].nonce, first)
		}
		if elapsed := clock.Now().Sub(start); elapsed > time.Second {
			t.Fatalf("retried for %s", elapsed)
		}
		if u := p.nonces.unit(nonceIDOf(Bitfinex, creds.APIKey), clock.Now()); u != unitOrDefault(unit) {
			t.Fatalf("unit after a conflict %q, want %q", u, unitOrDefault(unit))
		}
	}
}

// The wait before a retry ends with the probe's context.
func TestNonceRetryWaitHonoursContext(t *testing.T) {
	defer func(d []time.Duration) { nonceRetryDelays = d }(nonceRetryDelays)
	nonceRetryDelays = []time.Duration{time.Hour}
	rec, srv := newNonceRecorder(t, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec.refuse = func(string, uint64) bool { return true }
	// The context ends once the first answer is in.
	p := NewProber(Options{Observe: func(Observation) { cancel() }})
	_, err := p.Probe(ctx, Request{Exchange: Bitfinex, Endpoint: srv.URL,
		Credentials: Credentials{APIKey: "k", APISecret: "s"}})
	if KindOf(err) != NonceConflict {
		t.Fatalf("want the first NonceConflict, got %v", err)
	}
	if got := rec.of("k"); len(got) != 1 {
		t.Fatalf("%d requests, want 1: no retry after the context ended", len(got))
	}
}
