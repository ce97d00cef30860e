package controllers_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// One control plane, one simulator and one manager serve every test; each
// test works in a namespace of its own.
var (
	k8s         client.Client
	restCfg     *rest.Config
	sim         *simulator.Simulator
	simURL      string
	metricsAddr string
	nsCounter   atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd (hack/envtest-assets.sh)")
		return 1
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapLevel())))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	restCfg = cfg

	sim = simulator.New()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	simURL = srv.URL

	metricsAddr = freeAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := operator.Defaults()
	opts.MetricsBindAddress = metricsAddr
	opts.HealthProbeBindAddress = "0"
	opts.AllowInsecureEndpoints = true
	opts.Jitter = func() float64 { return 0 }
	opts.ExchangeTimeout = 2 * time.Second
	opts.ExchangeRateLimits = map[exchange.Name]exchange.RateLimit{}
	for _, n := range exchange.Names {
		opts.ExchangeRateLimits[n] = exchange.RateLimit{PerSecond: 1000, Burst: 1000}
	}
	mgr, err := operator.New(ctx, cfg, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building manager:", err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	k8s, err = client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 2 // errors only: keep `go test` output readable
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 60 {
		name = strings.TrimRight(name[:60], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

func ctx() context.Context { return context.Background() }

// creds makes key material shaped for the exchange.
func creds(ex exchange.Name) exchange.Credentials { return exchangetest.NewCredentials(ex) }

// register adds a key to the simulator.
func register(ex exchange.Name, c exchange.Credentials, perms ...string) {
	sim.AddKey(simulator.Key{Exchange: ex, APIKey: c.APIKey, Secret: c.APISecret, Passphrase: c.Passphrase, Permissions: perms})
}

func sourceSecret(ns, name string, c exchange.Credentials) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"apiKey": []byte(c.APIKey), "apiSecret": []byte(c.APISecret)},
	}
	if c.Passphrase != "" {
		s.Data["passphrase"] = []byte(c.Passphrase)
	}
	return s
}

func putSource(t *testing.T, ns, name string, c exchange.Credentials) {
	t.Helper()
	want := sourceSecret(ns, name, c)
	var have corev1.Secret
	err := k8s.Get(ctx(), client.ObjectKeyFromObject(want), &have)
	if err == nil {
		have.Data = want.Data
		if err := k8s.Update(ctx(), &have); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := k8s.Create(ctx(), want); err != nil {
		t.Fatal(err)
	}
}

// newKey builds an ExchangeAPIKey pointing at the simulator.
func newKey(ns, name string, ex exchange.Name, mode keyopsv1.ValidationMode) *keyopsv1.ExchangeAPIKey {
	k := &keyopsv1.ExchangeAPIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keyopsv1.ExchangeAPIKeySpec{
			Exchange:             keyopsv1.Exchange(ex),
			Endpoint:             simulator.BaseURL(simURL, ex),
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: name + "-source"},
			Validation:           keyopsv1.ValidationSpec{Mode: mode},
		},
	}
	if ex == exchange.OKX || ex == exchange.KuCoin {
		k.Spec.CredentialsSecretRef.PassphraseKey = "passphrase"
	}
	return k
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(ctx(), obj); err != nil {
		t.Fatal(err)
	}
}

func getKey(g Gomega, ns, name string) *keyopsv1.ExchangeAPIKey {
	var k keyopsv1.ExchangeAPIKey
	g.Expect(k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: name}, &k)).To(Succeed())
	return &k
}

// cond returns "Status/Reason" of a condition, or "" when absent.
func cond(k *keyopsv1.ExchangeAPIKey, typ string) string {
	c := meta.FindStatusCondition(k.Status.Conditions, typ)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

// waitCond waits until condition typ reads want ("True/Verified").
func waitCond(t *testing.T, ns, name, typ, want string) *keyopsv1.ExchangeAPIKey {
	t.Helper()
	var k *keyopsv1.ExchangeAPIKey
	NewWithT(t).Eventually(func(g Gomega) {
		k = getKey(g, ns, name)
		g.Expect(cond(k, typ)).To(Equal(want), "conditions: %+v", k.Status.Conditions)
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return k
}

func getSecret(g Gomega, ns, name string) *corev1.Secret {
	var s corev1.Secret
	g.Expect(k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: name}, &s)).To(Succeed())
	return &s
}

// events lists the Events about an object, by reason.
func events(t *testing.T, ns, name string) map[string]int {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(ctx(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			n := 1
			if e.DeprecatedCount > 0 {
				n = int(e.DeprecatedCount)
			}
			if e.Series != nil {
				n = int(e.Series.Count)
			}
			out[e.Reason] += n
		}
	}
	return out
}

func waitEvent(t *testing.T, ns, name, reason string) {
	t.Helper()
	NewWithT(t).Eventually(func() map[string]int { return events(t, ns, name) }, 20*time.Second, 100*time.Millisecond).Should(HaveKey(reason))
}

// allEventText is every Event note in a namespace, for leak checks.
func allEventText(t *testing.T, ns string) string {
	var list eventsv1.EventList
	if err := k8s.List(ctx(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range list.Items {
		b.WriteString(e.Reason + " " + e.Note + "\n")
	}
	return b.String()
}

func keyName(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func newSecret() *corev1.Secret { return &corev1.Secret{} }
