package exchange

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sub-account key management: a master (main-account) API key creates,
// lists and deletes the API keys of its sub-accounts, which is what lets the
// operator rotate a bot's key with nobody touching it. No exchange lets a key
// create a successor for its own account.
//
// Each exchange's driver lives in subaccount_<exchange>.go with a table of
// endpoints, parameters, permission mapping, master-key rules, rate limits
// and error codes, each with its source. This file holds the exported API the
// controller is written against and what the four drivers share: the
// smallest-native-set choice, the per-endpoint rate limiters and the
// idempotent delete.

// Kinds of the management calls, beyond those of a probe (errors.go).
const (
	// NotMasterKey: the key belongs to a sub-account (or is otherwise not
	// the main account's), and only main-account keys manage sub-account
	// keys (OKX 59500, Binance -1002 on a master-only endpoint, Bybit
	// query-api isMaster false).
	NotMasterKey Kind = "NotMasterKey"
	// SubAccountNotFound: the named sub-account does not exist or does not
	// belong to the master key's account.
	SubAccountNotFound Kind = "SubAccountNotFound"
	// KeyLimitReached: the sub-account holds as many keys as the exchange
	// allows (OKX: 50).
	KeyLimitReached Kind = "KeyLimitReached"
	// DuplicateLabel: a live key of the sub-account has the same label
	// (OKX refuses duplicate notes).
	DuplicateLabel Kind = "DuplicateLabel"
	// InvalidRequest: the exchange refused a parameter we sent (passphrase
	// format, too many IPs, a permission it cannot grant). Retrying the
	// same request cannot help.
	InvalidRequest Kind = "InvalidRequest"
	// AccountCannotIssue: the exchange says this account may not create
	// API keys at all, whatever the request (Bybit 81007 "Bybit Europe is
	// not supported create API Key", 20096 "need KYC authentication":
	// bybit-exchange.github.io/docs/v5/error, section "User"; OKX 59508 a
	// suspended sub-account). Only a change at the exchange helps: the
	// caller must not retry on its own.
	AccountCannotIssue Kind = "AccountCannotIssue"
)

// PermanentRefusal says whether err is a refusal that the same request
// gets again whenever it is sent: the account cannot issue keys, or a
// parameter is refused. Retrying it on a timer only repeats the refusal.
func PermanentRefusal(err error) bool {
	switch KindOf(err) {
	case AccountCannotIssue, InvalidRequest:
		return true
	}
	return false
}

// SubAccountRequest addresses a sub-account through a master key.
type SubAccountRequest struct {
	Exchange Name
	// Endpoint overrides the base URL, as for a probe.
	Endpoint string
	// Demo selects the demo-trading environment where a header does (OKX).
	Demo bool
	// Master is the main account's key.
	Master Credentials
	// SubAccount is the Bybit sub UID, the OKX sub-account name, the
	// Binance sub-account email or the KuCoin sub-account name.
	SubAccount string
	// KeyPassphrase is the passphrase of the key a delete addresses, where
	// the exchange asks for it (KuCoin: DELETE /api/v1/sub/api-key takes
	// "passphrase", docs-new/api-3470137); ignored elsewhere. It travels
	// only in that request to the exchange that issued it.
	KeyPassphrase string
}

// DeleteNeedsPassphrase says whether deleting a sub-account key of n takes
// the key's own passphrase (SubAccountRequest.KeyPassphrase): KuCoin.
func DeleteNeedsPassphrase(n Name) bool { return n == KuCoin }

// NewSubAccountKey is what to create.
type NewSubAccountKey struct {
	// Label is the key's note/label at the exchange (unique per live key;
	// the caller derives it).
	Label string
	// Permissions are the canonical permissions required; the driver picks
	// the smallest native set that grants them (NativeForSubAccount).
	Permissions []string
	// IPs is the allowlist; empty means unbound.
	IPs []string
	// Passphrase is the OKX or KuCoin key's passphrase, chosen by the
	// caller.
	Passphrase string
	// Lifetime is how long the key must keep working at least, where the
	// exchange makes keys expire on request (KuCoin expire): the driver asks
	// for the smallest expiry that covers it, or none. Zero: no expiry.
	Lifetime time.Duration
	// PublicKey is the Binance key's Ed25519 public key: the caller
	// generated the pair and keeps the private key; only this half is sent.
	PublicKey ed25519.PublicKey
}

// SubAccountKey is a key as the exchange lists it. Secret is set only in the
// answer to CreateSubAccountKey (and stays empty for Binance, whose caller
// holds the private key); no list shows it again.
type SubAccountKey struct {
	// ID is the exchange's own identifier of the key where it has one
	// besides the API key (Bybit's "id"); empty where the API key is the
	// identifier (OKX, Binance).
	ID     string
	APIKey string
	Secret string
	Label  string
	// Native are the management API's own permission names (Bybit
	// "Category:Value" and "readOnly", OKX perm values, Binance can* flags).
	Native    []string
	IPs       []string
	CreatedAt *time.Time
	ExpiresAt *time.Time
}

// MasterCheck says whether a master key may manage sub-account keys.
type MasterCheck struct {
	CanManage bool
	// Missing is what the key lacks, in words that cite the exchange's rule;
	// empty when CanManage.
	Missing string
	// Permissions is what the normal probe found for the master key.
	Permissions *Permissions
}

// subDriver is one exchange's sub-account key management. Errors must be
// *Error values whose messages never hold key material.
type subDriver interface {
	// natives are the creatable native permissions, smallest first.
	natives() []subNative
	// readOnly is the native set for a key that may only read.
	readOnly() []string
	// validate checks what the exchange would refuse, before any call.
	validate(r SubAccountRequest, k NewSubAccountKey) error
	// checkMaster adds the exchange's master-key rules to the probe's answer.
	checkMaster(ctx context.Context, c *call, perms *Permissions, sub string) (*MasterCheck, error)
	create(ctx context.Context, c *call, sub string, native []string, k NewSubAccountKey) (*SubAccountKey, error)
	list(ctx context.Context, c *call, sub string) ([]SubAccountKey, error)
	// delete returns errSubKeyGone when the exchange says the key is not
	// there. passphrase is the key's own, where the exchange asks for it.
	delete(ctx context.Context, c *call, sub, apiKey, passphrase string) error
}

// subNative is one creatable native permission (or a set of natives that
// the exchange grants only together) and the canonical permissions it grants.
type subNative struct {
	Natives []string
	Grants  []string
	Source  string
}

var subDrivers = map[Name]subDriver{}

func registerSub(n Name, d subDriver) { subDrivers[n] = d }

// SupportsSubAccountKeys reports whether n has a sub-account key API this
// package drives (Bybit, OKX, Binance, KuCoin).
func SupportsSubAccountKeys(n Name) bool { _, ok := subDrivers[n]; return ok }

// NativeForSubAccount returns the smallest native set that grants every
// canonical permission in canonical, in the management API's names. Read is
// implied by every key. It fails, naming the permission and the rule, when
// the exchange cannot grant one to a sub-account key (Bybit and OKX
// sub-account keys cannot withdraw; Binance has no Earn scope).
func NativeForSubAccount(n Name, canonical []string) ([]string, error) {
	d, ok := subDrivers[n]
	if !ok {
		return nil, fmt.Errorf("%s has no sub-account key API", n)
	}
	return chooseNatives(n, d, canonical)
}

func chooseNatives(n Name, d subDriver, canonical []string) ([]string, error) {
	known := toSet(CanonicalPermissions)
	for _, p := range canonical {
		if !known[p] {
			return nil, fmt.Errorf("%q is not a canonical permission", sanitize(p, 40))
		}
	}
	var chosen []subNative
	for _, p := range canonicalSet(toSet(canonical)) {
		if p == PermRead {
			continue
		}
		covered := false
		for _, c := range chosen {
			if toSet(c.Grants)[p] {
				covered = true
			}
		}
		if covered {
			continue
		}
		best := -1
		for i, cand := range d.natives() {
			if toSet(cand.Grants)[p] && (best < 0 || len(cand.Grants) < len(d.natives()[best].Grants)) {
				best = i
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("%s cannot grant %q to a sub-account key: %s", n, p, subUngrantable(n, p))
		}
		chosen = append(chosen, d.natives()[best])
	}
	if len(chosen) == 0 {
		return append([]string{}, d.readOnly()...), nil
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range chosen {
		for _, nat := range c.Natives {
			if !seen[nat] {
				seen[nat] = true
				out = append(out, nat)
			}
		}
	}
	return sortedCopy(out), nil
}

// subUngrantable says why the exchange cannot grant p to a sub-account key.
func subUngrantable(n Name, p string) string {
	switch {
	case n == Bybit && p == PermWithdraw:
		return "the sub-account key form offers Wallet AccountTransfer and SubMemberTransferList only (bybit-exchange/docs docs/v5/user/create-subuid-apikey.mdx)"
	case n == OKX && p == PermWithdraw:
		return "perm takes read_only or trade only; 59504 \"The sub account does not support the withdrawal function\" (okx.com/docs-v5/en/#sub-account-rest-api-create-an-api-key-for-a-sub-account)"
	case n == Binance && p == PermWithdraw:
		return "the sub-account key form has no withdrawal flag (developers.binance.com Create Sub-account API Key)"
	case n == Binance && p == PermEarn:
		return "Binance keys have no Earn scope"
	case n == KuCoin && p == PermWithdraw:
		return "only General, Spot, Futures, Margin and InnerTransfer can be set, not Transfer (withdrawal), and sub-accounts cannot withdraw (kucoin.com/docs-new/api-3470138; docs/rest/account/sub-account/introduction)"
	case n == KuCoin:
		return "only General, Spot, Futures, Margin and InnerTransfer can be set (kucoin.com/docs-new/api-3470138)"
	}
	return "no native permission of its sub-account keys grants it"
}

// CheckMaster probes the master key and applies the exchange's rules for a
// key that manages sub-account keys. With r.SubAccount set it also lists
// that sub-account's keys, which only its own master may do: a missing or
// foreign sub-account is then a SubAccountNotFound error.
func (p *Prober) CheckMaster(ctx context.Context, r SubAccountRequest) (*MasterCheck, error) {
	d, c, err := p.subCall(r)
	if err != nil {
		return nil, err
	}
	perms, err := p.Probe(ctx, Request{Exchange: r.Exchange, Endpoint: r.Endpoint, Credentials: r.Master, Demo: r.Demo})
	if err != nil {
		return nil, err
	}
	mc, err := d.checkMaster(ctx, c, perms, r.SubAccount)
	p.escalate(c.base, err)
	if err != nil {
		if KindOf(err) == NotMasterKey {
			e, _ := AsError(err)
			return &MasterCheck{Missing: e.Message, Permissions: perms}, nil
		}
		return nil, err
	}
	mc.Permissions = perms
	if mc.CanManage && r.SubAccount != "" {
		if _, err := d.list(ctx, c, r.SubAccount); err != nil {
			p.escalate(c.base, err)
			if KindOf(err) == NotMasterKey {
				e, _ := AsError(err)
				return &MasterCheck{Missing: e.Message, Permissions: perms}, nil
			}
			return nil, err
		}
	}
	return mc, nil
}

// CreateSubAccountKey creates a key on r.SubAccount with the smallest native
// set that grants k.Permissions. The secret is in the answer and nowhere
// else: persist it before anything else can fail.
func (p *Prober) CreateSubAccountKey(ctx context.Context, r SubAccountRequest, k NewSubAccountKey) (*SubAccountKey, error) {
	d, c, err := p.subCall(r)
	if err != nil {
		return nil, err
	}
	native, err := chooseNatives(r.Exchange, d, k.Permissions)
	if err != nil {
		return nil, &Error{Kind: InvalidRequest, Exchange: r.Exchange, Message: err.Error()}
	}
	if r.SubAccount == "" {
		return nil, &Error{Kind: InvalidRequest, Exchange: r.Exchange, Message: "sub-account is empty"}
	}
	if err := d.validate(r, k); err != nil {
		return nil, &Error{Kind: InvalidRequest, Exchange: r.Exchange, Message: err.Error()}
	}
	key, err := d.create(ctx, c, r.SubAccount, native, k)
	p.escalate(c.base, err)
	return key, err
}

// ListSubAccountKeys lists r.SubAccount's keys, without secrets.
func (p *Prober) ListSubAccountKeys(ctx context.Context, r SubAccountRequest) ([]SubAccountKey, error) {
	d, c, err := p.subCall(r)
	if err != nil {
		return nil, err
	}
	if r.SubAccount == "" {
		return nil, &Error{Kind: InvalidRequest, Exchange: r.Exchange, Message: "sub-account is empty"}
	}
	keys, err := d.list(ctx, c, r.SubAccount)
	p.escalate(c.base, err)
	return keys, err
}

// DeleteSubAccountKey deletes apiKey from r.SubAccount. It is idempotent: a
// key the exchange says is gone, or that the sub-account's list no longer
// shows after a refusal, is deleted, so a retry after a crash succeeds.
func (p *Prober) DeleteSubAccountKey(ctx context.Context, r SubAccountRequest, apiKey string) error {
	d, c, err := p.subCall(r)
	if err != nil {
		return err
	}
	if r.SubAccount == "" || apiKey == "" {
		return &Error{Kind: InvalidRequest, Exchange: r.Exchange, Message: "sub-account or API key is empty"}
	}
	err = d.delete(ctx, c, r.SubAccount, apiKey, r.KeyPassphrase)
	p.escalate(c.base, err)
	if err == nil || err == errSubKeyGone {
		return nil
	}
	switch KindOf(err) {
	case InvalidRequest, UnexpectedResponse:
		// Some exchanges document no code for "no such key": the list is
		// the arbiter.
		keys, lerr := d.list(ctx, c, r.SubAccount)
		if lerr == nil && !hasSubKey(keys, apiKey) {
			return nil
		}
	}
	return err
}

// errSubKeyGone is what a driver's delete returns when the exchange answers
// with its documented "no such key" code.
var errSubKeyGone = &Error{Kind: InvalidKey, Message: "no such sub-account key"}

func hasSubKey(keys []SubAccountKey, apiKey string) bool {
	for _, k := range keys {
		if k.APIKey == apiKey {
			return true
		}
	}
	return false
}

// subCall resolves the driver and a call for the master key.
func (p *Prober) subCall(r SubAccountRequest) (subDriver, *call, error) {
	d, ok := subDrivers[r.Exchange]
	if !ok {
		return nil, nil, &Error{Kind: InvalidRequest, Exchange: r.Exchange, Message: "the exchange has no sub-account key API"}
	}
	if err := CheckCredentials(r.Exchange, r.Master); err != nil {
		return nil, nil, &Error{Kind: InvalidKey, Exchange: r.Exchange, Message: "master key: " + err.Error()}
	}
	base := strings.TrimRight(r.Endpoint, "/")
	if base == "" {
		base = drivers[r.Exchange].defaultBase()
	}
	return d, &call{p: p, ex: r.Exchange, base: base, creds: r.Master, demo: r.Demo}, nil
}

// subLimitMargin stretches every documented per-endpoint limit by 10%, so
// that network jitter never makes two calls look closer than allowed.
const subLimitMargin = 1.1

// subLimiters holds one token bucket per base URL, endpoint and master key
// (the exchanges count these endpoints per user ID, which the master key
// stands for), on top of the prober's shared per-exchange limiter, which is
// looser than these endpoints allow. Keys are fingerprints, never the key.
var subLimiters sync.Map

// waitEndpoint waits for the endpoint's own rate limit: perSecond requests
// per second for this master key.
func (c *call) waitEndpoint(ctx context.Context, path string, perSecond float64) error {
	sum := sha256.Sum256([]byte(c.creds.APIKey))
	id := c.base + " " + path + " " + hex.EncodeToString(sum[:8])
	l, _ := subLimiters.LoadOrStore(id, rate.NewLimiter(rate.Limit(perSecond/subLimitMargin), 1))
	if err := l.(*rate.Limiter).Wait(ctx); err != nil {
		return &Error{Kind: RateLimited, Exchange: c.ex, Message: "client-side limit of " + path + ": no token before the deadline"}
	}
	return nil
}

// subTime turns epoch milliseconds into a time, nil when absent or absurd.
func subTime(ms int64) *time.Time {
	if ms < 946684800000 || ms > 32503680000000 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// splitList splits a comma-separated list, dropping blanks and "*".
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" && v != "*" {
			out = append(out, sanitize(v, 64))
		}
	}
	return out
}
