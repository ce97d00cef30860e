package integration_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// A second manager in the suite's control plane runs as config/namespaced
// installs it: --watch-namespaces, Roles in the watched namespaces only, and
// HTTPS metrics. The suite manager is kept out of its namespaces (see
// requestLog.exclude), so what happens in them is the scoped manager's doing.

var namespacedDir = filepath.Join("..", "..", "config", "namespaced")

const (
	scopedPrefix    = "scoped-"
	scopedOperator  = scopedPrefix + "operator-system"
	scopedAccount   = scopedPrefix + "controller-manager"
	scopedScraper   = scopedPrefix + "scraper"
	scopedStranger  = scopedPrefix + "stranger"
	scopedWatchedA  = scopedPrefix + "team-a"
	scopedWatchedB  = scopedPrefix + "team-b"
	scopedReaderCRB = scopedPrefix + "metrics-reader-binding"
)

// scopedNamespaces are the scoped manager's; the suite manager stays out.
var scopedNamespaces = []string{scopedOperator, scopedWatchedA, scopedWatchedB}

type scopedManager struct {
	requests    *requestLog
	metricsAddr string
	errs        chan error
}

var (
	scopedOnce sync.Once
	scoped     *scopedManager
	scopedErr  error
)

// startScoped starts the namespace-scoped manager once for the tests that
// share it; it stops with the suite.
func startScoped(t *testing.T) *scopedManager {
	t.Helper()
	scopedOnce.Do(func() { scoped, scopedErr = newScoped(suiteCtx) })
	if scopedErr != nil {
		t.Fatal(scopedErr)
	}
	return scoped
}

func newScoped(ctx context.Context) (*scopedManager, error) {
	for _, ns := range scopedNamespaces {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
	}
	// The operator's namespace: config/rbac less what
	// config/namespaced/operator deletes.
	skip, err := deletedByPatches(filepath.Join(namespacedDir, "operator"))
	if err != nil {
		return nil, err
	}
	files, err := kustomizeFiles(rbacDir)
	if err != nil {
		return nil, err
	}
	if err := applyRBAC(ctx, k8s, placement{namespace: scopedOperator, prefix: scopedPrefix, skip: skip}, files...); err != nil {
		return nil, err
	}
	// The watched namespaces: config/namespaced/watched, bound to this
	// manager's account.
	watched, err := kustomizeFiles(filepath.Join(namespacedDir, "watched"))
	if err != nil {
		return nil, err
	}
	subject := &rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: scopedAccount, Namespace: scopedOperator}
	for _, ns := range []string{scopedWatchedA, scopedWatchedB} {
		if err := applyRBAC(ctx, k8s, placement{namespace: ns, subject: subject}, watched...); err != nil {
			return nil, err
		}
	}
	// Scrapers, made now so that RBAC has settled long before the first
	// scrape (the metrics endpoint caches a denial for 30 s): one bound to
	// metrics-reader, one bound to nothing.
	for _, sa := range []string{scopedScraper, scopedStranger} {
		if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: scopedOperator, Name: sa}}); err != nil {
			return nil, err
		}
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: scopedReaderCRB},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: scopedPrefix + "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: scopedScraper, Namespace: scopedOperator}},
	}); err != nil {
		return nil, err
	}

	sm := &scopedManager{requests: &requestLog{}, metricsAddr: freeAddr(), errs: make(chan error, 1)}
	opts := operator.Defaults()
	opts.WatchNamespaces = []string{scopedWatchedA, scopedWatchedB}
	opts.MetricsBindAddress = sm.metricsAddr // HTTPS: the default
	opts.SkipMetricsRegistration = true
	opts.HealthProbeBindAddress = "0"
	opts.AllowInsecureEndpoints = true
	opts.Jitter = func() float64 { return 0 }
	opts.ExchangeTimeout = 2 * time.Second
	mgr, err := operator.New(ctx, impersonate(restCfg, scopedOperator, scopedAccount, sm.requests), opts)
	if err != nil {
		return nil, fmt.Errorf("building the namespace-scoped manager: %w", err)
	}
	go func() { sm.errs <- mgr.Start(ctx) }()
	return sm, nil
}

// deletedByPatches lists the objects (Kind/name) a kustomization deletes
// with `$patch: delete` patches.
func deletedByPatches(dir string) (sets.Set[string], error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Patches []struct {
			Patch string `json:"patch"`
		} `json:"patches"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, err
	}
	out := sets.New[string]()
	for _, p := range k.Patches {
		var obj struct {
			Patch    string `json:"$patch"`
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(p.Patch), &obj) == nil && obj.Patch == "delete" {
			out.Insert(obj.Kind + "/" + obj.Metadata.Name)
		}
	}
	if !out.Has("ClusterRole/manager-role") {
		return nil, fmt.Errorf("%s no longer deletes the generated ClusterRole manager-role", dir)
	}
	return out, nil
}

// The scoped manager reconciles a key in a namespace it watches, makes no
// request outside its namespaces, and is never refused one.
func TestNamespaceScopedManager(t *testing.T) {
	sm := startScoped(t)
	g := NewWithT(t)
	elsewhere := newNamespace(t)
	for _, ns := range []string{scopedWatchedA, elsewhere} {
		c := creds(exchange.Binance)
		register(exchange.Binance, c, "read")
		putSource(t, ns, "bot-source", c)
		create(t, newKey(ns, "bot", exchange.Binance, ""))
	}
	got := waitCond(t, scopedWatchedA, "bot", keyopsv1.ConditionReady, "True/Ready")
	g.Expect(cond(got, keyopsv1.ConditionKeyValid)).To(Equal("True/Verified"))
	g.Expect(secretExists(scopedWatchedA, "bot")).To(BeTrue())
	waitEvent(t, scopedWatchedA, "bot", "Verified")
	// The suite manager serves the other namespace meanwhile.
	waitCond(t, elsewhere, "bot", keyopsv1.ConditionReady, "True/Ready")

	watched := sets.New(scopedWatchedA, scopedWatchedB)
	// Cluster-scoped APIs the HTTPS metrics endpoint calls.
	clusterScoped := sets.New("tokenreviews", "subjectaccessreviews")
	calls := sm.requests.snapshot()
	g.Expect(calls).To(HaveKey(apiCall{verb: "update", group: keyopsv1.GroupVersion.Group, resource: "exchangeapikeys/status", namespace: scopedWatchedA}),
		"the scoped manager wrote the status in %s", scopedWatchedA)
	for c, n := range calls {
		switch {
		case c.denied:
			t.Errorf("refused %d times: %s %s/%s in %q", n, c.verb, c.group, c.resource, c.namespace)
		case c.namespace == "" && !clusterScoped.Has(c.resource):
			t.Errorf("cluster-wide request: %s %s/%s", c.verb, c.group, c.resource)
		case c.namespace != "" && !watched.Has(c.namespace):
			t.Errorf("request outside --watch-namespaces: %s %s/%s in %q", c.verb, c.group, c.resource, c.namespace)
		}
	}
	select {
	case err := <-sm.errs:
		t.Fatalf("the scoped manager stopped: %v", err)
	default:
	}
}

// The HTTPS metrics endpoint answers only a token the API server
// authenticates and authorizes for GET /metrics.
func TestSecureMetrics(t *testing.T) {
	sm := startScoped(t)
	g := NewWithT(t)
	cs, err := kubernetes.NewForConfig(restCfg)
	g.Expect(err).NotTo(HaveOccurred())
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(scopedOperator).CreateToken(ctx(), sa,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	// The certificate is the manager's self-signed one.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(bearer string) func() (string, error) {
		return func() (string, error) {
			req, _ := http.NewRequest(http.MethodGet, "https://"+sm.metricsAddr+"/metrics", nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
		}
	}
	// Until the server listens, the request fails; then the answer is final.
	g.Eventually(get(""), 20*time.Second, 100*time.Millisecond).Should(HavePrefix("401 "))
	g.Expect(get(token(scopedStranger))()).To(HavePrefix("403 "))
	body, err := get(token(scopedScraper))()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(body).To(HavePrefix("200 "))
	g.Expect(body).To(ContainSubstring("controller_runtime_reconcile_total"))
}
