package exchange

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
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
//     exchange/guides/general/errors); the nonce is an "always increasing,
//     unsigned 64-bit integer" (docs.kraken.com/api/docs/guides/spot-rest-auth).
//     The signing example uses the 13-digit nonce 1616492376594. A key may
//     carry a nonce window that tolerates some reordering; the operator
//     does not rely on it.
//   - Bitfinex: bfx-nonce is "an ever increasing numeric string" that must not
//     exceed 2^53-1 (docs.bitfinex.com/docs/rest-auth); a smaller one is
//     refused with 10114 "nonce: small". Bitfinex's own examples send
//     microseconds.
//   - ccxt, which most bots use (freqtrade included), sends milliseconds to
//     both: kraken.js nonce() is milliseconds() - timeDifference and
//     bitfinex.js nonce() is milliseconds() (npm ccxt 4.5.84,
//     js/src/kraken.js and js/src/bitfinex.js).
//
// A probe shares the key's counter with the bots that use the key. A refusal
// cannot tell a client that counts in a larger unit from a millisecond
// client whose clock runs ahead of ours (ordinary drift, or ccxt's
// timeDifference): any nonce that passes a microsecond floor also passes the
// millisecond one. So the unit is declared (spec.validation.nonceUnit, passed
// in Request.NonceUnit; Milliseconds when empty) and never inferred: one
// microsecond nonce (about 1.7e15) lifts the floor above every millisecond
// nonce for the next 50,000 years, and on Bitfinex the only way out is a
// new key.
//
// Every nonce a probe sends is at most the declared unit's clock: the clock
// itself, strictly greater than the last nonce sent for the key. When the
// clock has not yet passed that nonce (two probes in one millisecond), the
// probe waits until it does; it never sends "last + 1" ahead of the clock.
// Probes of one key run one at a time (nonceBook.acquire): two in flight
// could arrive in the other order and the later one be refused.
//
// A refused nonce (Prober.retryNonce) is retried a few times, after
// nonceRetryDelays, each time with the clock of that moment: this passes a
// bot that used the same millisecond or runs a few milliseconds ahead.
// Refused every time, the probe fails with NonceConflict: no verdict on the
// key, and a message that names both causes (another client's clock runs
// ahead, or it counts in a larger unit) and spec.validation.nonceUnit. A
// refused nonce does not move the key's floor, so none of this can refuse a
// bot's later request.
//
// Memory: one entry per exchange and key (the key is hashed, so the book
// holds no key material), dropped after nonceIdle without use and capped at
// maxNonceEntries (the least recently used goes first). Forgetting a key is
// safe: a day later the clock is past any nonce sent for it.

const (
	// nonceIdle is how long a key's entry survives without a probe.
	nonceIdle = 24 * time.Hour
	// maxNonceEntries bounds the book whatever the number of keys.
	maxNonceEntries = 100000
)

// nonceRetryDelays are the waits before each retry of a refused nonce: a
// bot that used the same millisecond, or whose clock runs a few
// milliseconds ahead, is passed by the clock within them. Bounded: four
// requests and about 300 ms at most.
var nonceRetryDelays = []time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond}

// nonceMaxWait bounds the wait for the clock to pass the last nonce sent for
// a key (normally under one unit; longer only after the clock stepped back).
var nonceMaxWait = 2 * time.Second

type nonceID [sha256.Size]byte

func nonceIDOf(ex Name, apiKey string) nonceID {
	return sha256.Sum256([]byte(string(ex) + "\x00" + apiKey))
}

// unitOrDefault is the declared unit, Milliseconds when none is declared.
func unitOrDefault(u NonceUnit) NonceUnit {
	if u == NonceMicroseconds {
		return NonceMicroseconds
	}
	return NonceMilliseconds
}

// clockIn is now in unit u, and the duration of one unit.
func clockIn(u NonceUnit, now time.Time) (uint64, time.Duration) {
	if u == NonceMicroseconds {
		return uint64(now.UnixMicro()), time.Microsecond
	}
	return uint64(now.UnixMilli()), time.Millisecond
}

type nonceEntry struct {
	last uint64 // the last nonce sent, in unit
	unit NonceUnit
	used time.Time
	// busy holds one token while a probe of the key runs: two probes of
	// one key in flight could reach the exchange in the other order, and
	// the later one would be refused.
	busy chan struct{}
}

// nonceBook is the per-key nonce memory of one Prober.
type nonceBook struct {
	mu        sync.Mutex
	entries   map[nonceID]*nonceEntry
	lastSweep time.Time
	limit     int // maxNonceEntries; tests lower it
	// sleep waits d or until ctx ends; tests make it advance a fake clock.
	sleep func(ctx context.Context, d time.Duration) error
}

func newNonceBook() *nonceBook {
	return &nonceBook{entries: map[nonceID]*nonceEntry{}, limit: maxNonceEntries, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// entry returns id's entry, creating it in milliseconds. Caller holds mu.
func (b *nonceBook) entry(id nonceID, now time.Time) *nonceEntry {
	e := b.entries[id]
	if e == nil {
		b.sweep(now)
		e = &nonceEntry{unit: NonceMilliseconds, busy: make(chan struct{}, 1)}
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

// acquire waits until no other probe of id runs, sets the key's unit to
// the declared one, and returns the release. Probes of one key are serial,
// as Kraken asks of clients that share a key ("use a counter with a
// mutex", exchange/guides/general/errors); probes of different keys run in
// parallel. A change of the declared unit starts the key's count afresh in
// the new unit.
func (b *nonceBook) acquire(ctx context.Context, id nonceID, unit NonceUnit, now time.Time) (func(), error) {
	unit = unitOrDefault(unit)
	b.mu.Lock()
	e := b.entry(id, now)
	b.mu.Unlock()
	select {
	case e.busy <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.mu.Lock()
	if e.unit != unit {
		e.unit, e.last = unit, 0
	}
	b.mu.Unlock()
	return func() { <-e.busy }, nil
}

// unit returns the unit id's probes use (tests).
func (b *nonceBook) unit(id nonceID, now time.Time) NonceUnit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entry(id, now).unit
}

// next returns id's next nonce: the clock in the key's unit, once it is
// greater than the last nonce sent for the key. It waits (at most
// nonceMaxWait) for the clock to get there rather than send a nonce ahead
// of it. The caller holds the key (acquire).
func (b *nonceBook) next(ctx context.Context, id nonceID, clock func() time.Time) (uint64, error) {
	waited := time.Duration(0)
	for {
		now := clock()
		b.mu.Lock()
		e := b.entry(id, now)
		n, tick := clockIn(e.unit, now)
		last := e.last
		if n > last {
			e.last = n
			b.mu.Unlock()
			return n, nil
		}
		b.mu.Unlock()
		wait := time.Duration(last-n+1) * tick
		if waited+wait > nonceMaxWait {
			return 0, fmt.Errorf("the clock is %s behind the last nonce the operator sent for this key; it sends no nonce ahead of its clock", time.Duration(last-n)*tick)
		}
		if err := b.sleep(ctx, wait); err != nil {
			return 0, err
		}
		waited += wait
	}
}

// size is the number of keys remembered (tests).
func (b *nonceBook) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// retryNonce runs after a counter-nonce request's first attempt (a probe,
// a token mint): a refused nonce is retried with again after each of
// nonceRetryDelays, with the clock of that moment, in the declared unit and
// nothing larger. Refused every time, the error says why and what resolves
// it.
func (p *Prober) retryNonce(ctx context.Context, unit NonceUnit, err error, again func() error) error {
	for _, delay := range nonceRetryDelays {
		if e, ok := AsError(err); !ok || e.Kind != NonceConflict || strings.HasPrefix(e.Message, noNonceSent) {
			break
		}
		if p.nonces.sleep(ctx, delay) != nil {
			break
		}
		err = again()
	}
	if e, ok := AsError(err); ok && e.Kind == NonceConflict && !strings.HasPrefix(e.Message, noNonceSent) {
		return nonceConflict(e, unit)
	}
	return err
}

// noNonceSent starts the message of a probe that sent nothing because its
// clock had not passed the last nonce sent for the key (call.Nonce): no
// retry, and no rewrite into a refusal.
const noNonceSent = "no nonce sent: "

// NoNonceSent reports whether err is a NonceConflict of a probe that sent
// nothing (its clock was behind the last nonce sent for the key), rather
// than the exchange's refusal.
func NoNonceSent(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind == NonceConflict && strings.HasPrefix(e.Message, noNonceSent)
}

// nonceConflict rewrites the exchange's last refusal into what happened and
// how to fix it. It names no key material.
func nonceConflict(e *Error, unit NonceUnit) *Error {
	out := *e
	scale := "millisecond"
	if unit == NonceMicroseconds {
		scale = "microsecond"
	}
	exMsg := ""
	if e.Message != "" {
		exMsg = fmt.Sprintf(" (last answer: %s)", e.Message)
	}
	out.Message = sanitize(fmt.Sprintf("%s refused this key's %s nonces, taken from the operator's clock and retried for a moment%s. "+
		"Another client of the key has sent a larger nonce: either its clock runs ahead of the operator's "+
		"(sync the clocks, or give the operator and the bot separate keys), or it counts in a larger unit "+
		"(declare it in spec.validation.nonceUnit, e.g. Microseconds for Bitfinex's own SDKs; ccxt sends Milliseconds). "+
		"The operator never sends a nonce above its clock in the declared unit (%s)", e.Exchange, scale, exMsg, unit), 600)
	return &out
}
