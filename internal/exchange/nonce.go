package exchange

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// Counter nonces (Kraken, Bitfinex).
//
// Both exchanges keep, per API key, the last nonce they accepted and refuse
// any nonce not greater than it:
//   - Kraken: "EAPI:Invalid nonce: the nonce submitted is less than or equal
//     to the last accepted nonce for this API key"; "the most reliable source
//     is the current Unix timestamp in milliseconds" (docs.kraken.com,
//     exchange/guides/general/errors). The signing example of the REST
//     authentication guide (exchange/guides/rest/authentication) uses the
//     13-digit nonce 1616492376594, and GetApiKeyInfo's example answer
//     reports "nonce": "1772627060997". A key may carry a nonce window that
//     tolerates some reordering; the operator does not rely on it.
//   - Bitfinex: bfx-nonce is "an ever increasing numeric string" that must not
//     exceed 2^53-1 (docs.bitfinex.com, REST authenticated endpoints and
//     docs/api-access "Nonce"); a smaller one is refused with 10114
//     "nonce: small". Bitfinex's own examples send microseconds.
//   - ccxt, which most bots use (freqtrade included), sends milliseconds to
//     both: kraken.js nonce() is milliseconds() - timeDifference and
//     bitfinex.js nonce() is milliseconds() (npm ccxt 4.5.84,
//     js/src/kraken.js and js/src/bitfinex.js).
//
// A probe shares the key's counter with the bots that use the key, so a
// probe nonce must never run ahead of a millisecond bot's next nonce: one
// microsecond nonce (about 1.7e15) lifts the floor above every millisecond
// nonce for the next 50,000 years. The probe therefore sends
// max(now in ms, last+1) with last kept per exchange and key: strictly
// increasing per key, and ahead of the clock by at most the requests made
// for that key within the current millisecond (one counter shared by every
// key ran ahead of the clock by the whole cluster's load). Probes of one key
// run one at a time (nonceBook.acquire): two in flight could arrive in the
// other order, and the refused one would pass for another client's larger
// nonce and wrongly switch the key to microseconds.
//
// Adaptation, in Prober.adaptNonce: on a refused nonce the probe waits a few
// milliseconds and retries once in milliseconds (a bot may have used the
// same millisecond). Refused again, the key's floor is above the
// millisecond clock, so another client uses a larger scale: that key's
// probes switch to microseconds (kept in memory and reported in
// Permissions.NonceUnit, which the controller stores in status and passes
// back in Request.NonceUnit after a restart) and retry once. Refused even
// then, the probe fails with NonceConflict and leaves the key's unit as it
// was.
//
// Memory: one entry per exchange and key (the key is hashed, so the book
// holds no key material), dropped after nonceIdle without use and capped at
// maxNonceEntries (the least recently used goes first). Forgetting a key is
// safe: a day later the clock is past any nonce sent for it, and a
// microsecond key comes back through Request.NonceUnit.

const (
	// nonceIdle is how long a key's entry survives without a probe.
	nonceIdle = 24 * time.Hour
	// maxNonceEntries bounds the book whatever the number of keys.
	maxNonceEntries = 100000
)

// nonceRetryDelay is how long a probe waits before retrying a refused
// millisecond nonce: long enough for the millisecond clock to pass a bot's
// nonce of the same millisecond.
var nonceRetryDelay = 5 * time.Millisecond

type nonceID [sha256.Size]byte

func nonceIDOf(ex Name, apiKey string) nonceID {
	return sha256.Sum256([]byte(string(ex) + "\x00" + apiKey))
}

type nonceEntry struct {
	last uint64 // the last nonce sent, in unit
	unit NonceUnit
	used time.Time
	// busy holds one token while a probe of the key runs: two probes of
	// one key in flight could reach the exchange in the other order, and
	// the refused one would look like another client's larger nonce.
	busy chan struct{}
}

// nonceBook is the per-key nonce memory of one Prober.
type nonceBook struct {
	mu        sync.Mutex
	entries   map[nonceID]*nonceEntry
	lastSweep time.Time
	limit     int // maxNonceEntries; tests lower it
}

func newNonceBook() *nonceBook {
	return &nonceBook{entries: map[nonceID]*nonceEntry{}, limit: maxNonceEntries}
}

// entry returns id's entry, creating it with seed (milliseconds when empty).
// Caller holds mu.
func (b *nonceBook) entry(id nonceID, seed NonceUnit, now time.Time) *nonceEntry {
	e := b.entries[id]
	if e == nil {
		b.sweep(now)
		if seed != NonceMicroseconds {
			seed = NonceMilliseconds
		}
		e = &nonceEntry{unit: seed, busy: make(chan struct{}, 1)}
		b.entries[id] = e
	}
	e.used = now
	return e
}

// sweep drops idle entries (at most once an hour) and, over the cap, the
// least recently used one. Caller holds mu.
func (b *nonceBook) sweep(now time.Time) {
	if now.Sub(b.lastSweep) >= time.Hour || now.Before(b.lastSweep) {
		b.lastSweep = now
		for id, e := range b.entries {
			if now.Sub(e.used) > nonceIdle && len(e.busy) == 0 {
				delete(b.entries, id)
			}
		}
	}
	for len(b.entries) >= b.limit {
		var oldest nonceID
		var at time.Time
		first := true
		for id, e := range b.entries {
			if len(e.busy) == 0 && (first || e.used.Before(at)) {
				oldest, at, first = id, e.used, false
			}
		}
		if first {
			return // every key is being probed right now
		}
		delete(b.entries, oldest)
	}
}

// acquire waits until no other probe of id runs, seeding the key's unit
// from status, and returns the release. Probes of one key are serial, as
// Kraken asks of clients that share a key ("use a counter with a mutex",
// exchange/guides/general/errors); probes of different keys run in parallel.
func (b *nonceBook) acquire(ctx context.Context, id nonceID, seed NonceUnit, now time.Time) (func(), error) {
	b.mu.Lock()
	e := b.entry(id, seed, now)
	b.mu.Unlock()
	select {
	case e.busy <- struct{}{}:
		return func() { <-e.busy }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// unit returns the unit id's probes use, seeding it from status when the
// key is new.
func (b *nonceBook) unit(id nonceID, seed NonceUnit, now time.Time) NonceUnit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entry(id, seed, now).unit
}

// setUnit switches id's probes to u.
func (b *nonceBook) setUnit(id nonceID, u NonceUnit, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entry(id, u, now).unit = u
}

// next returns id's next nonce: the clock in the key's unit, or one more
// than the last nonce sent for the key when the clock has not moved past it.
func (b *nonceBook) next(id nonceID, now time.Time) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entry(id, "", now)
	var n uint64
	if e.unit == NonceMicroseconds {
		n = uint64(now.UnixMicro())
	} else {
		n = uint64(now.UnixMilli())
	}
	if n <= e.last {
		n = e.last + 1
	}
	e.last = n
	return n
}

// size is the number of keys remembered (tests).
func (b *nonceBook) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// adaptNonce runs after a counter-nonce driver's first attempt: it retries a
// refused nonce as described at the top of this file and reports the unit
// the key's probes now use.
func (p *Prober) adaptNonce(ctx context.Context, d driver, c *call, perms *Permissions, err error) (*Permissions, error) {
	start := p.nonces.unit(c.nonce, "", p.opts.Now())
	if KindOf(err) == NonceConflict {
		t := time.NewTimer(nonceRetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		perms, err = d.probe(ctx, c)
		if KindOf(err) == NonceConflict && start == NonceMilliseconds {
			// Twice refused a millisecond nonce: the floor is above the
			// millisecond clock, so a larger scale cannot harm a
			// millisecond client of this key (there is none).
			p.nonces.setUnit(c.nonce, NonceMicroseconds, p.opts.Now())
			perms, err = d.probe(ctx, c)
		}
		if e, ok := AsError(err); ok && e.Kind == NonceConflict {
			p.nonces.setUnit(c.nonce, start, p.opts.Now())
			return nil, nonceConflict(e, start)
		}
	}
	if err == nil && perms != nil {
		perms.NonceUnit = p.nonces.unit(c.nonce, "", p.opts.Now())
	}
	return perms, err
}

// nonceConflict rewrites the exchange's last refusal into what happened and
// how to fix it. It names no key material.
func nonceConflict(e *Error, start NonceUnit) *Error {
	out := *e
	tried := "millisecond nonces (twice) and microsecond nonces"
	if start == NonceMicroseconds {
		tried = "microsecond nonces (twice)"
	}
	exMsg := ""
	if e.Message != "" {
		exMsg = fmt.Sprintf(" (last answer: %s)", e.Message)
	}
	out.Message = sanitize(fmt.Sprintf("%s refused %s for this key%s: another client of the same key "+
		"already sends larger nonces than the microsecond clock. Give the operator its own API key, "+
		"or make the other client send millisecond nonces, as ccxt does", e.Exchange, tried, exMsg), 400)
	return &out
}
