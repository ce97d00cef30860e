package controllers_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/keyid"
)

// Zero-touch rotation (spec.issue) end to end: the suite's manager, with the
// real prober managing sub-account keys, against the suite's simulator. Each
// test runs the three exchanges with a sub-account key API side by side,
// each with a master key and a sub-account of its own.

var issueExchanges = []exchange.Name{exchange.Bybit, exchange.OKX, exchange.Binance}

// subSeq makes sub-account names unique in the shared simulator.
var subSeq atomic.Int64

// issueEnv is one namespace with a Ready ExchangeAccount "master" and a
// sub-account of its master key.
type issueEnv struct {
	t      *testing.T
	ns     string
	ex     exchange.Name
	master exchange.Credentials
	sub    string
	prober *exchange.Prober
}

// masterKey registers a master key the exchange's rules accept, as
// internal/exchange/subaccount_test.go does: Bybit needs a transfer
// permission, OKX Trade and bound IPs, Binance Spot & Margin trading.
func masterKey(ex exchange.Name, c exchange.Credentials) simulator.Key {
	k := simulator.Key{Exchange: ex, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase}
	switch ex {
	case exchange.Bybit:
		k.Permissions = []string{"read", "transfer"}
	case exchange.OKX, exchange.Binance:
		k.Permissions, k.AllowedIPs = []string{"read", "trade"}, []string{"127.0.0.1"}
	}
	return k
}

func newIssueEnv(t *testing.T, ex exchange.Name) *issueEnv {
	t.Helper()
	n := subSeq.Add(1)
	sub := map[exchange.Name]string{
		exchange.Bybit:   strconv.FormatInt(10023455+n, 10),
		exchange.OKX:     fmt.Sprintf("botsub%03d", n),
		exchange.Binance: fmt.Sprintf("bot%d@sub.example", n),
	}[ex]
	e := &issueEnv{t: t, ns: newNamespace(t), ex: ex, master: creds(ex), sub: sub}
	sim.AddKey(masterKey(ex, e.master))
	sim.AddSubAccount(ex, e.master.APIKey, sub)
	limits := map[exchange.Name]exchange.RateLimit{}
	for _, n := range exchange.Names {
		limits[n] = exchange.RateLimit{PerSecond: 1000, Burst: 1000}
	}
	e.prober = exchange.NewProber(exchange.Options{RateLimits: limits})
	putSource(t, e.ns, "master-key", e.master)
	create(t, newAccount(e.ns, "master", ex))
	waitAccount(t, e.ns, "master", "True/"+keyopsv1.ReasonAccountVerified)
	return e
}

// req addresses the sub-account with the master key, as the operator does.
func (e *issueEnv) req() exchange.SubAccountRequest {
	return exchange.SubAccountRequest{Exchange: e.ex, Endpoint: simulator.BaseURL(simURL, e.ex), Master: e.master, SubAccount: e.sub}
}

// issuedKey is an ExchangeAPIKey that the operator issues on e's
// sub-account: read and trade, bound to loopback (where the simulator sees
// the operator come from), restarts without debounce.
func (e *issueEnv) issuedKey(name string) *keyopsv1.ExchangeAPIKey {
	return &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange: keyopsv1.Exchange(e.ex),
			Issue: &keyopsv1.IssueSpec{
				AccountRef:  keyopsv1.AccountReference{Name: "master"},
				SubAccount:  e.sub,
				IPAllowlist: []string{"127.0.0.1"},
			},
			Permissions:     keyopsv1.PermissionPolicy{Required: []keyopsv1.Permission{"read", "trade"}, Forbidden: []keyopsv1.Permission{"withdraw"}},
			RestartDebounce: &metav1.Duration{},
		},
	}
}

// issuance reads the issuance Secret; its key material joins the leak
// scan's fixtures.
func (e *issueEnv) issuance(g Gomega, name string) *corev1.Secret {
	s := getSecret(g, e.ns, name+"-issued-key")
	secret := map[string][]byte{}
	for _, f := range []string{"apiKey", "apiSecret", "passphrase", "previousApiKey", "pendingApiKey", "pendingApiSecret", "pendingPassphrase"} {
		if len(s.Data[f]) > 0 {
			secret[f] = s.Data[f]
		}
	}
	fixtures.addSecretData(s.Namespace, s.Name, secret, nil)
	return s
}

// current is the issued key's material, as the issuance Secret holds it.
func (e *issueEnv) current(g Gomega, name string) exchange.Credentials {
	s := e.issuance(g, name)
	return exchange.Credentials{APIKey: string(s.Data["apiKey"]), APISecret: string(s.Data["apiSecret"]), Passphrase: string(s.Data["passphrase"])}
}

// live says whether the exchange still knows apiKey (a deleted key is
// revoked in the simulator). It reads the simulator directly: polling the
// list endpoint would spend the rate limit the operator needs.
func live(ex exchange.Name, apiKey string) bool {
	var st simulator.State
	ok := sim.UpdateKey(ex, apiKey, func(k *simulator.Key) { st = k.State })
	return ok && st != simulator.Revoked
}

// ownKeys are the live keys on the sub-account labelled with k's prefix.
func (e *issueEnv) ownKeys(g Gomega, prefix string) []exchange.SubAccountKey {
	keys, err := e.prober.ListSubAccountKeys(ctx(), e.req())
	g.Expect(err).NotTo(HaveOccurred())
	var out []exchange.SubAccountKey
	for _, k := range keys {
		if strings.HasPrefix(k.Label, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// waitIssued waits until generation gen is issued and in the bots' hands:
// KeyIssued True, Ready, and the target holding it.
func (e *issueEnv) waitIssued(name string, gen int64) *keyopsv1.ExchangeAPIKey {
	e.t.Helper()
	var k *keyopsv1.ExchangeAPIKey
	NewWithT(e.t).Eventually(func(g Gomega) {
		k = getKey(g, e.ns, name)
		g.Expect(k.Status.Issued).NotTo(BeNil(), "conditions: %+v", k.Status.Conditions)
		g.Expect(k.Status.Issued.Generation).To(Equal(gen), "conditions: %+v", k.Status.Conditions)
		g.Expect(cond(k, keyopsv1.ConditionKeyIssued)).To(Equal("True/"+keyopsv1.ReasonKeyIssuedOK), "conditions: %+v", k.Status.Conditions)
		g.Expect(cond(k, keyopsv1.ConditionReady)).To(Equal("True/Ready"), "conditions: %+v", k.Status.Conditions)
		g.Expect(k.Status.TargetKeyFingerprint).To(Equal(k.Status.Issued.Fingerprint))
	}, 30*time.Second, 50*time.Millisecond).Should(Succeed())
	return k
}

// target is the target Secret's key material (format Plain).
func (e *issueEnv) target(g Gomega, name string) exchange.Credentials {
	s := getSecret(g, e.ns, name)
	return exchange.Credentials{APIKey: string(s.Data["apiKey"]), APISecret: string(s.Data["apiSecret"]), Passphrase: string(s.Data["passphrase"])}
}

func annotateRotate(t *testing.T, ns, name, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, keyopsv1.AnnotationRotate, value)
	k := &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Patch(ctx(), k, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func patchSpec(t *testing.T, ns, name, spec string) {
	t.Helper()
	k := &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Patch(ctx(), k, client.RawPatch(types.MergePatchType, []byte(`{"spec":`+spec+`}`))); err != nil {
		t.Fatal(err)
	}
}

// deploymentGeneration is how often the Deployment's pod template changed
// (1 at creation, one more per restart).
func deploymentGeneration(g Gomega, ns, name string) int64 {
	var d appsv1.Deployment
	g.Expect(k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: name}, &d)).To(Succeed())
	return d.Generation
}

// waitGone waits until the object is deleted (its finalizers let go).
func waitGone(t *testing.T, obj client.Object) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx(), client.ObjectKeyFromObject(obj), obj))
	}, 30*time.Second, 50*time.Millisecond).Should(BeTrue())
}

func deleteKey(t *testing.T, ns, name string) {
	t.Helper()
	k := &keyopsv1.ExchangeAPIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Delete(ctx(), k); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	waitGone(t, k)
}

// TestIssuedKeyLifecycle: issue, rotate on the annotation (requests made
// during the rotation are the same rotation), the previous key deleted
// after the overlap and not before, overlap 0s, one restart per rotation,
// and deletion (policy Delete) deleting the keys at the exchange.
func TestIssuedKeyLifecycle(t *testing.T) {
	for _, ex := range issueExchanges {
		t.Run(string(ex), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			e := newIssueEnv(t, ex)
			create(t, deployment(e.ns, "bot"))
			k := e.issuedKey("bot")
			k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
			k.Spec.Rotation.Overlap = &metav1.Duration{Duration: 3 * time.Second}
			create(t, k)

			// Issue: the key exists on the sub-account with exactly the
			// natives that grant read and trade, and the allowlist.
			k = e.waitIssued("bot", 1)
			first := e.current(g, "bot")
			g.Expect(k.Status.Issued.KeyID).To(Equal(keyid.Mask(first.APIKey)))
			g.Expect(k.Status.Issued.Label).To(HaveSuffix("1"))
			g.Expect(k.Status.Issued.CreatedAt).NotTo(BeNil())
			prefix := strings.TrimSuffix(k.Status.Issued.Label, "1")
			want, err := exchange.NativeForSubAccount(ex, []string{"read", "trade"})
			g.Expect(err).NotTo(HaveOccurred())
			own := e.ownKeys(g, prefix)
			g.Expect(own).To(HaveLen(1))
			g.Expect(own[0].APIKey).To(Equal(first.APIKey))
			g.Expect(own[0].Label).To(Equal(k.Status.Issued.Label))
			g.Expect(own[0].Native).To(ConsistOf(want))
			if ex != exchange.Binance { // Binance's list does not show the allowlist
				g.Expect(own[0].IPs).To(ConsistOf("127.0.0.1"))
			}
			g.Expect(k.Status.Permissions.IPRestriction).To(Equal(keyopsv1.IPRestrictionTrue))
			g.Expect(e.target(g, "bot")).To(Equal(first))
			if ex == exchange.Binance {
				// The private key, as PKCS#8 PEM; Binance never saw it.
				g.Expect(first.APISecret).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))
			}
			if sub, _ := sim.SubAccountOf(ex, first.APIKey); sub != e.sub {
				t.Fatalf("the key was created on sub-account %q, want %q", sub, e.sub)
			}
			g.Expect(events(t, e.ns, "bot")).To(HaveKey(keyopsv1.EventKeyIssued))
			g.Eventually(func(g Gomega) int64 { return deploymentGeneration(g, e.ns, "bot") }, 10*time.Second, 50*time.Millisecond).Should(Equal(int64(2)))

			// Rotate on the annotation; a second value while the rotation
			// is in progress is the same rotation.
			annotateRotate(t, e.ns, "bot", "r1")
			g.Eventually(func(g Gomega) {
				k = getKey(g, e.ns, "bot")
				g.Expect(k.Status.Issued.Generation).To(Equal(int64(2)))
				g.Expect(k.Status.PreviousKey).NotTo(BeNil())
			}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
			annotateRotate(t, e.ns, "bot", "r2")
			inProgress := e.issuance(g, "bot").Data["previousApiKey"] != nil
			second := e.current(g, "bot")
			g.Expect(second.APIKey).NotTo(Equal(first.APIKey))
			g.Expect(k.Status.PreviousKey.KeyID).To(Equal(keyid.Mask(first.APIKey)))

			// The previous key lives until deleteAfter, and goes after.
			var deleteAfter time.Time
			g.Eventually(func(g Gomega) {
				k := getKey(g, e.ns, "bot")
				if p := k.Status.PreviousKey; p != nil && p.DeleteAfter != nil {
					deleteAfter = p.DeleteAfter.Time
				}
				alive, now := live(ex, first.APIKey), time.Now()
				if !alive && (deleteAfter.IsZero() || now.Before(deleteAfter)) {
					StopTrying(fmt.Sprintf("the previous key was deleted at %s, before the overlap ended (deleteAfter %v)", now, deleteAfter)).Now()
				}
				g.Expect(alive).To(BeFalse())
			}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
			k = e.waitIssued("bot", 2)
			g.Expect(k.Status.PreviousKey).To(BeNil())
			g.Expect(e.target(g, "bot")).To(Equal(second))
			g.Expect(live(ex, second.APIKey)).To(BeTrue())
			waitEvent(t, e.ns, "bot", keyopsv1.EventPreviousKeyDeleted)
			if inProgress {
				g.Eventually(func() string { return getKey(g, e.ns, "bot").Status.RotateRequest }, 10*time.Second, 50*time.Millisecond).Should(Equal("r2"))
				g.Expect(getKey(g, e.ns, "bot").Status.Issued.Generation).To(Equal(int64(2)), "r2 made a second rotation")
			}
			g.Expect(e.ownKeys(g, prefix)).To(HaveLen(1))
			g.Expect(deploymentGeneration(g, e.ns, "bot")).To(Equal(int64(3)), "one restart per rotation")
			g.Expect(k.Status.History).To(ContainElements(
				HaveField("KeyID", keyid.Mask(first.APIKey)), HaveField("KeyID", keyid.Mask(second.APIKey))))

			// Overlap 0s (revoke on exposure): the previous key goes as
			// soon as the bots run on the new one.
			patchSpec(t, e.ns, "bot", `{"rotation":{"overlap":"0s"}}`)
			annotateRotate(t, e.ns, "bot", "r3")
			g.Eventually(func(g Gomega) {
				k := getKey(g, e.ns, "bot")
				g.Expect(k.Status.Issued.Generation).To(Equal(int64(3)))
				g.Expect(k.Status.PreviousKey).To(BeNil())
				g.Expect(live(ex, second.APIKey)).To(BeFalse())
			}, 20*time.Second, 20*time.Millisecond).Should(Succeed())
			third := e.current(g, "bot")
			g.Expect(e.target(g, "bot")).To(Equal(third))
			g.Expect(deploymentGeneration(g, e.ns, "bot")).To(Equal(int64(4)), "one restart per rotation")

			// Deletion (policy Delete): the key goes at the exchange, then
			// the object.
			deleteKey(t, e.ns, "bot")
			g.Expect(live(ex, third.APIKey)).To(BeFalse())
			g.Expect(e.ownKeys(g, prefix)).To(BeEmpty())
			for _, s := range []string{allEventText(t, e.ns)} {
				for _, c := range []exchange.Credentials{first, second, third} {
					g.Expect(s).NotTo(ContainSubstring(c.APIKey))
				}
			}
		})
	}
}

var _ = meta.FindStatusCondition
var _ = slices.Contains[[]string]
var _ = ed25519.GenerateKey
var _ = rand.Reader
var _ = x509.MarshalPKCS8PrivateKey
var _ = pem.EncodeToMemory
