package exchange_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
)

// subHarness is a simulator on loopback with one master key and one
// sub-account per exchange. Its clock is the real one: the per-endpoint
// limiters of the client and of the simulator both count real seconds.
type subHarness struct {
	sim    *simulator.Simulator
	srv    *httptest.Server
	prober *exchange.Prober
}

func newSubHarness(t *testing.T) *subHarness {
	t.Helper()
	sim := simulator.New()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	limits := map[exchange.Name]exchange.RateLimit{}
	for _, n := range exchange.Names {
		limits[n] = exchange.RateLimit{PerSecond: 1000, Burst: 1000}
	}
	return &subHarness{sim: sim, srv: srv, prober: exchange.NewProber(exchange.Options{RateLimits: limits})}
}

// subNames are the sub-accounts, in each exchange's own form.
var subNames = map[exchange.Name]string{exchange.Bybit: "10023455", exchange.OKX: "botsub001", exchange.Binance: "bot@sub.example", exchange.KuCoin: "kcbotsub01"}

// master registers a master key the exchange's rules accept: Bybit needs a
// transfer permission, OKX Trade and bound IPs, Binance Spot & Margin
// trading, KuCoin only General (every key has it).
func (h *subHarness) master(t *testing.T, n exchange.Name) exchange.SubAccountRequest {
	t.Helper()
	c := exchangetest.NewCredentials(n)
	k := simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase}
	switch n {
	case exchange.Bybit:
		k.Permissions = []string{"read", "transfer"}
	case exchange.OKX:
		k.Permissions, k.AllowedIPs = []string{"read", "trade"}, []string{"127.0.0.1"}
	case exchange.Binance:
		k.Permissions, k.AllowedIPs = []string{"read", "trade"}, []string{"127.0.0.1"}
	case exchange.KuCoin:
		k.Permissions = []string{"read"}
	}
	h.sim.AddKey(k)
	h.sim.AddSubAccount(n, c.APIKey, subNames[n])
	return exchange.SubAccountRequest{Exchange: n, Endpoint: simulator.BaseURL(h.srv.URL, n), Master: c, SubAccount: subNames[n]}
}

// newKey is a creation request; for Binance it also returns the private
// key as the PKCS#8 PEM the caller keeps.
func newKey(t *testing.T, n exchange.Name, label string, perms ...string) (exchange.NewSubAccountKey, string) {
	t.Helper()
	k := exchange.NewSubAccountKey{Label: label, Permissions: perms, IPs: []string{"127.0.0.1"}, Passphrase: "Sub-Pass-2026!"}
	if n != exchange.Binance {
		return k, ""
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.PublicKey = pub
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSubAccountKeyLifecycle: CheckMaster, Create, the normal probe sees
// exactly what was asked, List shows the key without its secret, Delete,
// and the probe then finds the key gone.
func TestSubAccountKeyLifecycle(t *testing.T) {
	cases := []struct {
		ex    exchange.Name
		perms []string
	}{
		{exchange.Bybit, []string{"read", "trade", "futures"}},
		{exchange.OKX, []string{"read", "trade"}},
		{exchange.Binance, []string{"read", "trade", "futures"}},
		{exchange.KuCoin, []string{"read", "trade", "margin"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.ex), func(t *testing.T) {
			h := newSubHarness(t)
			ctx := ctxT(t)
			req := h.master(t, tc.ex)

			mc, err := h.prober.CheckMaster(ctx, req)
			if err != nil || !mc.CanManage {
				t.Fatalf("CheckMaster = %+v, %v; want CanManage", mc, err)
			}
			want, err := exchange.NativeForSubAccount(tc.ex, tc.perms)
			if err != nil {
				t.Fatal(err)
			}
			nk, private := newKey(t, tc.ex, "keyops-e2e-1", tc.perms...)
			key, err := h.prober.CreateSubAccountKey(ctx, req, nk)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if !slices.Equal(key.Native, want) || key.Label != "keyops-e2e-1" || !slices.Equal(key.IPs, nk.IPs) {
				t.Errorf("created %+v; want natives %v, the label and the IPs", key, want)
			}
			creds := exchange.Credentials{APIKey: key.APIKey, APISecret: key.Secret, Passphrase: nk.Passphrase}
			if tc.ex == exchange.Binance {
				if key.Secret != "" {
					t.Errorf("Binance Ed25519 key came back with a secret")
				}
				creds.APISecret = private
			} else if key.Secret == "" {
				t.Fatalf("no secret in the create answer")
			}
			if sub, label := h.sim.SubAccountOf(tc.ex, key.APIKey); sub != subNames[tc.ex] || label != "keyops-e2e-1" {
				t.Errorf("simulator files the key under %q/%q", sub, label)
			}

			probe := exchange.Request{Exchange: tc.ex, Endpoint: req.Endpoint, Credentials: creds}
			perms, err := h.prober.Probe(ctx, probe)
			if err != nil {
				t.Fatalf("probe of the new key: %v", err)
			}
			for _, p := range tc.perms {
				if !perms.Has(p) {
					t.Errorf("probe: %v lacks %s", perms.Canonical, p)
				}
			}
			// Nothing beyond what the chosen natives imply.
			implied := impliedBy(t, tc.ex, tc.perms, want)
			for _, p := range perms.Canonical {
				if !implied[p] {
					t.Errorf("probe: %s granted, but %v does not imply it", p, want)
				}
			}
			if perms.IPRestriction != exchange.IPRestricted {
				t.Errorf("probe: IPRestriction = %s", perms.IPRestriction)
			}

			keys, err := h.prober.ListSubAccountKeys(ctx, req)
			if err != nil || len(keys) != 1 || keys[0].APIKey != key.APIKey || keys[0].Secret != "" || keys[0].Label != "keyops-e2e-1" || !slices.Equal(keys[0].Native, want) {
				t.Fatalf("list = %+v, %v; want the key, its label and natives, no secret", keys, err)
			}

			// KuCoin deletes a key only with its own passphrase.
			req.KeyPassphrase = nk.Passphrase
			if err := h.prober.DeleteSubAccountKey(ctx, req, key.APIKey); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = h.prober.Probe(ctx, probe)
			if k := exchange.KindOf(err); k != exchange.InvalidKey && !(tc.ex == exchange.Binance && k == exchange.KeyOrIPRejected) {
				t.Errorf("probe after delete: %v; want InvalidKey (Binance: KeyOrIPRejected, its one code for both)", err)
			}
			if keys, err := h.prober.ListSubAccountKeys(ctx, req); err != nil || len(keys) != 0 {
				t.Errorf("list after delete = %+v, %v", keys, err)
			}
			// Deleting again is not an error: a retry after a crash.
			if err := h.prober.DeleteSubAccountKey(ctx, req, key.APIKey); err != nil {
				t.Errorf("second delete: %v", err)
			}
		})
	}
}

// impliedBy is what the natives chosen for perms grant: every canonical
// permission that, added to perms, leaves the chosen natives as they are.
func impliedBy(t *testing.T, n exchange.Name, perms, natives []string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, p := range exchange.CanonicalPermissions {
		got, err := exchange.NativeForSubAccount(n, append(slices.Clone(perms), p))
		if err == nil && slices.Equal(got, natives) {
			out[p] = true
		}
	}
	return out
}

func TestSubAccountKeyOfSubAccountIsNotAMaster(t *testing.T) {
	for _, n := range []exchange.Name{exchange.Bybit, exchange.OKX, exchange.Binance, exchange.KuCoin} {
		t.Run(string(n), func(t *testing.T) {
			h := newSubHarness(t)
			ctx := ctxT(t)
			req := h.master(t, n)
			// A key of the sub-account itself, with the same rights the
			// master has.
			c := exchangetest.NewCredentials(n)
			k := simulator.Key{Exchange: n, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, AllowedIPs: []string{"127.0.0.1"},
				Permissions: []string{"read", "trade", "transfer"}}
			if !h.sim.AddSubAccountKey(subNames[n], "bot", k) {
				t.Fatal("sub-account not registered")
			}
			subReq := req
			subReq.Master = c

			mc, err := h.prober.CheckMaster(ctx, subReq)
			if err != nil {
				t.Fatalf("CheckMaster: %v", err)
			}
			if mc.CanManage || !strings.Contains(strings.ToLower(mc.Missing), "sub-account") || mc.Permissions == nil {
				t.Errorf("CheckMaster = %+v; want CanManage false naming the sub-account rule", mc)
			}
			nk, _ := newKey(t, n, "from-sub", "read")
			_, err = h.prober.CreateSubAccountKey(ctx, subReq, nk)
			want := exchange.NotMasterKey
			if n == exchange.Bybit || n == exchange.KuCoin {
				// Bybit documents no code of its own: 10005; KuCoin
				// none either (the simulator answers 400007).
				want = exchange.PermissionDenied
			}
			if exchange.KindOf(err) != want || strings.Contains(err.Error(), c.APISecret) {
				t.Errorf("create with a sub-account key: %v; want %s", err, want)
			}
		})
	}
}

func TestSubAccountOKXMasterWithoutIPBinding(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.OKX)
	h.sim.UpdateKey(exchange.OKX, req.Master.APIKey, func(k *simulator.Key) { k.AllowedIPs = nil })
	mc, err := h.prober.CheckMaster(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if mc.CanManage || !strings.Contains(mc.Missing, "linked to IP addresses") {
		t.Errorf("CheckMaster = %+v; want CanManage false citing the IP rule", mc)
	}
	// The exchange refuses too, whatever the client thinks.
	nk, _ := newKey(t, exchange.OKX, "unbound-master", "read")
	if _, err := h.prober.CreateSubAccountKey(ctx, req, nk); exchange.KindOf(err) != exchange.PermissionDenied {
		t.Errorf("create through an unbound master: %v; want PermissionDenied", err)
	}
}

func TestSubAccountMasterLacksPermissions(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	for n, perms := range map[exchange.Name][]string{exchange.Bybit: {"read", "trade"}, exchange.OKX: {"read"}, exchange.Binance: {"read"}} {
		req := h.master(t, n)
		h.sim.SetPermissions(n, req.Master.APIKey, perms...)
		mc, err := h.prober.CheckMaster(ctx, req)
		if err != nil || mc.CanManage || mc.Missing == "" {
			t.Errorf("%s: CheckMaster = %+v, %v; want a reason", n, mc, err)
		}
	}
}

func TestSubAccountMissingSubAccount(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	for _, n := range []exchange.Name{exchange.Bybit, exchange.OKX, exchange.Binance, exchange.KuCoin} {
		req := h.master(t, n)
		req.SubAccount = map[exchange.Name]string{exchange.Bybit: "999", exchange.OKX: "nosuchsub", exchange.Binance: "nobody@sub.example", exchange.KuCoin: "nosuchsub"}[n]
		if _, err := h.prober.CheckMaster(ctx, req); exchange.KindOf(err) != exchange.SubAccountNotFound {
			t.Errorf("%s: CheckMaster on a missing sub-account: %v; want SubAccountNotFound", n, err)
		}
	}
}

func TestSubAccountOKXKeyLimitAndDuplicateLabel(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.OKX)
	for i := 0; i < 50; i++ {
		c := exchangetest.NewCredentials(exchange.OKX)
		h.sim.AddSubAccountKey(req.SubAccount, "existing-"+string(rune('a'+i/26))+string(rune('a'+i%26)),
			simulator.Key{Exchange: exchange.OKX, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: []string{"read"}})
	}
	nk, _ := newKey(t, exchange.OKX, "the-51st", "read", "trade")
	if _, err := h.prober.CreateSubAccountKey(ctx, req, nk); exchange.KindOf(err) != exchange.KeyLimitReached {
		t.Fatalf("51st key: %v; want KeyLimitReached", err)
	}
	keys, err := h.prober.ListSubAccountKeys(ctx, req)
	if err != nil || len(keys) != 50 {
		t.Fatalf("list = %d keys, %v", len(keys), err)
	}
	// Deleting one makes room; a label already live is refused.
	if err := h.prober.DeleteSubAccountKey(ctx, req, keys[0].APIKey); err != nil {
		t.Fatal(err)
	}
	dup, _ := newKey(t, exchange.OKX, keys[1].Label, "read")
	if _, err := h.prober.CreateSubAccountKey(ctx, req, dup); exchange.KindOf(err) != exchange.DuplicateLabel {
		t.Errorf("duplicate label: %v; want DuplicateLabel", err)
	}
	if _, err := h.prober.CreateSubAccountKey(ctx, req, nk); err != nil {
		t.Errorf("create after a delete made room: %v", err)
	}
}

func TestSubAccountBybitUnboundKeyExpires(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.Bybit)
	nk, _ := newKey(t, exchange.Bybit, "unbound", "read", "trade")
	nk.IPs = nil
	key, err := h.prober.CreateSubAccountKey(ctx, req, nk)
	if err != nil {
		t.Fatal(err)
	}
	if key.ExpiresAt == nil || key.ExpiresAt.Sub(*key.CreatedAt) != 90*24*time.Hour {
		t.Errorf("create: ExpiresAt %v; want 90 days after creation", key.ExpiresAt)
	}
	keys, err := h.prober.ListSubAccountKeys(ctx, req)
	if err != nil || len(keys) != 1 || keys[0].ExpiresAt == nil || len(keys[0].IPs) != 0 {
		t.Fatalf("list = %+v, %v; want the expiry and no IPs", keys, err)
	}
	perms, err := h.prober.Probe(ctx, exchange.Request{Exchange: exchange.Bybit, Endpoint: req.Endpoint, Credentials: exchange.Credentials{APIKey: key.APIKey, APISecret: key.Secret}})
	if err != nil || perms.ExpiresAt == nil || perms.IPRestriction != exchange.IPUnrestricted {
		t.Errorf("probe = %+v, %v; want an expiry and no IP restriction", perms, err)
	}
}

func TestSubAccountReadOnlyKey(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	for _, n := range []exchange.Name{exchange.Bybit, exchange.OKX, exchange.Binance, exchange.KuCoin} {
		req := h.master(t, n)
		nk, private := newKey(t, n, "reader", "read")
		key, err := h.prober.CreateSubAccountKey(ctx, req, nk)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		creds := exchange.Credentials{APIKey: key.APIKey, APISecret: key.Secret, Passphrase: nk.Passphrase}
		if n == exchange.Binance {
			creds.APISecret = private
		}
		perms, err := h.prober.Probe(ctx, exchange.Request{Exchange: n, Endpoint: req.Endpoint, Credentials: creds})
		if err != nil || !slices.Equal(perms.Canonical, []string{"read"}) {
			t.Errorf("%s: probe = %+v, %v; want read only", n, perms, err)
		}
	}
}

// TestSubAccountClientSpacesCreates: two creates in a row on Bybit (1/s)
// both succeed, because the client waits for the endpoint's own limit; the
// same two requests sent raw are refused by the simulator's.
func TestSubAccountClientSpacesCreates(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.Bybit)
	for i, label := range []string{"first", "second"} {
		nk, _ := newKey(t, exchange.Bybit, label, "read", "trade")
		if _, err := h.prober.CreateSubAccountKey(ctx, req, nk); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if got := h.sim.EndpointRequests(exchange.Bybit, "/v5/user/create-sub-api"); got != 2 {
		t.Errorf("create-sub-api saw %d requests; want 2 (no refused retries)", got)
	}
}

func TestSubAccountNativeMapping(t *testing.T) {
	cases := []struct {
		ex    exchange.Name
		perms []string
		want  []string
		err   string
	}{
		{exchange.Bybit, []string{"read"}, []string{"ContractTrade:Order", "ContractTrade:Position", "Spot:SpotTrade", "Wallet:AccountTransfer", "readOnly"}, ""},
		{exchange.Bybit, []string{"read", "trade", "margin"}, []string{"Spot:SpotTrade"}, ""},
		{exchange.Bybit, []string{"futures"}, []string{"ContractTrade:Order", "ContractTrade:Position"}, ""},
		{exchange.Bybit, []string{"options", "futures"}, []string{"ContractTrade:Order", "ContractTrade:Position", "Options:OptionsTrade"}, ""},
		{exchange.Bybit, []string{"transfer", "earn"}, []string{"Earn:Earn", "Wallet:AccountTransfer"}, ""},
		{exchange.Bybit, []string{"withdraw"}, nil, "withdraw"},
		{exchange.OKX, []string{"read"}, []string{"read_only"}, ""},
		{exchange.OKX, []string{"read", "futures"}, []string{"read_only", "trade"}, ""},
		{exchange.OKX, []string{"withdraw"}, nil, "59504"},
		{exchange.Binance, []string{"read"}, []string{}, ""},
		{exchange.Binance, []string{"trade", "margin"}, []string{"canTrade"}, ""},
		{exchange.Binance, []string{"margin"}, []string{"canMarginLoanRepay"}, ""},
		{exchange.Binance, []string{"futures", "options", "transfer"}, []string{"canFuturesTrade", "canUniversalTransfer", "canVanillaOptions"}, ""},
		{exchange.Binance, []string{"earn"}, nil, "Earn"},
		{exchange.KuCoin, []string{"read"}, []string{"General"}, ""},
		{exchange.KuCoin, []string{"read", "trade"}, []string{"General", "Spot"}, ""},
		{exchange.KuCoin, []string{"transfer"}, []string{"General", "InnerTransfer"}, ""},
		{exchange.KuCoin, []string{"trade", "margin", "futures", "transfer"}, []string{"Futures", "General", "Margin", "Spot"}, ""},
		{exchange.KuCoin, []string{"withdraw"}, nil, "Transfer (withdrawal)"},
		{exchange.KuCoin, []string{"earn"}, nil, "InnerTransfer can be set"},
		{exchange.Kraken, []string{"read"}, nil, "no sub-account key API"},
		{exchange.OKX, []string{"root"}, nil, "not a canonical permission"},
	}
	for _, tc := range cases {
		got, err := exchange.NativeForSubAccount(tc.ex, tc.perms)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %v: err = %v; want one naming %q", tc.ex, tc.perms, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s %v = %v, %v; want %v", tc.ex, tc.perms, got, err, tc.want)
		}
	}
}

func TestSubAccountSupportMatchesCapabilities(t *testing.T) {
	for _, n := range exchange.Names {
		if exchange.SupportsSubAccountKeys(n) != exchange.CapabilitiesOf(n).SubAccountKeys {
			t.Errorf("%s: SupportsSubAccountKeys %v, capabilities say %v", n, exchange.SupportsSubAccountKeys(n), exchange.CapabilitiesOf(n).SubAccountKeys)
		}
	}
}

// TestSubAccountSecretsStayOut: a refused create names fields, never the
// master's or the new key's material.
func TestSubAccountSecretsStayOut(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.OKX)
	nk, _ := newKey(t, exchange.OKX, "weak", "read")
	nk.Passphrase = "weakpassphrase"
	_, err := h.prober.CreateSubAccountKey(ctx, req, nk)
	if exchange.KindOf(err) != exchange.InvalidRequest {
		t.Fatalf("weak passphrase: %v; want InvalidRequest before any call", err)
	}
	for _, secret := range []string{nk.Passphrase, req.Master.APISecret, req.Master.Passphrase} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error text holds key material: %v", err)
		}
	}
	if got := h.sim.EndpointRequests(exchange.OKX, "/api/v5/users/subaccount/apikey"); got != 0 {
		t.Errorf("%d create requests reached OKX", got)
	}
}

// TestSubAccountCreateRefusals: the answers that say the account cannot
// create keys are AccountCannotIssue and permanent, with the exchange's
// words and code; a Binance create on an email that is not one of the
// master's sub-accounts (-1130 on 'email') is SubAccountNotFound, on every
// call, not only CheckMaster.
func TestSubAccountCreateRefusals(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		n   exchange.Name
		ref simulator.Refusal
	}{{exchange.Bybit, simulator.BybitEurope}, {exchange.Bybit, simulator.BybitNeedKYC}, {exchange.OKX, simulator.OKXSubSuspended}, {exchange.KuCoin, simulator.KuCoinNeedKYC}} {
		req := h.master(t, tc.n)
		h.sim.RefuseSubAccountCreate(tc.n, req.SubAccount, tc.ref)
		k, _ := newKey(t, tc.n, "refused")
		_, err := h.prober.CreateSubAccountKey(ctx, req, k)
		e, ok := exchange.AsError(err)
		if !ok || e.Kind != exchange.AccountCannotIssue || e.Code != tc.ref.Code || e.Message != tc.ref.Msg || !exchange.PermanentRefusal(err) {
			t.Errorf("%s %s: %v; want AccountCannotIssue with the exchange's code and words", tc.n, tc.ref.Code, err)
		}
		h.sim.RefuseSubAccountCreate(tc.n, req.SubAccount, simulator.Refusal{})
	}
	req := h.master(t, exchange.Binance)
	req.SubAccount = "nobody@sub.example"
	k, _ := newKey(t, exchange.Binance, "stray")
	if _, err := h.prober.CreateSubAccountKey(ctx, req, k); exchange.KindOf(err) != exchange.SubAccountNotFound || !strings.Contains(err.Error(), "no sub-account with this email") {
		t.Errorf("binance create on a foreign email: %v; want SubAccountNotFound", err)
	}
	if _, err := h.prober.ListSubAccountKeys(ctx, req); exchange.KindOf(err) != exchange.SubAccountNotFound {
		t.Errorf("binance list on a foreign email: %v; want SubAccountNotFound", err)
	}
}

// TestSubAccountBybitKeyID: Bybit's own id of a key ("id" in the create
// answer) is returned by create and shown by the list.
func TestSubAccountBybitKeyID(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.Bybit)
	k, _ := newKey(t, exchange.Bybit, "withid", "read", "trade")
	created, err := h.prober.CreateSubAccountKey(ctx, req, k)
	if err != nil || created.ID == "" {
		t.Fatalf("create: %+v, %v; want an id", created, err)
	}
	keys, err := h.prober.ListSubAccountKeys(ctx, req)
	if err != nil || len(keys) != 1 || keys[0].ID != created.ID {
		t.Fatalf("list: %+v, %v; want the key with id %s", keys, err, created.ID)
	}
}

// TestSubAccountKuCoinExpiryAndDelete: a key asked to live 100 days gets
// KuCoin's 180-day expiry (the simulator expires it then); the list masks
// the whitelist as KuCoin does; delete takes the key's own passphrase:
// without it nothing is sent, with a wrong one KuCoin refuses and the key
// stays, with the right one it goes, and a second delete is no error.
func TestSubAccountKuCoinExpiryAndDelete(t *testing.T) {
	h := newSubHarness(t)
	ctx := ctxT(t)
	req := h.master(t, exchange.KuCoin)
	nk, _ := newKey(t, exchange.KuCoin, "expiring", "read", "trade")
	nk.Lifetime = 100 * 24 * time.Hour
	key, err := h.prober.CreateSubAccountKey(ctx, req, nk)
	if err != nil {
		t.Fatal(err)
	}
	if key.ExpiresAt == nil || key.ExpiresAt.Sub(*key.CreatedAt) != 180*24*time.Hour {
		t.Errorf("create: ExpiresAt %v after %v; want 180 days later", key.ExpiresAt, key.CreatedAt)
	}
	creds := exchange.Credentials{APIKey: key.APIKey, APISecret: key.Secret, Passphrase: nk.Passphrase}
	probe := exchange.Request{Exchange: exchange.KuCoin, Endpoint: req.Endpoint, Credentials: creds}
	if _, err := h.prober.Probe(ctx, probe); err != nil {
		t.Fatalf("probe of the new key: %v", err)
	}
	// 181 days later on both clocks, the key is expired at the exchange.
	later := 181 * 24 * time.Hour
	h.sim.SetClockSkew(later)
	laterProber := exchange.NewProber(exchange.Options{Now: func() time.Time { return time.Now().Add(later) }})
	if _, err := laterProber.Probe(ctx, probe); exchange.KindOf(err) != exchange.Inactive {
		t.Errorf("probe 181 days later: %v; want the simulator's answer for an expired key (Inactive)", err)
	}
	h.sim.SetClockSkew(0)

	keys, err := h.prober.ListSubAccountKeys(ctx, req)
	if err != nil || len(keys) != 1 || !slices.Equal(keys[0].IPs, []string{"127.**.1"}) {
		t.Fatalf("list = %+v, %v; want the key with its whitelist masked", keys, err)
	}

	sent := h.sim.EndpointRequests(exchange.KuCoin, "/api/v1/sub/api-key")
	if err := h.prober.DeleteSubAccountKey(ctx, req, key.APIKey); exchange.KindOf(err) != exchange.InvalidRequest || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("delete without the passphrase: %v; want InvalidRequest naming the passphrase", err)
	}
	if got := h.sim.EndpointRequests(exchange.KuCoin, "/api/v1/sub/api-key") - sent; got != 1 {
		t.Errorf("delete without the passphrase sent %d requests; want only the list that checks the key is still there", got)
	}
	req.KeyPassphrase = "Not-The-Pass-1"
	if err := h.prober.DeleteSubAccountKey(ctx, req, key.APIKey); exchange.KindOf(err) != exchange.InvalidRequest || strings.Contains(err.Error(), req.KeyPassphrase) {
		t.Errorf("delete with a wrong passphrase: %v; want InvalidRequest without the passphrase", err)
	}
	if keys, err := h.prober.ListSubAccountKeys(ctx, req); err != nil || len(keys) != 1 {
		t.Fatalf("after refused deletes: %+v, %v; want the key still there", keys, err)
	}
	req.KeyPassphrase = nk.Passphrase
	for i := 0; i < 2; i++ {
		if err := h.prober.DeleteSubAccountKey(ctx, req, key.APIKey); err != nil {
			t.Errorf("delete %d with the passphrase: %v", i+1, err)
		}
	}
	if keys, err := h.prober.ListSubAccountKeys(ctx, req); err != nil || len(keys) != 0 {
		t.Errorf("after delete: %+v, %v", keys, err)
	}
}
