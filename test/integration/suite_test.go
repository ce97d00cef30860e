package integration_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// One control plane, one simulator and one manager serve every test; each
// test works in a namespace of its own. The manager runs as the service
// account of config/rbac, with exactly its RBAC (not as the envtest admin);
// the test client k8s is the admin.
var (
	k8s         client.Client
	restCfg     *rest.Config
	sim         *simulator.Simulator
	simURL      string
	metricsAddr string
	nsCounter   atomic.Int64
	// mgrRequests records the suite manager's API requests.
	mgrRequests = &requestLog{exclude: slices.Concat(scopedNamespaces, crashNamespaces)}
	// mgrLog holds the managers' logs at the most verbose level, for the
	// secret-leak scan.
	mgrLog *os.File
	// suiteCtx ends when the suite does.
	suiteCtx context.Context
)

// The suite manager's identity, as config/default renders config/rbac
// (namespace: and namePrefix: of config/default/kustomization.yaml).
const (
	operatorNamespace = "exchange-key-operator-system"
	operatorPrefix    = "exchange-key-operator-"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd (hack/envtest-assets.sh)")
		return 1
	}
	var err error
	if mgrLog, err = os.CreateTemp("", "exchange-key-operator-manager-*.log"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		_ = mgrLog.Close()
		if code == 0 {
			_ = os.Remove(mgrLog.Name())
		}
	}()
	// Everything down to V(10) into the file; errors (or, with
	// TEST_VERBOSE, V(1)) also to stderr as before.
	stderr := zapcore.NewCore(zapcore.NewJSONEncoder(uberzap.NewProductionEncoderConfig()), zapcore.Lock(os.Stderr), zapLevel())
	ctrl.SetLogger(zap.New(zap.WriteTo(mgrLog), zap.UseDevMode(false), zap.Level(zapcore.Level(-10)),
		zap.RawZapOpts(uberzap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, stderr) }))))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// As on OpenShift: setting ownerReferences needs delete on the object,
	// blockOwnerDeletion needs update on the owner's finalizers. The RBAC
	// test then covers the verbs this plugin checks.
	env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
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

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	suiteCtx = ctx
	admin, err := client.NewWithWatch(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Every Secret a test writes is key material to look for afterwards.
	k8s = interceptor.NewClient(admin, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			recordSecret(obj)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			recordSecret(obj)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			recordSecret(obj)
			return c.Patch(ctx, obj, patch, opts...)
		},
	})

	// The manager's service account and RBAC: every file of config/rbac.
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	files, err := kustomizeFiles(rbacDir)
	if err == nil {
		err = applyRBAC(ctx, k8s, placement{namespace: operatorNamespace, prefix: operatorPrefix}, files...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "applying config/rbac:", err)
		return 1
	}

	// Plain HTTP on loopback, so that the metrics tests scrape without a
	// token; TestSecureMetrics covers HTTPS with authorization.
	metricsAddr = freeAddr()
	opts := testManagerOptions()
	opts.MetricsBindAddress = metricsAddr
	opts.MetricsSecure = false
	mgr, err := operator.New(ctx, impersonate(cfg, operatorNamespace, operatorPrefix+"controller-manager", mgrRequests), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building manager:", err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	code = m.Run()
	if problems := afterSuite(ctx, code == 0); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "FAIL:", p)
		}
		fmt.Fprintln(os.Stderr, "manager log kept at", mgrLog.Name())
		return 1
	}
	return code
}

// afterSuite runs the checks over the whole run: the secret-leak scan and,
// when every test ran and passed (a failed test may not have made the
// requests it needed), the needless-verb check.
func afterSuite(ctx context.Context, passed bool) []string {
	problems, err := scanForLeaks(ctx)
	if err != nil {
		return []string{"secret-leak scan: " + err.Error()}
	}
	if !passed || !fullRun() {
		return problems
	}
	rules, err := rulesOf(filepath.Join(rbacDir, "role.yaml"))
	if err != nil {
		return append(problems, err.Error())
	}
	return append(problems, checkNeedlessVerbs(expand(rules), mgrRequests.snapshot())...)
}

// fullRun: no -run or -skip filter, so every request the suite makes was made.
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

// recordSecret registers the data of a Secret a test writes as fixtures.
func recordSecret(obj client.Object) {
	if s, ok := obj.(*corev1.Secret); ok {
		fixtures.addSecretData(s.Namespace, s.Name, s.Data, s.StringData)
	}
}

// scanForLeaks looks for every fixture in the manager log, every Event,
// every ExchangeAPIKey status and the metrics.
func scanForLeaks(ctx context.Context) ([]string, error) {
	s := fixtures.scanner()
	var found []finding
	if err := mgrLog.Sync(); err != nil {
		return nil, err
	}
	logFile, err := os.Open(mgrLog.Name())
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	f, err := s.scanLines("the manager log", logFile)
	if err != nil {
		return nil, err
	}
	found = append(found, f...)
	var events eventsv1.EventList
	if err := k8s.List(ctx, &events); err != nil {
		return nil, err
	}
	for _, e := range events.Items {
		b, _ := json.Marshal(e)
		found = append(found, s.scan(fmt.Sprintf("Event %s/%s (%s, about %s %s)", e.Namespace, e.Name, e.Reason, e.Regarding.Kind, e.Regarding.Name), string(b))...)
	}
	var coreEvents corev1.EventList
	if err := k8s.List(ctx, &coreEvents); err != nil {
		return nil, err
	}
	for _, e := range coreEvents.Items {
		b, _ := json.Marshal(e)
		found = append(found, s.scan(fmt.Sprintf("core Event %s/%s (%s)", e.Namespace, e.Name, e.Reason), string(b))...)
	}
	var keys keyopsv1.ExchangeAPIKeyList
	if err := k8s.List(ctx, &keys); err != nil {
		return nil, err
	}
	for _, k := range keys.Items {
		b, _ := json.Marshal(k.Status)
		found = append(found, s.scan(fmt.Sprintf("the status of ExchangeAPIKey %s/%s", k.Namespace, k.Name), string(b))...)
	}
	found = append(found, s.scan("the metrics", scrape())...)
	out := make([]string, 0, len(found))
	for _, f := range found {
		out = append(out, "secret-leak scan: "+f.String())
	}
	return out, nil
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
func creds(ex exchange.Name) exchange.Credentials {
	c := exchangetest.NewCredentials(ex)
	fixtures.addCredentials(ex, c)
	return c
}

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

// testManagerOptions are the product defaults as the suite's managers run
// them: no health probes, the plain-HTTP simulator allowed, no jitter, a
// short exchange timeout and per-exchange limits out of the way.
func testManagerOptions() operator.Options {
	opts := operator.Defaults()
	opts.HealthProbeBindAddress = "0"
	opts.AllowInsecureEndpoints = true
	opts.Jitter = func() float64 { return 0 }
	opts.ExchangeTimeout = 2 * time.Second
	// Replacing issued keys the exchange no longer accepts: at once, then
	// after selfHealBackoff, then RepeatedlyRevoked (selfheal_test.go).
	opts.ReplaceBackoff = []time.Duration{0, selfHealBackoff}
	opts.ExchangeRateLimits = map[exchange.Name]exchange.RateLimit{}
	for _, n := range exchange.Names {
		opts.ExchangeRateLimits[n] = exchange.RateLimit{PerSecond: 1000, Burst: 1000}
	}
	return opts
}
