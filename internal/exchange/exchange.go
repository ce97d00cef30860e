// Package exchange makes each supported exchange's own signed, read-only
// request that best reveals what an API key may do, and maps the answer onto
// one canonical model: a set of permissions or a typed error.
package exchange

import (
	"context"
	"sort"
	"time"
)

// Name identifies an exchange. The values match the CRD's spec.exchange enum.
type Name string

const (
	Binance  Name = "binance"
	Bitstamp Name = "bitstamp"
	Bitfinex Name = "bitfinex"
	Kraken   Name = "kraken"
	Coinbase Name = "coinbase"
	OKX      Name = "okx"
	Bybit    Name = "bybit"
	KuCoin   Name = "kucoin"
)

// Names lists every supported exchange in a stable order.
var Names = []Name{Binance, Bitstamp, Bitfinex, Kraken, Coinbase, OKX, Bybit, KuCoin}

// Canonical permissions the operator speaks, whatever the exchange calls them.
const (
	PermRead     = "read"
	PermTrade    = "trade"
	PermWithdraw = "withdraw"
	PermTransfer = "transfer"
	PermMargin   = "margin"
	PermFutures  = "futures"
	PermOptions  = "options"
	PermEarn     = "earn"
)

// CanonicalPermissions lists the canonical permissions in display order.
var CanonicalPermissions = []string{PermRead, PermTrade, PermWithdraw, PermTransfer, PermMargin, PermFutures, PermOptions, PermEarn}

// Credentials is the raw key material. It must never be logged or copied
// into an error, an Event or a status field.
type Credentials struct {
	APIKey     string
	APISecret  string
	Passphrase string
}

// Permissions is what a probe learned about a key.
type Permissions struct {
	// Canonical is the sorted (display order) set of canonical permissions.
	Canonical []string
	// Native is the exchange's own scope names as reported, sorted.
	Native []string
	// Grants lists, for each native permission that grants anything, the
	// canonical permissions it implies (OKX trade -> trade, margin,
	// futures, options). Canonical is the union of these.
	Grants []Grant
	// Unchecked lists canonical permissions the exchange cannot report at all
	// (Bitstamp has no permissions endpoint): neither granted nor denied.
	Unchecked []string
	// IPRestriction says whether the key only works from an IP allowlist:
	// IPUnknown where the exchange supports allowlists but does not report
	// them (Bitstamp, Bitfinex, Coinbase), which is not the same as absent.
	IPRestriction IPRestriction
	// AllowedIPs is the allowlist when the exchange reports it.
	AllowedIPs []string
	// CreatedAt and ExpiresAt are set when the exchange reports them.
	CreatedAt *time.Time
	ExpiresAt *time.Time
	// NonceUnit is the unit of the accepted probe's nonce (Kraken,
	// Bitfinex, whose nonces are counters per key): always the declared
	// Request.NonceUnit, Milliseconds when none; empty for other exchanges.
	NonceUnit NonceUnit
}

// Grant is what one native permission implies in canonical terms.
type Grant struct {
	Native    string
	Canonical []string
}

// IPRestriction is a tri-state: an exchange that cannot report allowlists
// must not be read as "works from any IP".
type IPRestriction string

const (
	IPRestricted   IPRestriction = "True"
	IPUnrestricted IPRestriction = "False"
	IPUnknown      IPRestriction = "Unknown"
)

// NonceUnit is the scale of a counter nonce.
type NonceUnit string

const (
	// NonceMilliseconds is what Kraken documents and what ccxt (and so most
	// bots) send; the default, so that a probe never lifts a key's nonce
	// floor above a millisecond client's next nonce.
	NonceMilliseconds NonceUnit = "Milliseconds"
	// NonceMicroseconds is used only when declared for the key
	// (spec.validation.nonceUnit): its bots count in microseconds, as
	// Bitfinex's own SDKs do. The prober never chooses it by itself.
	NonceMicroseconds NonceUnit = "Microseconds"
)

// Has reports whether the canonical permission p was granted.
func (p *Permissions) Has(perm string) bool {
	for _, c := range p.Canonical {
		if c == perm {
			return true
		}
	}
	return false
}

// Request names a key to probe and where.
type Request struct {
	Exchange Name
	// Endpoint overrides the exchange's base URL (testnet, regional host,
	// simulator). Empty means the production host.
	Endpoint    string
	Credentials Credentials
	// Demo asks for the exchange's demo-trading environment where it is
	// selected by a header rather than a host (OKX: x-simulated-trading: 1).
	Demo bool
	// NonceUnit is the declared unit of the key's counter nonces
	// (spec.validation.nonceUnit; Kraken, Bitfinex); empty means
	// Milliseconds. Probes send nonces in this unit and nothing larger.
	NonceUnit NonceUnit
}

// driver is one exchange's client. Implementations live in <exchange>.go.
type driver interface {
	// defaultBase is the production base URL, without a trailing slash.
	defaultBase() string
	// probe makes the signed permission request against base (no trailing
	// slash) and maps the answer. Errors must be *Error values.
	probe(ctx context.Context, c *call) (*Permissions, error)
}

// serverTimer is implemented by drivers of timestamped schemes: on a
// ClockSkew error the prober fetches the server's time once, remembers the
// offset and retries once.
type serverTimer interface {
	serverTime(ctx context.Context, c *call) (time.Time, error)
}

// credentialChecker is implemented by drivers whose secrets have a shape that
// can be checked offline (Kraken: base64; Coinbase: EC private key PEM).
type credentialChecker interface {
	checkCredentials(Credentials) error
}

// drivers is filled by each exchange's file in an init function.
var drivers = map[Name]driver{}

func register(n Name, d driver) { drivers[n] = d }

// Supported reports whether n names an exchange with a client.
func Supported(n Name) bool { _, ok := drivers[n]; return ok }

// canonicalSet turns a set into a slice in CanonicalPermissions order.
func canonicalSet(set map[string]bool) []string {
	out := []string{}
	for _, p := range CanonicalPermissions {
		if set[p] {
			out = append(out, p)
		}
	}
	return out
}

// sortedCopy returns a sorted copy so that status never flaps on ordering.
func sortedCopy(in []string) []string {
	out := append([]string{}, in...)
	sort.Strings(out)
	return out
}
