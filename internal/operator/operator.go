// Package operator assembles the manager: caches, clients, the exchange
// prober, metrics and the controller. cmd/main.go, the demo, the benchmark
// and the integration tests all build the operator through it, so that they
// run what ships.
package operator

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/controller/clusterexchangekeypolicy"
	"github.com/keyops-io/exchange-key-operator/internal/controller/exchangeaccount"
	"github.com/keyops-io/exchange-key-operator/internal/controller/exchangeapikey"
	"github.com/keyops-io/exchange-key-operator/internal/controller/shared"
	"github.com/keyops-io/exchange-key-operator/internal/endpoint"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/metrics"
	"github.com/keyops-io/exchange-key-operator/internal/notify"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
)

// Version is set at build time.
var Version = "dev"

// Options are the manager's flags.
type Options struct {
	MetricsBindAddress string
	// MetricsSecure serves metrics over HTTPS, and only to clients the API
	// server authenticates (TokenReview) and authorizes for GET /metrics
	// (SubjectAccessReview), as kubebuilder v4 scaffolds. Plain HTTP
	// (false) carries no authentication, so it is accepted only on a
	// loopback address (CheckMetricsServing).
	MetricsSecure bool
	// WatchNamespaces restricts every watch and cache to these namespaces
	// (empty: all namespaces). The manager then needs Roles in these
	// namespaces only (config/namespaced).
	WatchNamespaces []string
	// KeySelector (--key-selector, a label selector) makes this install one
	// shard of a fleet: it watches, caches and reconciles only the
	// ExchangeAPIKeys it selects (filtered by the API server, at the watch),
	// and elects its leader on a Lease of its own (LeaderElectionID).
	// Empty: every ExchangeAPIKey. docs/scaling.md tells when and how.
	KeySelector string
	// WithAccountController runs the ExchangeAccount controller in a shard
	// (KeySelector set): set it on exactly one shard of a fleet, or the
	// master keys are checked once per shard. An install without a
	// KeySelector always runs it.
	WithAccountController   bool
	PprofBindAddress        string
	HealthProbeBindAddress  string
	LeaderElection          bool
	LeaderElectionNS        string
	AllowInsecureEndpoints  bool
	MaxConcurrentReconciles int
	KubeAPIQPS              float32
	KubeAPIBurst            int
	ExchangeRateLimits      map[exchange.Name]exchange.RateLimit
	// AllowedEndpoints are exchange base URLs admitted besides each
	// exchange's official hosts (--allowed-endpoints).
	AllowedEndpoints []string
	// Clock is the one clock of the manager (tests inject a fake one);
	// Jitter is for tests.
	Clock  clock.PassiveClock
	Jitter func() float64
	// Notifier overrides the webhook notifier (tests).
	Notifier exchangeapikey.Notifier
	// ReplaceBackoff overrides the backoff of replacing issued keys the
	// exchange no longer accepts (tests; nil: the product's
	// exchangeapikey.DefaultReplaceBackoff).
	ReplaceBackoff []time.Duration
	// MasterChecker checks ExchangeAccounts' master keys (tests inject a
	// fake); nil: sub-account key management is reported as not available.
	MasterChecker exchangeaccount.MasterChecker
	// ExchangeTimeout bounds one exchange request (0: the client default).
	ExchangeTimeout time.Duration
	// SkipMetricsRegistration is for tests running several managers in one
	// process: the second one registers no metrics collectors and skips
	// controller-runtime's check that controller names are unique.
	SkipMetricsRegistration bool

	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election
	// (0: controller-runtime's defaults, 15 s, 10 s and 2 s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Defaults are what a user gets without flags.
func Defaults() Options {
	return Options{
		MetricsBindAddress:      ":8443",
		MetricsSecure:           true,
		HealthProbeBindAddress:  ":8081",
		MaxConcurrentReconciles: 16,
		// No client-side limit of Kubernetes API requests by default:
		// API Priority and Fairness protects the API server (SIG API
		// Machinery's advice, controller-runtime's default since v0.21).
		// Measured with make bench (README, Performance): the old default,
		// 200 QPS for each resource type's client, held the Secrets client
		// (a source read and a target write per key) at its limit and
		// Disabled keys converged 14 % slower than without it (1,000 keys).
	}
}

// Scheme has the built-in types and ours.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = keyopsv1.AddToScheme(s)
	return s
}

// New builds a manager running the operator's controllers: it checks the
// options, builds the manager, then the parts the controllers share (the
// exchange prober, metrics, the one Secret watch), then each controller.
func New(ctx context.Context, cfg *rest.Config, o Options) (manager.Manager, error) {
	keySel, endpoints, err := checkOptions(o)
	if err != nil {
		return nil, err
	}
	keys := &metrics.KeyCollector{}
	mgr, err := newManager(cfg, o, keySel, keys)
	if err != nil {
		return nil, err
	}
	deps, err := newDependencies(mgr, o, keys)
	if err != nil {
		return nil, err
	}
	opts := controller.Options{MaxConcurrentReconciles: max(o.MaxConcurrentReconciles, 1)}
	if err := setupKeyController(ctx, mgr, o, deps, endpoints, opts); err != nil {
		return nil, fmt.Errorf("setting up the ExchangeAPIKey controller: %w", err)
	}
	if len(o.WatchNamespaces) == 0 && keySel == nil {
		// Policies are cluster-scoped: a namespace-scoped manager neither
		// reads nor enforces them. A shard enforces them on its keys (the
		// ExchangeAPIKey controller), but counts only its own keys, so it
		// leaves the policies' status alone: several shards would each
		// overwrite it with their share.
		if err := (&clusterexchangekeypolicy.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the ClusterExchangeKeyPolicy controller: %w", err)
		}
	}
	if keySel == nil || o.WithAccountController {
		// ExchangeAccounts are not sharded: one install of the fleet
		// checks each master key (--with-account-controller).
		if err := setupAccountController(ctx, mgr, o, deps, endpoints, opts); err != nil {
			return nil, fmt.Errorf("setting up the ExchangeAccount controller: %w", err)
		}
	}
	return mgr, nil
}

// checkOptions refuses what the manager cannot run with, before anything
// starts: it returns the parsed key selector (nil: every key) and the
// endpoint policy.
func checkOptions(o Options) (labels.Selector, endpoint.Policy, error) {
	endpoints := endpoint.Policy{Allowed: o.AllowedEndpoints, AllowInsecure: o.AllowInsecureEndpoints}
	if err := CheckMetricsServing(o.MetricsBindAddress, o.MetricsSecure); err != nil {
		return nil, endpoints, err
	}
	if _, err := ParseNamespaces(strings.Join(o.WatchNamespaces, ",")); err != nil {
		return nil, endpoints, err
	}
	keySel, err := ParseKeySelector(o.KeySelector)
	if err != nil {
		return nil, endpoints, err
	}
	return keySel, endpoints, endpoints.Validate()
}

// newManager builds the controller-runtime manager: client limits, metrics
// serving, leader election and what the cache holds. /metrics serves the
// per-key gauges of keys (filled in by newDependencies) after the registry.
func newManager(cfg *rest.Config, o Options, keySel labels.Selector, keys *metrics.KeyCollector) (manager.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "exchange-key-operator/" + Version
	// Lease renewals stay out of the manager's token bucket: queued behind
	// a burst of reconciles they could miss the renew deadline, and a
	// manager that loses its lease exits.
	var leCfg *rest.Config
	if o.KubeAPIQPS > 0 {
		leCfg = withRequestLimit(rest.CopyConfig(cfg), 0, 0)
	}
	cfg = withRequestLimit(cfg, o.KubeAPIQPS, o.KubeAPIBurst)
	scheme := Scheme()
	managed := labels.SelectorFromSet(labels.Set{keyopsv1.LabelManaged: keyopsv1.LabelManagedValue})
	ms := metricsserver.Options{BindAddress: o.MetricsBindAddress, SecureServing: o.MetricsSecure}
	if o.MetricsSecure {
		ms.FilterProvider = filters.WithAuthenticationAndAuthorization
		// HTTP/1.1 only, as kubebuilder v4 scaffolds by default: HTTP/2
		// Stream Cancellation and Rapid Reset (CVE-2023-44487,
		// CVE-2023-39325) are not worth a metrics endpoint's exposure.
		ms.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	if !o.SkipMetricsRegistration {
		ms.FilterProvider = withKeyMetrics(ms.FilterProvider, keys)
	}
	var namespaces map[string]cache.Config
	for _, ns := range o.WatchNamespaces {
		if namespaces == nil {
			namespaces = map[string]cache.Config{}
		}
		namespaces[ns] = cache.Config{}
	}
	byObject := map[client.Object]cache.ByObject{
		// The cache holds only the Secrets this operator writes; source
		// Secrets are read on demand (see exchangeapikey.Reconciler.SetupWithManager).
		&corev1.Secret{}: {Label: managed, Transform: internSecret},
	}
	keyCache := cache.ByObject{Transform: internKey}
	if keySel != nil {
		// A shard's informer lists and watches with ?labelSelector=: the
		// API server sends it its own keys only, so the other shards'
		// keys are neither cached nor reconciled here, and every read of
		// keys from the cache (source Secret and policy mappings, restart
		// peers, metrics) sees this shard's keys only.
		keyCache.Label = keySel
	}
	byObject[&keyopsv1.ExchangeAPIKey{}] = keyCache
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  capVerbosity(ctrl.Log, MaxLogVerbosity),
		Metrics:                 ms,
		Controller:              config.Controller{SkipNameValidation: ptr.To(o.SkipMetricsRegistration)},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		PprofBindAddress:        o.PprofBindAddress,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID(keySel),
		LeaderElectionNamespace: o.LeaderElectionNS,

		// main exits as soon as the manager stops, so stepping down on
		// SIGTERM is safe, and the standby takes over at once instead of
		// after a lease duration (test/faults checks it on the Lease).
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionConfig:          leCfg,
		LeaseDuration:                 durationOrNil(o.LeaseDuration),
		RenewDeadline:                 durationOrNil(o.RenewDeadline),
		RetryPeriod:                   durationOrNil(o.RetryPeriod),

		Cache: cache.Options{
			ByObject:          byObject,
			DefaultNamespaces: namespaces,
			DefaultTransform:  cache.TransformStripManagedFields(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// withRequestLimit sets the client-side limit of the manager's requests to
// the API server. qps > 0: one token bucket for every client built from cfg
// (controller-runtime builds a REST client per resource type, and each
// would otherwise get a bucket of its own, so --kube-api-qps=200 allowed
// 200 a second per resource), burst twice qps unless set. qps <= 0: none;
// a config's QPS 0 would mean client-go's 5 a second.
func withRequestLimit(cfg *rest.Config, qps float32, burst int) *rest.Config {
	if qps <= 0 {
		cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
		return cfg
	}
	if burst <= 0 {
		burst = max(1, int(2*qps))
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(qps, burst)
	return cfg
}

// withKeyMetrics wraps the /metrics handler (inside the authentication
// filter, if any) so that it serves the per-key gauges of keys after the
// registry's families: controller-runtime allows no other /metrics handler.
func withKeyMetrics(auth func(*rest.Config, *http.Client) (metricsserver.Filter, error), keys *metrics.KeyCollector) func(*rest.Config, *http.Client) (metricsserver.Filter, error) {
	return func(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
		var authFilter metricsserver.Filter
		if auth != nil {
			f, err := auth(c, hc)
			if err != nil {
				return nil, err
			}
			authFilter = f
		}
		return func(log logr.Logger, h http.Handler) (http.Handler, error) {
			h = keys.Handler(crmetrics.Registry, h)
			if authFilter == nil {
				return h, nil
			}
			return authFilter(log, h)
		}, nil
	}
}

// dependencies are what the controllers share: one clock, one prober (and
// so one set of per-exchange rate limiters), the operation metrics and the
// one Secret watch.
type dependencies struct {
	clock   clock.PassiveClock
	prober  *exchange.Prober
	ops     *metrics.Operations
	secrets *refwatch.Watcher
}

func newDependencies(mgr manager.Manager, o Options, keys *metrics.KeyCollector) (dependencies, error) {
	d := dependencies{clock: o.Clock, ops: metrics.NewOperations()}
	if d.clock == nil {
		d.clock = clock.RealClock{}
	}
	reqs := metrics.NewExchangeRequests()
	d.prober = exchange.NewProber(exchange.Options{
		UserAgent:  "exchange-key-operator/" + Version,
		RateLimits: o.ExchangeRateLimits,
		Now:        d.clock.Now,
		Observe:    reqs.Observe,
		Timeout:    o.ExchangeTimeout,
	})
	if !o.SkipMetricsRegistration {
		keys.Keys, keys.Now = metrics.InformerKeys(mgr.GetCache()), d.clock.Now
		if err := metrics.Register(crmetrics.Registry, reqs, d.ops); err != nil {
			return d, fmt.Errorf("registering metrics: %w", err)
		}
	}
	// One watch of Secrets for every controller that refers to them, so
	// that no Secret is listed and watched twice.
	w, err := shared.NewSecretWatcher(mgr, o.WatchNamespaces)
	if err != nil {
		return d, err
	}
	d.secrets = w
	return d, nil
}

func setupKeyController(ctx context.Context, mgr manager.Manager, o Options, d dependencies, endpoints endpoint.Policy, opts controller.Options) error {
	var notifier exchangeapikey.Notifier = notify.NewWebhook("exchange-key-operator/"+Version, o.AllowInsecureEndpoints)
	if o.Notifier != nil {
		notifier = o.Notifier
	}
	r := &exchangeapikey.Reconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Scheme:          mgr.GetScheme(),
		Recorder:        mgr.GetEventRecorder(keyopsv1.EventReporter),
		Probes:          probecache.New(d.prober, d.clock.Now),
		Notifier:        notifier,
		Clock:           d.clock,
		Jitter:          o.Jitter,
		Endpoints:       endpoints,
		Restarts:        d.ops.WorkloadRestarted,
		SubAccounts:     d.prober,
		Issued:          d.ops.KeyIssued,
		KeyDeleted:      d.ops.KeyDeleted,
		IssueFailed:     d.ops.IssueFailed,
		ReplaceBackoff:  o.ReplaceBackoff,
		Tokens:          d.prober,
		TokenMinted:     d.ops.TokenMinted,
		WatchNamespaces: o.WatchNamespaces,
		Secrets:         d.secrets,
	}
	return r.SetupWithManager(ctx, mgr, opts)
}

func setupAccountController(ctx context.Context, mgr manager.Manager, o Options, d dependencies, endpoints endpoint.Policy, opts controller.Options) error {
	var master exchangeaccount.MasterChecker = d.prober
	if o.MasterChecker != nil {
		master = o.MasterChecker
	}
	r := &exchangeaccount.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(keyopsv1.EventReporter),
		Master:    master,
		Clock:     d.clock,
		Jitter:    o.Jitter,
		Endpoints: endpoints,
		Secrets:   d.secrets,
	}
	return r.SetupWithManager(ctx, mgr, opts)
}

// defaultLeaderElectionID is the Lease of an unsharded install.
const defaultLeaderElectionID = "exchange-key-operator.keyops.io"

// ParseKeySelector reads --key-selector: a label selector of ExchangeAPIKeys
// (kubectl's syntax: shard=a, shard in (a,b), !shard); blank means every
// key (nil).
func ParseKeySelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--key-selector: %q is not a label selector: %w", s, err)
	}
	if sel.Empty() {
		return nil, nil
	}
	return sel, nil
}

// LeaderElectionID is the Lease a manager leads on: the default for an
// unsharded install, and one per selector for a shard, so that every shard
// of a fleet has a leader, and the replicas of one shard share one. The
// hash is of the selector's canonical form (requirements sorted by key), so
// that "a=1,b=2" and "b=2,a=1" are the same shard.
func LeaderElectionID(keySelector labels.Selector) string {
	if keySelector == nil || keySelector.Empty() {
		return defaultLeaderElectionID
	}
	sum := sha256.Sum256([]byte(keySelector.String()))
	return "exchange-key-operator-" + hex.EncodeToString(sum[:])[:10] + ".keyops.io"
}

// CheckMetricsServing refuses plain-HTTP metrics on anything but a loopback
// address: without TLS there is no authentication either, and the per-key
// series name every ExchangeAPIKey of the cluster.
func CheckMetricsServing(bindAddress string, secure bool) error {
	if secure || bindAddress == "0" {
		return nil
	}
	host, _, err := net.SplitHostPort(bindAddress)
	if err == nil {
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("--metrics-secure=false serves metrics over plain HTTP without authentication, so --metrics-bind-address must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT), got %q; drop --metrics-secure=false to serve HTTPS with authorization", bindAddress)
}

// ParseNamespaces reads --watch-namespaces: comma-separated namespace names,
// blanks and duplicates ignored; "" means every namespace.
func ParseNamespaces(list string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || slices.Contains(out, ns) {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--watch-namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	return out, nil
}

// durationOrNil leaves a zero flag to controller-runtime's default.
func durationOrNil(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}
