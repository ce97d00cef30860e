package integration_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kevents "k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/exchangeaccount"
	"github.com/keyops-io/exchange-key-operator/internal/endpoint"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

func newAccount(ns, name string, ex exchange.Name) *keyopsv1.ExchangeAccount {
	a := &keyopsv1.ExchangeAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keyopsv1.ExchangeAccountSpec{
			Exchange:             keyopsv1.Exchange(ex),
			Endpoint:             simulator.BaseURL(simURL, ex),
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: name + "-key"},
		},
	}
	if ex == exchange.OKX || ex == exchange.KuCoin {
		a.Spec.CredentialsSecretRef.PassphraseKey = "passphrase"
	}
	return a
}

func getAccount(g Gomega, ns, name string) *keyopsv1.ExchangeAccount {
	var a keyopsv1.ExchangeAccount
	g.Expect(k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: name}, &a)).To(Succeed())
	return &a
}

// accountReady is "Status/Reason" of the account's Ready condition.
func accountReady(a *keyopsv1.ExchangeAccount) string {
	c := meta.FindStatusCondition(a.Status.Conditions, keyopsv1.ConditionReady)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

func waitAccount(t *testing.T, ns, name, want string) *keyopsv1.ExchangeAccount {
	t.Helper()
	var a *keyopsv1.ExchangeAccount
	NewWithT(t).Eventually(func(g Gomega) {
		a = getAccount(g, ns, name)
		g.Expect(accountReady(a)).To(Equal(want), "conditions: %+v", a.Status.Conditions)
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return a
}

// fakeMaster answers CheckMaster with a fixed verdict and records what it
// was asked.
type fakeMaster struct {
	mu    sync.Mutex
	check exchange.MasterCheck
	asked []exchange.SubAccountRequest
}

func (f *fakeMaster) CheckMaster(_ context.Context, r exchange.SubAccountRequest) (*exchange.MasterCheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, r)
	c := f.check
	return &c, nil
}

func (f *fakeMaster) requests() []exchange.SubAccountRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]exchange.SubAccountRequest(nil), f.asked...)
}

func TestExchangeAccountAdmission(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name string
		mut  func(*keyopsv1.ExchangeAccount)
		want string
	}{
		{"exchange without a sub-account key API", func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "kraken" },
			"spec.exchange must be bybit, okx, binance or kucoin: only these let a master key create and delete sub-account API keys"},
		{"bitfinex has no such API", func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "bitfinex" }, "bitfinex have no such API"},
		{"unknown exchange", func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "mtgox" }, `Unsupported value: "mtgox"`},
		{"okx without passphraseKey", func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "okx" }, "passphraseKey is required for okx"},
		{"kucoin without passphraseKey", func(a *keyopsv1.ExchangeAccount) { a.Spec.Exchange = "kucoin" }, "passphraseKey is required for okx and kucoin"},
		{"endpoint not a URL", func(a *keyopsv1.ExchangeAccount) { a.Spec.Endpoint = "api.bybit.com" }, "endpoint must be an absolute URL"},
		{"missing Secret name", func(a *keyopsv1.ExchangeAccount) {
			a.Spec.CredentialsSecretRef = keyopsv1.CredentialsSecretRef{APIKeyKey: "k"}
		}, "spec.credentialsSecretRef.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAccount(ns, "bad", exchange.Bybit)
			tc.mut(a)
			err := k8s.Create(ctx(), a)
			if err == nil {
				t.Fatal("accepted a malformed ExchangeAccount")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want message containing %q, got: %v", tc.want, err)
			}
		})
	}
	for _, ex := range []exchange.Name{exchange.Bybit, exchange.OKX, exchange.Binance, exchange.KuCoin} {
		create(t, newAccount(ns, "good-"+string(ex), ex))
	}
}

func TestExchangeAPIKeyIssueAdmission(t *testing.T) {
	ns := newNamespace(t)
	// Issued keys are suspended here: the admission rules are under test,
	// not the issuing.
	issued := func(ex keyopsv1.Exchange) *keyopsv1.ExchangeAPIKey {
		return &keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "issued-"},
			Spec: keyopsv1.ExchangeAPIKeySpec{
				Exchange: ex,
				Issue:    &keyopsv1.IssueSpec{AccountRef: keyopsv1.AccountReference{Name: "master"}, SubAccount: "10023455"},
				Suspend:  true,
			},
		}
	}
	cases := []struct {
		name string
		mut  func(*keyopsv1.ExchangeAPIKey)
		want string
	}{
		{"both a source Secret and issue", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.CredentialsSecretRef.Name = "src" },
			"set exactly one of spec.credentialsSecretRef.name (the Secret holding a key you created) and spec.issue"},
		{"neither", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Issue = nil }, "set exactly one of spec.credentialsSecretRef.name"},
		{"issue on an exchange without a sub-account key API", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Exchange = "kraken" },
			"spec.issue is only supported for bybit, okx, binance and kucoin"},
		{"empty sub-account", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Issue.SubAccount = "" }, "spec.issue.subAccount"},
		{"empty account name", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Issue.AccountRef.Name = "" }, "spec.issue.accountRef.name"},
		{"allowlist entry not an IP", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Issue.IPAllowlist = []string{"203.0.113.10", "bot.example.com"}
		},
			"issue.ipAllowlist entries must be IP addresses"},
		{"allowlist prefix out of range", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Issue.IPAllowlist = []string{"203.0.113.0/33"} },
			"issue.ipAllowlist entries must be IP addresses"},
		// The three exchanges bind keys to listed addresses only.
		{"CIDR range on bybit", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Issue.IPAllowlist = []string{"203.0.113.10", "198.51.100.0/24"}
		},
			"issue.ipAllowlist takes single IP addresses, not CIDR ranges"},
		{"CIDR range on okx", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Exchange, k.Spec.Issue.IPAllowlist = "okx", []string{"2001:db8::/32"}
		}, "list each egress IP on its own"},
		{"CIDR range on kucoin", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Exchange, k.Spec.Issue.IPAllowlist = "kucoin", []string{"203.0.113.0/24"}
		}, "Bybit, OKX, Binance and KuCoin bind a key to listed addresses only"},
		{"more than 20 addresses on kucoin", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Exchange = "kucoin"
			for i := 0; i < 21; i++ {
				k.Spec.Issue.IPAllowlist = append(k.Spec.Issue.IPAllowlist, fmt.Sprintf("203.0.113.%d", i+1))
			}
		}, "spec.issue.ipAllowlist"},
		{"single-address CIDR on binance", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Exchange, k.Spec.Issue.IPAllowlist = "binance", []string{"203.0.113.10/32"}
		}, "issue.ipAllowlist takes single IP addresses, not CIDR ranges"},
		// Binance takes trading rights from keys without trusted IPs.
		{"binance without an allowlist", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Exchange, k.Spec.Issue.IPAllowlist = "binance", nil },
			"spec.issue.ipAllowlist is required on binance: Binance takes the trading permission away from keys without trusted IPs"},
		{"label too long", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Issue.Label = strings.Repeat("a", 21) }, "spec.issue.label"},
		{"label with a space", func(k *keyopsv1.ExchangeAPIKey) { k.Spec.Issue.Label = "my bot" }, "spec.issue.label"},
		{"negative overlap", func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Rotation.Overlap = &metav1.Duration{Duration: -5 * time.Minute}
		}, "spec.rotation.overlap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := issued("bybit")
			tc.mut(k)
			err := k8s.Create(ctx(), k)
			if err == nil {
				t.Fatal("accepted a malformed spec.issue")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want message containing %q, got: %v", tc.want, err)
			}
		})
	}

	// Well-formed issued keys on each exchange, OKX included without a
	// passphraseKey (the operator chooses the passphrase), are accepted,
	// and no credentialsSecretRef appears in them.
	for _, ex := range []keyopsv1.Exchange{"bybit", "okx", "binance", "kucoin"} {
		k := issued(ex)
		k.Spec.Issue.IPAllowlist = []string{"203.0.113.10", "198.51.100.7", "2001:db8::1"}
		k.Spec.Issue.Label = "bot_1-a"
		k.Spec.Rotation.Overlap = &metav1.Duration{}
		create(t, k)
		g := getKey(NewWithT(t), ns, k.Name)
		if g.Spec.CredentialsSecretRef != (keyopsv1.CredentialsSecretRef{}) || g.Spec.Issue == nil || g.Spec.Rotation.Overlap == nil || g.Spec.Rotation.Overlap.Duration != 0 {
			t.Fatalf("%s: stored spec = %+v", ex, g.Spec)
		}
	}
}

// TestExchangeAccountSourceSecret runs through the suite's manager and the
// simulator (which does not know the key): it reports a missing Secret
// precisely, checks the key once the Secret exists, and again when the
// Secret changes.
func TestExchangeAccountSourceSecret(t *testing.T) {
	ns := newNamespace(t)
	create(t, newAccount(ns, "master", exchange.Bybit))
	a := waitAccount(t, ns, "master", "False/"+keyopsv1.ReasonSourceSecretMissing)
	if c := meta.FindStatusCondition(a.Status.Conditions, keyopsv1.ConditionReady); !strings.Contains(c.Message, "source Secret "+ns+"/master-key not found") || c.ObservedGeneration != a.Generation {
		t.Fatalf("Ready = %+v", c)
	}

	first := creds(exchange.Bybit)
	putSource(t, ns, "master-key", first)
	a = waitAccount(t, ns, "master", "False/"+keyopsv1.ReasonInvalidKey)
	if a.Status.KeyID != keyid.Mask(first.APIKey) {
		t.Fatalf("keyID = %q, want %q", a.Status.KeyID, keyid.Mask(first.APIKey))
	}

	second := creds(exchange.Bybit)
	putSource(t, ns, "master-key", second)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(getAccount(g, ns, "master").Status.KeyID).To(Equal(keyid.Mask(second.APIKey)))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	waitEvent(t, ns, "master", keyopsv1.ReasonSourceSecretMissing)
}

// TestExchangeAccountMasterChecks drives an AccountReconciler with a fake
// checker against the API server. The suite's manager reconciles the same
// object first (with its default checker); once it has, it leaves the
// status alone until its next check is due, so the reconciler under test
// has the last word.
func TestExchangeAccountMasterChecks(t *testing.T) {
	cases := []struct {
		name    string
		ex      exchange.Name
		check   exchange.MasterCheck
		want    string
		message string
	}{
		{"verified and can manage", exchange.Bybit,
			exchange.MasterCheck{CanManage: true, Permissions: &exchange.Permissions{Canonical: []string{"read", "transfer"}, Native: []string{"Wallet:AccountTransfer"}, IPRestriction: exchange.IPRestricted}},
			"True/" + keyopsv1.ReasonAccountVerified, "verified on bybit and may manage sub-account keys"},
		{"cannot manage", exchange.OKX,
			exchange.MasterCheck{Missing: "the master key must be bound to IP addresses", Permissions: &exchange.Permissions{Canonical: []string{"read", "trade"}}},
			"False/" + keyopsv1.ReasonMasterKeyCannotManage, "cannot manage sub-account keys: the master key must be bound to IP addresses"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			c := creds(tc.ex)
			putSource(t, ns, "master-key", c)
			create(t, newAccount(ns, "master", tc.ex))
			waitAccount(t, ns, "master", "False/"+keyopsv1.ReasonInvalidKey)

			// The manager scheduled its next check 30 s ahead; the reconciler
			// under test lives an hour later, so that its check is due.
			fake := &fakeMaster{check: tc.check}
			rec := kevents.NewFakeRecorder(16)
			r := &exchangeaccount.Reconciler{Client: k8s, APIReader: k8s, Recorder: rec, Master: fake, Endpoints: endpoint.Policy{AllowInsecure: true},
				Clock: clocktesting.NewFakePassiveClock(time.Now().Add(time.Hour)), Jitter: func() float64 { return 0 }}
			var a *keyopsv1.ExchangeAccount
			NewWithT(t).Eventually(func(g Gomega) {
				_, err := r.Reconcile(ctx(), ctrl.Request{NamespacedName: keyName(ns, "master")})
				g.Expect(err).NotTo(HaveOccurred())
				a = getAccount(g, ns, "master")
				g.Expect(accountReady(a)).To(Equal(tc.want))
			}, 20*time.Second, 50*time.Millisecond).Should(Succeed())

			cond := meta.FindStatusCondition(a.Status.Conditions, keyopsv1.ConditionReady)
			if !strings.Contains(cond.Message, tc.message) {
				t.Fatalf("Ready message %q, want %q", cond.Message, tc.message)
			}
			if a.Status.KeyID != keyid.Mask(c.APIKey) || a.Status.Permissions == nil || a.Status.Permissions.Summary != strings.Join(tc.check.Permissions.Canonical, ",") ||
				a.Status.LastCheckTime == nil || a.Status.NextCheckTime == nil {
				t.Fatalf("status = %+v", a.Status)
			}
			asked := fake.requests()
			if len(asked) != 1 || asked[0].Exchange != tc.ex || asked[0].Master != c {
				t.Fatalf("checker asked %d times (want once, for the Secret's key on %s)", len(asked), tc.ex)
			}
			select {
			case e := <-rec.Events:
				if !strings.Contains(e, strings.SplitN(tc.want, "/", 2)[1]) {
					t.Fatalf("event %q, want reason %s", e, tc.want)
				}
			default:
				t.Fatal("no Event for the transition")
			}
			for _, s := range []string{cond.Message, allEventText(t, ns)} {
				if strings.Contains(s, c.APIKey) || strings.Contains(s, c.APISecret) {
					t.Fatal("key material in a message")
				}
			}
			// A second reconcile: nothing due, nothing written, no Event.
			before := a.ResourceVersion
			if _, err := r.Reconcile(ctx(), ctrl.Request{NamespacedName: keyName(ns, "master")}); err != nil {
				t.Fatal(err)
			}
			if got := getAccount(NewWithT(t), ns, "master").ResourceVersion; got != before || len(rec.Events) != 0 || len(fake.requests()) != 1 {
				t.Fatalf("an idle reconcile wrote (resourceVersion %s -> %s), announced (%d events) or checked again", before, got, len(rec.Events))
			}
		})
	}
}
