// Command bench measures the operator at scale on one local control plane
// (envtest: a real kube-apiserver and etcd) and one exchange simulator served
// by this process on loopback. The manager runs as a separate process built
// from ./cmd, so that its memory and CPU are its own.
//
// Phases (--phases, in this order):
//
//	raw       the reference: the benchmark creates N Secrets and updates N
//	          ExchangeAPIKeys' status as fast as the API server accepts
//	          (best of three rounds, before any manager runs)
//	disabled  convergence of N keys with validation.mode Disabled
//	enforce   convergence of N keys with Enforce against the simulator,
//	          after the Disabled keys are removed, by a fresh manager (so
//	          that its peak is that of N keys, not 2N)
//	idle      API writes and exchange calls of the converged keys over a
//	          window holding exactly one validation interval per key
//	churn     rotation of 10% of the Enforce keys, whose restart targets
//	          (Deployments) must roll exactly once
//	interval  spec.validation.interval of every Enforce key edited at once:
//	          exchange calls beyond those due and status writes until quiet
//	memory    peak RSS of a fresh manager, then of another one after
//	          --unrelated Secrets were added to the cluster
//
// Every figure is measured at the product's default flags (--manager-flags
// for others). The key sets are spread over the eight exchanges in
// proportion to the default per-exchange rate limits, and every tenth key
// shares its material with the previous one, so that one probe must serve
// both. --soak runs the soak test instead of the phases (soak.go).
//
// API writes come from the API server's own apiserver_request_total (verbs
// POST, PUT, PATCH, DELETE, DELETECOLLECTION, APPLY), less the benchmark's own
// writes; exchange calls from the simulator's counters. --pprof builds the
// manager with a pprof listener (go build -overlay, the tree is untouched)
// and saves CPU, heap and goroutine profiles.
//
// Run it with `make bench` (KUBEBUILDER_ASSETS from hack/envtest-assets.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/keyops-io/exchange-key-operator/hack/internal/localenv"
	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

var allPhases = []string{"raw", "disabled", "enforce", "idle", "churn", "interval", "memory"}

type config struct {
	n, namespaces, unrelated, workers int
	phases                            map[string]bool
	sharedEvery                       int
	idleInterval                      time.Duration
	managerFlags                      []string
	pprofDir                          string
	timeout                           time.Duration
	keep                              bool
	soak                              time.Duration
	shards                            int
}

func parseFlags() (config, error) {
	var c config
	var phases, mflags string
	flag.IntVar(&c.n, "n", 1000, "ExchangeAPIKeys per key set (Disabled, Enforce).")
	flag.IntVar(&c.namespaces, "namespaces", 10, "Namespaces each key set is spread over.")
	flag.IntVar(&c.unrelated, "unrelated", 50000, "Unrelated Secrets added for the memory phase.")
	flag.IntVar(&c.workers, "workers", 32, "Parallel requests of the benchmark's own client (no client-side rate limit).")
	flag.StringVar(&phases, "phases", strings.Join(allPhases, ","), "Comma-separated phases to run: "+strings.Join(allPhases, ",")+" (idle and churn imply enforce).")
	flag.IntVar(&c.sharedEvery, "shared-every", 10, "Every k-th key reuses the previous key's material (one probe must serve both); 0 disables.")
	flag.DurationVar(&c.idleInterval, "idle-interval", 0, "spec.validation.interval of the Enforce keys (0: chosen from N so that the idle window holds exactly one interval per key; see the output).")
	flag.StringVar(&mflags, "manager-flags", "", "Flags for the main run's manager (default: none, i.e. the product defaults).")
	flag.StringVar(&c.pprofDir, "pprof", "", "Directory for CPU and heap profiles of the manager (builds it with a pprof listener via go build -overlay).")
	flag.DurationVar(&c.timeout, "timeout", 0, "Overall deadline (0: 15m for N<=1000, more for larger N).")
	flag.BoolVar(&c.keep, "keep", false, "Keep the work directory (manager logs, kubeconfig).")
	flag.IntVar(&c.shards, "shards", 1, "With more than 1 (BENCH_SHARDS): after the phases, converge another N Enforce keys with this many managers of disjoint --key-selector, each with its own limiters, against the one-install Enforce time.")
	flag.DurationVar(&c.soak, "soak", 0, "Instead of the phases: the soak test for this long (make soak): --n Enforce keys revalidated every minute under injected faults, edits and rotations; fails on resource growth or a key probed more or less than once per interval.")
	flag.Parse()
	c.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, q := range allPhases {
			ok = ok || p == q
		}
		if !ok {
			return c, fmt.Errorf("unknown phase %q (want some of %s)", p, strings.Join(allPhases, ","))
		}
		c.phases[p] = true
	}
	if c.phases["idle"] || c.phases["churn"] || c.phases["interval"] {
		c.phases["enforce"] = true
	}
	if c.shards > 1 {
		c.phases["enforce"] = true
	}
	if c.phases["memory"] && !c.phases["disabled"] && !c.phases["enforce"] {
		c.phases["disabled"] = true
	}
	if c.n < 10 || c.namespaces < 1 || c.workers < 1 {
		return c, fmt.Errorf("--n must be at least 10, --namespaces and --workers at least 1")
	}
	c.managerFlags = strings.Fields(mflags)
	if c.timeout == 0 {
		c.timeout = 15*time.Minute + time.Duration(c.n/1000)*3*time.Minute + c.soak
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// controller-runtime logs only errors: the progress lines are ours.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(run(cfg))
}

func run(cfg config) int {
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	b := &bench{cfg: cfg, rep: &report{}, start: start}
	code := 0
	if err := b.run(ctx); err != nil {
		b.logf("FAILED: %v", err)
		b.rep.note("the run stopped early: %v", err)
		code = 1
	}
	b.cleanup()
	// Without the compile of `go run` itself, which the caller sees too.
	// The budgets: 10 minutes at N=1,000, 20 at N=10,000.
	limit := 10 * time.Minute
	if cfg.n >= 10000 {
		limit = 20 * time.Minute
	}
	b.rep.add("run", "wall time of the benchmark process", fmt.Sprintf("%.0fs", time.Since(start).Seconds()), fmt.Sprintf("< %.0fs", limit.Seconds()), verdictIf(cfg.soak == 0 && (cfg.n == 1000 || cfg.n == 10000), time.Since(start) < limit))
	b.rep.print(os.Stdout)
	if code != 0 || cfg.keep {
		fmt.Printf("\nWork directory (manager logs): %s\n", b.work)
	} else if b.work != "" {
		_ = os.RemoveAll(b.work)
	}
	return code
}

func verdictIf(applies, ok bool) string {
	if !applies {
		return "-"
	}
	return verdict(ok)
}

// bench holds what the phases share.
type bench struct {
	cfg   config
	rep   *report
	start time.Time
	root  string
	work  string
	cl    *cluster
	sim   *simulator.Simulator
	srv   *httptest.Server
	trk   *tracker
	bin   string
	mgr   *manager
	auth  *metricsAuth
	// emptyRSS, emptyHeap: the main manager before any key existed, the
	// base of the steady-state cost per key.
	emptyRSS, emptyHeap float64

	raw      *rawResult
	disabled *keySet
	enforce  *keySet
	convTime map[string]time.Duration
	probes   *probeLog // the soak's log of probes
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) run(ctx context.Context) error {
	var err error
	if b.root, err = localenv.RepoRoot(); err != nil {
		return err
	}
	if b.work, err = os.MkdirTemp("", "keyops-bench-"); err != nil {
		return err
	}
	if b.cfg.pprofDir != "" {
		if b.cfg.pprofDir, err = filepath.Abs(b.cfg.pprofDir); err != nil {
			return err
		}
		if err := os.MkdirAll(b.cfg.pprofDir, 0o755); err != nil {
			return err
		}
	}
	b.convTime = map[string]time.Duration{}
	b.bin = filepath.Join(b.root, "bin", "manager")
	if b.cfg.pprofDir != "" {
		// Profiling needs the listener; bin/manager stays the product.
		b.bin = filepath.Join(b.work, "manager-pprof")
	}
	b.logf("building the manager (go build -o %s ./cmd)", b.bin)
	if err := buildManager(ctx, b.root, b.bin, b.work, b.cfg.pprofDir != ""); err != nil {
		return err
	}
	b.logf("starting envtest (kube-apiserver + etcd)")
	if b.cl, err = startCluster(b.root, b.work); err != nil {
		return err
	}
	if b.cfg.soak > 0 {
		b.probes = &probeLog{}
		b.sim = simulator.New(simulator.WithKeyLog(b.probes.record))
	} else {
		b.sim = simulator.New()
	}
	b.srv = httptest.NewServer(b.sim)
	if err := b.preflight(ctx); err != nil {
		return err
	}
	if b.trk, err = startTracker(ctx, b.cl.cfg); err != nil {
		return err
	}
	if b.auth, err = b.cl.metricsAuth(ctx, b.root); err != nil {
		return err
	}

	if b.cfg.soak > 0 {
		return b.runSoak(ctx, b.cfg.soak)
	}
	if b.cfg.phases["raw"] {
		if err := b.phaseRaw(ctx); err != nil {
			return fmt.Errorf("raw: %w", err)
		}
	}
	if err := b.mainRun(ctx); err != nil {
		return err
	}
	return nil
}

// mainRun measures at the main flags (the product defaults unless
// --manager-flags says otherwise).
func (b *bench) mainRun(ctx context.Context) error {
	if !b.cfg.phases["disabled"] && !b.cfg.phases["enforce"] {
		return nil
	}
	label := "default"
	if len(b.cfg.managerFlags) > 0 {
		label = "custom"
	}
	m, err := b.startManager(ctx, label, b.cfg.managerFlags)
	if err != nil {
		return err
	}
	b.mgr = m
	defer func() { b.stopManager(b.mgr) }()
	limits := rateLimits(b.cfg.managerFlags)
	if st, err := m.waitIdle(ctx, 0, 2*time.Second, time.Minute); err == nil {
		_, b.emptyRSS = m.memory()
		b.emptyHeap = st.heapInuse
		b.rep.add("memory", "empty manager (no keys yet): RSS; Go heap in use", fmt.Sprintf("%.0f MiB; %.0f MiB", b.emptyRSS, b.emptyHeap/(1<<20)), "", "")
	}
	if b.cfg.phases["disabled"] {
		s, err := b.newSet("disabled", "Disabled", 0)
		if err != nil {
			return err
		}
		b.disabled = s
		m.resetPeak()
		if err := b.phaseConverge(ctx, s, m, label); err != nil {
			return fmt.Errorf("disabled: %w", err)
		}
		b.peakRow(ctx, m, "converge Disabled", true)
	}
	if b.cfg.phases["memory"] {
		// Before Enforce: the fresh managers of the memory phase must see
		// a quiet cluster, and Enforce keys at the short idle interval
		// never are (resetting the interval is a spec change, which makes
		// every key revalidate: minutes at N=10,000).
		// The last fresh manager goes on with Enforce.
		b.stopManager(m)
		if err := b.phaseMemory(ctx, b.cfg.phases["enforce"]); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		if !b.cfg.phases["enforce"] {
			return nil
		}
		m = b.mgr
	}
	if b.cfg.phases["enforce"] {
		if b.disabled != nil {
			// Enforce is measured at N keys too, not at 2N: the Disabled
			// keys go, and a fresh manager (its heap never held them)
			// converges the Enforce keys. Its empty RSS is the first
			// manager's, the base of the steady cost per key.
			b.stopManager(m)
			if err := b.removeSet(ctx, b.disabled); err != nil {
				return fmt.Errorf("removing the Disabled keys: %w", err)
			}
			b.disabled = nil
			if m, err = b.startManager(ctx, label, b.cfg.managerFlags); err != nil {
				return err
			}
			b.mgr = m
			if _, err := m.waitIdle(ctx, 0, 2*time.Second, time.Minute); err != nil {
				return err
			}
		}
		s, err := b.newSet("enforce", "Enforce", 0)
		if err != nil {
			return err
		}
		if b.cfg.phases["idle"] {
			s.interval = b.idleInterval(s, limits)
		}
		b.enforce = s
		m.resetPeak()
		if err := b.phaseConverge(ctx, s, m, label); err != nil {
			return fmt.Errorf("enforce: %w", err)
		}
		b.peakRow(ctx, m, "converge Enforce", true)
		// Churn right after convergence, before any key is due again; the
		// idle window then starts after it.
		if b.cfg.phases["churn"] {
			m.resetPeak()
			if err := b.phaseChurn(ctx, s, m, label); err != nil {
				return fmt.Errorf("churn: %w", err)
			}
			b.peakRow(ctx, m, "churn", false)
		}
		if b.cfg.phases["idle"] {
			m.resetPeak()
			if err := b.phaseIdle(ctx, s, m); err != nil {
				return fmt.Errorf("idle: %w", err)
			}
			b.peakRow(ctx, m, "idle", false)
		}
		if b.cfg.phases["interval"] {
			m.resetPeak()
			if err := b.phaseInterval(ctx, s, m); err != nil {
				return fmt.Errorf("interval: %w", err)
			}
			b.peakRow(ctx, m, "interval edit", false)
		}
	}
	b.steadyRows(ctx, m)
	if b.cfg.shards > 1 {
		b.stopManager(m)
		if err := b.phaseShards(ctx); err != nil {
			return fmt.Errorf("shards: %w", err)
		}
	}
	return nil
}

// peakRow reports a manager's peak RSS over one phase (since resetPeak),
// scraped all along every 15 s, and its Go heap at the end. At N=10,000
// a convergence must peak at 512 MiB or less (issue #22).
func (b *bench) peakRow(ctx context.Context, m *manager, phase string, converge bool) {
	hwm, rss := m.memory()
	heap := 0.0
	if st, err := m.stats(ctx); err == nil {
		heap = st.heapInuse
	}
	target, v := "", ""
	if converge && b.cfg.n >= 10000 {
		target, v = "<= 512 MiB", verdict(hwm <= 512)
	}
	b.rep.add("memory", fmt.Sprintf("peak RSS while %s ran (scraped every %s); RSS, Go heap at its end", phase, promScrapeInterval),
		fmt.Sprintf("%.0f MiB; %.0f MiB, %.0f MiB", hwm, rss, heap/(1<<20)), target, v)
	b.logf("memory: %s peaked at %.0f MiB RSS (now %.0f MiB, heap %.0f MiB)", phase, hwm, rss, heap/(1<<20))
}

// steadyRows: what each key costs the converged, idle manager above an
// empty one (issue #22: at most 16 KiB at N=10,000).
func (b *bench) steadyRows(ctx context.Context, m *manager) {
	keys := b.existingKeys()
	if keys == 0 || b.emptyRSS == 0 {
		return
	}
	st, err := m.waitIdle(ctx, 0, 3*time.Second, 2*time.Minute)
	if err != nil {
		return
	}
	_, rss := m.memory()
	if b.cfg.pprofDir != "" {
		// What stays per key (in use) and what the run allocated (the
		// reconcile path's copies), for `go tool pprof`.
		for _, p := range []string{"heap", "allocs"} {
			f := filepath.Join(b.cfg.pprofDir, "steady."+p+".pb.gz")
			// gc=1: the heap profile shows what the last GC kept, which
			// without a GC now may still hold the convergence's garbage.
			if err := m.saveProfile(ctx, "/debug/pprof/"+p+"?gc=1", f); err == nil {
				b.rep.note("%s profile of the steady manager: %s", p, f)
			}
		}
	}
	perKey := (rss - b.emptyRSS) * (1 << 20) / float64(keys)
	target, v := "", ""
	if b.cfg.n >= 10000 {
		target, v = "<= 16 KiB", verdict(perKey <= 16<<10)
	}
	b.rep.add("memory", fmt.Sprintf("steady state, %d keys, idle and scraped: RSS per key above the empty manager; Go heap per key", keys),
		fmt.Sprintf("%.1f KiB (RSS %.0f MiB); %.1f KiB", perKey/1024, rss, (st.heapInuse-b.emptyHeap)/float64(keys)/1024), target, v)
}

func (b *bench) startManager(ctx context.Context, label string, flags []string) (*manager, error) {
	b.logf("starting manager (%s): %s", label, strings.Join(flags, " "))
	logPath := filepath.Join(b.work, fmt.Sprintf("manager-%s-%d.log", label, time.Now().UnixNano()))
	m, err := startManager(ctx, b.bin, b.cl.kubeconfig, logPath, label, flags, b.cfg.pprofDir != "", b.auth)
	if err != nil {
		return nil, err
	}
	b.rep.flagSet(label, m.commandLine()+"\n           "+effectiveFlags(flags))
	return m, nil
}

func (b *bench) stopManager(m *manager) {
	if m == nil {
		return
	}
	if n := m.countLog("Reconciler error"); n > 0 {
		b.rep.note("manager (%s) logged %d 'Reconciler error' lines; see %s", m.label, n, m.logPath)
	}
	m.stop()
	b.rep.note("manager (%s, up %.0fs) scraped like Prometheus (HTTPS, bearer token, metrics-reader role): %s", m.label, time.Since(m.started).Seconds(), m.prom.summary())
	if b.mgr == m {
		b.mgr = nil
	}
}

func (b *bench) cleanup() {
	b.stopManager(b.mgr)
	b.trk.stop()
	if b.srv != nil {
		b.srv.Close()
	}
	b.cl.stop()
}

func (b *bench) existingKeys() int {
	n := 0
	for _, s := range []*keySet{b.disabled, b.enforce} {
		if s != nil {
			n += len(s.keys)
		}
	}
	return n
}

// rateLimits are the per-exchange limits a manager with these flags uses.
func rateLimits(flags []string) map[exchange.Name]exchange.RateLimit {
	out := map[exchange.Name]exchange.RateLimit{}
	for n, rl := range exchange.DefaultRateLimits {
		out[n] = rl
	}
	for _, f := range flags {
		v, ok := strings.CutPrefix(f, "--exchange-rate-limit=")
		if !ok {
			continue
		}
		for _, item := range strings.Split(v, ",") {
			name, spec, _ := strings.Cut(item, "=")
			var rps float64
			var burst int
			if _, err := fmt.Sscanf(spec, "%g:%d", &rps, &burst); err == nil {
				out[exchange.Name(name)] = exchange.RateLimit{PerSecond: rps, Burst: burst}
			}
		}
	}
	return out
}

// preflight probes one key per exchange in-process, so that a key shape the
// simulator rejects fails here in a second, not as a convergence timeout.
func (b *bench) preflight(ctx context.Context) error {
	p := exchange.NewProber(exchange.Options{Timeout: 5 * time.Second})
	for _, n := range exchange.Names {
		c, err := newCreds(n)
		if err != nil {
			return err
		}
		register(b.sim, n, c)
		if _, err := p.Probe(ctx, exchange.Request{Exchange: n, Endpoint: simulator.BaseURL(b.srv.URL, n), Credentials: c}); err != nil {
			return fmt.Errorf("preflight probe of %s against the simulator: %w", n, err)
		}
	}
	b.sim.ResetCounters()
	return nil
}

// effectiveFlags spells out what a flag set means, defaults included.
func effectiveFlags(flags []string) string {
	d := operator.Defaults()
	set := map[string]string{
		"max-concurrent-reconciles": fmt.Sprint(d.MaxConcurrentReconciles),
		"kube-api-qps":              fmt.Sprint(d.KubeAPIQPS),
		"kube-api-burst":            fmt.Sprint(d.KubeAPIBurst),
	}
	for _, f := range flags {
		name, v, ok := strings.Cut(strings.TrimLeft(f, "-"), "=")
		if _, known := set[name]; ok && known {
			set[name] = v
		}
	}
	var limits []string
	rl := rateLimits(flags)
	for _, n := range exchange.Names {
		limits = append(limits, fmt.Sprintf("%s=%g:%d", n, rl[n].PerSecond, rl[n].Burst))
	}
	return fmt.Sprintf("effective: --max-concurrent-reconciles=%s --kube-api-qps=%s --kube-api-burst=%s --exchange-rate-limit=%s",
		set["max-concurrent-reconciles"], set["kube-api-qps"], set["kube-api-burst"], strings.Join(limits, ","))
}
