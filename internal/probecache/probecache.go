// Package probecache shares one exchange probe result among every
// ExchangeAPIKey that holds the same key, and collapses concurrent probes of
// the same key into one request: a cluster where ten bots share a key must
// not call the exchange ten times per interval.
package probecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

// Prober is the exchange client (exchange.Prober in production).
type Prober interface {
	Probe(ctx context.Context, req exchange.Request) (*exchange.Permissions, error)
}

// Result is one probe's answer and when it was received.
type Result struct {
	Permissions *exchange.Permissions
	Err         error
	At          time.Time
	// Shared is true when the result came from another object's probe.
	Shared bool
}

// Cache is safe for concurrent use.
type Cache struct {
	prober Prober
	now    func() time.Time

	mu       sync.Mutex
	results  map[string]Result
	inflight map[string]*flight
	stores   int
}

type flight struct {
	done chan struct{}
	res  Result
}

// New returns a cache in front of p, with the given clock.
func New(p Prober, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{prober: p, now: now, results: map[string]Result{}, inflight: map[string]*flight{}}
}

// Probe returns a result for req's exact credentials received after
// freshAfter, probing when there is none. A caller passes the later of
// (now - its interval) and its own last validation, so that it never takes
// its own previous answer for a new one, while objects sharing a key share
// each other's. force skips the cache (the revalidate annotation). Transient
// failures are not cached, so that each object's own backoff decides when to
// try again.
func (c *Cache) Probe(ctx context.Context, req exchange.Request, freshAfter time.Time, force bool) Result {
	id := cacheKey(req)
	c.mu.Lock()
	if r, ok := c.results[id]; ok && !force && r.At.After(freshAfter) {
		c.mu.Unlock()
		r.Shared = true
		return r
	}
	if f, ok := c.inflight[id]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			r := f.res
			r.Shared = true
			return r
		case <-ctx.Done():
			return Result{Err: &exchange.Error{Kind: exchange.Unavailable, Exchange: req.Exchange, Message: "cancelled while waiting for a shared probe"}, At: c.now()}
		}
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[id] = f
	c.mu.Unlock()

	perms, err := c.prober.Probe(ctx, req)
	f.res = Result{Permissions: perms, Err: err, At: c.now()}

	c.mu.Lock()
	delete(c.inflight, id)
	if err == nil || !exchange.KindOf(err).Transient() {
		c.results[id] = f.res
		// Now and then drop results nobody can use any more (rotated or
		// deleted keys), so the cache does not grow without bound.
		if c.stores++; c.stores%1024 == 0 {
			c.purgeLocked(freshAfter)
		}
	} else {
		delete(c.results, id)
	}
	c.mu.Unlock()
	close(f.done)
	return f.res
}

// purgeLocked drops results received before cutoff. Caller holds mu.
func (c *Cache) purgeLocked(cutoff time.Time) {
	for id, r := range c.results {
		if r.At.Before(cutoff) {
			delete(c.results, id)
		}
	}
}

// cacheKey identifies a key by a hash over everything that decides the
// answer, secret included: two objects with the same API key but different
// secrets (one of them wrong) must not share a result, nor two that declare
// different nonce units. Only the hash is kept.
func cacheKey(r exchange.Request) string {
	h := sha256.New()
	for _, s := range []string{string(r.Exchange), r.Endpoint, boolStr(r.Demo), r.Credentials.APIKey, r.Credentials.APISecret, r.Credentials.Passphrase, string(r.NonceUnit)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
