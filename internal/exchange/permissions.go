package exchange

import "sort"

// permissionRow is one native permission of one exchange and every canonical
// permission it grants, with the documentation that says so. Each driver keeps
// its rows in one table (binanceGrants, okxGrants, ...) so that a reviewer can
// hold the whole mapping against the exchange's docs at once.
type permissionRow struct {
	// Native is the exchange's own name (a scope, a flag, a perm value).
	Native string
	// Grants are the canonical permissions it implies. A policy is checked
	// against all of them: OKX "trade" places futures orders, so a policy
	// that forbids futures must refuse it.
	Grants []string
	// Source is where the exchange documents what the permission allows.
	Source string
}

// permissionTable maps native names to rows.
type permissionTable []permissionRow

// lookup returns the row for native, if the table has one.
func (t permissionTable) lookup(native string) (permissionRow, bool) {
	for _, r := range t {
		if r.Native == native {
			return r, true
		}
	}
	return permissionRow{}, false
}

// grant maps the native permissions a key holds through the table: the
// canonical set (display order) and one Grant per native name that grants
// something, sorted by native name. Natives the table does not know grant
// nothing; the caller keeps them in Permissions.Native.
func (t permissionTable) grant(natives []string) ([]string, []Grant) {
	set := map[string]bool{}
	seen := map[string]bool{}
	var grants []Grant
	for _, n := range natives {
		r, ok := t.lookup(n)
		if !ok || len(r.Grants) == 0 || seen[n] {
			continue
		}
		seen[n] = true
		g := Grant{Native: n}
		for _, c := range r.Grants {
			set[c] = true
		}
		g.Canonical = canonicalSet(toSet(r.Grants))
		grants = append(grants, g)
	}
	sort.Slice(grants, func(i, j int) bool { return grants[i].Native < grants[j].Native })
	return canonicalSet(set), grants
}

func toSet(in []string) map[string]bool {
	m := make(map[string]bool, len(in))
	for _, s := range in {
		m[s] = true
	}
	return m
}

// Capabilities is what an exchange's API lets the operator do and see,
// declared once per driver.
type Capabilities struct {
	// NeedsPassphrase: keys carry a passphrase (OKX, KuCoin).
	NeedsPassphrase bool
	// ReportsPermissions: a read-only call returns the key's permissions.
	ReportsPermissions bool
	// ReportsAllowlist: the answer says whether the key is IP-restricted.
	ReportsAllowlist bool
	// ReportsExpiry: the answer may carry the key's creation or expiry time.
	ReportsExpiry bool
	// CounterNonce: requests carry a nonce that must grow per key (Kraken,
	// Bitfinex), so a probe shares a counter with the bots using the key.
	CounterNonce bool
	// SubAccountKeys: a master key can create and delete sub-account keys.
	SubAccountKeys bool
	// PerKeyRateLimits: an HTTP 429 counts against the key's account, not
	// the egress IP (OKX: "Rate limit: ... User ID"; KuCoin: private
	// endpoints "restrict account by userid"), so other keys go on.
	PerKeyRateLimits bool
}

// capabilities lists every exchange's capabilities. A test checks that it
// names exactly the registered drivers and the CRD's exchange enum.
var capabilities = map[Name]Capabilities{
	Binance:  {ReportsPermissions: true, ReportsAllowlist: true, ReportsExpiry: true, SubAccountKeys: true},
	Bitstamp: {},
	Bitfinex: {ReportsPermissions: true, CounterNonce: true},
	Kraken:   {ReportsPermissions: true, ReportsAllowlist: true, ReportsExpiry: true, CounterNonce: true},
	Coinbase: {ReportsPermissions: true},
	OKX:      {NeedsPassphrase: true, ReportsPermissions: true, ReportsAllowlist: true, SubAccountKeys: true, PerKeyRateLimits: true},
	Bybit:    {ReportsPermissions: true, ReportsAllowlist: true, ReportsExpiry: true, SubAccountKeys: true},
	KuCoin:   {NeedsPassphrase: true, ReportsPermissions: true, ReportsAllowlist: true, ReportsExpiry: true, SubAccountKeys: true, PerKeyRateLimits: true},
}

// CapabilitiesOf returns what n's API can do and report.
func CapabilitiesOf(n Name) Capabilities { return capabilities[n] }

// restrictedIf turns a reported allowlist state into the tri-state.
func restrictedIf(b bool) IPRestriction {
	if b {
		return IPRestricted
	}
	return IPUnrestricted
}
