// Command manager runs the exchange-key-operator.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	// CA roots compiled into the binary: the image (hack/image) has no
	// /etc/ssl, and Go uses these only when the system has no roots.
	_ "golang.org/x/crypto/x509roots/fallback"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/keyops-io/exchange-key-operator/internal/endpoint"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// rateLimitFlag parses repeated --exchange-rate-limit=binance=10:20.
type rateLimitFlag map[exchange.Name]exchange.RateLimit

func (f rateLimitFlag) String() string {
	parts := make([]string, 0, len(f))
	for n, rl := range f {
		parts = append(parts, fmt.Sprintf("%s=%g:%d", n, rl.PerSecond, rl.Burst))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f rateLimitFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		name, spec, ok := strings.Cut(item, "=")
		rps, burst, ok2 := strings.Cut(spec, ":")
		if !ok || !ok2 || !exchange.Supported(exchange.Name(name)) {
			return fmt.Errorf("want EXCHANGE=REQUESTS_PER_SECOND:BURST, e.g. binance=10:20, got %q", item)
		}
		r, err1 := strconv.ParseFloat(rps, 64)
		b, err2 := strconv.Atoi(burst)
		if err1 != nil || err2 != nil || r <= 0 || b < 1 {
			return fmt.Errorf("rate and burst must be positive numbers in %q", item)
		}
		f[exchange.Name(name)] = exchange.RateLimit{PerSecond: r, Burst: b}
	}
	return nil
}

func main() {
	o := operator.Defaults()
	limits := rateLimitFlag{}
	flag.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address the metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&o.MetricsSecure, "metrics-secure", o.MetricsSecure, "Serve metrics over HTTPS to clients the API server authenticates and authorizes (GET /metrics). false serves plain HTTP and needs a loopback --metrics-bind-address.")
	watchNamespaces := flag.String("watch-namespaces", "", "Comma-separated namespaces to watch, e.g. team-a,team-b (default: all). The manager then needs Roles in these namespaces only (config/namespaced).")
	flag.StringVar(&o.KeySelector, "key-selector", "", "Label selector of the ExchangeAPIKeys this install reconciles, e.g. shard=a (default: all). Makes the install one shard of a fleet, with a leader-election Lease of its own; see docs/scaling.md.")
	flag.BoolVar(&o.WithAccountController, "with-account-controller", false, "With --key-selector: also run the ExchangeAccount controller in this shard. Set it on exactly one shard of a fleet; an install without --key-selector always runs it.")
	flag.StringVar(&o.PprofBindAddress, "pprof-bind-address", "", "Address of the pprof endpoint (e.g. 127.0.0.1:6060); empty disables it.")
	flag.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address the health probe endpoint binds to.")
	flag.BoolVar(&o.LeaderElection, "leader-elect", false, "Enable leader election, for running more than one replica.")
	flag.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election lease (default: the pod's namespace).")
	flag.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", 0, "How long a standby waits before taking over a lease that was not renewed (default 15s).")
	flag.DurationVar(&o.RenewDeadline, "leader-election-renew-deadline", 0, "How long the leader retries renewing its lease before it gives up leadership (default 10s).")
	flag.DurationVar(&o.RetryPeriod, "leader-election-retry-period", 0, "How often leader election clients retry (default 2s).")
	flag.BoolVar(&o.AllowInsecureEndpoints, "allow-insecure-endpoints", false, "Admit exchange endpoints on loopback addresses (http or https) and plain-http webhook URLs to loopback: local simulators only, never in production.")
	flag.Func("allowed-endpoints", "Comma-separated exchange base URLs admitted besides each exchange's official hosts, e.g. https://proxy.example:8443/binance (repeatable; https unless --allow-insecure-endpoints). Checked at startup.", func(v string) error {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				// The scheme is checked against --allow-insecure-endpoints
				// once all flags are read (operator.New).
				if err := (endpoint.Policy{Allowed: []string{e}, AllowInsecure: true}).Validate(); err != nil {
					return err
				}
				o.AllowedEndpoints = append(o.AllowedEndpoints, e)
			}
		}
		return nil
	})
	flag.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles, "ExchangeAPIKeys reconciled in parallel.")
	qps := float64(o.KubeAPIQPS)
	flag.Float64Var(&qps, "kube-api-qps", qps, "Client-side limit of the manager's requests to the Kubernetes API server per second, all resources together (0: none; API Priority and Fairness protects the server).")
	flag.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of requests to the Kubernetes API server with --kube-api-qps (0: twice the QPS).")
	flag.Var(limits, "exchange-rate-limit", "Client-side rate limit per exchange, shared by all keys: EXCHANGE=RPS:BURST, repeatable or comma-separated (defaults: "+rateLimitFlag(exchange.DefaultRateLimits).String()+").")
	version := flag.Bool("version", false, "Print the version and exit.")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *version {
		fmt.Println(operator.Version)
		return
	}
	if err := (endpoint.Policy{Allowed: o.AllowedEndpoints, AllowInsecure: o.AllowInsecureEndpoints}).Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.KubeAPIQPS = float32(qps)
	operator.SetGCPercent(os.Getenv)
	var err error
	if o.WatchNamespaces, err = operator.ParseNamespaces(*watchNamespaces); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := operator.ParseKeySelector(o.KeySelector); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := operator.CheckMetricsServing(o.MetricsBindAddress, o.MetricsSecure); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.ExchangeRateLimits = limits
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("setup")

	ctx := ctrl.SetupSignalHandler()
	mgr, err := operator.New(ctx, ctrl.GetConfigOrDie(), o)
	if err != nil {
		log.Error(err, "unable to build the manager")
		os.Exit(1)
	}
	log.Info("starting manager", "version", operator.Version, "watchNamespaces", o.WatchNamespaces, "keySelector", o.KeySelector, "metricsSecure", o.MetricsSecure)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
