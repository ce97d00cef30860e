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
	// keyOrIP: one answer for an unknown key and a caller outside the
	// allowlist (Binance -2015), so both are KeyOrIPRejected.
	keyOrIP bool
	// inactive is what a frozen or disabled key gives, where the exchange
	// documents no such answer (default Inactive). Binance: the simulator
	// answers -1002 UNAUTHORIZED, which errors.md gives no cause: no
	// verdict.
	inactive exchange.Kind
	// ipRefused is what a caller outside the allowlist gives, where the
	// exchange documents no such answer (default IPNotAllowed). Kraken:
	// the simulator answers "EGeneral:Permission denied", which Kraken
	// documents as a missing key permission.
	ipRefused exchange.Kind
}

// Binance's enableSpotAndMarginTrading grants trade and margin together;
// Bybit's Spot:SpotTrade also trades spot margin and Options:OptionsTrade
// also USDC perpetuals: those mixes include what the native implies.
var profiles = map[exchange.Name]profile{
	exchange.Binance:  {mixes: [][]string{{"read"}, {"read", "trade", "margin"}, {"read", "trade", "withdraw", "margin"}, {"read", "trade", "margin", "futures", "options"}, {"read", "transfer"}, {"read", "margin"}}, timestamped: true, keyOrIP: true, inactive: exchange.UnexpectedResponse},
	exchange.Bitstamp: {mixes: [][]string{{"read"}}, unchecked: true, timestamped: true},
	exchange.Bitfinex: {mixes: [][]string{{"read"}, {"read", "trade", "margin", "futures"}, {"read", "trade", "withdraw", "margin", "futures"}, {"read", "transfer"}, {"read", "margin", "earn"}}, noIPReport: true},
	exchange.Kraken:   {mixes: [][]string{{"read"}, {"read", "trade", "margin"}, {"read", "trade", "withdraw", "margin"}, {"read", "earn"}}, ipRefused: exchange.PermissionDenied},
	exchange.Coinbase: {mixes: [][]string{{"read"}, {"read", "trade", "futures", "options"}, {"read", "trade", "withdraw", "transfer", "futures", "options"}, {"read", "withdraw", "transfer"}}, timestamped: true, noIPReport: true},
	exchange.OKX:      {mixes: [][]string{{"read"}, {"read", "trade", "transfer", "margin", "futures", "options", "earn"}, {"read", "trade", "withdraw", "transfer", "margin", "futures", "options", "earn"}}, passphrase: true, timestamped: true},
	exchange.Bybit:    {mixes: [][]string{{"read"}, {"read", "trade", "margin"}, {"read", "trade", "withdraw", "margin"}, {"read", "futures"}, {"read", "futures", "options"}, {"read", "transfer", "earn"}}, timestamped: true},
	exchange.KuCoin:   {mixes: [][]string{{"read"}, {"read", "trade", "transfer"}, {"read", "trade", "withdraw", "transfer"}, {"read", "transfer", "margin", "futures", "earn"}}, passphrase: true, timestamped: true},
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
				if prof.keyOrIP {
					if e := expectKind(t, err, exchange.KeyOrIPRejected); e.IP != "127.0.0.1" {
						t.Errorf("IP %q, want the caller's 127.0.0.1", e.IP)
					}
					return
				}
				want := exchange.IPNotAllowed
				if prof.ipRefused != "" {
					want = prof.ipRefused
				}
				expectKind(t, err, want)
			})

			unknownKey := exchange.InvalidKey
			if prof.keyOrIP {
				unknownKey = exchange.KeyOrIPRejected
			}
			t.Run("unknown key", func(t *testing.T) {
				_, err := h.probe(n, newCredentials(t, n))
				expectKind(t, err, unknownKey)
			})

			t.Run("revoked", func(t *testing.T) {
				c := h.register(t, n, "read")
				if _, err := h.probe(n, c); err != nil {
					t.Fatal(err)
				}
				h.sim.SetState(n, c.APIKey, simulator.Revoked)
				_, err := h.probe(n, c)
				expectKind(t, err, unknownKey)
			})

			t.Run("inactive", func(t *testing.T) {
				c := h.register(t, n, "read")
				h.sim.SetState(n, c.APIKey, simulator.Inactive)
				_, err := h.probe(n, c)
				want := exchange.Inactive
				if prof.inactive != "" {
					want = prof.inactive
				}
				expectKind(t, err, want)
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
				before := hh.sim.TotalRequests()
				_, err = hh.probe(n, hh.register(t, n, "read"))
				if exchange.CapabilitiesOf(n).PerKeyRateLimits {
					// The limit counts one account's requests: another
					// key goes on.
					if err != nil || hh.sim.TotalRequests() != before+1 {
						t.Errorf("a per-account 429 held another key back: %v", err)
					}
					return
				}
				// The limit applies to the egress IP: the next call for any key
				// waits it out without reaching the exchange.
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

// TestCoinbaseKeyKinds: every secret shape a CDP key comes in signs a token
// the simulator verifies with its own code; material that is none of them
// is refused before any request; a token signed with another Ed25519 key is
// refused by the simulator.
func TestCoinbaseKeyKinds(t *testing.T) {
	h := newHarness(t, exchange.Options{})
	n := exchange.Coinbase
	for name, secret := range map[string]string{
		"ed25519 base64 of 64 bytes (default)": exchangetest.Ed25519Base64(),
		"ed25519 base64 of the 32-byte seed":   exchangetest.Ed25519SeedBase64(),
		"ed25519 pkcs8 pem":                    exchangetest.Ed25519PKCS8PEM(),
		"ec sec1 pem":                          newECPEM(t),
	} {
		t.Run(name, func(t *testing.T) {
			c := exchange.Credentials{APIKey: exchangetest.CoinbaseKeyName(), APISecret: secret}
			h.sim.AddKey(simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: secret, Permissions: []string{"read"}})
			if err := exchange.CheckCredentials(n, c); err != nil {
				t.Fatalf("CheckCredentials: %v", err)
			}
			p, err := h.probe(n, c)
			if err != nil {
				t.Fatal(err)
			}
			if !equal(p.Canonical, []string{"read"}) || p.IPRestriction != exchange.IPUnknown {
				t.Errorf("got %+v", p)
			}
		})
	}

	t.Run("garbage is malformed", func(t *testing.T) {
		c := exchange.Credentials{APIKey: exchangetest.CoinbaseKeyName(), APISecret: "not-a-key"}
		if err := exchange.CheckCredentials(n, c); err == nil {
			t.Fatal("CheckCredentials accepted garbage")
		}
		before := h.sim.TotalRequests()
		_, err := h.probe(n, c)
		expectKind(t, err, exchange.InvalidKey)
		if h.sim.TotalRequests() != before {
			t.Error("malformed material reached the exchange")
		}
	})

	t.Run("wrong ed25519 key", func(t *testing.T) {
		c := exchange.Credentials{APIKey: exchangetest.CoinbaseKeyName(), APISecret: exchangetest.Ed25519Base64()}
		h.sim.AddKey(simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: c.APISecret, Permissions: []string{"read"}})
		c.APISecret = exchangetest.Ed25519Base64()
		_, err := h.probe(n, c)
		expectKind(t, err, exchange.InvalidSignature)
	})
}

// TestCoinbaseNativeTrade: a key holding can_trade alone is reported with
// everything trade places orders on.
func TestCoinbaseNativeTrade(t *testing.T) {
	h := newHarness(t, exchange.Options{})
	c := newCredentials(t, exchange.Coinbase)
	h.sim.AddKey(simulator.Key{Exchange: exchange.Coinbase, APIKey: c.APIKey, Secret: c.APISecret, Native: []string{"can_trade"}})
	p, err := h.probe(exchange.Coinbase, c)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(p.Native, []string{"can_trade"}) || !equal(p.Canonical, []string{"trade", "futures", "options"}) {
		t.Errorf("got native %v canonical %v", p.Native, p.Canonical)
	}
	if len(p.Grants) != 1 || p.Grants[0].Native != "can_trade" || !equal(p.Grants[0].Canonical, p.Canonical) {
		t.Errorf("grants %+v", p.Grants)
	}
}

// Binance keys of all three types verify against the simulator, which holds
// only the public key of an Ed25519 or RSA key; a secret of the wrong key is
// an invalid signature.
func TestConformanceBinanceKeyTypes(t *testing.T) {
	h := newHarness(t, exchange.Options{})
	ed, edPub := exchangetest.BinanceEd25519Credentials()
	rsa8, rsa8Pub := exchangetest.BinanceRSACredentials(false)
	rsa1, rsa1Pub := exchangetest.BinanceRSACredentials(true)
	hmacCreds := exchangetest.NewCredentials(exchange.Binance)
	for _, tc := range []struct {
		name   string
		creds  exchange.Credentials
		stored string
	}{
		{"HMAC", hmacCreds, hmacCreds.APISecret},
		{"Ed25519", ed, edPub},
		{"RSA PKCS#8", rsa8, rsa8Pub},
		{"RSA PKCS#1", rsa1, rsa1Pub},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.sim.AddKey(simulator.Key{Exchange: exchange.Binance, APIKey: tc.creds.APIKey, Secret: tc.stored, Permissions: []string{"read", "trade", "margin"}})
			p, err := h.probe(exchange.Binance, tc.creds)
			if err != nil {
				t.Fatal(err)
			}
			if !equal(p.Canonical, []string{"read", "trade", "margin"}) {
				t.Errorf("canonical %v", p.Canonical)
			}
		})
	}
	for _, tc := range []struct {
		name       string
		registered exchange.Credentials
		secret     string
	}{
		{"Ed25519 key, another Ed25519 secret", ed, func() string { c, _ := exchangetest.BinanceEd25519Credentials(); return c.APISecret }()},
		{"Ed25519 key, an RSA secret", ed, rsa8.APISecret},
		{"RSA key, the other RSA secret", rsa8, rsa1.APISecret},
		{"RSA key, an HMAC secret", rsa1, hmacCreds.APISecret},
	} {
		t.Run("wrong secret: "+tc.name, func(t *testing.T) {
			c := tc.registered
			c.APISecret = tc.secret
			_, err := h.probe(exchange.Binance, c)
			expectKind(t, err, exchange.InvalidSignature)
		})
	}
}
