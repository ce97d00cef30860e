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

// nonceRecorder is a Bitfinex-shaped server that records every nonce per key
// and answers with one permission row, or with "nonce: small" while refuse
// says so.
type nonceRecorder struct {
	mu     sync.Mutex
	nonces map[string][]uint64
	refuse func(key string, nonce uint64) bool
}

func newNonceRecorder(t *testing.T) (*nonceRecorder, *httptest.Server) {
	t.Helper()
	rec := &nonceRecorder{nonces: map[string][]uint64{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseUint(r.Header.Get("bfx-nonce"), 10, 64)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		key := r.Header.Get("bfx-apikey")
		rec.mu.Lock()
		rec.nonces[key] = append(rec.nonces[key], n)
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

func (r *nonceRecorder) of(key string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64{}, r.nonces[key]...)
}

func fixedProber(now time.Time) *Prober {
	return NewProber(Options{Now: func() time.Time { return now }, RateLimits: map[Name]RateLimit{
		Kraken: {PerSecond: 1e6, Burst: 1e6}, Bitfinex: {PerSecond: 1e6, Burst: 1e6}}})
}

// Nonces are counted per key: many keys probed at once in one millisecond
// each send the clock itself, and one busy key runs ahead of the clock by no
// more than its own requests in that millisecond. (One counter shared by all
// keys, in microseconds, ran ahead by the whole cluster's load.)
func TestNoncePerKeyNeverAheadOfTheClock(t *testing.T) {
	rec, srv := newNonceRecorder(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	p := fixedProber(now)
	ms := uint64(now.UnixMilli())
	probe := func(key string) {
		if _, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: key, APISecret: "s"}}); err != nil {
			t.Error(err)
		}
	}

	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); probe(fmt.Sprintf("key-%d", i)) }(i)
	}
	wg.Wait()
	for i := 0; i < 100; i++ {
		if got := rec.of(fmt.Sprintf("key-%d", i)); len(got) != 1 || got[0] != ms {
			t.Fatalf("key-%d sent %v, want [%d]: the clock in milliseconds", i, got, ms)
		}
	}

	// One key probed 20 times within the millisecond, from 4 goroutines.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				probe("busy")
			}
		}()
	}
	wg.Wait()
	got := rec.of("busy")
	seen := map[uint64]bool{}
	for _, n := range got {
		if n < ms || n-ms >= uint64(len(got)) {
			t.Fatalf("nonce %d is %d ahead of the clock %d after %d requests", n, n-ms, ms, len(got))
		}
		if seen[n] {
			t.Fatalf("nonce %d sent twice", n)
		}
		seen[n] = true
	}
	if len(got) != 20 {
		t.Fatalf("%d requests, want 20", len(got))
	}
	// The busy key does not push anyone else's nonce.
	probe("quiet")
	if got := rec.of("quiet"); len(got) != 1 || got[0] != ms {
		t.Fatalf("quiet key sent %v, want [%d]", got, ms)
	}
}

// Each key's nonces grow strictly across goroutines.
func TestNonceBookStrictlyIncreasingPerKey(t *testing.T) {
	b := newNonceBook()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := []nonceID{nonceIDOf(Kraken, "a"), nonceIDOf(Kraken, "b"), nonceIDOf(Bitfinex, "a")}
	var mu sync.Mutex
	got := map[nonceID][]uint64{}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(id nonceID) {
			defer wg.Done()
			last := uint64(0)
			for i := 0; i < 200; i++ {
				n := b.next(id, now)
				if n <= last {
					t.Errorf("nonce went backwards: %d after %d", n, last)
				}
				last = n
				mu.Lock()
				got[id] = append(got[id], n)
				mu.Unlock()
			}
		}(ids[g%len(ids)])
	}
	wg.Wait()
	ms := uint64(now.UnixMilli())
	for _, id := range ids {
		seen := map[uint64]bool{}
		for _, n := range got[id] {
			seen[n] = true
		}
		// Two goroutines per key, 400 nonces: exactly ms .. ms+399.
		if len(seen) != 400 || !seen[ms] || !seen[ms+399] {
			t.Fatalf("key got %d distinct nonces from %d", len(seen), ms)
		}
	}
	// Kraken's "a" and Bitfinex's "a" are different counters.
	if nonceIDOf(Kraken, "a") == nonceIDOf(Bitfinex, "a") {
		t.Fatal("one counter for two exchanges")
	}
	// When the clock moves past the counter, the clock wins again.
	later := now.Add(time.Second)
	if n := b.next(ids[0], later); n != uint64(later.UnixMilli()) {
		t.Fatalf("after a second: %d, want the clock %d", n, later.UnixMilli())
	}
	b.setUnit(ids[0], NonceMicroseconds, later)
	if n := b.next(ids[0], later); n != uint64(later.UnixMicro()) {
		t.Fatalf("microseconds: %d, want %d", n, later.UnixMicro())
	}
}

// The memory forgets keys unused for a day and never holds more than
// maxNonceEntries.
func TestNonceBookBounded(t *testing.T) {
	b := newNonceBook()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := nonceIDOf(Kraken, "old")
	b.setUnit(old, NonceMicroseconds, t0)
	b.next(nonceIDOf(Kraken, "fresh"), t0.Add(20*time.Hour))
	b.next(nonceIDOf(Kraken, "new"), t0.Add(25*time.Hour))
	if b.size() != 2 {
		t.Fatalf("%d entries after a day, want 2 (the idle key dropped)", b.size())
	}
	if u := b.unit(old, "", t0.Add(25*time.Hour)); u != NonceMilliseconds {
		t.Fatalf("a forgotten key starts again in milliseconds, got %q", u)
	}

	b = newNonceBook()
	b.limit = 100
	at := t0
	first := nonceIDOf(Bitfinex, "k0")
	for i := 0; i < 110; i++ {
		at = at.Add(time.Millisecond)
		b.next(nonceIDOf(Bitfinex, "k"+strconv.Itoa(i)), at)
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

// Status seeds the unit after a restart; the memory, once it knows the key,
// is what counts.
func TestNonceUnitSeededFromRequest(t *testing.T) {
	rec, srv := newNonceRecorder(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := fixedProber(now)
	req := Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: Credentials{APIKey: "k", APISecret: "s"}, NonceUnit: NonceMicroseconds}
	perms, err := p.Probe(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.of("k"); len(got) != 1 || got[0] != uint64(now.UnixMicro()) || perms.NonceUnit != NonceMicroseconds {
		t.Fatalf("seeded key sent %v, unit %q; want [%d] Microseconds", got, perms.NonceUnit, now.UnixMicro())
	}
	req.NonceUnit = ""
	if perms, err = p.Probe(context.Background(), req); err != nil || perms.NonceUnit != NonceMicroseconds {
		t.Fatalf("memory lost the unit: %v %v", perms, err)
	}
	// Other exchanges have no counter nonce and report no unit.
	if CapabilitiesOf(Binance).CounterNonce {
		t.Fatal("Binance has no counter nonce")
	}
}

// A refused nonce is retried in milliseconds, then microseconds; when every
// scale is refused the error says what happened, names no key material, and
// leaves the key in milliseconds.
func TestNonceConflictAfterEveryScale(t *testing.T) {
	rec, srv := newNonceRecorder(t)
	rec.refuse = func(string, uint64) bool { return true }
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := fixedProber(now)
	creds := Credentials{APIKey: "the-api-key", APISecret: "the-secret"}
	_, err := p.Probe(context.Background(), Request{Exchange: Bitfinex, Endpoint: srv.URL, Credentials: creds})
	e, ok := AsError(err)
	if !ok || e.Kind != NonceConflict || !e.Kind.Transient() {
		t.Fatalf("want NonceConflict, got %v", err)
	}
	for _, want := range []string{"millisecond", "microsecond", "another client", "own API key"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not say %q", e.Message, want)
		}
	}
	if strings.Contains(err.Error(), creds.APIKey) || strings.Contains(err.Error(), creds.APISecret) {
		t.Fatalf("error names key material: %v", err)
	}
	ms, us := uint64(now.UnixMilli()), uint64(now.UnixMicro())
	if got := rec.of(creds.APIKey); len(got) != 3 || got[0] != ms || got[1] != ms+1 || got[2] != us {
		t.Fatalf("sent %v, want [%d %d %d]", got, ms, ms+1, us)
	}
	if u := p.nonces.unit(nonceIDOf(Bitfinex, creds.APIKey), "", now); u != NonceMilliseconds {
		t.Fatalf("unit after a conflict %q, want Milliseconds", u)
	}
}

// The wait before the retry ends with the probe's context.
func TestNonceRetryWaitHonoursContext(t *testing.T) {
	defer func(d time.Duration) { nonceRetryDelay = d }(nonceRetryDelay)
	nonceRetryDelay = time.Hour
	rec, srv := newNonceRecorder(t)
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
