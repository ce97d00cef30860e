package exchange

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a client-side token bucket for one exchange, shared by every
// key of that exchange: the exchanges limit per egress IP, so a cluster with a
// thousand keys must not fire a thousand requests at once.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// DefaultRateLimits stays well under each exchange's documented per-IP limit
// for the probe endpoint.
var DefaultRateLimits = map[Name]RateLimit{
	Binance:  {PerSecond: 10, Burst: 20}, // 6000 weight/min per IP; the probe weighs 1
	Bitstamp: {PerSecond: 5, Burst: 10},  // 400/s and 10000/10min per account
	Bitfinex: {PerSecond: 1, Burst: 5},   // authenticated endpoints: 90/min per IP
	Kraken:   {PerSecond: 5, Burst: 10},  // counters are per key; keep the IP calm
	Coinbase: {PerSecond: 10, Burst: 20}, // 30/s per key
	OKX:      {PerSecond: 2, Burst: 5},   // account/config: 5 per 2 s per user
	Bybit:    {PerSecond: 10, Burst: 20}, // 600 per 5 s per IP
	KuCoin:   {PerSecond: 10, Burst: 20}, // 4000 per 30 s per IP (management pool)
}

// Observation describes one HTTP request to an exchange, for metrics.
type Observation struct {
	Exchange Name
	// Outcome is "ok" or the Kind of the error the request ended in.
	Outcome  string
	Duration time.Duration
}

// Options configures a Prober. The zero value is usable.
type Options struct {
	// UserAgent names the operator and its version.
	UserAgent string
	// Timeout bounds one HTTP request, including reading the body.
	Timeout time.Duration
	// RateLimits overrides DefaultRateLimits per exchange.
	RateLimits map[Name]RateLimit
	// Now is the clock; tests inject a fake one.
	Now func() time.Time
	// Transport replaces the default transport (tests). TLS verification is
	// never turned off by this package.
	Transport http.RoundTripper
	// MaxBodyBytes limits how much of a response is read.
	MaxBodyBytes int64
	// Observe, when set, is called after every HTTP request.
	Observe func(Observation)
	// Random is the source of per-request randomness (Bitstamp's UUID
	// nonce, Coinbase's JWT nonce); crypto/rand when nil. The conformance
	// tests fix it to compare signed requests byte for byte.
	Random io.Reader
}

const (
	defaultTimeout      = 10 * time.Second
	defaultMaxBodyBytes = 1 << 20
	defaultUserAgent    = "exchange-key-operator/dev"
)

// Prober probes keys on every supported exchange. It is safe for concurrent
// use and meant to be shared by the whole manager.
type Prober struct {
	opts     Options
	clients  map[Name]*http.Client
	limiters map[Name]*rate.Limiter

	mu      sync.Mutex
	offsets map[string]time.Duration // base URL -> server time minus our time
	bans    map[string]time.Time     // base URL -> no requests before
	// nonces is the per-key counter-nonce memory (Kraken, Bitfinex).
	nonces *nonceBook
}

// NewProber builds a Prober with one HTTP client and one limiter per exchange.
func NewProber(opts Options) *Prober {
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = defaultMaxBodyBytes
	}
	if opts.UserAgent == "" {
		opts.UserAgent = defaultUserAgent
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Random == nil {
		opts.Random = rand.Reader
	}
	p := &Prober{
		opts:     opts,
		clients:  map[Name]*http.Client{},
		limiters: map[Name]*rate.Limiter{},
		offsets:  map[string]time.Duration{},
		bans:     map[string]time.Time{},
		nonces:   newNonceBook(),
	}
	for _, n := range Names {
		rt := opts.Transport
		if rt == nil {
			rt = newTransport()
		}
		p.clients[n] = &http.Client{Transport: rt, Timeout: opts.Timeout}
		rl, ok := opts.RateLimits[n]
		if !ok {
			rl = DefaultRateLimits[n]
		}
		p.limiters[n] = rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst)
	}
	return p
}

// Probe makes the exchange's permission request for req's key.
func (p *Prober) Probe(ctx context.Context, req Request) (*Permissions, error) {
	d, ok := drivers[req.Exchange]
	if !ok {
		return nil, &Error{Kind: UnexpectedResponse, Exchange: req.Exchange, Message: "unsupported exchange"}
	}
	if err := CheckCredentials(req.Exchange, req.Credentials); err != nil {
		return nil, &Error{Kind: InvalidKey, Exchange: req.Exchange, Message: err.Error()}
	}
	base := strings.TrimRight(req.Endpoint, "/")
	if base == "" {
		base = d.defaultBase()
	}
	c := &call{p: p, ex: req.Exchange, base: base, creds: req.Credentials, demo: req.Demo}
	counterNonce := CapabilitiesOf(req.Exchange).CounterNonce
	if counterNonce {
		c.nonce = nonceIDOf(req.Exchange, req.Credentials.APIKey)
		// The declared unit, never a larger one; probes of one key run
		// one at a time (nonce.go).
		release, err := p.nonces.acquire(ctx, c.nonce, req.NonceUnit, p.opts.Now())
		if err != nil {
			return nil, &Error{Kind: Unavailable, Exchange: req.Exchange, Message: "gave up waiting for another probe of this key: " + transportMessage(err)}
		}
		defer release()
	}
	perms, err := d.probe(ctx, c)
	if KindOf(err) == ClockSkew {
		if st, ok := d.(serverTimer); ok {
			sent := p.opts.Now()
			if server, terr := st.serverTime(ctx, c); terr == nil {
				// Half the round trip is the best guess of when the server
				// read its clock.
				rtt := p.opts.Now().Sub(sent)
				p.setOffset(base, server.Sub(sent.Add(rtt/2)))
				perms, err = d.probe(ctx, c)
			}
		}
	}
	if counterNonce {
		unit := unitOrDefault(req.NonceUnit)
		err = p.retryNonce(ctx, unit, err, func() (e error) { perms, e = d.probe(ctx, c); return e })
		if err != nil {
			perms = nil
		} else if perms != nil {
			perms.NonceUnit = unit
		}
	}
	p.escalate(base, err)
	return perms, err
}

// escalate applies a rate limit's scope, once for every driver and every
// call path: a limit on the egress IP holds every key of this base URL back;
// a limit on one key or account is left to that key's backoff.
func (p *Prober) escalate(base string, err error) {
	if e, ok := AsError(err); ok && e.Kind == RateLimited && e.Scope == ScopeEndpoint && e.RetryAfter > 0 {
		p.ban(base, e.RetryAfter)
	}
}

// ClockOffset reports the remembered server-minus-local offset for a base URL.
func (p *Prober) ClockOffset(base string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offsets[strings.TrimRight(base, "/")]
}

func (p *Prober) setOffset(base string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offsets[base] = d
}

func (p *Prober) banned(base string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if until, ok := p.bans[base]; ok {
		if left := until.Sub(p.opts.Now()); left > 0 {
			return left
		}
		delete(p.bans, base)
	}
	return 0
}

func (p *Prober) ban(base string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	until := p.opts.Now().Add(d)
	if until.After(p.bans[base]) {
		p.bans[base] = until
	}
}

// CredentialLimits are the largest API key, secret and passphrase, in
// bytes, the operator sends to an exchange (docs/exchanges.md#key-sizes).
// The key travels in a request header and the secret is parsed and signed
// with: material beyond them is refused before any request, so that a
// tenant's Secret cannot make the operator send megabyte headers to an
// exchange on the install's shared budget.
type CredentialLimits struct {
	APIKey, APISecret, Passphrase int
}

// No exchange's API documentation states a maximum length for its keys,
// secrets or passphrases, so the bounds are the operator's own: far above
// the longest material each exchange issues (a Binance RSA-4096 private
// key is about 3.3 KB of PEM; Coinbase CDP key names about 100 bytes;
// OKX and KuCoin passphrases are set by the user when creating the key),
// and far below what a header or a parser should carry.
var defaultCredentialLimits = CredentialLimits{APIKey: 1 << 10, APISecret: 4 << 10, Passphrase: 1 << 10}

// LimitsOf returns the credential size limits of exchange n.
func LimitsOf(Name) CredentialLimits { return defaultCredentialLimits }

// CheckCredentials rejects key material that cannot be right for the
// exchange, without calling it. Messages name the field, never its value.
func CheckCredentials(n Name, c Credentials) error {
	lim := LimitsOf(n)
	for _, f := range []struct {
		name  string
		value string
		max   int
	}{{"API key", c.APIKey, lim.APIKey}, {"API secret", c.APISecret, lim.APISecret}, {"passphrase", c.Passphrase, lim.Passphrase}} {
		if len(f.value) > f.max {
			return fmt.Errorf("%s is %d bytes, more than the %d bytes the operator accepts for %s (docs/exchanges.md#key-sizes); nothing was sent to the exchange", f.name, len(f.value), f.max, n)
		}
	}
	if c.APIKey == "" {
		return fmt.Errorf("API key is empty")
	}
	if strings.TrimSpace(c.APIKey) != c.APIKey || strings.ContainsAny(c.APIKey, " \t\r\n") {
		return fmt.Errorf("API key contains whitespace (a trailing newline from a file?)")
	}
	if c.APISecret == "" {
		return fmt.Errorf("API secret is empty")
	}
	if CapabilitiesOf(n).NeedsPassphrase && c.Passphrase == "" {
		return fmt.Errorf("%s keys need a passphrase, and it is empty", n)
	}
	if d, ok := drivers[n]; ok {
		if cc, ok := d.(credentialChecker); ok {
			return cc.checkCredentials(c)
		}
	}
	if strings.ContainsAny(c.APISecret, " \t\r\n") {
		return fmt.Errorf("API secret contains whitespace (a trailing newline from a file?)")
	}
	return nil
}
