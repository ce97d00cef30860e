package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/exchangetest"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
	"github.com/keyops-io/exchange-key-operator/test/internal/grafana"
)

const (
	keysNamespace     = "trading"
	operatorNamespace = "exchange-key-operator-system"
	scrapeJob         = "exchange-key-operator"
	noTokenJob        = "without-token"
)

// emptyByDesign are the queries that return nothing in this test, and why
// (`dashboard panel 19 "Issued and deleted keys" target A`: "reason"). None today:
// the test makes every series the dashboard and the rules query. A query
// listed here that returns data fails the test, so the list stays true.
var emptyByDesign = map[string]string{}

// TestPrometheus runs a real Prometheus against the manager's HTTPS
// metrics endpoint, configured from config/prometheus/monitor.yaml (a
// service account token bound to config/rbac's metrics-reader) with
// config/prometheus/rules.yaml loaded; with keys in several states, every
// query of config/grafana/dashboard.json and of the alert rules returns
// data (or is in emptyByDesign), and a scrape without the token is refused.
func TestPrometheus(t *testing.T) {
	prometheusBin := tool(t, "PROMETHEUS")
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test` or `make test-monitoring` (hack/envtest-assets.sh)")
	}
	began := time.Now()
	g := NewWithT(t)
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	// Control plane, simulator, manager (metrics over HTTPS with
	// authentication and authorization: the product default). The manager
	// runs with envtest's admin credentials: its own RBAC for TokenReview and
	// SubjectAccessReview (config/rbac/metrics_auth_role.yaml) is
	// test/integration's TestSecureMetrics; here the scraper's matters.
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	sim := simulator.New()
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts := operator.Defaults()
	opts.MetricsBindAddress = freeAddr(t)
	opts.HealthProbeBindAddress = "0"
	opts.AllowInsecureEndpoints = true // the simulator speaks plain HTTP on loopback
	opts.Jitter = func() float64 { return 0 }
	opts.ExchangeTimeout = 2 * time.Second
	g.Expect(opts.MetricsSecure).To(BeTrue(), "the product default serves metrics over HTTPS")
	mgr, err := operator.New(ctx, cfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-mgrDone; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	k8s, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	for _, ns := range []string{keysNamespace, "monitoring"} {
		g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}

	// Prometheus's identity: a service account bound to config/rbac's
	// metrics-reader, and a TokenRequest token for it, made before the
	// first scrape (the manager caches a denial).
	tokenFile := filepath.Join(t.TempDir(), "token")
	g.Expect(os.WriteFile(tokenFile, []byte(scraperToken(t, ctx, k8s, cfg)), 0o600)).To(Succeed())

	// Prometheus, configured from monitor.yaml and rules.yaml.
	dir := t.TempDir()
	writeRuleFile(t, loadRules(t), filepath.Join(dir, "rules.yaml"))
	// The Prometheus Operator gives the target the metrics Service's
	// namespace; honorLabels keeps each key's own.
	targetLabels := map[string]string{"namespace": operatorNamespace}
	promCfg := prometheusConfig(t, loadEndpoints(t)[0], filepath.Join(dir, "rules.yaml"),
		scrapeTarget{job: scrapeJob, address: opts.MetricsBindAddress, tokenFile: tokenFile, interval: time.Second, labels: targetLabels},
		scrapeTarget{job: noTokenJob, address: opts.MetricsBindAddress, interval: time.Second, labels: targetLabels})
	g.Expect(os.WriteFile(filepath.Join(dir, "prometheus.yml"), promCfg, 0o644)).To(Succeed())
	prom := startPrometheus(t, prometheusBin, dir)
	t.Logf("control plane, manager and Prometheus up after %s", time.Since(began).Round(time.Millisecond))

	// Keys in the states the alerts and panels are about.
	keys := makeKeys(t, ctx, k8s, sim, simSrv.URL)
	keys = append(keys, issueKeys(t, ctx, k8s, sim, simSrv.URL)...)

	// Both targets are scraped; the one without a token is refused.
	g.Eventually(func(g Gomega) {
		health := prom.targets(g)
		g.Expect(health).To(HaveKeyWithValue(scrapeJob, "up"))
		g.Expect(health[noTokenJob]).To(MatchRegexp(`^down: .*(401|403)`))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	t.Logf("targets: %s up with the token; %s refused (%s)", scrapeJob, noTokenJob, prom.targets(g)[noTokenJob])

	// honorLabels: the series carry the keys' namespace, not the target's.
	g.Eventually(func(g Gomega) {
		g.Expect(prom.query(g, fmt.Sprintf(`count(exchangeapikey_ready{job=%q,namespace=%q})`, scrapeJob, keysNamespace))).
			To(Equal([]string{fmt.Sprint(len(keys))}))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())

	// Every key is revalidated while Prometheus watches, so that the
	// request counters and latency histograms grow between two scrapes and
	// the rate() panels show numbers, not a flat 0 or NaN.
	// The issued key is rotated too: a second issuance, and the deletion
	// of the first key after the overlap (0s).
	for _, name := range keys {
		revalidate(t, ctx, k8s, name, "again")
	}
	rotateIssued(t, ctx, k8s)
	t.Logf("control plane, manager, Prometheus and %d keys ready after %s", len(keys), time.Since(began).Round(time.Millisecond))

	// Every query returns data (a number, not only NaN), or is empty by design.
	queries := append(dashboardQueries(t), ruleQueries(t)...)
	results := map[string][]string{}
	want := func() []string {
		var missing []string
		for _, q := range queries {
			if _, ok := emptyByDesign[q.where]; !ok && !hasNumber(results[q.where]) {
				missing = append(missing, q.where)
			}
		}
		return missing
	}
	g.Eventually(func(g Gomega) []string {
		for _, q := range queries {
			if !hasNumber(results[q.where]) {
				results[q.where] = prom.query(g, q.expr)
			}
		}
		return want()
	}, 40*time.Second, 500*time.Millisecond).Should(BeEmpty(), "queries without data (add to emptyByDesign only with the reason)")
	t.Logf("every query had data after %s", time.Since(began).Round(time.Millisecond))
	var evaluated, empty []string
	for _, q := range queries {
		evaluated = append(evaluated, q.where)
		if reason, ok := emptyByDesign[q.where]; ok {
			g.Expect(results[q.where]).To(BeEmpty(), "%s returns data, but emptyByDesign says %s", q.where, reason)
			empty = append(empty, q.where+": "+reason)
			continue
		}
		// Now, after the evaluation loop: the latest values.
		t.Logf("%s = %v", q.where, prom.query(g, q.expr))
	}
	nEmpty := len(empty)
	if nEmpty == 0 {
		empty = append(empty, "(none)")
	}
	for where := range emptyByDesign {
		g.Expect(evaluated).To(ContainElement(where), "emptyByDesign names a query that no longer exists")
	}
	t.Logf("evaluated %d queries through Prometheus (%d with data, %d empty by design):\n  %s\nempty by design:\n  %s",
		len(queries), len(queries)-nEmpty, nEmpty, strings.Join(evaluated, "\n  "), strings.Join(empty, "\n  "))

	// The alerts Prometheus evaluates from rules.yaml: the ones without
	// for: fire, the others are pending, and their templates, which query
	// Prometheus themselves, found the series.
	g.Eventually(func(g Gomega) {
		alerts := prom.alerts(g)
		for name, state := range map[string]string{
			"ExchangeAPIKeyRevoked":             "firing",
			"ExchangeAPIKeyForbiddenPermission": "firing",
			"ExchangeAPIKeyRotationDueSoon":     "pending",
			"ExchangeAPIKeyRotationOverdue":     "pending",
			"ExchangeAPIKeyNotReady":            "pending",
			"ExchangeAPIKeyExchangeErrors":      "pending",
			"ExchangeAPIKeyTokenExpiring":       "pending",
		} {
			g.Expect(alerts).To(ContainElement(And(HaveField("Name", name), HaveField("State", state))), "alert %s", name)
		}
		for _, a := range alerts {
			g.Expect(a.Description).NotTo(Or(ContainSubstring("its status.rotation.rotateBy"), ContainSubstring("reason unknown"), ContainSubstring("<no value>")),
				"alert %s %v: a template query found nothing", a.Name, a.Labels)
		}
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	t.Logf("alerts: %v; %d keys; took %s", prom.alertSummary(g), len(keys), time.Since(began).Round(time.Millisecond))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scraperToken creates the scraper's service account, binds it to the
// metrics-reader ClusterRole of config/rbac, and returns a token for it.
func scraperToken(t *testing.T, ctx context.Context, k8s client.Client, cfg *rest.Config) string {
	t.Helper()
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "metrics_reader_role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var role rbacv1.ClusterRole
	g.Expect(yaml.UnmarshalStrict(b, &role)).To(Succeed())
	g.Expect(k8s.Create(ctx, &role)).To(Succeed())
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "prometheus"}}
	g.Expect(k8s.Create(ctx, sa)).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
	})).To(Succeed())
	cs, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tr.Status.Token).NotTo(BeEmpty())
	return tr.Status.Token
}

// makeKeys creates ExchangeAPIKeys in the states the alerts and the
// dashboard are about and waits until each is there; it returns their names.
func makeKeys(t *testing.T, ctx context.Context, k8s client.Client, sim *simulator.Simulator, simURL string) []string {
	t.Helper()
	g := NewWithT(t)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: keysNamespace, Name: "bot"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bot"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "bot"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "bot"}}},
			},
		},
	}
	g.Expect(k8s.Create(ctx, dep)).To(Succeed())
	hour := &metav1.Duration{Duration: time.Hour}
	type keyCase struct {
		name    string
		ex      exchange.Name
		perms   []string
		created time.Time
		edit    func(*keyopsv1.ExchangeAPIKey)
		// want is the condition type and "Status/Reason" to wait for.
		wantType, want string
	}
	cases := []keyCase{
		{name: "ready", ex: exchange.Binance, perms: []string{"read", "trade"}, edit: func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.RestartDebounce = &metav1.Duration{}
			k.Spec.RestartTargets = []keyopsv1.RestartTarget{{Kind: keyopsv1.KindDeployment, Name: "bot"}}
		}, wantType: keyopsv1.ConditionReady, want: "True/Ready"},
		// Created 90 minutes ago on the exchange, at most 2 hours old:
		// deadline in 30 minutes, reminders from an hour before it.
		{name: "due-soon", ex: exchange.Binance, perms: []string{"read"}, created: time.Now().Add(-90 * time.Minute), edit: func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Rotation.MaxAge, k.Spec.Rotation.ReminderBefore = &metav1.Duration{Duration: 2 * time.Hour}, hour
		}, wantType: keyopsv1.ConditionRotationDue, want: "True/" + keyopsv1.ReasonRotationDueSoon},
		// Created two hours ago on the exchange, at most an hour old.
		{name: "overdue", ex: exchange.Binance, perms: []string{"read"}, created: time.Now().Add(-2 * time.Hour), edit: func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Rotation.MaxAge, k.Spec.Rotation.ReminderBefore = hour, &metav1.Duration{Duration: 30 * time.Minute}
		}, wantType: keyopsv1.ConditionRotationDue, want: "True/" + keyopsv1.ReasonRotationOverdue},
		// Revoked once it verified: below.
		{name: "revoked", ex: exchange.Bitstamp, perms: []string{"read"}, wantType: keyopsv1.ConditionReady, want: "True/Ready"},
		{name: "forbidden", ex: exchange.Kraken, perms: []string{"read", "trade", "withdraw"},
			wantType: keyopsv1.ConditionPermissionsCompliant, want: "False/" + keyopsv1.ReasonForbiddenPermission},
		// An exchange the operator cannot reach: outcome Unavailable.
		{name: "unreachable", ex: exchange.OKX, perms: []string{"read"}, edit: func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Endpoint = "http://" + freeAddr(t)
		}, wantType: keyopsv1.ConditionReady, want: "False/"},
		{name: "suspended", ex: exchange.Bybit, perms: []string{"read"}, edit: func(k *keyopsv1.ExchangeAPIKey) {
			k.Spec.Suspend = true
		}, wantType: keyopsv1.ConditionReady, want: "False/Suspended"},
		// A Bitfinex key whose target holds a one-minute token; its key is
		// deactivated once the first token is out (below), so minting
		// fails while the token runs out: ExchangeAPIKeyTokenExpiring.
		{name: "token", ex: exchange.Bitfinex, perms: []string{"read", "trade"}, edit: func(k *keyopsv1.ExchangeAPIKey) {
			renew := int32(10) // a new token every 6 s
			k.Spec.Token = &keyopsv1.TokenSpec{TTL: &metav1.Duration{Duration: time.Minute}, Caps: []keyopsv1.TokenCap{"a", "o"}, WritePermission: true, RenewalPercent: &renew}
		}, wantType: keyopsv1.ConditionTokenIssued, want: "True/" + keyopsv1.ReasonTokenIssued},
	}
	var names []string
	apiKeys := map[string]string{}
	for _, c := range cases {
		cr := exchangetest.NewCredentials(c.ex)
		apiKeys[c.name] = cr.APIKey
		sim.AddKey(simulator.Key{Exchange: c.ex, APIKey: cr.APIKey, Secret: cr.APISecret, Passphrase: cr.Passphrase, Permissions: c.perms, CreatedAt: c.created})
		src := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: keysNamespace, Name: c.name + "-source"},
			Data:       map[string][]byte{"apiKey": []byte(cr.APIKey), "apiSecret": []byte(cr.APISecret)},
		}
		k := &keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: keysNamespace, Name: c.name},
			Spec: keyopsv1.ExchangeAPIKeySpec{
				Exchange:             keyopsv1.Exchange(c.ex),
				Endpoint:             simulator.BaseURL(simURL, c.ex),
				CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: src.Name},
			},
		}
		if cr.Passphrase != "" {
			src.Data["passphrase"] = []byte(cr.Passphrase)
			k.Spec.CredentialsSecretRef.PassphraseKey = "passphrase"
		}
		if c.edit != nil {
			c.edit(k)
		}
		g.Expect(k8s.Create(ctx, src)).To(Succeed())
		g.Expect(k8s.Create(ctx, k)).To(Succeed())
		names = append(names, c.name)
	}
	waitCond := func(name, typ, want string) {
		g.Eventually(func(g Gomega) string {
			var k keyopsv1.ExchangeAPIKey
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: keysNamespace, Name: name}, &k)).To(Succeed())
			c := meta.FindStatusCondition(k.Status.Conditions, typ)
			g.Expect(c).NotTo(BeNil(), "%s: no condition %s: %+v", name, typ, k.Status.Conditions)
			return string(c.Status) + "/" + c.Reason
		}, 20*time.Second, 100*time.Millisecond).Should(HavePrefix(want), "%s %s", name, typ)
	}
	for _, c := range cases {
		waitCond(c.name, c.wantType, c.want)
	}
	// Revoke the verified key on the exchange and ask for a revalidation.
	g.Expect(sim.SetState(exchange.Bitstamp, apiKeys["revoked"], simulator.Revoked)).To(BeTrue())
	revalidate(t, ctx, k8s, "revoked", "revoked")
	waitCond("revoked", keyopsv1.ConditionKeyValid, "False/"+keyopsv1.ReasonRevoked)
	// Deactivate the token key: the next mint (6 s after the last) is
	// refused, the last token stays until it expires.
	g.Expect(sim.SetState(exchange.Bitfinex, apiKeys["token"], simulator.Inactive)).To(BeTrue())
	waitCond("token", keyopsv1.ConditionTokenIssued, "False/"+keyopsv1.ReasonTokenRefused)
	return names
}

// issued is the ExchangeAPIKey whose key the operator issues (spec.issue)
// on a Bybit sub-account; issueRefused the one whose sub-account the
// exchange refuses keys to.
const (
	issued, issueRefused       = "issued", "issue-refused"
	subAccount, refusedAccount = "10023455", "10023456"
)

// issueKeys makes an ExchangeAccount with a Bybit master key and two
// ExchangeAPIKeys with spec.issue on its sub-accounts: one issued and
// Ready, one refused by the exchange (an issue failure).
func issueKeys(t *testing.T, ctx context.Context, k8s client.Client, sim *simulator.Simulator, simURL string) []string {
	t.Helper()
	g := NewWithT(t)
	// As config/samples/bybit-account.yaml: a main-account key that may
	// transfer, allowed from loopback.
	master := exchangetest.NewCredentials(exchange.Bybit)
	sim.AddKey(simulator.Key{Exchange: exchange.Bybit, APIKey: master.APIKey, Secret: master.APISecret, Permissions: []string{"read", "transfer"}, AllowedIPs: []string{"127.0.0.1"}})
	sim.AddSubAccount(exchange.Bybit, master.APIKey, subAccount)
	sim.AddSubAccount(exchange.Bybit, master.APIKey, refusedAccount)
	sim.RefuseSubAccountCreate(exchange.Bybit, refusedAccount, simulator.BybitNeedKYC)
	g.Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: keysNamespace, Name: "bybit-master-key"},
		Data:       map[string][]byte{"apiKey": []byte(master.APIKey), "apiSecret": []byte(master.APISecret)},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &keyopsv1.ExchangeAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: keysNamespace, Name: "bybit-master"},
		Spec: keyopsv1.ExchangeAccountSpec{
			Exchange: keyopsv1.Exchange(exchange.Bybit), Endpoint: simulator.BaseURL(simURL, exchange.Bybit),
			CredentialsSecretRef: keyopsv1.CredentialsSecretRef{Name: "bybit-master-key"},
		},
	})).To(Succeed())
	for name, sub := range map[string]string{issued: subAccount, issueRefused: refusedAccount} {
		g.Expect(k8s.Create(ctx, &keyopsv1.ExchangeAPIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: keysNamespace, Name: name},
			Spec: keyopsv1.ExchangeAPIKeySpec{
				Exchange: keyopsv1.Exchange(exchange.Bybit),
				Endpoint: simulator.BaseURL(simURL, exchange.Bybit),
				Issue: &keyopsv1.IssueSpec{
					AccountRef: keyopsv1.AccountReference{Name: "bybit-master"}, SubAccount: sub, IPAllowlist: []string{"127.0.0.1"},
				},
				Rotation: keyopsv1.RotationSpec{Overlap: &metav1.Duration{}},
			},
		})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		k := getKey(g, ctx, k8s, issued)
		g.Expect(k.Status.Issued).NotTo(BeNil())
		g.Expect(meta.IsStatusConditionTrue(k.Status.Conditions, keyopsv1.ConditionReady)).To(BeTrue(), "%+v", k.Status.Conditions)
		r := getKey(g, ctx, k8s, issueRefused)
		g.Expect(meta.IsStatusConditionFalse(r.Status.Conditions, keyopsv1.ConditionReady)).To(BeTrue(), "%+v", r.Status.Conditions)
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	return []string{issued, issueRefused}
}

// rotateIssued asks for a new issued key and waits until the operator
// issued it and deleted the previous one.
func rotateIssued(t *testing.T, ctx context.Context, k8s client.Client) {
	t.Helper()
	g := NewWithT(t)
	first := getKey(g, ctx, k8s, issued).Status.Issued.Generation
	g.Eventually(func() error {
		k := getKey(g, ctx, k8s, issued)
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[keyopsv1.AnnotationRotate] = "now"
		return k8s.Update(ctx, k)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		k := getKey(g, ctx, k8s, issued)
		g.Expect(k.Status.Issued).NotTo(BeNil())
		g.Expect(k.Status.Issued.Generation).To(BeNumerically(">", first))
		g.Expect(k.Status.PreviousKey).To(BeNil(), "the previous key is deleted")
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
}

func getKey(g Gomega, ctx context.Context, k8s client.Client, name string) *keyopsv1.ExchangeAPIKey {
	var k keyopsv1.ExchangeAPIKey
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: keysNamespace, Name: name}, &k)).To(Succeed())
	return &k
}

// revalidate asks the operator to validate the key again now.
func revalidate(t *testing.T, ctx context.Context, k8s client.Client, name, value string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		var k keyopsv1.ExchangeAPIKey
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: keysNamespace, Name: name}, &k); err != nil {
			return err
		}
		if k.Annotations == nil {
			k.Annotations = map[string]string{}
		}
		k.Annotations[keyopsv1.AnnotationRevalidate] = value
		return k8s.Update(ctx, &k)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
}

// hasNumber: some sample of a query's result is a number (not NaN).
func hasNumber(samples []string) bool {
	for _, s := range samples {
		if !strings.HasSuffix(s, "NaN") {
			return true
		}
	}
	return false
}

// prometheus is a running Prometheus.
type prometheus struct {
	url string
	hc  *http.Client
}

// startPrometheus runs prometheus on dir/prometheus.yml with its TSDB in
// dir, on a free loopback port, until the test ends; it waits until ready.
func startPrometheus(t *testing.T, bin, dir string) *prometheus {
	t.Helper()
	addr := freeAddr(t)
	logFile := filepath.Join(dir, "prometheus.log")
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheus{url: "http://" + addr, hc: &http.Client{Timeout: 5 * time.Second}}
	NewWithT(t).Eventually(func() (int, error) {
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("prometheus exited:\n%s", b)
		default:
		}
		resp, err := p.hc.Get(p.url + "/-/ready")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}, 30*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
	return p
}

// api GETs a Prometheus HTTP API path and decodes its data.
func (p *prometheus) api(g Gomega, path string, data any) {
	resp, err := p.hc.Get(p.url + path)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	g.Expect(json.NewDecoder(resp.Body).Decode(&body)).To(Succeed())
	g.Expect(body.Status).To(Equal("success"), "%s: %s", path, body.Error)
	g.Expect(json.Unmarshal(body.Data, data)).To(Succeed())
}

// query evaluates expr now and returns each sample as "{labels} value"
// (for a vector) or the value (for a scalar).
func (p *prometheus) query(g Gomega, expr string) []string {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	p.api(g, "/api/v1/query?query="+url.QueryEscape(expr), &data)
	switch data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		g.Expect(json.Unmarshal(data.Result, &v)).To(Succeed())
		out := make([]string, 0, len(v))
		for _, s := range v {
			var ls []string
			for _, k := range slices.Sorted(maps.Keys(s.Metric)) {
				if k != "job" && k != "instance" {
					ls = append(ls, k+"="+s.Metric[k])
				}
			}
			if len(ls) == 0 {
				out = append(out, fmt.Sprint(s.Value[1]))
			} else {
				out = append(out, fmt.Sprintf("{%s} %v", strings.Join(ls, ","), s.Value[1]))
			}
		}
		return out
	case "scalar":
		var v [2]any
		g.Expect(json.Unmarshal(data.Result, &v)).To(Succeed())
		return []string{fmt.Sprint(v[1])}
	}
	g.Expect(data.ResultType).To(BeElementOf("vector", "scalar"), expr)
	return nil
}

// targets maps each job to "up" or "down: <last error>".
func (p *prometheus) targets(g Gomega) map[string]string {
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	p.api(g, "/api/v1/targets", &data)
	out := map[string]string{}
	for _, tg := range data.ActiveTargets {
		out[tg.Labels["job"]] = tg.Health
		if tg.LastError != "" {
			out[tg.Labels["job"]] += ": " + tg.LastError
		}
	}
	return out
}

type activeAlert struct {
	Name, State, Description string
	Labels                   map[string]string
}

func (p *prometheus) alerts(g Gomega) []activeAlert {
	var data struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
		} `json:"alerts"`
	}
	p.api(g, "/api/v1/alerts", &data)
	var out []activeAlert
	for _, a := range data.Alerts {
		out = append(out, activeAlert{Name: a.Labels["alertname"], State: a.State, Description: a.Annotations["description"], Labels: a.Labels})
	}
	return out
}

func (p *prometheus) alertSummary(g Gomega) []string {
	var out []string
	for _, a := range p.alerts(g) {
		out = append(out, fmt.Sprintf("%s{%s} %s", a.Name, a.Labels["name"]+a.Labels["outcome"], a.State))
	}
	slices.Sort(out)
	return out
}

// namedQuery is a PromQL expression and where it comes from.
type namedQuery struct{ where, expr string }

// Grafana's variables: the filters match everything, the range variables
// are a minute (a few scrapes at this test's 1 s interval).
var grafanaVariables = strings.NewReplacer(
	"${namespace}", ".*", "$namespace", ".*",
	"${exchange}", ".*", "$exchange", ".*",
	"${__rate_interval}", "1m", "$__rate_interval", "1m",
	"${__interval}", "1m", "$__interval", "1m",
	"${__range}", "1m", "$__range", "1m",
)

// dashboardQueries lists every query of config/grafana/dashboard.json: the
// selectors of its label_values variables and every panel target, with the
// variables substituted.
func dashboardQueries(t *testing.T) []namedQuery {
	t.Helper()
	d, err := grafana.Load(filepath.Join(repoRoot, "config", "grafana", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []namedQuery
	for _, q := range d.Queries() {
		if q.Variable && !q.LabelValues {
			t.Fatalf("dashboard %s: %q is not label_values(selector, label)", q.Where, q.Expr)
		}
		e := grafanaVariables.Replace(q.Expr)
		if strings.Contains(e, "$") {
			t.Fatalf("dashboard %s: a Grafana variable this test does not substitute: %s", q.Where, q.Expr)
		}
		out = append(out, namedQuery{"dashboard " + q.Where, e})
	}
	return out
}

// ruleQueries lists the expression of every rule in rules.yaml.
func ruleQueries(t *testing.T) []namedQuery {
	var out []namedQuery
	for _, grp := range loadRules(t).Groups {
		for _, r := range grp.Rules {
			name, _ := r["alert"].(string)
			if name == "" {
				name, _ = r["record"].(string)
			}
			out = append(out, namedQuery{"rule " + name, fmt.Sprint(r["expr"])})
		}
	}
	return out
}
