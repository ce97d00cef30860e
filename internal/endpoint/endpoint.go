// Package endpoint decides which exchange base URLs the operator may send a
// key to. spec.endpoint is written by whoever may create an ExchangeAPIKey,
// who need not be allowed to read the namespace's Secrets: an endpoint of
// their choosing would make the operator sign (and for OKX and KuCoin, send
// the passphrase of) the namespace's keys to their host. So only each
// exchange's official hosts pass, plus what the administrator adds.
package endpoint

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Flag names, for messages that tell the user what to ask for.
const (
	FlagAllowed  = "--allowed-endpoints"
	FlagInsecure = "--allow-insecure-endpoints"
)

// official lists, per exchange, the hosts its own documentation or official
// SDK gives as REST base URLs (production, testnet, demo, regional). They
// are reached over https on the default port, with no path: the drivers
// append the API paths themselves.
//
// Left out on purpose: market-data-only hosts (data-api.binance.vision
// takes no keys), other companies' exchanges that share a brand (Binance.US,
// api.binance.us, is a separate exchange with its own keys), sandboxes that
// cannot validate keys (Coinbase's static sandbox), and hosts that only
// third-party code mentions (aws.okx.com, api.bybitglobal.com,
// api.bybit-tr.com). An administrator adds any of them with
// --allowed-endpoints.
var official = map[string][]string{
	// binance-exchange/binance-spot-api-docs rest-api.md "General API
	// Information" (api, api-gcp, api1-4); testnet/general-info.md
	// (testnet.binance.vision, api1.testnet.binance.vision);
	// demo-mode/general-info.md (demo-api.binance.com).
	"binance": {
		"api.binance.com", "api-gcp.binance.com",
		"api1.binance.com", "api2.binance.com", "api3.binance.com", "api4.binance.com",
		"testnet.binance.vision", "api1.testnet.binance.vision",
		"demo-api.binance.com",
	},
	// https://www.bitstamp.net/api/ (HTTP API v2, base www.bitstamp.net);
	// no sandbox.
	"bitstamp": {"www.bitstamp.net"},
	// https://docs.bitfinex.com/docs/rest-auth: "Authenticated endpoints
	// should use the following domain: https://api.bitfinex.com" (api-pub
	// serves public data only).
	"bitfinex": {"api.bitfinex.com"},
	// https://docs.kraken.com/rest/ (Spot REST, https://api.kraken.com/0);
	// the probe is a spot private method, so Kraken Futures hosts are out.
	"kraken": {"api.kraken.com"},
	// coinbase/coinbase-advanced-py coinbase/constants.py BASE_URL
	// (api.coinbase.com); the JWT signs this host.
	"coinbase": {"api.coinbase.com"},
	// okxapi/python-okx (domain='https://www.okx.com'); okx/agent-trade-kit
	// docs/site-compatibility.md (EEA eea.okx.com, US app.okx.com) and
	// docs/configuration.md (EEA web site my.okx.com, used as base URL by
	// older releases); ccxt okxus (us.okx.com). Demo trading uses the same
	// hosts with x-simulated-trading: 1.
	"okx": {"www.okx.com", "eea.okx.com", "my.okx.com", "app.okx.com", "us.okx.com"},
	// bybit-exchange/docs docs/v5/guide.mdx "REST API Base Endpoint"
	// (api.bybit.com, api.bytick.com, api-testnet.bybit.com and the regional
	// mainnets .nl .tr .kz georgia.ge .ae .eu .id, manepa.jp for Japan);
	// docs/v5/demo.mdx (api-demo.bybit.com); docs/p2p/guide.mdx (Hong Kong,
	// api.byhkbit.com).
	"bybit": {
		"api.bybit.com", "api.bytick.com", "api-testnet.bybit.com", "api-demo.bybit.com",
		"api.bybit.nl", "api.bybit.tr", "api.bybit.kz", "api.bybitgeorgia.ge",
		"api.bybit.ae", "api.bybit.eu", "api.bybit.id", "api.byhkbit.com",
		"api.manepa.jp", "api-testnet.manepa.jp",
	},
	// Kucoin/kucoin-universal-sdk sdk/golang/pkg/types/types_constant.go
	// (GlobalApiEndpoint, GlobalFuturesApiEndpoint, GlobalBrokerApiEndpoint).
	"kucoin": {"api.kucoin.com", "api-futures.kucoin.com", "api-broker.kucoin.com"},
}

// Official returns a copy of the official hosts of an exchange (nil for an
// unknown exchange).
func Official(exchange string) []string {
	return slices.Clone(official[exchange])
}

// Exchanges lists the exchanges that have official hosts, sorted.
func Exchanges() []string {
	names := make([]string, 0, len(official))
	for n := range official {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Policy is the manager's endpoint policy.
type Policy struct {
	// Allowed are extra base URLs (--allowed-endpoints), matched exactly
	// after normalisation (lower-case scheme and host, no trailing slash).
	Allowed []string
	// AllowInsecure (--allow-insecure-endpoints, for local simulators) also
	// admits loopback addresses over http or https, on any port and path.
	AllowInsecure bool
}

// Validate checks the administrator's Allowed list, for a clear error at
// startup rather than endpoints that never match.
func (p Policy) Validate() error {
	for _, a := range p.Allowed {
		u, err := parse(a)
		if err != nil {
			return fmt.Errorf("%s: %q: %v", FlagAllowed, a, err)
		}
		if u.Scheme == "http" && !p.AllowInsecure {
			return fmt.Errorf("%s: %q is plain http, which sends keys unencrypted; use https, or also set %s", FlagAllowed, a, FlagInsecure)
		}
	}
	return nil
}

// Check says whether a key of exchange may be sent to endpoint ("" is the
// exchange's default host). The error names the flag that would admit the
// endpoint; it quotes the host, never the whole URL (which could carry
// userinfo).
func (p Policy) Check(exchange, endpoint string) error {
	hosts, ok := official[exchange]
	if !ok {
		return fmt.Errorf("unknown exchange %q", exchange)
	}
	if endpoint == "" {
		return nil
	}
	u, err := parse(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %v: give a base URL such as https://%s, or one an administrator allowed with %s", err, hosts[0], FlagAllowed)
	}
	host := u.Hostname()
	if p.AllowInsecure && isLoopback(host) {
		return nil
	}
	norm := normalize(u)
	for _, a := range p.Allowed {
		if au, err := parse(a); err == nil && normalize(au) == norm && (au.Scheme == "https" || p.AllowInsecure) {
			return nil
		}
	}
	if slices.Contains(hosts, host) {
		switch {
		case u.Scheme != "https":
			return fmt.Errorf("endpoint http://%s is plain http; use https://%s (%s admits plain http to loopback simulators only)", host, host, FlagInsecure)
		case u.Port() != "" && u.Port() != "443":
			return fmt.Errorf("endpoint port %s is not the port of %s (443); an administrator may allow this base URL with %s", u.Port(), host, FlagAllowed)
		case strings.Trim(u.EscapedPath(), "/") != "":
			return fmt.Errorf("endpoint on %s has a path; give the base URL https://%s only, or an administrator may allow this base URL with %s", host, host, FlagAllowed)
		}
		return nil
	}
	msg := fmt.Sprintf("endpoint host %q is not an official %s API host (%s); an administrator may allow it with %s", host, exchange, strings.Join(hosts, ", "), FlagAllowed)
	if isLoopback(host) {
		msg += ", or admit loopback simulators with " + FlagInsecure
	}
	return fmt.Errorf("%s", msg)
}

// parse accepts an absolute http(s) URL with a host and nothing that could
// make the host ambiguous: no userinfo, query, fragment, backslash, space or
// control character, and a host that stays the host when the drivers append
// their paths.
func parse(raw string) (*url.URL, error) {
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' }) {
		return nil, fmt.Errorf("contains a space, backslash or control character")
	}
	if strings.ContainsAny(raw, "?#") {
		return nil, fmt.Errorf("has a query or fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("is not a valid URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("must be an http or https URL")
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("has no host")
	case u.User != nil || strings.Contains(u.Host, "@"):
		return nil, fmt.Errorf("has userinfo (user@host)")
	case strings.HasSuffix(u.Hostname(), "."):
		return nil, fmt.Errorf("host ends with a dot")
	}
	// The prober trims trailing slashes and appends "/path": the host must
	// not change when it does.
	joined, err := url.Parse(strings.TrimRight(raw, "/") + "/probe")
	if err != nil || joined.Host != u.Host {
		return nil, fmt.Errorf("is ambiguous")
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// normalize is the comparable form of a parsed base URL.
func normalize(u *url.URL) string {
	host := u.Host
	if (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80") {
		host = u.Hostname()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/")
}

// isLoopback: localhost, 127.0.0.0/8 and ::1, written as such. Names other
// than "localhost" are not resolved here: Check is pure.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}
