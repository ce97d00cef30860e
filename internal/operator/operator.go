// Package operator assembles the manager: caches, clients, the exchange
// prober, metrics and the controller. cmd/main.go, the demo, the benchmark
// and the integration tests all build the operator through it, so that they
// run what ships.
package operator

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/controllers"
	"github.com/keyops-io/exchange-key-operator/internal/endpoint"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/metrics"
	"github.com/keyops-io/exchange-key-operator/internal/notify"
	"github.com/keyops-io/exchange-key-operator/internal/probecache"
)

// Version is set at build time.
var Version = "dev"

// Options are the manager's flags.
type Options struct {
	MetricsBindAddress      string
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
	Notifier controllers.Notifier
	// MasterChecker checks ExchangeAccounts' master keys (tests inject a
	// fake); nil: sub-account key management is reported as not available.
	MasterChecker controllers.MasterChecker
	// ExchangeTimeout bounds one exchange request (0: the client default).
	ExchangeTimeout time.Duration
	// Registry overrides the metrics registry (tests running several
	// managers in one process).
	SkipMetricsRegistration bool
}

// Defaults are what a user gets without flags.
func Defaults() Options {
	return Options{
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		// Measured with make bench (README, Performance): at 50 QPS a
		// thousand keys converge in 40 s, all workers waiting on the
		// client-side limiter; at 200 the API server is the limit. API
		// Priority and Fairness protects the server itself.
		MaxConcurrentReconciles: 16,
		KubeAPIQPS:              200,
		KubeAPIBurst:            400,
	}
}

// Scheme has the built-in types and ours.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = keyopsv1.AddToScheme(s)
	return s
}

// New builds a manager running the ExchangeAPIKey and ExchangeAccount controllers.
func New(ctx context.Context, cfg *rest.Config, o Options) (manager.Manager, error) {
	endpoints := endpoint.Policy{Allowed: o.AllowedEndpoints, AllowInsecure: o.AllowInsecureEndpoints}
	if err := endpoints.Validate(); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if o.KubeAPIQPS > 0 {
		cfg.QPS = o.KubeAPIQPS
	}
	if o.KubeAPIBurst > 0 {
		cfg.Burst = o.KubeAPIBurst
	}
	cfg.UserAgent = "exchange-key-operator/" + Version
	scheme := Scheme()
	managed := labels.SelectorFromSet(labels.Set{keyopsv1.LabelManaged: keyopsv1.LabelManagedValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		PprofBindAddress:        o.PprofBindAddress,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        "exchange-key-operator.keyops.io",
		LeaderElectionNamespace: o.LeaderElectionNS,
		Cache: cache.Options{
			// The cache holds only the Secrets this operator writes; source
			// Secrets are read on demand (see controllers.SetupWithManager).
			ByObject:         map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: managed}},
			DefaultTransform: cache.TransformStripManagedFields(),
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
	clk := o.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	reqs := metrics.NewExchangeRequests()
	ops := metrics.NewOperations()
	prober := exchange.NewProber(exchange.Options{
		UserAgent:  "exchange-key-operator/" + Version,
		RateLimits: o.ExchangeRateLimits,
		Now:        clk.Now,
		Observe:    reqs.Observe,
		Timeout:    o.ExchangeTimeout,
	})
	if !o.SkipMetricsRegistration {
		if err := metrics.Register(crmetrics.Registry, &metrics.KeyCollector{Reader: mgr.GetClient(), Now: clk.Now}, reqs, ops); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	var notifier controllers.Notifier = notify.NewWebhook("exchange-key-operator/"+Version, o.AllowInsecureEndpoints)
	if o.Notifier != nil {
		notifier = o.Notifier
	}
	r := &controllers.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    scheme,
		Recorder:  mgr.GetEventRecorder("exchange-key-operator"),
		Probes:    probecache.New(prober, clk.Now),
		Notifier:  notifier,
		Clock:     clk,
		Jitter:    o.Jitter,
		Endpoints: endpoints,
		Restarts:  ops.WorkloadRestarted,
	}
	conc := o.MaxConcurrentReconciles
	if conc <= 0 {
		conc = 1
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: conc}); err != nil {
		return nil, fmt.Errorf("setting up controller: %w", err)
	}
	if err := (&controllers.PolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the ClusterExchangeKeyPolicy controller: %w", err)
	}
	var master controllers.MasterChecker = prober
	if o.MasterChecker != nil {
		master = o.MasterChecker
	}
	ar := &controllers.AccountReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("exchange-key-operator"),
		Master:         master,
		Clock:          clk,
		Jitter:         o.Jitter,
		Endpoints:      r.Endpoints,
		SecretMetadata: r.SourceMetadata(),
	}
	if err := ar.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: conc}); err != nil {
		return nil, fmt.Errorf("setting up the ExchangeAccount controller: %w", err)
	}
	return mgr, nil
}
