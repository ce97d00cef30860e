package exchange

import (
	"strings"
	"testing"
)

// permissionTables are every driver's native → canonical table.
var permissionTables = map[Name]permissionTable{
	Binance: binancePermissions, Bitfinex: bitfinexPermissions, Bitstamp: bitstampPermissions,
	Bybit: bybitPermissions, Coinbase: coinbasePermissions, Kraken: krakenPermissions,
	KuCoin: kucoinPermissions, OKX: okxPermissions,
}

// TestPermissionTablesCiteSources: every row of every driver's permission
// table grants something and says where that comes from.
func TestPermissionTablesCiteSources(t *testing.T) {
	if len(permissionTables) != len(Names) {
		t.Fatalf("%d permission tables for %d exchanges", len(permissionTables), len(Names))
	}
	for ex, table := range permissionTables {
		for _, r := range table {
			if r.Source == "" {
				t.Errorf("%s: row %s has no source", ex, r.Native)
			}
		}
	}
}

// TestGrantsAndIPs is one table for what each driver reports of a key: which
// native permission grants which canonical ones (Grants), and the IP
// allowlist (AllowedIPs with IPRestriction).
func TestGrantsAndIPs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(int, []byte) (*Permissions, error)
		body  string
		// grants maps native → canonical (comma-joined); only the natives
		// listed are checked, nil checks none.
		grants map[string]string
		// ips is the allowlist; restriction what it means.
		ips         []string
		restriction IPRestriction
	}{
		{"binance: spot-and-margin also grants margin", parseBinanceAPIRestrictions, binanceFullRestrictions, map[string]string{
			"enableSpotAndMarginTrading": "trade,margin",
			"enableReading":              "read",
			"enableFixReadOnly":          "read",
			"enableWithdrawals":          "withdraw",
			"permitsUniversalTransfer":   "transfer",
			"enableVanillaOptions":       "options",
		}, nil, IPRestricted},
		{"bybit: the wider grants", parseBybitKeyInfo, bybitGoodBody, map[string]string{
			"Options:OptionsTrade":         "futures,options",
			"Spot:SpotTrade":               "trade,margin",
			"Derivatives:DerivativesTrade": "futures,options",
			"ContractTrade:Order":          "futures",
			"Wallet:Withdraw":              "withdraw",
			"Exchange:ExchangeHistory":     "trade",
			"Earn:Earn":                    "earn",
		}, nil, ""},
		{"bybit: * is any IP", parseBybitKeyInfo, bybitBody("0", `{}`, `["*"]`), nil, nil, IPUnrestricted},
		{"bybit: empty list is any IP", parseBybitKeyInfo, bybitBody("0", `{}`, `[]`), nil, nil, IPUnrestricted},
		{"bybit: null is any IP", parseBybitKeyInfo, bybitBody("0", `{}`, `null`), nil, nil, IPUnrestricted},
		{"bybit: a list", parseBybitKeyInfo, bybitBody("0", `{}`, `["1.2.3.4","5.6.7.8"]`), nil, []string{"1.2.3.4", "5.6.7.8"}, IPRestricted},
		{"bybit: one comma-joined entry", parseBybitKeyInfo, bybitBody("0", `{}`, `["1.2.3.4,5.6.7.8"]`), nil, []string{"1.2.3.4", "5.6.7.8"}, IPRestricted},
		{"kucoin: documented spellings", parseKuCoinKeyInfo, kucoinBody("General,futures,Transfer,Mystery", ""), map[string]string{
			"Futures":  "transfer,futures",
			"General":  "read",
			"Transfer": "withdraw",
			"Mystery":  "",
		}, nil, ""},
		{"kucoin: masked allowlist", parseKuCoinKeyInfo, kucoinBody("General", "203.**.154, 103.**.34"), nil, []string{"203.**.154", "103.**.34"}, IPRestricted},
		{"kraken: order rights open margin positions, no allowlist is any IP", parseKrakenKeyInfo, `{"error":[],"result":{"permissions":["query-funds","query-open-trades","modify-trades","withdraw-funds"],"ipAllowlist":[],"validUntil":0,"createdTime":1772542900}}`, map[string]string{
			"modify-trades":     "trade,margin",
			"query-funds":       "read",
			"query-open-trades": "read",
			"withdraw-funds":    "withdraw",
		}, nil, IPUnrestricted},
		{"kraken: an allowlist", parseKrakenKeyInfo, `{"error":[],"result":{"permissions":["query-ledger"],"ipAllowlist":["203.0.113.9","198.51.100.4"],"validUntil":0,"createdTime":1700000000}}`, nil, []string{"198.51.100.4", "203.0.113.9"}, IPRestricted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.parse(200, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, g := range p.Grants {
				if _, dup := got[g.Native]; dup {
					t.Errorf("%s appears twice in Grants", g.Native)
				}
				got[g.Native] = strings.Join(g.Canonical, ",")
			}
			for native, want := range tc.grants {
				if got[native] != want {
					t.Errorf("%s grants %q, want %q", native, got[native], want)
				}
			}
			if tc.restriction == "" {
				return
			}
			if strings.Join(p.AllowedIPs, ",") != strings.Join(tc.ips, ",") || p.IPRestriction != tc.restriction {
				t.Errorf("allowlist %v (%s), want %v (%s)", p.AllowedIPs, p.IPRestriction, tc.ips, tc.restriction)
			}
		})
	}
}
