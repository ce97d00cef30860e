package endpoint

import (
	"slices"
	"strings"
	"testing"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
)

func TestEveryExchangeHasOfficialHosts(t *testing.T) {
	var names []string
	for _, n := range exchange.Names {
		names = append(names, string(n))
		if len(Official(string(n))) == 0 {
			t.Errorf("%s has no official hosts", n)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, Exchanges()) {
		t.Fatalf("endpoint table covers %v, drivers are %v", Exchanges(), names)
	}
	h := Official("binance")
	h[0] = "evil.example"
	if Official("binance")[0] != "api.binance.com" {
		t.Fatal("Official hands out the table itself")
	}
}

func TestCheck(t *testing.T) {
	strict := Policy{}
	insecure := Policy{AllowInsecure: true}
	allowed := Policy{Allowed: []string{"https://Proxy.Corp.example:8443/binance/", "https://eu.bitstamp.example"}}
	cases := []struct {
		name     string
		p        Policy
		exchange string
		endpoint string
		// wantErr is a substring of the error; "" means the endpoint passes.
		wantErr string
	}{
		{"default host", strict, "binance", "", ""},
		{"official", strict, "binance", "https://api.binance.com", ""},
		{"official trailing slash", strict, "binance", "https://api.binance.com/", ""},
		{"official explicit 443", strict, "binance", "https://api.binance.com:443", ""},
		{"official regional cluster", strict, "binance", "https://api-gcp.binance.com", ""},
		{"testnet", strict, "binance", "https://testnet.binance.vision", ""},
		{"uppercase official host is the same host", strict, "binance", "HTTPS://API.BINANCE.COM", ""},
		{"bybit demo", strict, "bybit", "https://api-demo.bybit.com", ""},
		{"bybit regional", strict, "bybit", "https://api.bybit.kz", ""},
		{"okx eea", strict, "okx", "https://eea.okx.com", ""},
		{"kucoin", strict, "kucoin", "https://api.kucoin.com", ""},
		{"kraken", strict, "kraken", "https://api.kraken.com", ""},
		{"coinbase", strict, "coinbase", "https://api.coinbase.com", ""},
		{"bitstamp", strict, "bitstamp", "https://www.bitstamp.net", ""},
		{"bitfinex", strict, "bitfinex", "https://api.bitfinex.com", ""},

		{"unknown exchange", strict, "mtgox", "", "unknown exchange"},
		{"another exchange's host", strict, "binance", "https://api.kraken.com", FlagAllowed},
		{"Binance.US is another exchange", strict, "binance", "https://api.binance.us", FlagAllowed},
		{"look-alike suffix", strict, "binance", "https://api.binance.com.evil.io", `"api.binance.com.evil.io" is not an official binance`},
		{"look-alike prefix", strict, "binance", "https://evilapi.binance.com", FlagAllowed},
		{"userinfo trick", strict, "binance", "https://api.binance.com@evil.io", "userinfo"},
		{"userinfo on official host", strict, "binance", "https://user:pw@api.binance.com", "userinfo"},
		{"encoded at sign", strict, "binance", "https://api.binance.com%40evil.io", "endpoint"},
		{"backslash trick", strict, "binance", `https://evil.io\@api.binance.com`, "backslash"},
		{"trailing dot", strict, "binance", "https://api.binance.com.", "dot"},
		{"IDN look-alike (Cyrillic a)", strict, "binance", "https://\u0430pi.binance.com", FlagAllowed},
		{"punycode look-alike", strict, "binance", "https://xn--pi-7ld.binance.com", FlagAllowed},
		{"http downgrade", strict, "binance", "http://api.binance.com", "use https://api.binance.com"},
		{"http downgrade even with the insecure flag", insecure, "binance", "http://api.binance.com", "plain http"},
		{"other port on official host", strict, "binance", "https://api.binance.com:8443", FlagAllowed},
		{"path on official host", strict, "binance", "https://api.binance.com/sapi", "path"},
		{"dot path", strict, "binance", "https://api.binance.com/.", "path"},
		{"query", strict, "binance", "https://api.binance.com?x=https://evil.io", "query"},
		{"bare query", strict, "binance", "https://api.binance.com/?", "query"},
		{"fragment", strict, "binance", "https://evil.io#api.binance.com", "fragment"},
		{"space", strict, "binance", "https://api.binance.com /x", "space"},
		{"IP literal", strict, "binance", "https://52.84.150.1", FlagAllowed},
		{"IPv6 literal", strict, "binance", "https://[2001:db8::1]", FlagAllowed},
		{"not http", strict, "binance", "ftp://api.binance.com", "http or https"},
		{"no host", strict, "binance", "https:///path", "no host"},
		{"opaque", strict, "binance", "https:api.binance.com", "no host"},
		{"relative", strict, "binance", "api.binance.com", "http or https"},

		{"loopback without the flag", strict, "binance", "https://127.0.0.1:1", FlagInsecure},
		{"localhost without the flag", strict, "binance", "http://localhost:18080/binance", FlagInsecure},
		{"loopback http with the flag", insecure, "binance", "http://127.0.0.1:18080/binance", ""},
		{"loopback https with the flag", insecure, "binance", "https://127.0.0.2:1", ""},
		{"localhost with the flag", insecure, "okx", "http://localhost:18080/okx", ""},
		{"LOCALHOST with the flag", insecure, "okx", "http://LOCALHOST:18080", ""},
		{"IPv6 loopback with the flag", insecure, "okx", "http://[::1]:18080/okx", ""},
		{"loopback userinfo with the flag", insecure, "okx", "http://u@127.0.0.1:18080", "userinfo"},
		{"localhost subdomain with the flag", insecure, "okx", "http://evil.localhost:18080", FlagAllowed},
		{"short loopback form is not recognised", insecure, "okx", "http://127.1:18080", FlagAllowed},
		{"unspecified address with the flag", insecure, "okx", "http://0.0.0.0:18080", FlagAllowed},
		{"private address with the flag", insecure, "okx", "http://10.0.0.1:18080", FlagAllowed},
		{"metadata address with the flag", insecure, "okx", "http://169.254.169.254", FlagAllowed},

		{"allowed base URL", allowed, "binance", "https://proxy.corp.example:8443/binance", ""},
		{"allowed, any case and trailing slash", allowed, "binance", "HTTPS://PROXY.CORP.EXAMPLE:8443/binance/", ""},
		{"allowed serves every exchange", allowed, "kraken", "https://eu.bitstamp.example/", ""},
		{"allowed with default port spelled out", allowed, "bitstamp", "https://eu.bitstamp.example:443", ""},
		{"allowed host, other path", allowed, "binance", "https://proxy.corp.example:8443/kraken", FlagAllowed},
		{"allowed host, other port", allowed, "binance", "https://proxy.corp.example/binance", FlagAllowed},
		{"allowed host, path below", allowed, "binance", "https://proxy.corp.example:8443/binance/x", FlagAllowed},
		{"allowed host over http", allowed, "binance", "http://proxy.corp.example:8443/binance", FlagAllowed},
		{"allowed host look-alike", allowed, "binance", "https://proxy.corp.example.evil.io:8443/binance", FlagAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Check(c.exchange, c.endpoint)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Check(%q, %q) = %v, want it to pass", c.exchange, c.endpoint, err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("Check(%q, %q) passed, want an error with %q", c.exchange, c.endpoint, c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("Check(%q, %q) = %q, want it to mention %q", c.exchange, c.endpoint, err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Fatalf("error quotes userinfo: %v", err)
			}
		})
	}
}

// Every refusal tells the user what would admit the endpoint.
func TestCheckErrorsNameAFlag(t *testing.T) {
	for _, ep := range []string{"https://evil.example", "http://api.binance.com", "https://api.binance.com:1", "https://api.binance.com/x", "https://a@evil.example", "http://127.0.0.1"} {
		err := Policy{}.Check("binance", ep)
		if err == nil || !strings.Contains(err.Error(), "--allow") {
			t.Errorf("Check(%q) = %v: want a message naming a flag", ep, err)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		p       Policy
		wantErr string
	}{
		{Policy{}, ""},
		{Policy{Allowed: []string{"https://proxy.example", "https://proxy.example:8443/binance"}}, ""},
		{Policy{Allowed: []string{"http://sim.internal:8080"}, AllowInsecure: true}, ""},
		{Policy{Allowed: []string{"http://sim.internal:8080"}}, FlagInsecure},
		{Policy{Allowed: []string{"proxy.example"}}, "http or https"},
		{Policy{Allowed: []string{""}}, FlagAllowed},
		{Policy{Allowed: []string{"https://u:p@proxy.example"}}, "userinfo"},
		{Policy{Allowed: []string{"https://proxy.example/?a=b"}}, "query"},
		{Policy{Allowed: []string{"https://"}}, "no host"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("Validate(%v) = %v", c.p.Allowed, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), FlagAllowed)):
			t.Errorf("Validate(%v) = %v, want an error naming %s and mentioning %q", c.p.Allowed, err, FlagAllowed, c.wantErr)
		}
	}
}
