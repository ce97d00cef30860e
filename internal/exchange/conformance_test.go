package exchange_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// profile says what the conformance suite may expect of an exchange.
type profile struct {
	// mixes are canonical permission sets the exchange can express exactly.
	mixes [][]string
	// unchecked: the exchange cannot report permissions (Bitstamp).
	unchecked bool
	// passphrase: keys carry one (OKX, KuCoin).
	passphrase bool
	// timestamped: the scheme has a timestamp window, so skew is recoverable.
	timestamped bool
	// noIPReport: the permissions answer says nothing about an IP allowlist
	// (Coinbase, Bitfinex), so IPRestricted cannot be expected.
	noIPReport bool
}

var profiles = map[exchange.Name]profile{
	exchange.Binance:  {mixes: [][]string{{"read"}, {"read", "trade"}, {"read", "trade", "withdraw"}, {"read", "trade", "margin", "futures", "options"}, {"read", "transfer"}}, timestamped: true},
	exchange.Bitstamp: {mixes: [][]string{{"read"}}, unchecked: true, timestamped: true},
	exchange.Bitfinex: {mixes: [][]string{{"read"}, {"read", "trade", "margin", "futures"}, {"read", "trade", "withdraw", "margin", "futures"}, {"read", "transfer"}, {"read", "margin", "earn"}}, noIPReport: true},
	exchange.Kraken:   {mixes: [][]string{{"read"}, {"read", "trade", "margin"}, {"read", "trade", "withdraw", "margin"}, {"read", "earn"}}},
	exchange.Coinbase: {mixes: [][]string{{"read"}, {"read", "trade"}, {"read", "trade", "withdraw"}}, timestamped: true, noIPReport: true},
	exchange.OKX:      {mixes: [][]string{{"read"}, {"read", "trade"}, {"read", "trade", "withdraw"}}, passphrase: true, timestamped: true},
	exchange.Bybit:    {mixes: [][]string{{"read"}, {"read", "trade"}, {"read", "trade", "withdraw"}, {"read", "futures", "options"}, {"read", "transfer", "earn"}}, timestamped: true},
	exchange.KuCoin:   {mixes: [][]string{{"read"}, {"read", "trade"}, {"read", "trade", "withdraw"}, {"read", "transfer", "margin", "futures", "earn"}}, passphrase: true, timestamped: true},
}

// newCredentials makes key material of the right shape for n.
func newCredentials(t *testing.T, n exchange.Name) exchange.Credentials {
	t.Helper()
	return exchangetest.NewCredentials(n)
}

func newECPEM(t *testing.T) string {
	t.Helper()
	return exchangetest.ECPrivateKeyPEM()
}

type harness struct {
	sim    *simulator.Simulator
	srv    *httptest.Server
	prober *exchange.Prober
}

func newHarness(t *testing.T, opts exchange.Options) *harness {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	if opts.RateLimits == nil {
		// The suite fires many requests back to back; the production
		// limits would only slow it down.
		opts.RateLimits = map[exchange.Name]exchange.RateLimit{}
		for _, n := range exchange.Names {
			opts.RateLimits[n] = exchange.RateLimit{PerSecond: 1000, Burst: 1000}
		}
	}
	return &harness{sim: sim, srv: srv, prober: exchange.NewProber(opts)}
}

func (h *harness) register(t *testing.T, n exchange.Name, perms ...string) exchange.Credentials {
	t.Helper()
	c := newCredentials(t, n)
	h.sim.AddKey(simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: perms})
	return c
}

func (h *harness) probe(n exchange.Name, c exchange.Credentials) (*exchange.Permissions, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.prober.Probe(ctx, exchange.Request{Exchange: n, Endpoint: simulator.BaseURL(h.srv.URL, n), Credentials: c})
}

func expectKind(t *testing.T, err error, want exchange.Kind) *exchange.Error {
	t.Helper()
	e, ok := exchange.AsError(err)
	if !ok {
		t.Fatalf("want %s error, got %v", want, err)
	}
	if e.Kind != want {
		t.Fatalf("want %s, got %s (%v)", want, e.Kind, err)
	}
	return e
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConformance runs every outcome the operator relies on against each
// exchange's client and the simulator.
func TestConformance(t *testing.T) {
	for _, n := range exchange.Names {
		prof := profiles[n]
		t.Run(string(n), func(t *testing.T) {
			h := newHarness(t, exchange.Options{})

			t.Run("permission mixes", func(t *testing.T) {
				for _, mix := range prof.mixes {
					c := h.register(t, n, mix...)
					p, err := h.probe(n, c)
					if err != nil {
						t.Fatalf("mix %v: %v", mix, err)
					}
					if !equal(p.Canonical, mix) {
						t.Errorf("mix %v: got canonical %v (native %v)", mix, p.Canonical, p.Native)
					}
					if len(p.Native) == 0 && !prof.unchecked {
						t.Errorf("mix %v: no native scopes reported", mix)
					}
					if prof.unchecked && len(p.Unchecked) == 0 {
						t.Errorf("mix %v: exchange cannot report permissions, but none are marked unchecked", mix)
					}
					if p.IPRestriction == exchange.IPRestricted {
						t.Errorf("mix %v: reported IP-restricted without an allowlist", mix)
					}
				}
			})

			t.Run("ip allowlist that includes us", func(t *testing.T) {
				c := newCredentials(t, n)
				h.sim.AddKey(simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read"}, AllowedIPs: []string{"127.0.0.1"}})
				p, err := h.probe(n, c)
				if err != nil {
					t.Fatal(err)
				}
				if !prof.unchecked && !prof.noIPReport && !(p.IPRestriction == exchange.IPRestricted) {
					t.Errorf("want IPRestricted, got %+v", p)
				}
			})

			t.Run("ip not allowed", func(t *testing.T) {
				c := newCredentials(t, n)
				h.sim.AddKey(simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read"}, AllowedIPs: []string{"203.0.113.7"}})
				_, err := h.probe(n, c)
				expectKind(t, err, exchange.IPNotAllowed)
			})

			t.Run("unknown key", func(t *testing.T) {
				_, err := h.probe(n, newCredentials(t, n))
				expectKind(t, err, exchange.InvalidKey)
			})

			t.Run("revoked", func(t *testing.T) {
				c := h.register(t, n, "read")
				if _, err := h.probe(n, c); err != nil {
					t.Fatal(err)
				}
				h.sim.SetState(n, c.APIKey, simulator.Revoked)
				_, err := h.probe(n, c)
				expectKind(t, err, exchange.InvalidKey)
			})

			t.Run("inactive", func(t *testing.T) {
				c := h.register(t, n, "read")
				h.sim.SetState(n, c.APIKey, simulator.Inactive)
				_, err := h.probe(n, c)
				expectKind(t, err, exchange.Inactive)
			})

			t.Run("wrong secret", func(t *testing.T) {
				c := h.register(t, n, "read")
				c.APISecret = newCredentials(t, n).APISecret
				_, err := h.probe(n, c)
				expectKind(t, err, exchange.InvalidSignature)
			})

			if prof.passphrase {
				t.Run("wrong passphrase", func(t *testing.T) {
					c := h.register(t, n, "read")
					c.Passphrase += "x"
					_, err := h.probe(n, c)
					expectKind(t, err, exchange.WrongPassphrase)
				})
			}

			if n == exchange.Bitstamp {
				t.Run("no read permission", func(t *testing.T) {
					c := h.register(t, n, "trade")
					_, err := h.probe(n, c)
					expectKind(t, err, exchange.PermissionDenied)
				})
			}

			t.Run("rate limited with retry-after", func(t *testing.T) {
				hh := newHarness(t, exchange.Options{})
				c := hh.register(t, n, "read")
				hh.sim.SetFault(n, simulator.Fault{Kind: simulator.FaultRateLimit, RetryAfter: 7 * time.Second, Times: 1})
				_, err := hh.probe(n, c)
				e := expectKind(t, err, exchange.RateLimited)
				if e.RetryAfter != 7*time.Second {
					t.Errorf("want retry after 7s, got %s", e.RetryAfter)
				}
				// The limit applies to the egress IP: the next call for any key
				// waits it out without reaching the exchange.
				before := hh.sim.TotalRequests()
				_, err = hh.probe(n, hh.register(t, n, "read"))
				expectKind(t, err, exchange.RateLimited)
				if got := hh.sim.TotalRequests(); got != before {
					t.Errorf("called the exchange during its Retry-After: %d requests", got-before)
				}
			})

			t.Run("ban 418", func(t *testing.T) {
				hh := newHarness(t, exchange.Options{})
				c := hh.register(t, n, "read")
				hh.sim.SetFault(n, simulator.Fault{Kind: simulator.FaultBan, RetryAfter: 120 * time.Second, Times: 1})
				_, err := hh.probe(n, c)
				e := expectKind(t, err, exchange.RateLimited)
				if e.RetryAfter != 120*time.Second {
					t.Errorf("want retry after 120s, got %s", e.RetryAfter)
				}
			})

			for _, tc := range []struct {
				fault simulator.FaultKind
				want  exchange.Kind
			}{
				{simulator.FaultServerError, exchange.Unavailable},
				{simulator.FaultMaintenance, exchange.Unavailable},
				{simulator.FaultHTML, exchange.UnexpectedResponse},
				{simulator.FaultTruncatedJSON, exchange.UnexpectedResponse},
			} {
				t.Run("fault "+string(tc.fault), func(t *testing.T) {
					c := h.register(t, n, "read")
					h.sim.SetFault(n, simulator.Fault{Kind: tc.fault, Times: 1})
					_, err := h.probe(n, c)
					expectKind(t, err, tc.want)
					// The fault was one-off: the next probe succeeds.
					if _, err := h.probe(n, c); err != nil {
						t.Fatalf("after the fault: %v", err)
					}
				})
			}

			t.Run("slow answer times out", func(t *testing.T) {
				hh := newHarness(t, exchange.Options{Timeout: 200 * time.Millisecond})
				c := hh.register(t, n, "read")
				hh.sim.SetFault(n, simulator.Fault{Kind: simulator.FaultSlow, Delay: 2 * time.Second, Times: 1})
				_, err := hh.probe(n, c)
				expectKind(t, err, exchange.Unavailable)
			})

			if prof.timestamped {
				t.Run("clock skew is learned and retried once", func(t *testing.T) {
					hh := newHarness(t, exchange.Options{})
					c := hh.register(t, n, "read")
					hh.sim.SetClockSkew(-10 * time.Minute)
					if _, err := hh.probe(n, c); err != nil {
						t.Fatalf("want success after resync, got %v", err)
					}
					// The offset is remembered: the next probe is one request.
					before := hh.sim.Requests(n, c.APIKey)
					if _, err := hh.probe(n, c); err != nil {
						t.Fatal(err)
					}
					if got := hh.sim.Requests(n, c.APIKey) - before; got != 1 {
						t.Errorf("second probe made %d requests, want 1", got)
					}
				})
			}
		})
	}
}
